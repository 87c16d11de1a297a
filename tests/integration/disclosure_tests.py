"""
fedq integration tests of disclosure control (issue 7; imported by
run_integration.py, registered with its @test decorator, run by its
runner).

Each test runs agents of uhs and csu (pooled as the alias `pair`) over
SQLite files of synthetic persons written here, with planted targets, and
a gateway; every agency signs a policy of its own for TEST-2026 whose
release parameters the test sets. Expectations come from independent
oracles, never from fedq's output:

- the perturbation: Python recomputes every released count and sum from
  the raw rows, the agencies' cell-key secrets (HMAC-SHA-256 record keys),
  the keyed draw of docs/disclosure-control.md and the perturbation table
  as `fedq ptable` publishes it;
- secondary suppression: GLPK's MIP solver (glpsol) computes every
  suppressed cell's feasible interval from everything released from the
  dataset and vintage, as an attacker who knows the published rules would;
- the differencing ledger: Python sets of persons, cell by cell, in the
  order the queries were released.

The red-team tests (redteam_tests.py) use the same federation.
"""

import hashlib
import hmac
import itertools
import math
import random
import re
import sqlite3
import struct
import subprocess

import grpc

import run_integration as ri
from run_integration import (TEST_TERMS, check, expect_status, identity,
                             rpc_error, sanitizer_report, tail, test)

K = 11                  # min_cell_count of the tests' policies
D, V, MAG = 2, 1.0, 5   # the gateway's perturbation: section (defaults)
PROTECTION = 5          # protection_level (default)
PROTECTION_PCT = 10     # protection_percent (default)
AGENCIES = ["uhs", "csu"]
POOL = "pair"
COUNTIES = [f"C{i:02d}" for i in range(1, 9)]
AGES = ["A1", "A2", "A3", "A4", "A5"]
CALL_TIMEOUT = 60
ALICE, BOB = "analyst-alice", "analyst-bob"

PEOPLE_COLUMNS = [
    ri.col("person_id", "identifier", "text"),
    ri.col("county", "dimension", "text", domain={"codes": COUNTIES}),
    ri.col("sex", "dimension", "text", domain={"codes": ["F", "M"]}),
    ri.col("age", "dimension", "text", domain={"codes": AGES}),
    ri.col("flag", "dimension", "text", domain={"codes": ["N", "Y"]}),
    ri.col("day", "dimension", "integer", domain={"min": 1, "max": 31}),
    ri.col("wages", "measure", "integer", unit="cents",
           bounds={"min": 0, "max": 10000000}),
    ri.col("employer_id", "identifier", "text"),
    ri.col("payroll", "measure", "integer", unit="cents",
           bounds={"min": 0, "max": 10000000},
           contributor_unit="employer_id"),
]
DATASET = {"name": "people", "contributor": "person_id",
           "description": "synthetic persons with planted targets",
           "columns": PEOPLE_COLUMNS}
FIELDS = [c["name"] for c in PEOPLE_COLUMNS]


# ---- synthetic persons --------------------------------------------------------


def person(pid, rnd, **fixed):
    """One record of a person: random attributes unless fixed."""
    r = {"person_id": pid,
         "county": rnd.choice(COUNTIES[:6]),  # C07 and C08 are planted
         "sex": rnd.choice("FM"),
         "age": rnd.choice(AGES),
         "flag": "Y" if rnd.random() < 0.1 else "N",
         "day": rnd.randint(1, 31),
         "wages": rnd.randint(100000, 900000),
         "employer_id": f"E{rnd.randint(1, 40):03d}",
         "payroll": rnd.randint(100000, 900000)}
    r.update(fixed)
    return r


def planted_people(seed=7, n=(420, 330)):
    """{agency: [records]}: n random persons per agency (some with a
    second record, another day), and the planted targets:

    - C07: 4 persons at uhs only (a rare value; a small cell);
    - C08: 13 persons at uhs and 2 at csu (passes pooled, fails the
      insider rule at uhs: csu's part is 2);
    - person uhs-T1: the only flag=Y person of age A5 in C01 (found by
      differencing a group minus a condition);
    - employer E999: one employer paying 95% of C06's payroll (dominance).
    """
    rnd = random.Random(seed)
    out = {}
    for a, count in zip(AGENCIES, n):
        rows = []
        for i in range(count):
            pid = f"{a}-P{i:05d}"
            rows.append(person(pid, rnd))
            if rnd.random() < 0.15:
                rows.append(dict(rows[-1], day=rnd.randint(1, 31)))
        out[a] = rows
    for i in range(4):
        out["uhs"].append(person(f"uhs-R{i}", rnd, county="C07"))
    for i in range(13):
        out["uhs"].append(person(f"uhs-I{i}", rnd, county="C08"))
    for i in range(2):
        out["csu"].append(person(f"csu-I{i}", rnd, county="C08"))
    for a in AGENCIES:
        for r in out[a]:
            if r["county"] == "C01" and r["age"] == "A5":
                r["flag"] = "N"
            if r["county"] == "C06":
                r["employer_id"] = f"E{rnd.randint(1, 5):03d}"
                r["payroll"] = rnd.randint(1000, 5000)
    out["uhs"].append(person("uhs-T1", rnd, county="C01", age="A5",
                             flag="Y"))
    out["uhs"].append(person("uhs-D1", rnd, county="C06", employer_id="E999",
                             payroll=9000000))
    return out


def write_db(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    db = sqlite3.connect(path)
    with db:
        db.execute(f"CREATE TABLE t_people ({', '.join(FIELDS)})")
        db.executemany(f"INSERT INTO t_people VALUES "
                       f"({', '.join('?' * len(FIELDS))})",
                       [tuple(r[f] for f in FIELDS) for r in rows])
    db.close()


# ---- the federation -------------------------------------------------------------


def release_params(**over):
    """The release: of the tests' agreement: the default rules (cell-key
    perturbation, the ledger, protection 5 and 10 %) unless over says
    otherwise; a budget no test reaches unless it sets one."""
    rel = {"min_cell_count": K,
           "min_cell_count_rationale": "the federation's default",
           "cell_budget": 100000000,
           "cell_budget_rationale": "tests of other rules"}
    rel.update(over)
    return rel


def perturbation_alone(**over):
    """release_params without the ledger and secondary suppression: what a
    test of the perturbation weighs."""
    why = "this test weighs the perturbation"
    return release_params(differencing_ledger="off", protection_level=0,
                          protection_percent=0,
                          differencing_ledger_rationale=why,
                          protection_rationale=why, **over)


class PlantedFed(ri.Federation):
    """uhs and csu over planted data, pooled as `pair`, and a gateway.
    release: the policies' release: mapping (release_params); analysts:
    alice and bob."""
    terms = TEST_TERMS

    def __init__(self, h, name, people=None, release=None, gw_extra=None,
                 analysts=(ALICE, BOB)):
        super().__init__(h, name, agencies=AGENCIES,
                         aliases=[(POOL, AGENCIES)], gw_extra=gw_extra)
        self.people = people if people is not None else planted_people()
        self.root = h.root / f"dc-{name}"
        self.dbs = {a: self.root / "data" / f"{a}.sqlite" for a in AGENCIES}
        self.policies = {}
        self.release = release or release_params()
        # Cell-key secrets of the test's own, the same every run: the noise
        # (and so every measured rate) is reproducible. The oracle reads
        # them from these files, as an agency would hold them.
        self.secret_files = {}
        for a in AGENCIES:
            f = self.root / f"cellkey-{a}.key"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(hashlib.sha256(
                f"fedq test cell key {a}".encode()).hexdigest() + "\n")
            f.chmod(0o600)
            self.secret_files[a] = f
        names = [identity(p.replace("-", "/")) for p in analysts]
        for a in AGENCIES:
            write_db(self.dbs[a], self.people[a])
            ag = ri.test_agreement(
                a, datasets=[{"name": "people", "columns": FIELDS,
                              "aggregates": list(ri.ALL_AGGREGATES)}],
                release=self.release, analysts=names,
                pool_with=[x for x in AGENCIES if x != a])
            self.policies[a] = ri.write_policy(
                h, self.root / f"policy-{a}.yaml", ri.policy_doc(a, [ag]))

    def start_agent(self, agency, **kw):
        cfg = ri.agent_config(self.h, agency, self.run_dir, datasets=[DATASET],
                              policy=self.policies[agency], **kw)
        cfg["cell_key_secret"] = str(self.secret_files[agency])
        cfg["datasets"][0]["source"] = {"sqlite": str(self.dbs[agency]),
                                        "table": "t_people"}
        # extracts of this federation's own data (the default place,
        # beside the configs' directory, is shared by every federation)
        cfg["extract_dir"] = str(self.root / "extracts" / agency)
        path = self.agent_cfg_path(agency)
        path.parent.mkdir(parents=True, exist_ok=True)
        ri.write_yaml(path, cfg)
        self.agents[agency] = self.h.start_agent(path)
        return self.agents[agency]

    def query(self, sql, party=ALICE):
        return self.stub(party=party).Query(self.qreq(sql),
                                            timeout=CALL_TIMEOUT)

    def close(self):
        self.h.stop_procs(self.procs())
        for p in self.procs():
            if p in self.h.procs:
                self.h.procs.remove(p)

    def restart_gateway(self):
        self.gateway.stop()
        self.h.procs.remove(self.gateway)
        self.gateway = self.h.start_gateway(self.gw_cfg_path)
        self.wait_ready(30)

    def restart_agent(self, agency):
        self.agents[agency].stop()
        self.h.procs.remove(self.agents[agency])
        self.start_agent(agency)
        ri.write_yaml(self.gw_cfg_path, self.gateway_cfg())
        self.restart_gateway()

    def refresh(self, agency, people):
        """New data at the agency: its file rewritten, the agent restarted
        (the extract is rebuilt: a new data vintage)."""
        self.people[agency] = people
        write_db(self.dbs[agency], people)
        self.restart_agent(agency)


STATUS = {0: "unset", 1: "exact", 2: "suppressed", 3: "perturbed",
          4: "rounded", 5: "not_applicable"}


def cell_of(c):
    kind = c.WhichOneof("value")
    return (STATUS.get(c.status, str(c.status)),
            getattr(c, kind) if kind else None)


def table_of(r, n_keys):
    """{key tuple: [(status, value) per aggregate column]}."""
    out = {}
    for row in r.rows:
        cells = [cell_of(c) for c in row.cells]
        out[tuple(v for _, v in cells[:n_keys])] = cells[n_keys:]
    return out


# ---- the independent perturbation oracle -----------------------------------


def cell_secret(path):
    return bytes.fromhex(path.read_text().strip())


def record_key(secret, pid):
    mac = hmac.new(secret, b"fedq record key v1\x00" + pid.encode(),
                   hashlib.sha256).digest()
    return int.from_bytes(mac[:4], "big")


def keyed_draw(stream, stat, column, cell_key, truth):
    msg = (f"fedq noise v1|{stream}|{stat}|{column}|".encode() +
           cell_key.to_bytes(4, "big") + struct.pack(">d", float(truth)))
    return int.from_bytes(hashlib.sha256(msg).digest()[:4], "big")


class PTable:
    """The perturbation table as `fedq ptable` publishes it."""

    def __init__(self, h, k=K, d=D, v=V):
        r = h.fedq("ptable", "--max-deviation", str(d), "--variance", str(v),
                   "--threshold", str(k))
        check(r.returncode == 0, f"fedq ptable: {tail(r.stderr)}")
        self.k, self.d = k, d
        self.rows = {}          # t -> [(noise, probability, threshold)]
        self.last = None        # the row for every larger t ("13+")
        for ln in r.stdout.splitlines():
            m = re.match(r"\s*(\d+)(\+?)\s+(-?\d+)\s+([\d.]+)\s+(\d+)\s*$", ln)
            if not m:
                continue
            t = int(m.group(1))
            self.rows.setdefault(t, []).append(
                (int(m.group(3)), float(m.group(4)), int(m.group(5))))
            if m.group(2):
                self.last = t
        check(self.last is not None and self.rows,
              f"cannot read the table: {r.stdout[:400]!r}")

    def row(self, t):
        return self.rows[min(t, self.last)]

    def noise(self, t, u):
        if t == 0:
            return 0
        for n, _, thr in self.row(t):
            if thr > u:
                return n
        raise AssertionError("a row's last threshold is 2^32")

    def preimage(self, w):
        """The true values that can be published as w (a hull)."""
        if w == 0:
            return (0, 0)
        ts = [t for t in range(max(self.k, w - self.d), w + self.d + 1)
              if any(t + n == w and p > 0 for n, p, _ in self.row(t))]
        check(ts and ts == list(range(ts[0], ts[-1] + 1)),
              f"the preimage of {w} is {ts}: not an interval")
        return (ts[0], ts[-1])

    def best_guess(self):
        """The chance of reading a true count off one release (the most
        likely noise is 0): the baseline of the red-team tests."""
        return max(p for n, p, _ in self.row(self.last))


def llround(x):
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


class Oracle:
    """Cells recomputed from the raw rows (the federation's files)."""

    def __init__(self, h, fed):
        self.h = h
        self.people = fed.people
        self.secrets = {a: cell_secret(fed.secret_files[a])
                        for a in AGENCIES}
        self.pt = PTable(h)

    def cell(self, agencies, pred):
        """Per agency: (records, persons set, cell key, {person: wages})."""
        out = {}
        for a in agencies:
            recs = [r for r in self.people[a] if pred(r)]
            persons = {r["person_id"] for r in recs}
            ck = sum(record_key(self.secrets[a], p) for p in persons) % 2**32
            units = {}
            for r in recs:
                units[r["person_id"]] = units.get(r["person_id"], 0) + \
                    r["wages"]
            out[a] = (len(recs), persons, ck, units)
        return out

    def hidden(self, parts):
        """The primary and insider rules on a pooled cell."""
        n = sum(len(p[1]) for p in parts.values())
        if 0 < n < K:
            return True
        return len(parts) > 1 and any(0 < n - len(p[1]) < K
                                      for p in parts.values())

    def count(self, parts, column=""):
        truth = sum(p[0] for p in parts.values())
        ck = sum(p[2] for p in parts.values()) % 2**32
        if truth == 0:
            return 0
        if truth < K:
            return None  # never released
        u = keyed_draw("noise", "records", column, ck, truth)
        return truth + self.pt.noise(truth, u)

    def wages_sum(self, parts):
        truth = sum(sum(p[3].values()) for p in parts.values())
        ck = sum(p[2] for p in parts.values()) % 2**32
        top1 = max((abs(v) for p in parts.values() for v in p[3].values()),
                   default=0)
        u = keyed_draw("noise", "sum", "wages", ck, float(truth))
        eta = u / 4294967296.0 * 2.0 - 1.0
        return llround(truth + (MAG / 100.0) * top1 * eta)

    def dominated(self, parts):
        """80/3 on persons' wages (the defaults)."""
        units = [v for p in parts.values() for v in p[3].values()]
        total = sum(abs(v) for v in units)
        return len(units) < 3 or (total > 0 and
                                  max(units) * 100 >= 80 * total)


# ---- perturbation -------------------------------------------------------------


def expect_released(got, want, what):
    check(got[0] == "perturbed" and got[1] == want,
          f"{what}: released {got}, the oracle says perturbed {want}")


@test
def perturbation_matches_oracle(h):
    """Every released count and SUM of a pooled and of a single-agency
    table is the true value plus the noise the published table gives for
    the keyed draw of its pooled cell key (the agencies' HMAC record keys
    of its persons) and true value; the suppressed cells are exactly those
    the primary, insider and dominance rules name (C07, C08)."""
    fed = PlantedFed(h, "perturb", release=perturbation_alone()).start()
    o = Oracle(h, fed)
    try:
        for src, agencies in ((POOL, AGENCIES), ("uhs", ["uhs"])):
            r = fed.query(f"SELECT county, COUNT(*), SUM(wages) FROM "
                          f"{src}.people GROUP BY county")
            check(r.rules.perturbed and r.rules.max_deviation == D,
                  f"rules {r.rules}")
            got = table_of(r, 1)
            checked = 0
            for c in COUNTIES:
                parts = o.cell(agencies, lambda x, c=c: x["county"] == c)
                if all(len(p[1]) == 0 for p in parts.values()):
                    check((c,) not in got, f"{src} {c}: an empty group shown")
                    continue
                cells = got.get((c,))
                check(cells is not None, f"{src} {c}: no row")
                if o.hidden(parts):
                    check(all(s == "suppressed" for s, _ in cells),
                          f"{src} {c}: {cells}, the oracle hides it")
                    continue
                expect_released(cells[0], o.count(parts), f"{src} {c} COUNT")
                if o.dominated(parts):
                    check(cells[1][0] == "suppressed",
                          f"{src} {c} SUM: {cells[1]}, dominated")
                else:
                    expect_released(cells[1], o.wages_sum(parts),
                                    f"{src} {c} SUM")
                checked += 1
            check(checked >= 5, f"{src}: only {checked} counties released")
            check(got.get(("C07",), [("", 0)])[0][0] == "suppressed",
                  f"{src}: the rare county C07 is not suppressed")
            if src == POOL:
                check(got[("C08",)][0][0] == "suppressed",
                      "C08 (2 persons at csu) passes the insider rule")
    finally:
        fed.close()


@test
def perturbation_consistent(h):
    """The same persons and records give the same released value however
    asked: a repeat, a filter that keeps every record, a group filtered
    to itself, a HISTOGRAM bin and the COUNT(*) of the same range, and
    another analyst; a different record set gets a value of its own."""
    fed = PlantedFed(h, "consistent", release=perturbation_alone()).start()
    o = Oracle(h, fed)
    try:
        base = f"SELECT county, COUNT(*) FROM {POOL}.people"
        first = table_of(fed.query(f"{base} GROUP BY county"), 1)
        for sql, party in ((f"{base} GROUP BY county", ALICE),
                           (f"{base} GROUP BY county", BOB),
                           (f"{base} WHERE wages >= 0 GROUP BY county", ALICE),
                           (f"{base} WHERE day BETWEEN 1 AND 31 GROUP BY "
                            f"county", ALICE)):
            again = table_of(fed.query(sql, party), 1)
            check(again == first, f"{sql} as {party}: {again} != {first}")
        for c in ("C01", "C02"):
            one = table_of(fed.query(f"SELECT COUNT(*) FROM {POOL}.people "
                                     f"WHERE county = '{c}'"), 0)[()]
            check(one == first[(c,)], f"{c} alone {one} != {first[(c,)]}")
        edges = (300000, 600000)
        r = fed.query(f"SELECT HISTOGRAM(wages, {edges[0]}, {edges[1]}) "
                      f"FROM {POOL}.people")
        bins = table_of(r, 0)[()]
        ranges = ((None, edges[0]), edges, (edges[1], None))
        for (lo, hi), b in zip(ranges, bins):
            cond = " AND ".join(
                x for x in (f"wages >= {lo}" if lo is not None else "",
                            f"wages < {hi}" if hi is not None else "") if x)
            cnt = table_of(fed.query(f"SELECT COUNT(*) FROM {POOL}.people "
                                     f"WHERE {cond}"), 0)[()][0]
            check(b == cnt, f"bin [{lo}, {hi}) {b} != COUNT(*) {cnt}")
            parts = o.cell(AGENCIES, lambda x, lo=lo, hi=hi:
                           (lo is None or x["wages"] >= lo) and
                           (hi is None or x["wages"] < hi))
            expect_released(b, o.count(parts), f"bin [{lo}, {hi})")
        # Half the persons of C01, by day: their own values, which the
        # oracle also predicts (not the county's).
        r = table_of(fed.query(f"{base} WHERE day <= 15 GROUP BY county"), 1)
        parts = o.cell(AGENCIES, lambda x: x["county"] == "C01" and
                       x["day"] <= 15)
        expect_released(r[("C01",)][0], o.count(parts), "C01, days 1-15")
    finally:
        fed.close()


@test
def perturbation_rounding(h):
    """rounding_base 5: every released count is the perturbed value
    rounded to a multiple of 5 by the keyed "round" draw (up with chance
    r/5), never below k when the truth is k or more; the status says
    rounded."""
    fed = PlantedFed(h, "rounding", release=perturbation_alone(
        rounding_base=5, perturbation_rationale="tests")).start()
    o = Oracle(h, fed)
    try:
        got = table_of(fed.query(f"SELECT county, sex, COUNT(*) FROM "
                                 f"{POOL}.people GROUP BY county, sex"), 2)
        n = 0
        for (c, s), cells in got.items():
            parts = o.cell(AGENCIES, lambda x, c=c, s=s:
                           x["county"] == c and x["sex"] == s)
            if o.hidden(parts):
                check(cells[0][0] == "suppressed", f"{c} {s}: {cells}")
                continue
            truth = sum(p[0] for p in parts.values())
            ck = sum(p[2] for p in parts.values()) % 2**32
            v = o.count(parts)
            u = keyed_draw("round", "records", "", ck, truth)
            rem = v % 5
            if rem:
                down = v - rem
                up = down + 5
                v = up if (v >= K and down < K) or u * 5 < (rem << 32) \
                    else down
            check(cells[0] == ("rounded", v),
                  f"{c} {s}: {cells[0]}, the oracle says rounded {v}")
            n += 1
        check(n >= 6, f"only {n} cells released")
    finally:
        fed.close()


# ---- secondary suppression, checked by integer programming -----------------


def glpsol(lp_text, workdir, name):
    """Solves a CPLEX-LP model with GLPK's glpsol (MIP when it declares
    integers): the objective's optimum, or None if unbounded."""
    path = workdir / f"{name}.lp"
    out = workdir / f"{name}.out"
    path.write_text(lp_text)
    r = subprocess.run(["glpsol", "--lp", str(path), "-o", str(out)],
                       capture_output=True, text=True, timeout=120)
    text = r.stdout + (out.read_text() if out.exists() else "")
    if "UNBOUNDED" in text.upper():
        return None
    m = re.search(r"Objective:\s+\S+\s*=\s*(-?[\d.e+-]+)", text)
    check(r.returncode == 0 and m and "INTEGER OPTIMAL" in text.upper()
          or (m and "OPTIMAL" in text.upper()),
          f"glpsol {path}: rc {r.returncode}: {tail(text)}")
    return float(m.group(1))


class Released:
    """What an analyst holds of one family (no filter, one statistic):
    every released table as {dims: {key: (status, value)}}."""

    def __init__(self):
        self.tables = []  # (dims tuple, {key tuple: (status, value)})

    def add(self, dims, got, col):
        self.tables.append((dims, {k: v[col] for k, v in got.items()}))


def interval_program(rel, dims_all, domains, bounds_of, integer, target,
                     sense):
    """A CPLEX-LP model: one variable per finest cell (combinations of
    dims_all's values that every released table has a group for), each
    table cell the sum of those under it, bounded as bounds_of(status,
    value, has_row) says; optimise table cell target."""
    combos = []
    for v in itertools.product(*(domains[d] for d in dims_all)):
        ok = True
        for dims, cells in rel.tables:
            key = tuple(v[dims_all.index(d)] for d in dims)
            ok = ok and (not dims or key in cells)
        if ok:
            combos.append(v)
    lines, bounds, names = [], [], []
    obj = None
    for t, (dims, cells) in enumerate(rel.tables):
        for key, (status, value) in cells.items():
            name = f"t{t}_{len(names)}"
            names.append(name)
            under = [f"x{i}" for i, v in enumerate(combos)
                     if tuple(v[dims_all.index(d)] for d in dims) == key]
            lo, hi = bounds_of(status, value, bool(dims))
            expr = " + ".join(under) if under else "0 x0"
            lines.append(f" r_{name}: {expr} - {name} = 0")
            bounds.append(f" {lo} <= {name} <= {hi}" if hi is not None
                          else f" {name} >= {lo}")
            if (t, key) == target:
                obj = name
    cap = 10**6 if integer else 10**13  # "unbounded", for glpsol
    for i in range(len(combos)):
        bounds.append(f" 0 <= x{i} <= {cap}")
    text = ("Maximize\n" if sense == "max" else "Minimize\n") + \
        f" obj: {obj}\nSubject To\n" + "\n".join(lines) + \
        "\nBounds\n" + "\n".join(bounds) + "\n"
    if integer:
        text += "General\n " + " ".join(f"x{i}" for i in range(len(combos)))
        text += "\n"
    return text + "End\n"


def check_intervals(h, workdir, rel, dims_all, domains, bounds_of, integer,
                    need, what):
    """Every suppressed cell's interval by GLPK is at least need(key) wide.
    Returns how many were checked."""
    n = 0
    for t, (dims, cells) in enumerate(rel.tables):
        for key, (status, _) in cells.items():
            if status != "suppressed":
                continue
            kw = dict(dims_all=dims_all, domains=domains, bounds_of=bounds_of,
                      integer=integer, target=(t, key))
            lo = glpsol(interval_program(rel, sense="min", **kw), workdir,
                        f"{what}-{t}-{n}-min")
            hi = glpsol(interval_program(rel, sense="max", **kw), workdir,
                        f"{what}-{t}-{n}-max")
            cap = 10**6 if integer else 10**13
            width = math.inf if hi is None or hi >= 0.99 * cap else hi - lo
            check(width + 1e-6 >= need(dims, key),
                  f"{what}: table {dims} cell {key} is within [{lo}, {hi}] "
                  f"given everything released, narrower than "
                  f"{need(dims, key)}")
            n += 1
    return n


SECONDARY_TABLES = [("county", "sex", "age"), ("county", "sex"), ("county",),
                    ("sex", "age"), (), ("age",), ("county", "age")]


def run_tables(fed, order, measure):
    """The tables of SECONDARY_TABLES in order, as Released of the counts
    and of SUM(measure) (pooled)."""
    counts, sums = Released(), Released()
    for dims in order:
        g = ", ".join(dims)
        sql = (f"SELECT {g + ', ' if g else ''}COUNT(*), SUM({measure}) FROM "
               f"{POOL}.people" + (f" GROUP BY {g}" if g else ""))
        got = table_of(fed.query(sql), len(dims))
        counts.add(dims, got, 0)
        sums.add(dims, got, 1)
    return counts, sums


@test
def secondary_intervals_glpk(h):
    """Seven tables of one dataset and vintage (county x sex x age and
    their margins), in two orders, exact and perturbed: GLPK's MIP finds
    every suppressed count's feasible interval, from everything released
    (a released exact count is fixed; a perturbed one lies in the
    preimage the published table allows; a suppressed count of a returned
    group is at least 1), at least the protection level (5) wide, and
    every suppressed SUM's at least 10 % of its value."""
    workdir = h.root / "glpk"
    workdir.mkdir(exist_ok=True)
    domains = {"county": COUNTIES, "sex": ["F", "M"], "age": AGES}
    dims_all = ["county", "sex", "age"]
    people = planted_people(seed=11, n=(220, 160))
    total = 0
    for variant, order in (("exact", SECONDARY_TABLES),
                           ("exact-fine-last", SECONDARY_TABLES[::-1]),
                           ("perturbed", SECONDARY_TABLES)):
        rel = {"differencing_ledger": "off",
               "differencing_ledger_rationale": "secondary alone"}
        if variant.startswith("exact"):
            rel.update(perturbation="none", perturbation_rationale="exact")
        fed = PlantedFed(h, f"secondary-{variant}", people=dict(people),
                         release=release_params(**rel)).start()
        try:
            counts, sums = run_tables(fed, order, "wages")
            pt = PTable(h)
            hidden = [k for _, c in counts.tables for k, v in c.items()
                      if v[0] == "suppressed"]
            check(len(hidden) >= 3, f"{variant}: only {len(hidden)} "
                                    f"suppressed counts: nothing to check")

            def count_bounds(status, value, has_row, variant=variant):
                if status == "suppressed":
                    return (1 if has_row else 0, None)
                if variant.startswith("exact"):
                    return (value, value)
                return pt.preimage(value)
            total += check_intervals(h, workdir, counts, dims_all, domains,
                                     count_bounds, True,
                                     lambda d, k: PROTECTION,
                                     f"{variant} counts")
            if variant.startswith("exact"):
                o = Oracle(h, fed)

                def truth(dims, key):
                    parts = o.cell(AGENCIES, lambda r: all(
                        r[d] == v for d, v in zip(dims, key)))
                    return sum(sum(p[3].values()) for p in parts.values())

                def sum_bounds(status, value, has_row):
                    return (0, None) if status == "suppressed" else \
                        (value, value)
                total += check_intervals(
                    h, workdir, sums, dims_all, domains, sum_bounds, False,
                    lambda d, k: PROTECTION_PCT / 100.0 * truth(d, k),
                    f"{variant} sums")
        finally:
            fed.close()
    ri.print_note(f"{total} suppressed cells checked by GLPK")


MARGIN_TABLES = [("county", "sex"), ("county",), ("sex",), (),
                 ("county", "age"), ("age",)]
CYCLE_TABLES = [("county", "sex"), ("sex", "age"), ("flag", "day"),
                ("county", "age"), ("day",)]


def run_capped(h, name, people, rel, order, cap):
    """run_tables(order) on a federation of its own whose gateway lays a
    family over at most cap finest cells (None: the default), and the
    most latent cells its log says a family over margins had."""
    extra = {"secondary_finest_cells": cap} if cap else None
    fed = PlantedFed(h, name, people=dict(people), release=rel,
                     gw_extra=extra).start()
    try:
        got = run_tables(fed, order, "wages")
        log = fed.gateway.err_path.read_text(errors="replace")
        latent = [int(n) for n in re.findall(
            r"secondary suppression over margins: .* (\d+) of them latent",
            log)]
        return got, max(latent, default=None)
    finally:
        fed.close()


def same_statuses(fine, marg, what):
    for stat in (0, 1):
        for (dims, a), (_, b) in zip(fine[stat].tables, marg[stat].tables):
            diff = [(k, a[k], b.get(k)) for k in a if a[k] != b.get(k)]
            check(not diff, f"{what}: GROUP BY {dims} (stat {stat}) over "
                            f"margins differs from the finest cells: "
                            f"{diff[:4]}")


@test
def secondary_margins_mode(h):
    """A family whose finest cells are more than the gateway's cap
    (secondary_finest_cells) is related through its tables' margins:
    acyclic GROUP BYs (county x sex and county x age with their margins;
    cap 2) directly, a cycle (county x sex, sex x age, county x age, with
    flag x day beside it; cap 100) through a latent county x sex x age
    table. In both orders every count and sum has the status the
    finest-cell program gives (the default cap), and GLPK's intervals
    over the finest cells of county x sex x age are at least the
    protection level wide. A cycle over more combinations than the cap
    is refused by name, and the gateway keeps serving."""
    workdir = h.root / "glpk-margins"
    workdir.mkdir(exist_ok=True)
    domains = {"county": COUNTIES, "sex": ["F", "M"], "age": AGES}
    dims_all = ["county", "sex", "age"]
    people = planted_people(seed=23, n=(200, 150))
    rel = release_params(differencing_ledger="off",
                         differencing_ledger_rationale="secondary alone",
                         perturbation="none", perturbation_rationale="exact")
    checked = 0
    runs = [(f"acyclic-{o}", order, 2) for o, order in
            enumerate((MARGIN_TABLES, MARGIN_TABLES[::-1]))]
    runs += [(f"cycle-{o}", order, 100) for o, order in
             enumerate((CYCLE_TABLES, CYCLE_TABLES[::-1]))]
    for what, order, cap in runs:
        fine, none = run_capped(h, f"m-{what}-fine", people, rel, order,
                                None)
        marg, latent = run_capped(h, f"m-{what}-{cap}", people, rel, order,
                                  cap)
        # the cycle's clique: every county x sex x age whose three pairs
        # are groups of the data
        rows = [r for a in AGENCIES for r in people[a]]
        pairs = [{(r[x], r[y]) for r in rows} for x, y in
                 (("county", "sex"), ("sex", "age"), ("county", "age"))]
        clique = sum((c, s) in pairs[0] and (s, a) in pairs[1] and
                     (c, a) in pairs[2] for c in COUNTIES for s in "FM"
                     for a in AGES)
        check(none is None and latent == (clique if cap == 100 else 0),
              f"{what}: latent cells {none} (default cap), {latent} "
              f"(cap {cap})")
        same_statuses(fine, marg, what)
        counts = Released()
        counts.tables = [t for t in marg[0].tables
                         if set(t[0]) <= set(dims_all)]
        hidden = sum(v[0] == "suppressed" for _, c in counts.tables
                     for v in c.values())
        check(hidden >= 3, f"{what}: only {hidden} suppressed counts: "
                           f"nothing to check")
        checked += check_intervals(
            h, workdir, counts, dims_all, domains,
            lambda status, value, has_row: (1 if has_row else 0, None)
            if status == "suppressed" else (value, value),
            True, lambda d, k: PROTECTION, f"margins {what}")
    fed = PlantedFed(h, "margins-cycle", people=dict(people), release=rel,
                     gw_extra={"secondary_finest_cells": 2}).start()
    try:
        for g in ("county, sex", "sex, age"):
            fed.query(f"SELECT {g}, COUNT(*) FROM {POOL}.people GROUP BY {g}")
        e = rpc_error(fed.query, f"SELECT county, age, COUNT(*) FROM "
                                 f"{POOL}.people GROUP BY county, age")
        expect_status(e, grpc.StatusCode.RESOURCE_EXHAUSTED,
                      "form a cycle over more than 2 combinations")
        fed.query(f"SELECT county, COUNT(*) FROM {POOL}.people "
                  f"GROUP BY county")  # and it keeps serving
    finally:
        fed.close()
    ri.print_note(f"{checked} suppressed cells over margins checked by GLPK")


@test
def release_veto_at_agent(h):
    """Each agency's rules are also its agent's veto. Released cells
    recorded at uhs (Agent/RecordCells with the gateway's certificate, as
    a gateway gone wrong would send them) are weighed against uhs's own
    signed rules, its own part counted from its records: C07 (4 persons)
    is refused, so is C08 pooled with csu's 2 (15, but 2 besides uhs: the
    insider rule), and a part that is not what uhs's records hold; the
    analyst-facing error carries no count, uhs's log does. A county that
    passes is recorded, and the agent keeps serving."""
    p = h.proto
    people = planted_people()
    fed = PlantedFed(h, "veto", people=dict(people)).start()
    try:
        sql = "SELECT county, COUNT(*) FROM uhs.people GROUP BY county"
        plan = fed.stub().Explain(fed.ereq(sql, agreement="", purpose=""),
                                  timeout=CALL_TIMEOUT).plan
        req = p.agent.ExecuteRequest(
            query_id="veto-1", plan=plan, analyst=identity("analyst/alice"),
            agreement=fed.terms.agreement, purpose=fed.terms.purpose)
        ch = h.channel(fed.agents["uhs"].addr, party="gateway")
        stub = h.proto.agent_grpc.AgentStub(ch)
        ans = stub.Execute(req, timeout=CALL_TIMEOUT)
        keys = {g.key[0].text_value: list(g.key) for g in ans.groups}

        def persons(county):
            return len({r["person_id"] for r in people["uhs"]
                        if r["county"] == county})

        def record(county, parts, n):
            return stub.RecordCells(p.agent.RecordCellsRequest(
                query=req, vintages=[p.agent.AgencyVintage(
                    agency="uhs", vintage=ans.data_vintage)],
                cells=[p.agent.CellRef(key=keys[county], aggregate=0)],
                ids=[f"veto-1/{n}"],
                parts=[p.agent.CellPart(agency=a, contributors=c,
                                        data_vintage=ans.data_vintage)
                       for a, c in parts],
                parts_per_cell=[len(parts)]), timeout=CALL_TIMEOUT)

        log_at = len(fed.agents["uhs"].stderr_text())
        check(persons("C07") == 4 and persons("C08") == 13,
              "the planted counties moved")
        for n, (county, parts) in enumerate((
                ("C07", [("uhs", 4)]),
                ("C08", [("uhs", 13), ("csu", 2)]))):
            e = rpc_error(record, county, parts, n)
            expect_status(e, grpc.StatusCode.PERMISSION_DENIED,
                          "release policy vetoes")
            check(not re.search(r"\d+ contributors", e.details() or ""),
                  f"the veto's reply names a count: {e.details()!r}")
        log = fed.agents["uhs"].stderr_text()[log_at:]
        check("cell 0: 4 contributors" in log and
              "cell 0: 2 contributors besides agency uhs" in log,
              f"uhs's log does not say why: {tail(log)}")
        c01 = persons("C01")
        e = rpc_error(record, "C01", [("uhs", c01 + 1)], 3)
        expect_status(e, grpc.StatusCode.INVALID_ARGUMENT,
                      "records contradict")
        check("states %d persons of agency uhs, its records hold %d"
              % (c01 + 1, c01) in fed.agents["uhs"].stderr_text()[log_at:],
              "uhs's log does not say which part is wrong")
        got = record("C01", [("uhs", c01), ("csu", 20)], 4)
        check(got.recorded == 1, f"a county that passes: {got}")
        r = fed.query(f"SELECT county, COUNT(*) FROM {POOL}.people "
                      f"GROUP BY county")
        check(len(r.rows) >= 6, "the federation stopped serving")
        ch.close()
    finally:
        fed.close()


# ---- the differencing ledger ------------------------------------------------


class LedgerOracle:
    """The ledger's decisions, from Python sets: a released cell is the
    set of its records (agency, vintage, row) with their persons; a new
    cell is suppressed when, against any cell released before from the
    dataset (any analyst), the persons with a record in one but not the
    other number fewer than k both ways, not both 0 (by persons alone
    against another data vintage)."""

    def __init__(self, fed, vintages):
        self.fed = fed
        self.vintages = dict(vintages)  # agency -> current vintage
        self.released = []              # (frozenset of records, persons)

    def records(self, agencies, pred):
        out = set()
        for a in agencies:
            for i, r in enumerate(self.fed.people[a]):
                if pred(r):
                    out.add((a, self.vintages[a], i, r["person_id"]))
        return frozenset(out)

    @staticmethod
    def persons(recs):
        return {(a, p) for a, _, _, p in recs}

    def differences(self, a, b):
        same_vintages = {(x[0], x[1]) for x in a} | {(x[0], x[1]) for x in b}
        by_person = len({ag for ag, _ in same_vintages}) < len(same_vintages)
        if by_person:
            pa, pb = self.persons(a), self.persons(b)
            return len(pa - pb), len(pb - pa)
        return (len(self.persons(a - b)), len(self.persons(b - a)))

    def primary(self, recs):
        """The primary or insider rule's name if it hides the cell."""
        n = len(self.persons(recs))
        by_agency = {}
        for a, _, _, p in recs:
            by_agency.setdefault(a, set()).add(p)
        if 0 < n < K:
            return "primary"
        if len(self.agencies) > 1 and any(
                0 < n - len(by_agency.get(a, ())) < K for a in self.agencies):
            return "insider"
        return None

    def near(self, recs):
        """The released cells within k - 1 persons of recs both ways (and
        not equal), in release order."""
        out = []
        for b in self.released:
            d1, d2 = self.differences(recs, b[0] if isinstance(b, tuple)
                                      else b)
            if d1 < K and d2 < K and (d1 or d2):
                out.append(b)
        return out

    def decide(self, recs):
        """(suppressed, reason) for a candidate; records it if released."""
        why = self.primary(recs)
        if why:
            return True, why
        if self.near(recs):
            return True, "ledger"
        self.released.append(recs)
        return False, None


def random_filter(rnd):
    """A random WHERE clause and its Python predicate."""
    conds = []
    kind = rnd.sample(["county", "sex", "age", "flag", "day", "wages"],
                      rnd.choice([0, 1, 1, 2]))
    for k in kind:
        if k == "county":
            vals = rnd.sample(COUNTIES, rnd.randint(1, 7))
            conds.append((f"county IN ({', '.join(repr(v) for v in vals)})",
                          lambda r, vals=vals: r["county"] in vals))
        elif k in ("sex", "flag"):
            v = rnd.choice(["F", "M"] if k == "sex" else ["N", "Y"])
            neg = rnd.random() < 0.5
            conds.append((f"{k} {'<>' if neg else '='} '{v}'",
                          lambda r, k=k, v=v, neg=neg: (r[k] != v) == neg))
        elif k == "age":
            v = rnd.choice(AGES)
            conds.append((f"age <> '{v}'", lambda r, v=v: r["age"] != v))
        elif k == "day":
            lo = rnd.randint(1, 31)
            hi = min(31, lo + rnd.choice([0, 1, 5, 30]))
            conds.append((f"day BETWEEN {lo} AND {hi}",
                          lambda r, lo=lo, hi=hi: lo <= r["day"] <= hi))
        else:
            cut = rnd.randint(100000, 900000)
            conds.append((f"wages >= {cut}",
                          lambda r, cut=cut: r["wages"] >= cut))
    sql = " AND ".join(c for c, _ in conds)
    return (f" WHERE {sql}" if sql else "",
            lambda r: all(p(r) for _, p in conds))


def ledger_round(fed, oracle, rnd, n, tally):
    """n random COUNT(*) queries (pooled or one agency, grouped or not,
    alice or bob), each cell's status checked against the oracle."""
    for qi in range(n):
        src = rnd.choice([POOL, POOL, "uhs", "csu"])
        agencies = AGENCIES if src == POOL else [src]
        where, pred = random_filter(rnd)
        group = rnd.choice([None, None, "sex", "flag", "county"])
        party = rnd.choice([ALICE, BOB])
        g = f"{group}, " if group else ""
        sql = (f"SELECT {g}COUNT(*) FROM {src}.people{where}" +
               (f" GROUP BY {group}" if group else ""))
        got = table_of(fed.query(sql, party), 1 if group else 0)
        oracle.agencies = agencies
        keys = sorted(got)
        for key in keys:
            recs = oracle.records(agencies, lambda r, key=key: pred(r) and (
                not group or r[group] == key[0]))
            hide, why = oracle.decide(recs)
            status = got[key][0][0]
            check(status == ("suppressed" if hide else "exact"),
                  f"query {qi} {sql!r} as {party}: cell {key} is {status}, "
                  f"the oracle says {why or 'released'} "
                  f"({len(oracle.persons(recs))} persons)")
            tally[why or "released"] = tally.get(why or "released", 0) + 1


def vintages_of(r):
    return {v.agency: v.vintage for v in r.vintages}


@test
def ledger_matches_oracle(h):
    """200 random filtered COUNT(*) tables (pooled and single-agency, by
    two analysts) released exactly with the ledger on: every cell's
    release or suppression is what the set oracle decides, in order; the
    ledger survives restarts of the agents and the gateway; after a data
    refresh at uhs that adds 3 persons to C01 and drops 1, cells are
    weighed against the old vintage's by persons (the totals differ by
    them: suppressed)."""
    from store_tests import next_second
    fed = PlantedFed(h, "ledger", release=release_params(
        perturbation="none", protection_level=0, protection_percent=0,
        perturbation_rationale="the ledger's oracle compares exact sets",
        protection_rationale="the ledger alone")).start()
    try:
        rnd = random.Random(20261206)
        r = fed.query(f"SELECT COUNT(*) FROM {POOL}.people")
        oracle = LedgerOracle(fed, vintages_of(r))
        oracle.agencies = AGENCIES
        oracle.decide(oracle.records(AGENCIES, lambda x: True))
        tally = {}
        ledger_round(fed, oracle, rnd, 120, tally)
        # Restarts lose nothing: both agents, then the gateway.
        for a in AGENCIES:
            fed.restart_agent(a)
        ledger_round(fed, oracle, rnd, 80, tally)
        check(tally.get("ledger", 0) >= 5 and tally.get("released", 0) >= 50,
              f"the random queries exercised too little: {tally}")
        ri.print_note(f"cells: {tally}")

        # A refresh at uhs: 3 new persons in C01, one leaves.
        v1 = oracle.vintages["uhs"]
        rows = [x for x in fed.people["uhs"] if x["person_id"] !=
                "uhs-P00000"]
        prnd = random.Random(3)
        rows += [person(f"uhs-N{i}", prnd, county="C01") for i in range(3)]
        next_second(v1)
        fed.people["uhs"] = rows
        write_db(fed.dbs["uhs"], rows)
        out = subprocess.run(
            [str(h.bin / "fedq-agent"), "refresh", "people", "--config",
             str(fed.agent_cfg_path("uhs"))],
            capture_output=True, text=True, env=h.env, timeout=120)
        check(out.returncode == 0 and sanitizer_report(out.stderr) is None,
              f"fedq-agent refresh: {out.stdout} {tail(out.stderr)}")
        r = fed.query("SELECT COUNT(*) FROM uhs.people")
        v2 = vintages_of(r)["uhs"]
        check(v2 != v1, f"the refresh kept vintage {v1}")
        oracle.vintages["uhs"] = v2
        oracle.agencies = ["uhs"]
        hide, why = oracle.decide(oracle.records(["uhs"], lambda x: True))
        check(hide and why == "ledger", "the oracle should hide the new "
                                        "total: the test data is wrong")
        check(table_of(r, 0)[()][0][0] == "suppressed",
              f"the uhs total after the refresh is released: "
              f"{table_of(r, 0)} (it differs from the last by 4 persons)")
        tally = {}
        ledger_round(fed, oracle, rnd, 40, tally)
    finally:
        fed.close()


class ReuseOracle(LedgerOracle):
    """Under perturbation the ledger answers a cell within k - 1 persons
    of released cells with the published value of the earliest of them
    (release order; within one query, by the gateway's cell id)."""

    def decide_value(self, recs, own_value, order):
        """('suppressed', None) or (status, value) expected; records a
        released cell with its order and published value."""
        why = self.primary(recs)
        if why:
            return ("suppressed", None), why
        near = self.near(recs)
        if near:
            first = min(near, key=lambda b: b[2])
            got, why = first[1], "reused"
        else:
            got, why = ("perturbed", own_value), "released"
        self.released.append((recs, got, order))
        return got, why


@test
def ledger_reuse_matches_oracle(h):
    """Under perturbation (the default), 100 random filtered COUNT(*)
    tables: a cell within 1 to k - 1 persons of cells released before is
    answered with the published value of the earliest of them, exactly as
    the set oracle and the perturbation oracle predict; so a near-copy and
    an exact copy of a released cell look alike (no oracle in the status)."""
    fed = PlantedFed(h, "reuse", release=release_params(
        protection_level=0, protection_percent=0,
        protection_rationale="the ledger alone")).start()
    o = Oracle(h, fed)
    try:
        rnd = random.Random(77)
        r = fed.query(f"SELECT COUNT(*) FROM {POOL}.people")
        oracle = ReuseOracle(fed, vintages_of(r))
        oracle.agencies = AGENCIES
        all_recs = oracle.records(AGENCIES, lambda x: True)
        oracle.released.append((all_recs, table_of(r, 0)[()][0], (0, "")))
        tally = {}
        for qi in range(1, 101):
            src = rnd.choice([POOL, POOL, "uhs", "csu"])
            agencies = AGENCIES if src == POOL else [src]
            where, pred = random_filter(rnd)
            group = rnd.choice([None, None, "sex", "flag", "county"])
            g = f"{group}, " if group else ""
            sql = (f"SELECT {g}COUNT(*) FROM {src}.people{where}" +
                   (f" GROUP BY {group}" if group else ""))
            r = fed.query(sql, rnd.choice([ALICE, BOB]))
            got = table_of(r, 1 if group else 0)
            oracle.agencies = agencies
            n_cols = len(r.columns)
            for row, key in enumerate(sorted(got)):
                def pick(x, key=key):
                    return pred(x) and (not group or x[group] == key[0])
                parts = o.cell(agencies, pick)
                own = o.count(parts)
                recs = oracle.records(agencies, pick)
                # the gateway's cell id: QUERY/(row * columns + column)
                ref = f"{r.query_id}/{row * n_cols + n_cols - 1}"
                want, why = oracle.decide_value(recs, own, (qi, ref))
                check(got[key][0] == want,
                      f"query {qi} {sql!r}: cell {key} is {got[key][0]}, the "
                      f"oracle says {want} ({why}, "
                      f"{len(oracle.persons(recs))} persons)")
                tally[why] = tally.get(why, 0) + 1
        check(tally.get("reused", 0) >= 5 and tally.get("released", 0) >= 30,
              f"the random queries exercised too little: {tally}")
        ri.print_note(f"cells: {tally}")
    finally:
        fed.close()
