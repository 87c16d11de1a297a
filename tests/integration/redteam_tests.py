"""
fedq red-team integration tests (issue 7; imported by run_integration.py).

The attacker is an analyst with a valid agreement who knows the schema, the
domains, every published parameter and the perturbation table (`fedq
ptable`), but no secret; also two colluding analysts (alice and bob) and an
insider agency (uhs, which knows its own records). The data are the
planted persons of disclosure_tests.py, pooled over uhs and csu.

Success is the exact value of an implied cell that fails the primary rule
(1 to k - 1 persons), or a person's membership. Perturbed output is judged
by rate: the attacker's success over many targets must be no better than
reading a true count off a single perturbed release (the table's most
likely noise, 0: `PTable.best_guess`) plus 5 points; membership against
the best guess without any release (the prior) plus 5 points. Each test
prints its measured rate; the truth comes from the raw rows, never from
fedq.
"""

import os
import random
import statistics

import disclosure_tests as dt
import run_integration as ri
from disclosure_tests import (AGENCIES, AGES, ALICE, BOB, COUNTIES, K, POOL,
                              PlantedFed, PTable, release_params, table_of)
from run_integration import check, test

MARGIN = 0.05   # the allowed excess over the baseline


def released_value(cell):
    status, v = cell
    return v if status in ("exact", "perturbed", "rounded") else None


def count(fed, where="", party=ALICE, src=POOL):
    """The attacker's COUNT(*) of a filter: its released value, or None."""
    sql = f"SELECT COUNT(*) FROM {src}.people" + (f" WHERE {where}"
                                                  if where else "")
    return released_value(table_of(fed.query(sql, party), 0)[()][0])


def truth(fed, pred, agencies=AGENCIES):
    return sum(1 for a in agencies for r in fed.people[a] if pred(r))


def small_targets(fed, n, rnd, agencies=AGENCIES):
    """n cells county AND age AND day holding 1 to k - 1 records: (SQL,
    predicate, true count)."""
    out = []
    combos = [(c, a, d) for c in COUNTIES[:6] for a in AGES
              for d in range(1, 32)]
    rnd.shuffle(combos)
    for c, a, d in combos:
        def pred(r, c=c, a=a, d=d):
            return r["county"] == c and r["age"] == a and r["day"] == d
        t = truth(fed, pred, agencies)
        if 0 < t < K:
            out.append((f"(county = '{c}' AND age = '{a}' AND day = {d})",
                        pred, t, c))
        if len(out) == n:
            break
    check(len(out) == n, f"only {len(out)} small targets in the data")
    return out


def judge(name, hits, tries, baseline):
    rate = hits / tries
    ri.print_note(f"{name}: {hits}/{tries} = {rate:.0%} "
                  f"(baseline {baseline:.0%})")
    check(rate <= baseline + MARGIN,
          f"{name}: the attacker's success {rate:.0%} ({hits} of {tries}) "
          f"beats the baseline {baseline:.0%} by more than 5 points")
    return rate


def estimate_hit(est, t):
    return est is not None and round(est) == t


def default_fed(h, name, **over):
    return PlantedFed(h, name, release=release_params(**over)).start()


@test
def redteam_complement_differencing(h):
    """Complements of a released cell: a window minus one day, a group
    minus a condition (also in distinct persons), the pooled cell minus
    one agency's; the two halves asked by colluding analysts. The ledger answers a cell within k - 1
    persons of a released one with that cell's value and the insider rule
    hides pooled cells whose rest is small, so the differences say 0."""
    fed = default_fed(h, "rt-complement")
    rnd = random.Random(101)
    base = PTable(h).best_guess()
    hits = tries = 0
    try:
        for sql, pred, t, c in small_targets(fed, 30, rnd):
            day = int(sql.rsplit("day = ", 1)[1].rstrip(")"))
            age = sql.split("age = ")[1].split(" ")[0]
            attacks = [
                # a window minus one day (the target's day last)
                (f"county = '{c}' AND age = {age} AND day BETWEEN 1 AND "
                 f"{day}",
                 f"county = '{c}' AND age = {age} AND day BETWEEN 1 AND "
                 f"{day - 1}" if day > 1 else
                 f"county = '{c}' AND age = {age} AND day > 31"),
                # a group minus a condition
                (f"county = '{c}'", f"county = '{c}' AND NOT {sql}"),
            ]
            for a_sql, b_sql in attacks:
                x = count(fed, a_sql, ALICE)
                y = count(fed, b_sql, BOB)
                tries += 1
                hits += x is not None and y is not None and x - y == t
        # distinct persons: COUNT(DISTINCT person_id) at one agency (a
        # pooled one is refused), a county less the county without a target
        for sql, pred, t, c in small_targets(fed, 15, rnd, ["uhs"]):
            def distinct(where, party):
                r = fed.query(f"SELECT COUNT(DISTINCT person_id) FROM "
                              f"uhs.people WHERE {where}", party)
                return released_value(table_of(r, 0)[()][0])
            persons = len({r["person_id"] for r in fed.people["uhs"]
                           if pred(r)})
            x = distinct(f"county = '{c}'", ALICE)
            y = distinct(f"county = '{c}' AND NOT {sql}", BOB)
            tries += 1
            hits += x is not None and y is not None and x - y == persons
        # the pooled cell minus one agency's part: csu's part of a county
        # and age of few csu persons
        for c in COUNTIES[:6]:
            for a in AGES:
                def pred(r, c=c, a=a):
                    return r["county"] == c and r["age"] == a
                t = truth(fed, pred, ["csu"])
                if not 0 < t < K:
                    continue
                where = f"county = '{c}' AND age = '{a}'"
                x = count(fed, where, ALICE)
                y = count(fed, where, BOB, src="uhs")
                tries += 1
                hits += x is not None and y is not None and x - y == t
        judge("complement differencing", hits, tries, base)
    finally:
        fed.close()


@test
def redteam_trackers(h):
    """Denning's general tracker (P OR T, P OR NOT T, T, NOT T) and a
    three-release tracker (P OR Y OR Z less Y and Z, every pair apart by
    k or more persons), each with a tracker of its own per target."""
    fed = default_fed(h, "rt-trackers")
    rnd = random.Random(202)
    base = PTable(h).best_guess()
    try:
        hits = tries = 0
        for sql, pred, t, c in small_targets(fed, 20, rnd):
            cut = rnd.randint(8, 23)
            tr, nt = f"day <= {cut}", f"day > {cut}"
            parts = [count(fed, f"{sql} OR {tr}"),
                     count(fed, f"{sql} OR {nt}"), count(fed, tr),
                     count(fed, nt)]
            tries += 1
            if None not in parts:
                hits += estimate_hit(parts[0] + parts[1] - parts[2] -
                                     parts[3], t)
        judge("general tracker", hits, tries, base)
        hits = tries = 0
        for sql, pred, t, c in small_targets(fed, 20, rnd):
            others = [x for x in COUNTIES[:6] if x != c]
            c2, c3 = rnd.sample(others, 2)
            d2, d3 = rnd.randint(10, 25), rnd.randint(5, 20)
            y = f"(county = '{c2}' AND day <= {d2})"
            z = f"(county = '{c3}' AND day > {d3})"
            parts = [count(fed, f"{sql} OR {y} OR {z}"), count(fed, y),
                     count(fed, z)]
            tries += 1
            if None not in parts:
                hits += estimate_hit(parts[0] - parts[1] - parts[2], t)
        judge("three-release tracker", hits, tries, base)
    finally:
        fed.close()


def half_days(rnd):
    days = rnd.sample(range(1, 32), 15)
    return f"day IN ({', '.join(str(d) for d in sorted(days))})"


def tracker_estimate(fed, rnd, sql, c, party=ALICE):
    """One three-release tracker of target sql (inside county c) over
    sets of their own: P OR Y OR Z less Y less Z, where Y and Z are random
    halves of two other counties' days (so that no two trackers' sets are
    within k persons of each other). None if a part is not released."""
    c2, c3 = rnd.sample([x for x in COUNTIES[:6] if x != c], 2)
    y = f"(county = '{c2}' AND {half_days(rnd)})"
    z = f"(county = '{c3}' AND {half_days(rnd)})"
    parts = [count(fed, f"{sql} OR {y} OR {z}", party), count(fed, y, party),
             count(fed, z, party)]
    return None if None in parts else parts[0] - parts[1] - parts[2]


@test
def redteam_averaging(h):
    """Averaging. A query repeated 30 times and 10 rewrites of it give one
    value: nothing to average. Many different sets sharing a target (one
    three-release tracker after another over sets apart by k or more
    persons) do average the noise away: the success rate after m trackers
    (8 targets) is measured and reported; one tracker does no better than
    a release, and the cell budget (3 cells a tracker) is what bounds m:
    a federation with a budget of 30 cells refuses the 11th tracker."""
    fed = default_fed(h, "rt-averaging")
    rnd = random.Random(303)
    base = PTable(h).best_guess()
    try:
        where = "county = 'C02' AND day <= 12"
        first = count(fed, where)
        for i in range(30):
            check(count(fed, where) == first, "a repeat gave another value")
        rewrites = ["county IN ('C02') AND day <= 12",
                    "NOT county <> 'C02' AND day < 13",
                    "county = 'C02' AND day BETWEEN 1 AND 12",
                    "(county = 'C02' OR county = 'C99') AND day <= 12",
                    "day <= 12 AND county = 'C02'",
                    "county = 'C02' AND NOT day > 12",
                    "county = 'C02' AND day <= 12 AND wages >= 0",
                    "county = 'C02' AND (day <= 6 OR day BETWEEN 7 AND 12)",
                    "county >= 'C02' AND county <= 'C02' AND day <= 12",
                    "county = 'C02' AND day IN (1,2,3,4,5,6,7,8,9,10,11,12)"]
        for w in rewrites:
            check(count(fed, w) == first, f"rewrite {w!r} gave another "
                                          f"value than {where!r}")
        # 8 targets, up to 16 trackers each by default: about 400 queries,
        # a minute under the sanitizers. The larger run the docs quote:
        # FEDQ_REDTEAM_TARGETS=20 FEDQ_REDTEAM_TRACKERS=32.
        n_targets = int(os.environ.get("FEDQ_REDTEAM_TARGETS", "8"))
        most = int(os.environ.get("FEDQ_REDTEAM_TRACKERS", "16"))
        steps = tuple(m for m in (1, 2, 4, 8, 16, 32, 64) if m <= most)
        wins = {m: 0 for m in steps}
        targets = small_targets(fed, n_targets, rnd)
        for sql, pred, t, c in targets:
            ests = []
            while len(ests) < steps[-1]:
                e = tracker_estimate(fed, rnd, sql, c)
                if e is not None:
                    ests.append(e)
            for m in steps:
                # the median: a value the ledger reused is an outlier
                wins[m] += round(statistics.median(ests[:m])) == t
        curve = ", ".join(f"{m}: {wins[m]}/{len(targets)}" for m in steps)
        ri.print_note(f"averaging three-release trackers (their median), "
                      f"targets found after m trackers (3m cells): {curve}; "
                      f"one release {base:.0%}")
        judge("one tracker", wins[1], len(targets), base)
    finally:
        fed.close()
    budget = 30
    fed = default_fed(h, "rt-averaging-budget", cell_budget=budget,
                      cell_budget_rationale="the red team's budget")
    try:
        sql, pred, t, c = small_targets(fed, 1, rnd)[0]
        e = ri.rpc_error(lambda: [tracker_estimate(fed, rnd, sql, c)
                                  for _ in range(1000)])
        check("cell budget" in (e.details() or ""),
              f"refused otherwise: {e.details()}")
    finally:
        fed.close()


@test
def redteam_margins(h):
    """Back-calculating suppressed cells from margins: county x age, its
    margins and the total; GLPK bounds every suppressed cell from the
    released values (each within its preimage in the published table,
    widened by k - 1 for a value the ledger may have reused). Success: a
    suppressed cell pinned to one value."""
    fed = default_fed(h, "rt-margins")
    workdir = h.root / "rt-glpk"
    workdir.mkdir(exist_ok=True)
    pt = PTable(h)
    try:
        counts = dt.Released()
        for dims in (("county", "age"), ("county",), ("age",), ()):
            g = ", ".join(dims)
            sql = (f"SELECT {g + ', ' if g else ''}COUNT(*) FROM "
                   f"{POOL}.people" + (f" GROUP BY {g}" if g else ""))
            counts.add(dims, table_of(fed.query(sql), len(dims)), 0)

        def bounds(status, value, has_row):
            if status == "suppressed":
                return (1 if has_row else 0, None)
            lo, hi = pt.preimage(value)
            return (max(0, lo - (K - 1)), hi + (K - 1))
        hidden = sum(1 for _, c in counts.tables for v in c.values()
                     if v[0] == "suppressed")
        check(hidden >= 3, f"only {hidden} suppressed cells")
        n = dt.check_intervals(h, workdir, counts, ["county", "age"],
                               {"county": COUNTIES, "age": AGES}, bounds,
                               True, lambda d, k: 1, "margins")
        ri.print_note(f"{n} suppressed cells, none pinned by GLPK")
    finally:
        fed.close()


@test
def redteam_derived(h):
    """Derived statistics: a mean over a small group is suppressed with
    its count; where released, SUM / AVG gives back the released
    (perturbed) count, not the true one, since the mean is computed from
    the perturbed sum and count: de-perturbing through it succeeds exactly
    as often as reading the count off its own release (the baseline,
    measured on the same cells)."""
    fed = default_fed(h, "rt-derived")
    try:
        hits = base_hits = tries = 0
        for dims in (("county", "age"), ("county", "sex"), ("age", "sex"),
                     ("county", "flag")):
            g = ", ".join(dims)
            r = fed.query(f"SELECT {g}, COUNT(*), SUM(wages), AVG(wages) "
                          f"FROM {POOL}.people GROUP BY {g}")
            for key, cells in table_of(r, 2).items():
                def pred(x, key=key):
                    return all(x[d] == v for d, v in zip(dims, key))
                t = truth(fed, pred)
                persons = len({x["person_id"] for ag in AGENCIES
                               for x in fed.people[ag] if pred(x)})
                if persons < K:
                    check(all(st == "suppressed" for st, _ in cells),
                          f"{key}: {cells} over {persons} persons")
                    continue
                n = released_value(cells[0])
                sm, m = released_value(cells[1]), released_value(cells[2])
                if n is None or sm is None or not m:
                    continue
                check(abs(sm / m - n) < 0.5 + 1e-6 * n,
                      f"{key}: SUM/AVG {sm / m} is not the released count {n}")
                tries += 1
                hits += round(sm / m) == t
                base_hits += n == t
        check(tries >= 20, f"only {tries} released means")
        judge("count from SUM / AVG", hits, tries, base_hits / tries)
    finally:
        fed.close()


@test
def redteam_dominance(h):
    """A dominant contributor: employer E999 pays 95 % of C06's payroll.
    SUM(payroll) of C06 is suppressed (dominance); the attacker takes it
    as the difference of C06 with another county and that county alone,
    five ways. Every released sum carries noise up to 5 % of its largest
    employer's total: no estimate is exact, and the note gives how close
    they come (no closer than a release of the cell itself would be)."""
    fed = default_fed(h, "rt-dominance")
    try:
        r = fed.query(f"SELECT county, SUM(payroll) FROM {POOL}.people "
                      f"GROUP BY county")
        check(table_of(r, 1)[("C06",)][0][0] == "suppressed",
              "SUM(payroll) of C06 is released despite E999")
        true_c06 = sum(x["payroll"] for a in AGENCIES for x in fed.people[a]
                       if x["county"] == "C06")
        errs = []
        for c in COUNTIES[:5]:
            x = released_value(table_of(fed.query(
                f"SELECT SUM(payroll) FROM {POOL}.people WHERE county IN "
                f"('{c}', 'C06')"), 0)[()][0])
            y = released_value(table_of(fed.query(
                f"SELECT SUM(payroll) FROM {POOL}.people WHERE county = "
                f"'{c}'"), 0)[()][0])
            if x is None or y is None:
                continue
            check(x - y != true_c06, f"via {c}: the exact C06 payroll")
            errs.append(abs(x - y - true_c06) / true_c06)
        ri.print_note(f"C06 payroll estimated {len(errs)} ways, relative "
                      f"errors {', '.join(f'{e:.2%}' for e in errs)}")
    finally:
        fed.close()


@test
def redteam_rare_and_insider(h):
    """Grouping by a rare value (C07: 4 persons at uhs) hides it in every
    form: a group, a filter, a histogram, a union less its rest. An
    insider agency (uhs, which knows its own records exactly) subtracting
    its part from pooled cells: csu's small parts of county x age x sex
    cells, from (cell OR Y) less Y less uhs's own count."""
    fed = default_fed(h, "rt-rare")
    base = PTable(h).best_guess()
    try:
        got = table_of(fed.query(f"SELECT county, COUNT(*) FROM "
                                 f"{POOL}.people GROUP BY county"), 1)
        check(got[("C07",)][0][0] == "suppressed", "C07 released in a group")
        check(count(fed, "county = 'C07'") is None, "C07 released alone")
        bins = table_of(fed.query(f"SELECT HISTOGRAM(wages, 500000) FROM "
                                  f"{POOL}.people WHERE county = 'C07'"),
                        0)[()]
        check(all(released_value(b) in (None, 0) for b in bins),
              f"C07's histogram {bins}")
        x = count(fed, "county IN ('C01', 'C07')")
        y = count(fed, "county = 'C01'")
        check(x is None or y is None or x - y != 4, "C07 = (C01, C07) - C01")

        hits = tries = 0
        rnd = random.Random(404)
        for c in COUNTIES[:6]:
            for a in AGES:
                for sx in ("F", "M"):
                    def pred(r, c=c, a=a, sx=sx):
                        return (r["county"] == c and r["age"] == a and
                                r["sex"] == sx)
                    t = truth(fed, pred, ["csu"])
                    own = truth(fed, pred, ["uhs"])
                    if not 0 < t < K:
                        continue
                    c2 = rnd.choice([x for x in COUNTIES[:6] if x != c])
                    yq = f"(county = '{c2}' AND {half_days(rnd)})"
                    cell = f"(county = '{c}' AND age = '{a}' AND sex = '{sx}')"
                    p1 = count(fed, f"{cell} OR {yq}")
                    p2 = count(fed, yq)
                    tries += 1
                    if p1 is not None and p2 is not None:
                        hits += p1 - p2 - own == t
        check(tries >= 30, f"only {tries} small csu parts")
        judge("insider subtracting its part", hits, tries, base)
    finally:
        fed.close()


def best_rule(obs, truth_flags):
    """The accuracy of the best guess of a flag from an observation,
    chosen with hindsight (an upper bound on any attacker's): per distinct
    observation, the majority flag among the targets showing it."""
    by = {}
    for o, y in zip(obs, truth_flags):
        by.setdefault(o, [0, 0])[y] += 1
    return sum(max(v) for v in by.values())


@test
def redteam_refusal_oracle(h):
    """Refusals and statuses as an oracle of membership. The attacker
    knows a person is the only one of their county, age and day, and asks
    whether they are flagged: (a) COUNT(*) of that cell with flag = 'Y'
    (1: suppressed; 0: a zero); (b) the same grouped by flag (is the Y row
    there?); (c) a large released cell Q against Q OR that cell (the
    ledger: equal sets, or 1 person apart). Answers carry no reason. Each
    observation is scored by the best rule with hindsight against the
    prior (always guessing the commoner flag). With zeros suppressed
    (zero_cells: suppress: every combination of the grouped domains is
    shown) nothing beats the prior; with zeros released (the default) (a)
    and (b) tell a zero from a small count, which the note reports."""
    rnd = random.Random(505)
    for zeros in ("suppress", "release"):
        fed = default_fed(h, f"rt-refusal-{zeros}", zero_cells=zeros,
                          zero_cells_rationale="the red team")
        try:
            singles = []
            for c in COUNTIES[:6]:
                for a in AGES:
                    for d in range(1, 32):
                        recs = [x for ag in AGENCIES for x in fed.people[ag]
                                if x["county"] == c and x["age"] == a and
                                x["day"] == d]
                        if len({x["person_id"] for x in recs}) == 1:
                            singles.append((c, a, d, recs[0]["flag"] == "Y"))
            # as many flagged as not, so that the prior is 50 %
            yes = [x for x in singles if x[3]]
            no = [x for x in singles if not x[3]]
            rnd.shuffle(no)
            singles = yes[:12] + no[:len(yes[:12])]
            check(len(singles) >= 10, f"only {len(singles)} targets")
            flags = [int(x[3]) for x in singles]
            prior = max(sum(flags), len(flags) - sum(flags))
            q = "county IN ('C01', 'C02', 'C03') AND wages >= 200000"
            qv = count(fed, q)
            obs = {"cell": [], "grouped": [], "ledger": []}
            for c, a, d, y in singles:
                where = f"county = '{c}' AND age = '{a}' AND day = {d}"
                r = fed.query(f"SELECT COUNT(*) FROM {POOL}.people WHERE "
                              f"{where} AND flag = 'Y'")
                check(not any(f.name.endswith("reason")
                              for f, _ in r.ListFields()),
                      "an answer names a reason")
                obs["cell"].append(table_of(r, 0)[()][0])
                g = table_of(fed.query(f"SELECT flag, COUNT(*) FROM "
                                       f"{POOL}.people WHERE {where} GROUP "
                                       f"BY flag"), 1)
                obs["grouped"].append(tuple(sorted(
                    (k, v[0]) for k, v in g.items())))
                obs["ledger"].append(count(fed, f"{q} OR ({where} AND "
                                                f"flag = 'Y')") == qv)
            for name, o in obs.items():
                hits = best_rule(o, flags)
                if zeros == "release" and name != "ledger":
                    ri.print_note(f"zeros released: membership from the "
                                  f"{name} {hits}/{len(flags)} (prior "
                                  f"{prior}/{len(flags)})")
                    continue
                judge(f"membership from the {name} (zeros {zeros})", hits,
                      len(flags), prior / len(flags))
        finally:
            fed.close()


@test
def redteam_refresh(h):
    """Differencing across a data refresh: C01 and the total are released,
    uhs's data are refreshed with 3 new persons in C01 and one gone; the
    same cells of the new vintage are within k - 1 persons of the old ones,
    so they are answered with the old values: the differences say 0."""
    from store_tests import next_second
    import subprocess
    fed = default_fed(h, "rt-refresh")
    try:
        before = [count(fed, "county = 'C01'", src="uhs"),
                  count(fed, "", src="uhs"), count(fed, "county = 'C01'")]
        r = fed.query("SELECT COUNT(*) FROM uhs.people")
        v1 = dt.vintages_of(r)["uhs"]
        rows = [x for x in fed.people["uhs"] if x["person_id"] !=
                "uhs-P00001"]
        prnd = random.Random(9)
        rows += [dt.person(f"uhs-N{i}", prnd, county="C01") for i in range(3)]
        next_second(v1)
        fed.people["uhs"] = rows
        dt.write_db(fed.dbs["uhs"], rows)
        out = subprocess.run(
            [str(h.bin / "fedq-agent"), "refresh", "people", "--config",
             str(fed.agent_cfg_path("uhs"))],
            capture_output=True, text=True, env=h.env, timeout=120)
        check(out.returncode == 0, f"refresh: {ri.tail(out.stderr)}")
        r = fed.query("SELECT COUNT(*) FROM uhs.people")
        check(dt.vintages_of(r)["uhs"] != v1, "no new vintage")
        after = [count(fed, "county = 'C01'", src="uhs"),
                 count(fed, "", src="uhs"), count(fed, "county = 'C01'")]
        for b, a, what in zip(before, after, ("uhs C01", "uhs total",
                                              "pooled C01")):
            check(b is None or a is None or a - b not in (2, 3),
                  f"{what}: {b} then {a}: the refresh's persons show")
        ri.print_note(f"before {before}, after {after}")
    finally:
        fed.close()
