"""
fedq integration tests of the cell budget (issue 7; imported by
run_integration.py, registered with its @test decorator, run by its
runner).

The federations are the example agents with the example policies, whose
P20W-2026-01 cell_budget is lowered per test. What a query costs comes
from an oracle over the fedq-synth SQLite files: one cell per aggregate of
each returned group with at least 11 persons (pooled: the sum of the
agencies' persons, and for every agency the others' sum 0 or at least 11).
Nothing of fedq's output feeds an expectation; the refusal is asserted
with its status and exact message.
"""

import sqlite3
import subprocess

import grpc

import run_integration as ri
from run_integration import (check, expect_status, identity, rpc_error,
                             sanitizer_report, tail, test)
import query_tests as qt
from query_tests import CALL_TIMEOUT, ExampleFed
from store_tests import VINTAGE_RE, next_second

AGREEMENT = ri.EXAMPLE_TERMS.agreement
MIN_CELL = 11
BUDGET = 7
BY_PROGRAM = "SELECT program, COUNT(*) FROM dss.enrollment GROUP BY program"
SUM_BY_PROGRAM = ("SELECT program, SUM(benefit) FROM dss.enrollment "
                  "GROUP BY program")
BY_SEX = "SELECT sex, COUNT(*) FROM dss.enrollment GROUP BY sex"
SUM_BY_SEX_1 = ("SELECT sex, SUM(benefit) FROM dss.enrollment GROUP BY sex "
                "ORDER BY sex LIMIT 1")
TOTAL = "SELECT COUNT(*) FROM dss.enrollment"
WOMEN = "SELECT COUNT(*) FROM dss.enrollment WHERE sex = 'F'"
HIED_BY_TERM = "SELECT term, COUNT(*) FROM hied.enrollment GROUP BY term"


def budget_edit(budgets, analysts=None):
    """A policy_edit setting P20W-2026-01's cell_budget per agency (and
    its analysts, if given)."""
    def fn(agency):
        def edit(pol):
            for ag in pol["agreements"]:
                if ag["id"] != AGREEMENT:
                    continue
                ag["release"]["cell_budget"] = budgets[agency]
                ag["release"]["cell_budget_rationale"] = "integration test"
                if analysts:
                    ag["analysts"] = list(analysts)
        return edit

    def policy_edit(agency, text):
        if agency not in budgets:
            return text
        return ri.edit_policy_text(text, fn(agency))
    return policy_edit


# ---- the oracle -------------------------------------------------------------


def db_path(h, agency):
    return qt.query_data(h) / agency / f"{agency}.sqlite"


def persons(h, agency, table, key, where=""):
    """{key value: distinct persons} at one agency."""
    db = sqlite3.connect(f"file:{db_path(h, agency)}?mode=ro", uri=True)
    try:
        sel = f"{key}, " if key else ""
        grp = f" GROUP BY {key}" if key else ""
        rows = db.execute(f"SELECT {sel}COUNT(DISTINCT person_id) FROM "
                          f"{table} {where}{grp}").fetchall()
    finally:
        db.close()
    return {(r[0] if key else None): r[-1] for r in rows}


def released(parts, limit=None):
    """How many groups show values: the pooled persons pass the threshold
    and so does, for every agency, the rest of the pool (0 allowed); in key
    order, at most limit of them."""
    keys = sorted({k for p in parts for k in p}, key=lambda k: (k is None, k))
    n = 0
    for k in keys:
        each = [p.get(k, 0) for p in parts]
        total = sum(each)
        ok = total >= MIN_CELL and all(
            total - e == 0 or total - e >= MIN_CELL for e in each)
        n += ok
    return min(n, limit) if limit is not None else n


def dss_cells(h, key, where="", limit=None):
    return released([persons(h, "dss", "enrollment", key, where)], limit)


# ---- helpers ------------------------------------------------------------------


def query(fed, sql, party="analyst-alice"):
    return fed.stub(party=party).Query(fed.qreq(sql), timeout=CALL_TIMEOUT)


def vintage_of(r, agency):
    v = [x.vintage for x in r.vintages if x.agency == agency]
    check(len(v) == 1 and VINTAGE_RE.match(v[0]),
          f"vintages {[(x.agency, x.vintage) for x in r.vintages]}")
    return v[0]


def expect_spent(fed, sql, agency, vintage, used, budget, more,
                 party="analyst-alice", dataset="enrollment"):
    e = rpc_error(fed.stub(party=party).Query, fed.qreq(sql),
                  timeout=CALL_TIMEOUT)
    want = (f"agency {agency}: the cell budget of agreement {AGREEMENT} for "
            f"dataset {dataset} (data of {vintage}) is spent: {used} of "
            f"{budget} cells released to you; this query would release "
            f"{more} more")
    expect_status(e, grpc.StatusCode.RESOURCE_EXHAUSTED)
    check(e.details() == want,
          f"refusal {e.details()!r}, expected {want!r}")


def refresh(h, fed, agency):
    """fedq-agent refresh of the agency's enrollment extract: a new
    vintage."""
    r = subprocess.run([str(h.bin / "fedq-agent"), "refresh", "enrollment",
                        "--config", str(fed.agent_cfg_path(agency))],
                       capture_output=True, text=True, env=h.env, timeout=120)
    check(r.returncode == 0 and r.stdout.startswith("ok ") and
          sanitizer_report(r.stderr) is None,
          f"fedq-agent refresh: rc {r.returncode}, out {r.stdout!r}, err "
          f"{tail(r.stderr)}")
    return r.stdout.split()[1]


# ---- tests ------------------------------------------------------------------


@test
def budget_spent_refused(h):
    """dss's P20W-2026-01 allows 7 cells: queries are charged their new
    released cells (suppressed cells and repeats are free, LIMIT charges
    only the rows returned) until one would pass the budget: it is refused
    with RESOURCE_EXHAUSTED naming the agency, agreement, dataset, vintage
    and counts, while a query of cells already released still answers.
    Another analyst has a budget of their own; the ledger survives a
    gateway restart; a new vintage of the extract starts afresh."""
    alice, bob = identity("analyst/alice"), identity("analyst/bob")
    fed = ExampleFed(h, "budget", ["dss"],
                     policy_edit=budget_edit({"dss": BUDGET}, [alice, bob]))
    try:
        n_prog = dss_cells(h, "program")
        n_sex = dss_cells(h, "sex")
        check(n_prog + n_sex == 5 and dss_cells(h, None) == 1,
              f"the data has {n_prog} programs and {n_sex} sexes of 11 "
              f"persons or more; the test wants 3 and 2")
        r = query(fed, BY_PROGRAM)
        v1 = vintage_of(r, "dss")
        query(fed, BY_SEX)                           # 5 of 7
        expect_spent(fed, SUM_BY_PROGRAM, "dss", v1, 5, BUDGET, n_prog)
        query(fed, BY_PROGRAM)                       # the same cells: free
        query(fed, TOTAL)                            # 6 of 7
        r = query(fed, SUM_BY_SEX_1)                 # one row: 7 of 7
        check(len(r.rows) == 1, f"LIMIT 1 returned {len(r.rows)} rows")
        expect_spent(fed, WOMEN, "dss", v1, BUDGET, BUDGET, 1)
        for sql in (BY_PROGRAM, BY_SEX, TOTAL, SUM_BY_SEX_1):
            query(fed, sql)                          # all released before

        # bob's budget is his own.
        query(fed, SUM_BY_PROGRAM, party="analyst-bob")
        query(fed, BY_SEX, party="analyst-bob")
        expect_spent(fed, BY_PROGRAM + " ORDER BY program LIMIT 3", "dss",
                     v1, n_prog + n_sex, BUDGET, n_prog, party="analyst-bob")

        # The ledger is on disk: a restarted gateway still refuses.
        fed.gateway.stop()
        h.procs.remove(fed.gateway)
        fed.start_gateway()
        ri.wait_until(lambda: query(fed, TOTAL), 20,
                      "the restarted gateway to answer", 0.2,
                      watch=fed.procs())
        expect_spent(fed, WOMEN, "dss", v1, BUDGET, BUDGET, 1)
        query(fed, SUM_BY_SEX_1)
        log = fed.gateway.stderr_text()
        check("refused: cell budget of dss for enrollment" in log,
              f"the refusal is not logged: {tail(log)}")

        # A new vintage of the extract: a fresh budget.
        next_second(v1)
        v2 = refresh(h, fed, "dss")
        check(v2 != v1, f"refresh kept vintage {v1}")
        for sql in (WOMEN, SUM_BY_PROGRAM, BY_PROGRAM):   # 1 + 3 + 3
            r = query(fed, sql)
            check(vintage_of(r, "dss") == v2, f"{sql}: not the new extract")
        expect_spent(fed, TOTAL, "dss", v2, BUDGET, BUDGET, 1)
    finally:
        fed.close()


@test
def budget_pooled_charges_each(h):
    """A table pooled over hied charges every member's budget, each set to
    exactly what the table releases: afterwards any new cell is refused at
    uhs (the first member) through hied, and at csu and ccs asked alone
    (a member whose own total is under the threshold gets it suppressed,
    which charges nothing: the synthetic data's seed decides), while the
    pooled table itself still answers."""
    members = qt.HIED
    parts = [persons(h, a, "enrollment", "term") for a in members]
    n = released(parts)
    check(n >= 1, f"no term releases at hied")
    budgets = {a: n for a in members}
    fed = ExampleFed(h, "budget-hied", members,
                     policy_edit=budget_edit(budgets))
    try:
        r = query(fed, HIED_BY_TERM)
        vintages = {a: vintage_of(r, a) for a in members}
        query(fed, HIED_BY_TERM)
        expect_spent(fed, "SELECT COUNT(*) FROM hied.enrollment", "uhs",
                     vintages["uhs"], n, n, 1)
        for a in ("csu", "ccs"):
            sql = f"SELECT COUNT(*) FROM {a}.enrollment"
            if persons(h, a, "enrollment", None)[None] >= MIN_CELL:
                expect_spent(fed, sql, a, vintages[a], n, n, 1)
                continue
            cell = query(fed, sql).rows[0].cells[0]
            check(cell.status == h.proto.gw.CELL_STATUS_SUPPRESSED,
                  f"{a}'s total of under {MIN_CELL} persons: {cell}")
    finally:
        fed.close()
