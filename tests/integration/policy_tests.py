"""
fedq integration tests of signed release policies and steward review
(issue 6; imported by run_integration.py, registered with its @test
decorator, run by its runner).

The federations are the example agents (deploy/examples/etc, fedq-synth
data) with the example policies, changed per test (a column or an
aggregate dropped, dates moved, a threshold raised, review every_query)
and signed with the agencies' policy keys. Every refusal is asserted with
its status code and the term it must name, and with nothing released;
where the gateway refuses early, the agent is also asked directly (as the
gateway) to show that it decides on its own. Released tables are checked
against query_tests' oracle over the SQLite files; policy hashes against
SHA-256 of the files the agents run.
"""

import concurrent.futures
import datetime
import itertools
import re
import signal

import grpc
import yaml

import run_integration as ri
from run_integration import (TestFailure, check, expect_status, identity,
                             policy_sha, rpc_error, tail, test, wait_until,
                             write_text)
import query_tests as qt
from query_tests import CALL_TIMEOUT, HIED, ExampleFed

AGREEMENT = ri.EXAMPLE_TERMS.agreement
PURPOSE = ri.EXAMPLE_TERMS.purpose
QUERY_ID_RE = re.compile(r"q-[0-9a-f]{16}")
DSS_COLS = "SELECT program, COUNT(*) FROM dss.enrollment GROUP BY program"
DSS_SEX = "SELECT sex, COUNT(*) FROM dss.enrollment GROUP BY sex"
DSS_SEX_WHERE = ("SELECT program, COUNT(*) FROM dss.enrollment WHERE "
                 "sex = 'F' GROUP BY program")
DSS_HIST = ("SELECT program, HISTOGRAM(benefit, 10000, 50000) FROM "
            "dss.enrollment GROUP BY program")
HIED_SQL = ("SELECT institution, COUNT(*) FROM hied.enrollment GROUP BY "
            "institution")
DOL_SQL = "SELECT quarter, COUNT(*) FROM dol.wages GROUP BY quarter"
DOE_SQL = ("SELECT graduated, COUNT(*) FROM doe.k12_enrollment GROUP BY "
           "graduated")


# ---- policies ---------------------------------------------------------------


def policy_edit(changes):
    """A policy_edit for ExampleFed: changes[agency](policy mapping) edits
    the parsed example policy in place (the YAML is written again)."""
    def edit(agency, text):
        fn = changes.get(agency)
        return ri.edit_policy_text(text, fn) if fn else text
    return edit


def agreement_of(policy):
    ags = [a for a in policy["agreements"] if a["id"] == AGREEMENT]
    check(len(ags) == 1, f"the example policy of {policy['agency']} has "
                         f"{len(ags)} agreements {AGREEMENT}")
    return ags[0]


def dataset_of(policy, name):
    return next(d for d in agreement_of(policy)["datasets"]
                if d["name"] == name)


def today():
    return datetime.datetime.now(datetime.timezone.utc).date()


def days(n):
    return (today() + datetime.timedelta(days=n)).isoformat()


def without_policy(agency, text):
    """An agent config's text without its policy: section."""
    cfg = yaml.safe_load(text)
    cfg.pop("policy", None)
    return yaml.safe_dump(cfg, sort_keys=False)


# ---- calls ------------------------------------------------------------------


def agent_stub(h, fed, agency, party="gateway"):
    ch = h.channel(fed.agents[agency].addr, party=party)
    fed.channels.append(ch)
    return h.proto.agent_grpc.AgentStub(ch)


def plan_of(fed, sql):
    """The typed plan the gateway would send (Explain without an
    agreement only plans; no policy is consulted)."""
    r = fed.stub().Explain(fed.ereq(sql, agreement="", purpose=""),
                           timeout=CALL_TIMEOUT)
    return r.plan


def execute(h, fed, agency, sql, analyst="analyst/alice", query_id=None,
            **kw):
    """Agent/Execute straight to the agency's agent, as the gateway would
    send it (the gateway's certificate), for analyst."""
    p = h.proto
    kw.setdefault("agreement", AGREEMENT)
    kw.setdefault("purpose", PURPOSE)
    req = p.agent.ExecuteRequest(
        query_id=query_id or f"direct-{next(DIRECT_IDS)}",
        plan=plan_of(fed, sql), analyst=identity(analyst), **kw)
    return agent_stub(h, fed, agency).Execute(req, timeout=CALL_TIMEOUT)


DIRECT_IDS = itertools.count(1)  # ids of the Executes sent directly


def refused(fn, *args, **kw):
    """The error of a call that must release nothing."""
    try:
        r = fn(*args, **kw)
    except grpc.RpcError as e:
        return e
    rows = len(getattr(r, "rows", getattr(r, "groups", [])))
    raise TestFailure(f"answered ({rows} rows or groups), expected a "
                      f"refusal")


def query_refused(fed, sql, code, *terms, party="analyst-alice", **kw):
    """Gateway/Query refused with code, its message naming every term."""
    e = refused(fed.stub(party).Query, fed.qreq(sql, **kw),
                timeout=CALL_TIMEOUT)
    expect_status(e, code, *terms)
    return e.details()


def released(fed, sql, party="analyst-alice", **kw):
    r = fed.stub(party).Query(fed.qreq(sql, **kw), timeout=CALL_TIMEOUT)
    check(r.state == fed.h.proto.gw.QUERY_STATE_RELEASED,
          f"{sql!r}: state {fed.h.proto.gw.QueryState.Name(r.state)}")
    return r


def cli_query(h, fed, sql, *args, config=None):
    return h.fedq("query", *args, "--format", "json", "--", sql,
                  config=config or fed.client_cfg)


def check_policies(r, fed, agencies):
    """The answer names the agreement and, per included agency in order,
    the hash and version of the very policy file its agent runs."""
    check(r.agreement == AGREEMENT, f"agreement {r.agreement!r}")
    got = [(x.agency, x.hash, x.version) for x in r.policies]
    want = [(a, policy_sha(fed.policies[a]),
             yaml.safe_load(fed.policies[a].read_text())["policy"]["version"])
            for a in agencies]
    check(got == want, f"policies {got}, expected {want}")


# ---- fail closed: no valid policy, no data ---------------------------------


@test
def policy_fail_closed(h):
    """An agent without a valid policy starts, but serves nothing
    (FAILED_PRECONDITION "agency X serves nothing: why"), through the
    gateway and when asked directly; --check fails with that message.
    dss has no policy: section; dol's policy is signed with dss' key; one
    byte of doe's was changed after signing; uhs runs csu's policy (signed
    with uhs' key). csu's agent trusts dss' key and runs a policy signed
    with it: the agent serves it, the gateway (csu's real key) refuses.
    ccs, valid, answers."""
    p = h.proto
    fed = ExampleFed(h, "pol-closed", ["dss", "dol", "doe"] + HIED,
                     edit=lambda a, t: without_policy(a, t) if a == "dss"
                     else t.replace("../pki/policy-csu.pub",
                                    "../pki/policy-dss.pub"),
                     start=False)
    check(fed.policies["dss"] is None, "dss still has a policy")
    check("policy-dss.pub" in fed.agent_cfg_path("csu").read_text(),
          "csu's config names no policy key to replace")
    ri.sign_policy(h, fed.policies["dol"], "dss")
    doe = fed.policies["doe"].read_bytes()
    i = doe.index(b"version: 1")
    fed.policies["doe"].write_bytes(doe[:i] + b"version: 2" +
                                    doe[i + len(b"version: 1"):])
    write_text(fed.policies["uhs"],
               ri.example_policy_text("csu"))
    ri.sign_policy(h, fed.policies["uhs"], "uhs")
    ri.sign_policy(h, fed.policies["csu"], "dss")
    fed.start()
    try:
        why = {"dss": [], "dol": ["does not verify"],
               "doe": ["does not verify"], "uhs": ["csu"]}
        sqls = {"dss": DSS_COLS, "dol": DOL_SQL, "doe": DOE_SQL,
                "uhs": HIED_SQL.replace("hied", "uhs"),
                "csu": HIED_SQL.replace("hied", "csu")}
        for a, terms in why.items():
            # The agent: FAILED_PRECONDITION, naming itself and why.
            e = refused(execute, h, fed, a, sqls[a])
            expect_status(e, grpc.StatusCode.FAILED_PRECONDITION,
                           f"agency {a} serves nothing", *terms)
            # Describe still works, without a policy.
            d = agent_stub(h, fed, a).Describe(p.agent.DescribeRequest(),
                                               timeout=CALL_TIMEOUT)
            check(d.datasets and not d.policy and not d.policy_signature,
                  f"{a}: Describe with {len(d.datasets)} datasets, "
                  f"{len(d.policy)} policy bytes")
            # The gateway: the same refusal, nothing released.
            query_refused(fed, sqls[a], grpc.StatusCode.FAILED_PRECONDITION,
                          f"agency {a} serves nothing")
            # --check fails with the message; the log says it too.
            c = ri.run_server_check(h, "fedq-agent", fed.agent_cfg_path(a))
            out = c.stdout + c.stderr
            check(c.returncode == 1 and f"agency {a} serves nothing" in out
                  and all(t in out for t in terms),
                  f"fedq-agent --check with {a}'s policy: rc "
                  f"{c.returncode}: {tail(out)}")
            log = fed.agents[a].stderr_text()
            check(f"agency {a} serves nothing" in log and
                  all(t in log for t in terms),
                  f"{a}'s log does not say why it serves nothing: "
                  f"{tail(log)}")
        # The pooled alias fails as a whole: uhs serves nothing.
        query_refused(fed, HIED_SQL, grpc.StatusCode.FAILED_PRECONDITION,
                      "agency uhs serves nothing")

        # csu's agent trusts the wrong key: it serves, the gateway does not.
        r = execute(h, fed, "csu", sqls["csu"])
        check(r.groups and r.policy_hash == policy_sha(fed.policies["csu"]),
              f"csu answered directly with {len(r.groups)} groups, hash "
              f"{r.policy_hash!r}")
        query_refused(fed, sqls["csu"], grpc.StatusCode.FAILED_PRECONDITION,
                      "agency csu serves nothing")

        # ccs is fine: the same query is released, under its policy.
        d = agent_stub(h, fed, "ccs").Describe(p.agent.DescribeRequest(),
                                               timeout=CALL_TIMEOUT)
        check(d.policy == fed.policies["ccs"].read_bytes() and
              d.policy_signature == ri.resolve(
                  fed.policies["ccs"], "policy-ccs.yaml.sig").read_text(),
              "ccs' Describe does not carry its policy file and signature")
        r = released(fed, HIED_SQL.replace("hied", "ccs"))
        check(r.rows, "ccs released no rows")
        check_policies(r, fed, ["ccs"])
        # The steward's own check agrees, offline.
        for a, rc, say in (("ccs", 0, policy_sha(fed.policies["ccs"])),
                           ("doe", 1, "does not verify"),
                           ("dol", 1, "does not verify")):
            c = h.fedq("policy", "verify", "--pubkey",
                       str(h.pki / f"policy-{a}.pub"), str(fed.policies[a]))
            check(c.returncode == rc and say in c.stdout + c.stderr,
                  f"fedq policy verify {a}: rc {c.returncode}: "
                  f"{tail(c.stdout + c.stderr)}")
    finally:
        fed.close()


# ---- terms: analyst, purpose, column, aggregate, pooling, dates -------------


def terms_changes():
    def dss(pol):
        ds = dataset_of(pol, "enrollment")
        ds["columns"] = [c for c in ds["columns"] if c != "sex"]
        ds["aggregates"] = [a for a in ds["aggregates"] if a != "HISTOGRAM"]

    def dol(pol):  # expired yesterday
        ag = agreement_of(pol)
        ag["valid_from"], ag["valid_until"] = days(-400), days(-1)

    def doe(pol):  # valid from next month
        ag = agreement_of(pol)
        ag["valid_from"], ag["valid_until"] = days(30), days(400)

    def uhs(pol):  # pools with csu only, not ccs
        agreement_of(pol)["pool_with"] = ["csu", "doe", "dol"]

    def csu(pol):  # valid today only (both dates are inclusive)
        ag = agreement_of(pol)
        ag["valid_from"] = ag["valid_until"] = days(0)
    return {"dss": dss, "dol": dol, "doe": doe, "uhs": uhs, "csu": csu}


@test
def policy_terms_refused(h):
    """Every term of the agreement is checked, by the gateway first and by
    the agent again: an analyst, a purpose, a column (in any clause), an
    aggregate not listed, pooling outside pool_with, an unknown agreement
    -> PERMISSION_DENIED naming it; an agreement expired or not yet valid
    -> FAILED_PRECONDITION naming its dates; no agreement or purpose ->
    INVALID_ARGUMENT. What the terms cover is released, also under an
    agreement valid from today until today."""
    P, F = grpc.StatusCode.PERMISSION_DENIED, \
        grpc.StatusCode.FAILED_PRECONDITION
    signed_on = today()
    fed = ExampleFed(h, "pol-terms", ["dss", "dol", "doe"] + HIED,
                     policy_edit=policy_edit(terms_changes()))
    try:
        bob = identity("analyst/bob")
        # Covered: released, naming the agreement and policies.
        r = released(fed, DSS_COLS)
        check(r.rows, "dss released no rows")
        check_policies(r, fed, ["dss"])
        if today() == signed_on:  # csu's agreement: valid today only
            r = released(fed, HIED_SQL.replace("hied", "csu"))
            check_policies(r, fed, ["csu"])

        # An analyst the agreement does not list.
        query_refused(fed, DSS_COLS, P, AGREEMENT, bob, party="analyst-bob")
        e = refused(execute, h, fed, "dss", DSS_COLS, analyst="analyst/bob")
        expect_status(e, P, AGREEMENT, bob)
        # A purpose it does not list.
        query_refused(fed, DSS_COLS, P, AGREEMENT, "marketing",
                      purpose="marketing")
        e = refused(execute, h, fed, "dss", DSS_COLS, purpose="marketing")
        expect_status(e, P, "marketing")
        # An agreement the agency never signed.
        query_refused(fed, DSS_COLS, P, "DSA-1999-99", agreement="DSA-1999-99")
        e = refused(execute, h, fed, "dss", DSS_COLS, agreement="DSA-1999-99")
        expect_status(e, P, "DSA-1999-99")
        # A column not listed, grouped on or only filtered on.
        for sql in (DSS_SEX, DSS_SEX_WHERE):
            query_refused(fed, sql, P, AGREEMENT, "'sex'")
            e = refused(execute, h, fed, "dss", sql)
            expect_status(e, P, AGREEMENT, "'sex'")
        # Explain with the agreement checks as Query does; without, it
        # only plans.
        e = refused(fed.stub().Explain, fed.ereq(DSS_SEX),
                    timeout=CALL_TIMEOUT)
        expect_status(e, P, AGREEMENT, "'sex'")
        check(plan_of(fed, DSS_SEX).group_by == ["sex"],
              "Explain without an agreement does not plan")
        # An aggregate not listed.
        query_refused(fed, DSS_HIST, P, AGREEMENT, "HISTOGRAM")
        e = refused(execute, h, fed, "dss", DSS_HIST)
        expect_status(e, P, "HISTOGRAM")
        # Pooling: hied pools uhs with csu and ccs; uhs' agreement lists
        # csu, not ccs. uhs alone is answered.
        query_refused(fed, HIED_SQL, P, "uhs", "ccs")
        e = refused(execute, h, fed, "uhs", HIED_SQL.replace("hied", "uhs"),
                    pooled_with=HIED)
        expect_status(e, P, "ccs")
        r = released(fed, HIED_SQL.replace("hied", "uhs"))
        check_policies(r, fed, ["uhs"])
        # Dates: dol's agreement expired yesterday, doe's starts in 30 days.
        dol = agreement_of(yaml.safe_load(
            fed.policies["dol"].read_text())["policy"])
        doe = agreement_of(yaml.safe_load(
            fed.policies["doe"].read_text())["policy"])
        query_refused(fed, DOL_SQL, F, AGREEMENT, "expired",
                      str(dol["valid_until"]))
        e = refused(execute, h, fed, "dol", DOL_SQL)
        expect_status(e, F, AGREEMENT, str(dol["valid_until"]))
        query_refused(fed, DOE_SQL, F, AGREEMENT, str(doe["valid_from"]))
        e = refused(execute, h, fed, "doe", DOE_SQL)
        expect_status(e, F, AGREEMENT, str(doe["valid_from"]))

        # No agreement, no purpose: the gateway asks for them.
        query_refused(fed, DSS_COLS, grpc.StatusCode.INVALID_ARGUMENT,
                      "agreement", agreement="", purpose="")
        query_refused(fed, DSS_COLS, grpc.StatusCode.INVALID_ARGUMENT,
                      "purpose", purpose="")
        e = refused(execute, h, fed, "dss", DSS_COLS, agreement="",
                    purpose="")
        check(e.code() in (P, grpc.StatusCode.INVALID_ARGUMENT) and
              "agreement" in (e.details() or ""),
              f"dss without an agreement: {e.code()} {e.details()!r}")
        # The CLI: without them a usage error naming both ways to give
        # them; with a refused term exit 1, the term on stderr, no table.
        r = cli_query(h, fed, DSS_COLS)
        check(r.returncode == 2 and "--agreement" in r.stderr and
              "agreement:" in r.stderr and not r.stdout.strip(),
              f"fedq query without --agreement: rc {r.returncode}: "
              f"{tail(r.stderr)}")
        r = cli_query(h, fed, DSS_SEX, *fed.cli_terms())
        check(r.returncode == 1 and "PERMISSION_DENIED" in r.stderr and
              "'sex'" in r.stderr and not r.stdout.strip(),
              f"fedq query of a column not listed: rc {r.returncode}: "
              f"stdout {r.stdout[:200]!r} stderr {tail(r.stderr)}")
        # The early refusal is logged with the term.
        check("'sex'" in fed.gateway.stderr_text(),
              "the gateway log does not name the refused column")
    finally:
        fed.close()


# ---- what a result carries -------------------------------------------------


@test
def policy_result_terms(h):
    """A released answer names its agreement and, per agency, the hash
    (SHA-256 of the signed file the agent runs) and version of the policy
    applied; the threshold is the agreement's when it is above the
    gateway's (dss: 15, version 7), on the wire, in JSON and in the
    table's footer. dol's agreement lists the analysts as "*": bob may
    query dol, not dss."""
    p = h.proto

    def dss(pol):
        pol["version"] = 7
        agreement_of(pol)["release"]["min_cell_count"] = 15
    def dol(pol):
        agreement_of(pol)["analysts"] = ["*"]
    fed = ExampleFed(h, "pol-result", ["dss", "dol"],
                     policy_edit=policy_edit({"dss": dss, "dol": dol}))
    try:
        # Every town: some groups have 11 to 14 persons.
        sql = ("SELECT program, town, COUNT(*), SUM(benefit) FROM "
               "dss.enrollment GROUP BY program, town")
        spec = {"items": [("dim", "program"), ("dim", "town"),
                          ("agg", "COUNT", None), ("agg", "SUM", "benefit")],
                "group_by": ["program", "town"], "filters": []}
        src = fed.catalog.source("dss", "enrollment")
        want = qt.oracle(src, spec)
        r = released(fed, sql)
        check(r.min_cell_count == 15, f"min_cell_count {r.min_cell_count}, "
                                      f"dss' agreement says 15")
        check_policies(r, fed, ["dss"])
        check(p.gw.QueryState.Name(r.state) == "QUERY_STATE_RELEASED" and
              not r.pending, f"state {r.state}, pending {list(r.pending)}")
        qt.compare(src, spec, qt.proto_table(p, r), want, ["dss"],
                   min_cell=15)
        between = [g["contributors"] for g in want.values()
                   if 11 <= g["contributors"] < 15]
        ri.print_note(f"{len(between)} groups of 11 to 14 persons hidden by "
                      f"dss' threshold 15")
        x = fed.stub().Explain(fed.ereq(sql), timeout=CALL_TIMEOUT)
        want_check = (f"agency dss: agreement {AGREEMENT} covers the query "
                      f"(minimum cell count 15)")
        check(want_check in x.checks and
              any("fewer than 15 contributors" in c for c in x.checks),
              f"Explain checks {list(x.checks)}")
        # dol's agreement keeps 11, and lets every analyst ("*") query.
        for party in ("analyst-alice", "analyst-bob"):
            r = released(fed, DOL_SQL, party=party)
            check(r.min_cell_count == 11, f"dol: min_cell_count "
                                          f"{r.min_cell_count}")
            check_policies(r, fed, ["dol"])
        query_refused(fed, sql, grpc.StatusCode.PERMISSION_DENIED,
                      identity("analyst/bob"), party="analyst-bob")
        # The CLI: JSON and the table's footer.
        c = cli_query(h, fed, sql, *fed.cli_terms())
        check(c.returncode == 0, f"fedq query: rc {c.returncode}: "
                                 f"{tail(c.stderr)}")
        got = qt.json_table(yaml.safe_load(c.stdout))
        qt.compare(src, spec, got, want, ["dss"], via_json=True,
                   min_cell=15)
        sha = policy_sha(fed.policies["dss"])
        check(got["policies"] == [("dss", sha, 7)],
              f"JSON policies {got['policies']}")
        c = h.fedq("query", *fed.cli_terms(), sql, config=fed.client_cfg)
        check(c.returncode == 0 and f"agreement {AGREEMENT}" in c.stdout and
              f"dss v7 {sha[:12]}" in c.stdout,
              f"fedq query footer: {c.stdout[-400:]!r}")
    finally:
        fed.close()


# ---- steward review ---------------------------------------------------------


REVIEW_TOWNS = ["T001", "T002", "T003", "T150", "T160"]
REVIEW_SQL = ("SELECT program, town, COUNT(*), SUM(benefit) FROM "
              "dss.enrollment WHERE town IN ('T001', 'T002', 'T003', "
              "'T150', 'T160') GROUP BY program, town")
REVIEW_SPEC = {"items": [("dim", "program"), ("dim", "town"),
                         ("agg", "COUNT", None), ("agg", "SUM", "benefit")],
               "group_by": ["program", "town"],
               "filters": [("in", "town", REVIEW_TOWNS)]}
DENIAL = "too fine-grained for towns under 1000 residents"


def every_query(pol):
    agreement_of(pol)["review"] = "every_query"


def steward_config(h, fed, party="steward-dss-carol", agency="dss"):
    """A steward's client configuration: the gateway as any client, and
    `agent:` (the agency's own agent) for fedq review."""
    return h.client_config(
        fed.gateway.addr, name=f"q-{fed.name}-{party}", party=party,
        extra={"agent": f"ipv4:{fed.agents[agency].addr}"})


def restart(fed):
    """Stops the gateway, then the agents, and starts them again with the
    same configurations (so the same review_dir and state_dir) on new
    ports; the client configuration is written again."""
    h = fed.h
    fed.close()
    for proc in [fed.gateway] + [fed.agents[a] for a in fed.agencies]:
        h.procs.remove(proc)
        proc.stop()
    fed.start()


def get_result(fed, qid, party="analyst-alice"):
    return fed.stub(party).GetResult(
        fed.h.proto.gw.GetResultRequest(query_id=qid), timeout=CALL_TIMEOUT)


def check_pending(fed, r, qid=None):
    p = fed.h.proto
    check(p.gw.QueryState.Name(r.state) == "QUERY_STATE_PENDING",
          f"state {p.gw.QueryState.Name(r.state)}, expected PENDING")
    check(QUERY_ID_RE.fullmatch(r.query_id) and
          (qid is None or r.query_id == qid),
          f"query_id {r.query_id!r}, expected {qid or 'q-<16 hex>'}")
    check(list(r.pending) == ["dss"], f"pending {list(r.pending)}")
    check(not r.rows, f"{len(r.rows)} rows released while pending")
    return r.query_id


def preview_rows(src, spec, want, min_cell=11):
    """What dss' steward must see: the oracle's table as text, a hidden
    cell as "suppressed"."""
    rows = []
    for k in sorted(want, key=qt.key_order):
        cells = qt.expected_row(src, spec, k, want[k], min_cell)
        rows.append(["suppressed" if st == "suppressed" else str(v)
                     for st, _, v in cells])
    return rows


def review_state(h, fed, qid):
    st = agent_stub(h, fed, "dss", party="steward-dss-carol").GetReview(
        h.proto.agent.GetReviewRequest(query_id=qid), timeout=CALL_TIMEOUT)
    return h.proto.agent.ReviewState.Name(st.review.state)


@test
def policy_review(h):
    """dss' agreement says review: every_query. The analyst gets a query
    id and PENDING, no rows; dss' steward lists it and sees the agreement
    and the preview (the oracle's table after the threshold); nobody else
    may decide or list; another analyst cannot see it; the held query
    survives restarts of the agent and the gateway, before and after the
    approval; the approved answer is the oracle's; a denial reaches the
    analyst as PERMISSION_DENIED with the steward's reason. dol, without
    review, answers at once."""
    p = h.proto
    P = grpc.StatusCode.PERMISSION_DENIED
    # The default places: the agents' ../state/AGENCY and the gateway's
    # ../state/gateway.
    fed = ExampleFed(h, "pol-review", ["dss", "dol"],
                     policy_edit=policy_edit({"dss": every_query}),
                     gw_extra={"state_dir": None})
    try:
        src = fed.catalog.source("dss", "enrollment")
        want = qt.oracle(src, REVIEW_SPEC)
        alice = identity("analyst/alice")
        released(fed, DOL_SQL)

        # Explain says it will be held.
        x = fed.stub().Explain(fed.ereq(REVIEW_SQL), timeout=CALL_TIMEOUT)
        check(any(c.startswith(f"agency dss: agreement {AGREEMENT}") and
                  "steward must approve" in c for c in x.checks),
              f"Explain checks {list(x.checks)}")
        # Held: an id, PENDING, nothing released.
        r = fed.stub().Query(fed.qreq(REVIEW_SQL), timeout=CALL_TIMEOUT)
        qid = check_pending(fed, r)
        r = get_result(fed, qid)
        check_pending(fed, r, qid)
        c = h.fedq("query", *fed.cli_terms(), REVIEW_SQL,
                   config=fed.client_cfg)
        ids = QUERY_ID_RE.findall(c.stdout)
        check(c.returncode == 4 and ids and f"fedq result {ids[0]}" in
              c.stdout, f"fedq query of a held query: rc {c.returncode}, "
                        f"{c.stdout!r} {tail(c.stderr)}")
        qid2 = ids[0]
        check(qid2 != qid, "two queries, one id")
        # Held durably, in private files, where the defaults say.
        for d in (fed.root / "state" / "dss", fed.root / "state" / "gateway"):
            files = [f for f in d.iterdir() if f.is_file()] \
                if d.is_dir() else []
            check(files, f"nothing kept in {d}")
            loose = [f"{f.name} {f.stat().st_mode & 0o777:o}" for f in files
                     if f.stat().st_mode & 0o077]
            check(not loose, f"files others may read in {d}: {loose}")
        # The agent holds it under its id: the same request is PENDING
        # again, another one under that id is refused.
        x = execute(h, fed, "dss", REVIEW_SQL, query_id=qid,
                    pooled_with=["dss"])
        check(p.agent.ReviewState.Name(x.review) == "REVIEW_STATE_PENDING"
              and not x.groups, f"Execute of the held query: review "
                                f"{x.review}, {len(x.groups)} groups")
        e = refused(execute, h, fed, "dss", DSS_COLS, query_id=qid,
                    pooled_with=["dss"])
        expect_status(e, grpc.StatusCode.FAILED_PRECONDITION, qid)
        c = h.fedq("result", qid, config=fed.client_cfg)
        check(c.returncode == 4 and qid in c.stdout,
              f"fedq result of a pending query: rc {c.returncode}, "
              f"{c.stdout!r} {tail(c.stderr)}")
        out, _ = h.fedq_json("result", qid, config=fed.client_cfg,
                             expect_rc=(4,))
        check((out["query_id"], out["state"], out["pending"], out["rows"],
               out["agreement"]) == (qid, "pending", ["dss"], [], AGREEMENT),
              f"fedq result --format json of a pending query: {out}")

        # dss' steward: list, show, and the preview over gRPC.
        scfg = steward_config(h, fed)
        out, _ = h.fedq_json("review", "list", config=scfg)
        rows = {x["query_id"]: x for x in out["reviews"]}
        check(set(rows) == {qid, qid2}, f"review list: {sorted(rows)}, "
                                        f"expected {qid} and {qid2}")
        x = rows[qid]
        check((x["state"], x["analyst"], x["agreement"], x["purpose"],
               x["dataset"]) == ("pending", alice, AGREEMENT, PURPOSE,
                                 "enrollment"), f"review list row {x}")
        out, _ = h.fedq_json("review", "show", qid, config=scfg)
        fields = out["review"][0]
        check(fields["query_id"] == qid and fields["state"] == "pending" and
              fields["agreement"] == AGREEMENT and
              fields["policy_hash"] == policy_sha(fed.policies["dss"]),
              f"review show: {fields}")
        want_preview = preview_rows(src, REVIEW_SPEC, want)
        got_preview = [list(x.values()) for x in out.get("preview", [])]
        check(got_preview == want_preview,
              f"review show preview {got_preview[:4]}..., expected "
              f"{want_preview[:4]}... ({len(want_preview)} rows)")
        gr = agent_stub(h, fed, "dss", party="steward-dss-carol").GetReview(
            p.agent.GetReviewRequest(query_id=qid), timeout=CALL_TIMEOUT)
        check([list(x.values) for x in gr.rows] == want_preview and
              gr.min_cell_count == 11 and gr.review.analyst == alice and
              gr.review.plan.dataset == "enrollment",
              f"GetReview: {len(gr.rows)} rows, min_cell_count "
              f"{gr.min_cell_count}, analyst {gr.review.analyst!r}")

        # Nobody but dss' stewards decides, or even lists.
        for party, who in (("analyst-alice", "analyst/alice"),
                           ("steward-dol-bob", "steward/dol/bob"),
                           ("gateway", "gateway")):
            st = agent_stub(h, fed, "dss", party=party)
            e = rpc_error(st.DecideReview, p.agent.DecideReviewRequest(
                query_id=qid, approve=True), timeout=CALL_TIMEOUT)
            expect_status(e, P, identity(who))
            e = rpc_error(st.ListReviews, p.agent.ListReviewsRequest(),
                          timeout=CALL_TIMEOUT)
            expect_status(e, P)
        c = h.fedq("review", "approve", qid,
                   config=steward_config(h, fed, "steward-dol-bob"))
        check(c.returncode != 0, "dol's steward approved a query of dss")
        check(review_state(h, fed, qid) == "REVIEW_STATE_PENDING",
              "the review is no longer pending after refused decisions")
        # Only the analyst who asked gets the result.
        for qid_ in (qid, "q-0123456789abcdef"):
            e = rpc_error(get_result, fed, qid_, party="analyst-bob")
            expect_status(e, grpc.StatusCode.NOT_FOUND)

        # Restarts keep it pending.
        restart(fed)
        check_pending(fed, get_result(fed, qid), qid)
        scfg = steward_config(h, fed)
        c = h.fedq("review", "approve", qid, config=scfg)
        check(c.returncode == 0, f"fedq review approve: rc {c.returncode}: "
                                 f"{tail(c.stderr)}")
        e = rpc_error(agent_stub(h, fed, "dss", party="steward-dss-carol")
                      .DecideReview, p.agent.DecideReviewRequest(
                          query_id=qid, approve=False, reason="late"),
                      timeout=CALL_TIMEOUT)
        expect_status(e, grpc.StatusCode.FAILED_PRECONDITION)
        restart(fed)

        # Approved: the oracle's table, under the id the analyst holds.
        r = get_result(fed, qid)
        check(r.query_id == qid, f"GetResult answered {r.query_id!r}")
        got = qt.proto_table(p, r)
        qt.compare(src, REVIEW_SPEC, got, want, ["dss"])
        check_policies(r, fed, ["dss"])
        x = execute(h, fed, "dss", REVIEW_SQL, query_id=qid,
                    pooled_with=["dss"])
        check(p.agent.ReviewState.Name(x.review) == "REVIEW_STATE_APPROVED"
              and len(x.groups) == len(want),
              f"Execute of the approved query: review {x.review}, "
              f"{len(x.groups)} groups, the oracle has {len(want)}")
        c = h.fedq("result", qid, "--format", "json", config=fed.client_cfg)
        check(c.returncode == 0, f"fedq result: rc {c.returncode}: "
                                 f"{tail(c.stderr)}")
        got = qt.json_table(yaml.safe_load(c.stdout))
        qt.compare(src, REVIEW_SPEC, got, want, ["dss"], via_json=True)

        # Denied: the reason reaches the analyst.
        scfg = steward_config(h, fed)
        c = h.fedq("review", "deny", qid2, "--reason", DENIAL, config=scfg)
        check(c.returncode == 0, f"fedq review deny: rc {c.returncode}: "
                                 f"{tail(c.stderr)}")
        e = refused(get_result, fed, qid2)
        expect_status(e, P, f"agency dss refused the query: the steward "
                            f"denied query {qid2}: {DENIAL}")
        e = refused(execute, h, fed, "dss", REVIEW_SQL, query_id=qid2,
                    pooled_with=["dss"])
        expect_status(e, P, f"the steward denied query {qid2}: {DENIAL}")
        c = h.fedq("result", qid2, config=fed.client_cfg)
        check(c.returncode == 1 and DENIAL in c.stderr and
              not c.stdout.strip(), f"fedq result of a denied query: rc "
                                    f"{c.returncode}: {tail(c.stderr)}")
        out, _ = h.fedq_json("review", "list", "--state", "all",
                             config=scfg)
        got = {x["query_id"]: (x["state"], x["decided_by"])
               for x in out["reviews"]}
        carol = identity("steward/dss/carol")
        check(got == {qid: ("approved", carol), qid2: ("denied", carol)},
              f"review list --state all: {got}")
        # Both decisions survive a restart too.
        restart(fed)
        qt.compare(src, REVIEW_SPEC, qt.proto_table(p, get_result(fed, qid)),
                   want, ["dss"])
        e = refused(get_result, fed, qid2)
        expect_status(e, P, f"denied query {qid2}: {DENIAL}")
    finally:
        fed.close()


# ---- reloading the policy ---------------------------------------------------


@test
def policy_reload_sighup(h):
    """A new signed policy (version 2, without dss' column sex) is applied
    on SIGHUP by the same agent process: sex is refused, answers name the
    new hash. A policy whose signature does not verify is not applied:
    the agent logs why and keeps serving version 2. Version 5 lists sex
    again: once the gateway's copy is renewed (catalog_ttl 1s here) sex
    is released again."""
    fed = ExampleFed(h, "pol-reload", ["dss"], gw_extra={"catalog_ttl": "1s"})
    try:
        dss = fed.agents["dss"]
        path = fed.policies["dss"]
        r = released(fed, DSS_SEX)
        check_policies(r, fed, ["dss"])

        doc = yaml.safe_load(path.read_text())
        doc["policy"]["version"] = 2
        ds = dataset_of(doc["policy"], "enrollment")
        ds["columns"] = [c for c in ds["columns"] if c != "sex"]
        ri.write_policy(h, path, doc)
        v2 = policy_sha(path)
        dss.signal(signal.SIGHUP)

        def sex_refused():
            try:
                fed.stub().Query(fed.qreq(DSS_SEX), timeout=CALL_TIMEOUT)
                return None
            except grpc.RpcError as e:
                return e
        e = wait_until(sex_refused, 15, "sex to be refused after SIGHUP",
                       0.2, watch=fed.procs())
        expect_status(e, grpc.StatusCode.PERMISSION_DENIED, "'sex'")
        e = refused(execute, h, fed, "dss", DSS_SEX)
        expect_status(e, grpc.StatusCode.PERMISSION_DENIED, "'sex'")
        r = released(fed, DSS_COLS)
        check([(x.agency, x.hash, x.version) for x in r.policies] ==
              [("dss", v2, 2)], f"after the reload: policies {r.policies}")
        check(dss.running() and fed.agents["dss"] is dss,
              "the agent was restarted")

        # Version 3 puts sex back, but one byte changed after signing.
        log_at = len(dss.stderr_text())
        doc["policy"]["version"] = 3
        ds["columns"].append("sex")
        ri.write_policy(h, path, doc)
        text = path.read_text().replace("version: 3", "version: 4")
        write_text(path, text)
        dss.signal(signal.SIGHUP)
        wait_until(lambda: "does not verify" in dss.stderr_text()[log_at:],
                   15, "the agent to log why the new policy is not applied",
                   0.1, watch=fed.procs())
        log = dss.stderr_text()[log_at:]
        check(str(path) in log and v2 in log,
              f"the failed reload's log names neither the file nor the "
              f"policy kept: {tail(log)}")
        r = released(fed, DSS_COLS)
        check([(x.agency, x.hash, x.version) for x in r.policies] ==
              [("dss", v2, 2)],
              f"after a failed reload: policies {r.policies}, expected "
              f"version 2 ({v2})")
        e = refused(execute, h, fed, "dss", DSS_SEX)
        expect_status(e, grpc.StatusCode.PERMISSION_DENIED, "'sex'")
        d = agent_stub(h, fed, "dss").Describe(
            h.proto.agent.DescribeRequest(), timeout=CALL_TIMEOUT)
        check(ri.hashlib.sha256(d.policy).hexdigest() == v2,
              "Describe does not serve the policy in force (version 2)")

        doc["policy"]["version"] = 5
        ri.write_policy(h, path, doc)
        v5 = policy_sha(path)
        dss.signal(signal.SIGHUP)

        def sex_released():
            try:
                return fed.stub().Query(fed.qreq(DSS_SEX),
                                        timeout=CALL_TIMEOUT)
            except grpc.RpcError:
                return None
        r = wait_until(sex_released, 15, "sex to be released under version "
                       "5", 0.2, watch=fed.procs())
        check([(x.agency, x.hash, x.version) for x in r.policies] ==
              [("dss", v5, 5)], f"under version 5: policies {r.policies}")

        # The gateway's policy_key is reloaded too: with dol's key for dss
        # nothing of dss is released, with dss' own again it is.
        gw = fed.gateway
        gcfg = yaml.safe_load(fed.gw_cfg_path.read_text())
        good = gcfg["agents"][0]["policy_key"]
        for key, want in ((str(h.pki / "policy-dol.pub"), False),
                          (good, True)):
            gcfg["agents"][0]["policy_key"] = key
            ri.write_yaml(fed.gw_cfg_path, gcfg)
            gw.signal(signal.SIGHUP)

            def answer_is(want=want):
                try:
                    fed.stub().Query(fed.qreq(DSS_COLS), timeout=CALL_TIMEOUT)
                    return want
                except grpc.RpcError as e:
                    if e.code() != grpc.StatusCode.FAILED_PRECONDITION:
                        raise
                    return not want and e
            e = wait_until(answer_is, 15, f"the gateway to verify dss' "
                           f"policy with {key}", 0.2, watch=fed.procs())
            if not want:
                expect_status(e, grpc.StatusCode.FAILED_PRECONDITION,
                              "agency dss serves nothing")
    finally:
        fed.close()


# ---- the fixture federation's own policies ---------------------------------


@test
def policy_test_federation(h):
    """The fixture federation runs a permissive signed policy per agency
    (TEST-2026, purpose testing, alice): its queries, pooled over hied
    too, are released under it with each policy's hash; the example
    agreement is not one of its agencies'."""
    fed = ri.shared_federation(h)
    p = h.proto
    stub = fed.stub()
    for sql, agencies in (
            ("SELECT quarter, COUNT(*) FROM dol.wages GROUP BY quarter",
             ["dol"]),
            ("SELECT term, COUNT(*), AVG(credits) FROM hied.enrollment "
             "GROUP BY term", HIED)):
        r = stub.Query(fed.qreq(sql), timeout=CALL_TIMEOUT)
        got = [(x.agency, x.hash, x.version) for x in r.policies]
        want = [(a, policy_sha(ri.test_policy_path(h, a)), 1)
                for a in agencies]
        check(r.state == p.gw.QUERY_STATE_RELEASED and
              r.agreement == ri.TEST_TERMS.agreement and got == want and
              r.min_cell_count == 11,
              f"{sql!r}: state {r.state}, agreement {r.agreement!r}, "
              f"policies {got}, expected {want}")
        e = refused(stub.Query, ri.qreq(p, sql), timeout=CALL_TIMEOUT)
        expect_status(e, grpc.StatusCode.PERMISSION_DENIED, AGREEMENT)


def decide(h, fed, agency, qid, approve, reason=""):
    steward = {"dss": "carol", "uhs": "dave", "csu": "erin"}[agency]
    st = agent_stub(h, fed, agency, party=f"steward-{agency}-{steward}")
    return st.DecideReview(h.proto.agent.DecideReviewRequest(
        query_id=qid, approve=approve, reason=reason), timeout=CALL_TIMEOUT)


@test
def policy_review_pooled(h):
    """hied pools uhs, csu and ccs; uhs' and csu's agreements say review:
    every_query. The query is PENDING until both stewards approved (each
    approval leaves the other pending); the released table is the pooled
    oracle's, naming all three policies. One denial refuses the whole
    query with that agency's reason. An approved query whose agreement
    has expired since (a new policy, SIGHUP) is refused."""
    p = h.proto
    fed = ExampleFed(h, "pol-pooled", HIED,
                     policy_edit=policy_edit({"uhs": every_query,
                                              "csu": every_query}))
    try:
        sql = ("SELECT institution, term, COUNT(*), SUM(credits) FROM "
               "hied.enrollment GROUP BY institution, term")
        spec = {"items": [("dim", "institution"), ("dim", "term"),
                          ("agg", "COUNT", None), ("agg", "SUM", "credits")],
                "group_by": ["institution", "term"], "filters": []}
        src = fed.catalog.source("hied", "enrollment")
        check(src.dims[:2] and "credits" in src.measures,
              f"hied.enrollment: dims {src.dims}, measures {src.measures}")
        want = qt.oracle(src, spec)

        def pending(qid):
            r = get_result(fed, qid)
            check(p.gw.QueryState.Name(r.state) == "QUERY_STATE_PENDING"
                  and not r.rows and r.query_id == qid,
                  f"{qid}: state {p.gw.QueryState.Name(r.state)}, "
                  f"{len(r.rows)} rows")
            return sorted(r.pending)
        r = fed.stub().Query(fed.qreq(sql), timeout=CALL_TIMEOUT)
        qid = r.query_id
        check(p.gw.QueryState.Name(r.state) == "QUERY_STATE_PENDING" and
              sorted(r.pending) == ["csu", "uhs"] and not r.rows,
              f"pooled query under review: state {r.state}, pending "
              f"{list(r.pending)}, {len(r.rows)} rows")
        check(pending(qid) == ["csu", "uhs"], "GetResult before decisions")
        decide(h, fed, "uhs", qid, True)
        check(pending(qid) == ["csu"], f"after uhs approved: pending "
                                       f"{pending(qid)}, expected [csu]")
        decide(h, fed, "csu", qid, True)
        r = get_result(fed, qid)
        qt.compare(src, spec, qt.proto_table(p, r), want, HIED)
        check_policies(r, fed, HIED)

        # One denial refuses the pooled query, with its reason.
        r = fed.stub().Query(fed.qreq(sql), timeout=CALL_TIMEOUT)
        qid2 = r.query_id
        decide(h, fed, "uhs", qid2, True)
        decide(h, fed, "csu", qid2, False, DENIAL)
        e = refused(get_result, fed, qid2)
        expect_status(e, grpc.StatusCode.PERMISSION_DENIED,
                      f"agency csu refused the query: the steward denied "
                      f"query {qid2}: {DENIAL}")

        # uhs' agreement expires (a new signed policy, SIGHUP): the
        # approved answer is no longer released.
        path = fed.policies["uhs"]
        doc = yaml.safe_load(path.read_text())
        doc["policy"]["version"] += 1
        ag = agreement_of(doc["policy"])
        ag["valid_from"], ag["valid_until"] = days(-400), days(-1)
        ri.write_policy(h, path, doc)
        log_at = len(fed.agents["uhs"].stderr_text())
        fed.agents["uhs"].signal(signal.SIGHUP)
        wait_until(lambda: "reloaded" in
                   fed.agents["uhs"].stderr_text()[log_at:], 15,
                   "uhs to reload", 0.1, watch=fed.procs())
        e = refused(get_result, fed, qid)
        expect_status(e, grpc.StatusCode.FAILED_PRECONDITION, AGREEMENT,
                      str(ag["valid_until"]))
    finally:
        fed.close()


@test
def policy_review_bad_input(h):
    """The review methods and held ids reject what they cannot hold:
    query ids outside [a-z0-9-]{1,64} (INVALID_ARGUMENT), unknown ones
    (NOT_FOUND), a denial without a reason or with one over 1000 bytes
    (INVALID_ARGUMENT, the review stays pending); a query the terms do
    not cover is refused, not held; GetResult of what is
    no gateway query id is INVALID_ARGUMENT, of an unknown one
    NOT_FOUND."""
    p = h.proto
    I, N = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
    fed = ExampleFed(h, "pol-badrev", ["dss"],
                     policy_edit=policy_edit({"dss": every_query}))
    try:
        for bad in ("Q-UPPER", "a" * 65, "../x", "q 1", "q\n1"):
            e = refused(execute, h, fed, "dss", DSS_COLS, query_id=bad,
                        pooled_with=["dss"])
            expect_status(e, I)
        # What the terms do not cover is refused at once, not held.
        query_refused(fed, DSS_COLS, grpc.StatusCode.PERMISSION_DENIED,
                      "marketing", purpose="marketing")
        e = refused(execute, h, fed, "dss", DSS_COLS, purpose="marketing",
                    pooled_with=["dss"])
        expect_status(e, grpc.StatusCode.PERMISSION_DENIED, "marketing")
        ok = "x" * 64
        x = execute(h, fed, "dss", DSS_COLS, query_id=ok, pooled_with=["dss"])
        check(p.agent.ReviewState.Name(x.review) == "REVIEW_STATE_PENDING",
              f"a 64-character id: review {x.review}")
        st = agent_stub(h, fed, "dss", party="steward-dss-carol")
        for qid in ("nope", "q-0123456789abcdef"):
            e = rpc_error(st.GetReview, p.agent.GetReviewRequest(
                query_id=qid), timeout=CALL_TIMEOUT)
            expect_status(e, N)
            e = rpc_error(st.DecideReview, p.agent.DecideReviewRequest(
                query_id=qid, approve=True), timeout=CALL_TIMEOUT)
            expect_status(e, N)
        for reason in ("", "x" * 1001):
            e = rpc_error(st.DecideReview, p.agent.DecideReviewRequest(
                query_id=ok, approve=False, reason=reason),
                timeout=CALL_TIMEOUT)
            expect_status(e, I)
        check(review_state(h, fed, ok) == "REVIEW_STATE_PENDING",
              "a refused decision changed the review")
        r = st.DecideReview(p.agent.DecideReviewRequest(
            query_id=ok, approve=False, reason="y" * 1000),
            timeout=CALL_TIMEOUT)
        check(r.reason == "y" * 1000 and
              p.agent.ReviewState.Name(r.state) == "REVIEW_STATE_DENIED" and
              r.decided_by == identity("steward/dss/carol") and r.decided,
              f"DecideReview answered {r.state} by {r.decided_by!r}")
        for qid in ("", "../../etc/passwd", "q-" + "0" * 5000, ok):
            e = rpc_error(get_result, fed, qid)
            expect_status(e, I, "not a query id")
        e = rpc_error(get_result, fed, "q-00000000000000ff")
        expect_status(e, N)
        r = st.ListReviews(p.agent.ListReviewsRequest(limit=5000),
                           timeout=CALL_TIMEOUT)
        check([x.query_id for x in r.reviews] == [ok],
              f"ListReviews: {[x.query_id for x in r.reviews]}")

        # fedq review: a steward's configuration needs agent: (gateway:
        # it may leave out); an analyst's certificate is refused by the CLI.
        agent = f"ipv4:{fed.agents['dss'].addr}"
        only = h.etc / "pol-badrev-review-only.yaml"
        ri.write_yaml(only, {"federation": ri.FED, "agent": agent,
                             "tls": h.tls("steward-dss-carol")})
        out, _ = h.fedq_json("review", "list", "--state", "all",
                             config=only)
        check([x["query_id"] for x in out["reviews"]] == [ok],
              f"fedq review list: {out['reviews']}")
        c = h.fedq("review", "list", config=fed.client_cfg)
        check(c.returncode == 2 and "agent:" in c.stderr,
              f"fedq review without agent: rc {c.returncode}: "
              f"{tail(c.stderr)}")
        c = h.fedq("review", "list", config=h.client_config(
            fed.gateway.addr, name="pol-badrev-analyst",
            extra={"agent": agent}))
        check(c.returncode == 2 and "steward" in c.stderr,
              f"fedq review as an analyst: rc {c.returncode}: "
              f"{tail(c.stderr)}")
        c = h.fedq("review", "deny", ok, config=only)
        check(c.returncode == 2 and "--reason" in c.stderr,
              f"fedq review deny without --reason: rc {c.returncode}: "
              f"{tail(c.stderr)}")
    finally:
        fed.close()


@test
def policy_review_concurrent(h):
    """16 analysts' queries held at once (concurrent Query calls), each
    under its own id; all listed; approved from 16 threads at once; each
    GetResult is the same released table."""
    p = h.proto
    n = 16
    fed = ExampleFed(h, "pol-conc", ["dss"],
                     policy_edit=policy_edit({"dss": every_query}))
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=n)
    try:
        stub = fed.stub()
        futs = [stub.Query.future(fed.qreq(DSS_COLS), timeout=CALL_TIMEOUT)
                for _ in range(n)]
        ids = [check_pending(fed, f.result()) for f in futs]
        check(len(set(ids)) == n, f"{len(set(ids))} distinct ids of {n}")
        st = agent_stub(h, fed, "dss", party="steward-dss-carol")
        r = st.ListReviews(p.agent.ListReviewsRequest(), timeout=CALL_TIMEOUT)
        check(sorted(x.query_id for x in r.reviews) == sorted(ids),
              f"ListReviews lists {len(r.reviews)} of {n}")
        done = list(pool.map(lambda q: decide(h, fed, "dss", q, True), ids))
        check(all(p.agent.ReviewState.Name(x.state) ==
                  "REVIEW_STATE_APPROVED" for x in done),
              f"states {[x.state for x in done]}")
        tables = list(pool.map(
            lambda q: qt.proto_table(p, get_result(fed, q)), ids))
        for t in tables:
            t["query_id"] = ""
        check(all(t == tables[0] for t in tables) and tables[0]["rows"],
              "the approved queries' tables differ")
    finally:
        pool.shutdown()
        fed.close()


@test
def policy_signature_and_federation(h):
    """In the fixture federation: a signature file where `signature:`
    says (not beside the policy) is found and verified; a policy naming
    another federation, though signed with the agency's key, is not
    served."""
    p = h.proto
    fed = ri.Federation(h, "pol-sigfed", agencies=["dol", "dss"])
    d = fed.etc
    dss = ri.write_policy(h, d / "dss-policy.yaml",
                          ri.policy_doc("dss", [ri.test_agreement("dss")]))
    sig = d / "signatures" / "dss.sig"
    sig.parent.mkdir(parents=True)
    (d / "dss-policy.yaml.sig").rename(sig)
    dol = ri.write_policy(h, d / "dol-policy.yaml", ri.policy_doc(
        "dol", [ri.test_agreement("dol", analysts=["*"])], fed="other.fed"))
    fed.start_agent("dss", policy=dict(ri.policy_section(h, "dss", dss),
                                       signature=str(sig)))
    fed.start_agent("dol", policy=dol)
    fed.gw_cfg_path = d / "gateway.yaml"
    ri.write_yaml(fed.gw_cfg_path, fed.gateway_cfg())
    fed.gateway = h.start_gateway(fed.gw_cfg_path)
    stub = fed.stub()
    r = stub.Query(fed.qreq("SELECT county, COUNT(*) FROM dss.snap GROUP BY "
                            "county"), timeout=CALL_TIMEOUT)
    check([(x.agency, x.hash) for x in r.policies] ==
          [("dss", policy_sha(dss))], f"dss: policies {r.policies}")
    e = refused(stub.Query, fed.qreq(DOL_SQL), timeout=CALL_TIMEOUT)
    expect_status(e, grpc.StatusCode.FAILED_PRECONDITION,
                  "agency dol serves nothing")
    fed.channels = []  # what agent_stub() keeps for close()
    try:
        e = refused(execute, h, fed, "dol", DOL_SQL,
                    agreement=ri.TEST_TERMS.agreement,
                    purpose=ri.TEST_TERMS.purpose)
        expect_status(e, grpc.StatusCode.FAILED_PRECONDITION,
                      "agency dol serves nothing", "other.fed")
        d = agent_stub(h, fed, "dol").Describe(p.agent.DescribeRequest(),
                                               timeout=CALL_TIMEOUT)
        check(not d.policy, "dol publishes another federation's policy")
    finally:
        for ch in fed.channels:
            ch.close()
