"""
fedq integration tests of Gateway/Query (imported by run_integration.py,
registered with its @test decorator, run by its runner).

The federation is the one of deploy/examples/etc (six agencies, alias hied
over uhs, csu and ccs) on data written by fedq-synth. Expected tables come
from an oracle over the agencies' SQLite files, read directly with
Python's sqlite3 module: each source's rows (the three hied files
UNIONed) are copied once per run into an in-memory table; per query SQLite
filters and groups them and gives each group's records, COUNT(DISTINCT
contributor), SUM and COUNT of each measure, and its raw values joined
into one text; from those the distinct counts, exact sample variances,
HISTOGRAM bins with the distinct contributors of each, and QUANTILE
(the sketch's bin walk over the declared bounds, and the exact r-th value
it must lie within error_bound of) are computed here in Python, not by
SQLite's aggregates. The catalog (dimensions, measures, domains, bounds,
quantile_bins) comes from the YAML of the example configs. Nothing of
fedq's output feeds an expectation.

Randomness: one seed per run, from the environment variable FEDQ_TEST_SEED
or else from the clock. It seeds the query generator and is also the
fedq-synth --seed of the data, so one number reproduces a run. Every
failure message of a seeded test names it. FEDQ_QUERY_COUNT sets the
number of random queries of query_oracle (default 1200).
"""

import bisect
import collections
import concurrent.futures
import functools
import json
import math
import operator
import os
import random
import re
import signal
import sqlite3
import subprocess
import time
from fractions import Fraction
from pathlib import Path

import grpc
import yaml

import run_integration as ri
from run_integration import (EXAMPLE_AGENCIES, REPO, TYPE_ENUM, TestFailure,
                             check, cli_terms, expect_status, gateway_config,
                             qreq, resolve, rpc_error, sanitizer_report, tail,
                             test, wait_until, write_yaml)

HIED = ["uhs", "csu", "ccs"]
PERSONS = 3000
MIN_CELL = 11  # the gateway's default min_cell_count
N_QUERIES = int(os.environ.get("FEDQ_QUERY_COUNT", "1200"))
N_CLI = 20     # of them through `fedq query --format json`
CALL_TIMEOUT = 30


def _seed():
    s = os.environ.get("FEDQ_TEST_SEED", "").strip()
    if s:
        return int(s)
    return time.time_ns() % 1_000_000_007


SEED = _seed()


def seeded(fn):
    """Every failure of a seeded test names the seed (and how to reuse it)."""
    def run(h):
        try:
            fn(h)
        except TestFailure as e:
            raise TestFailure(f"[FEDQ_TEST_SEED={SEED}] {e}") from None
        except Exception as e:  # noqa: BLE001
            raise TestFailure(f"[FEDQ_TEST_SEED={SEED}] "
                              f"{type(e).__name__}: {e}") from e
    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    return run


# ---- data and federations --------------------------------------------------


def query_data(h):
    """fedq-synth data for the example agencies, written once per run."""
    d = getattr(h, "query_data_dir", None)
    if d:
        return d
    d = h.root / "query-data"
    r = subprocess.run([str(h.bin / "fedq-synth"), "--out", str(d),
                        "--persons", str(PERSONS), "--seed", str(SEED)],
                       capture_output=True, text=True, env=h.env, timeout=120)
    check(r.returncode == 0 and sanitizer_report(r.stderr) is None,
          f"fedq-synth rc {r.returncode}: {tail(r.stderr)}")
    h.query_data_dir = d
    return d


class FedClient(ri.PolicyTerms):
    """What a test federation offers its test: gateway stubs (closed by
    close()), its processes, and requests naming the example policies'
    agreement and purpose (qreq, ereq, cli_terms). Subclasses set h,
    agents, gateway and channels."""
    terms = ri.EXAMPLE_TERMS

    def stub(self, party="analyst-alice"):
        ch, stub = self.h.gateway_stub(self.gateway.addr, party=party)
        self.channels.append(ch)
        return stub

    def close(self):
        for ch in self.channels:
            ch.close()
        self.channels = []

    def procs(self):
        return list(self.agents.values()) + [self.gateway]


class ExampleFed(FedClient):
    """Agents from the example configs (copied as they are into a root of
    their own, with pki/ and data/ beside etc/ as the configs expect, and
    with the example policies beside them, signed with the agencies'
    policy keys) and a gateway; the harness stops them all after the
    test."""

    def __init__(self, h, name, agencies, gw_extra=None, edit=None,
                 policy_edit=None, start=True, perturb=False):
        """edit: (agency, YAML text) -> the text to run that agent with
        (the oracle's catalog is read from it too); policy_edit: (agency,
        policy text) -> the policy to sign and run. Unless perturb, every
        agreement releases exact counts and sums (perturbation: none), which
        the exact oracles compare; the perturbation has tests of its own
        (disclosure_tests.py). With start=False the files are written and
        start() runs the processes."""
        self.h = h
        self.name = name
        self.root = h.root / f"q-{name}"
        self.etc = self.root / "etc"
        self.run = self.root / "run"
        for d in (self.etc, self.run):
            d.mkdir(parents=True)
        (self.root / "pki").symlink_to(h.pki)
        (self.root / "data").symlink_to(query_data(h))
        self.agencies = list(agencies)
        self.aliases = ([("hied", HIED)] if all(a in agencies for a in HIED)
                        else [])
        self.gw_extra = gw_extra or {}
        self.agents = {}
        self.channels = []
        self.gateway = None
        self.policies = {}
        for a in agencies:
            path = self.agent_cfg_path(a)
            text = ri.with_policy_section(
                (REPO / f"deploy/examples/etc/agent-{a}.yaml").read_text(), a)
            path.write_text(edit(a, text) if edit else text)
            self.policies[a] = ri.install_example_policy(
                h, path, (lambda t, a=a: policy_edit(a, t))
                if policy_edit else None, perturb=perturb)
        self.catalog = Catalog([self.agent_cfg_path(a) for a in agencies],
                               self.aliases)
        if start:
            self.start()

    def agent_cfg_path(self, agency):
        return self.etc / f"agent-{agency}.yaml"

    def start(self):
        for a in self.agencies:
            self.agents[a] = self.h.start_agent(self.agent_cfg_path(a))
        self.start_gateway()
        return self

    def start_gateway(self):
        """A gateway for the agents as they run now (its configuration
        written again with their addresses; the same state_dir)."""
        self.gw_cfg_path = self.etc / "gateway.yaml"
        write_yaml(self.gw_cfg_path, gateway_config(
            self.h, self.run,
            [(a, self.agents[a].addr) for a in self.agencies],
            self.aliases, **self.gw_extra))
        self.gateway = self.h.start_gateway(self.gw_cfg_path)
        self.client_cfg = self.h.client_config(self.gateway.addr,
                                               name=f"q-{self.name}-client")
        return self.gateway


# ---- the catalog, from the YAML --------------------------------------------


class Source:
    """One queryable source.dataset: its columns (from the YAML) and the
    SQLite files and tables of its member agencies."""

    def __init__(self, name, dataset, members):
        self.name = name
        self.dataset = dataset
        self.members = members  # [(agency, cfg, dataset mapping)]
        ds = members[0][2]
        self.columns = {str(c["name"]): c for c in ds["columns"]}
        self.dims = [n for n, c in self.columns.items()
                     if c["role"] == "dimension"]
        self.measures = [n for n, c in self.columns.items()
                         if c["role"] == "measure"]
        self.identifiers = [n for n, c in self.columns.items()
                            if c["role"] == "identifier"]
        self.contributor = ds.get("contributor")

    def files(self, agencies=None):
        out = []
        for agency, cfg_path, ds in self.members:
            if agencies is None or agency in agencies:
                out.append((agency, resolve(cfg_path,
                                            ds["source"]["sqlite"]),
                            ds["source"]["table"]))
        return out


class Catalog:
    def __init__(self, cfg_paths, aliases):
        self.by_agency = {}
        for p in cfg_paths:
            cfg = yaml.safe_load(Path(p).read_text())
            for ds in cfg["datasets"]:
                self.by_agency.setdefault(cfg["agency"], {})[ds["name"]] = \
                    (cfg["agency"], Path(p), ds)
        self.aliases = dict(aliases)

    def source(self, name, dataset):
        if name in self.aliases:
            return Source(name, dataset, [self.by_agency[a][dataset]
                                          for a in self.aliases[name]])
        return Source(name, dataset, [self.by_agency[name][dataset]])


# ---- the oracle -------------------------------------------------------------
#
# Each source's raw rows (the UNION of its members' tables) are copied once
# per run into an in-memory SQLite table; every query's oracle then reads
# that table. SQLite filters (the same WHERE text fedq got, for filter
# trees), groups, counts records and distinct contributors and adds sums;
# everything else is computed here in Python from each group's raw values,
# which SQLite hands over joined into one text per group (group_concat):
# distinct counts, exact variances (integer sums, one rounding), histogram
# bins with their distinct contributors, and quantile sketches with the
# exact r-th value beside them.

SEP = "\x1f"    # between the values of a group in a group_concat
PAIR = "\x1e"   # between a value and its contributor


def q_ident(name):
    return '"' + name.replace('"', '""') + '"'


class RawData:
    """The raw rows of one source (all its member agencies), in an
    in-memory SQLite table "t" with the agency in column _agency."""

    def __init__(self, src):
        self.con = sqlite3.connect(":memory:", check_same_thread=False)
        self.con.execute("PRAGMA temp_store = MEMORY")
        cols = list(src.columns)
        self.con.execute("CREATE TABLE t (_agency, " +
                         ", ".join(q_ident(c) for c in cols) + ")")
        people = {}
        for i, (agency, path, table) in enumerate(src.files()):
            self.con.execute(f"ATTACH DATABASE ? AS s{i}",
                             (f"file:{path}?mode=ro",))
            self.con.execute(
                f"INSERT INTO t SELECT ?, {', '.join(map(q_ident, cols))} "
                f"FROM s{i}.{q_ident(table)}", (agency,))
            self.con.commit()
            self.con.execute(f"DETACH DATABASE s{i}")
            if src.contributor:
                people[agency] = {v for (v,) in self.con.execute(
                    f"SELECT DISTINCT {q_ident(src.contributor)} FROM t "
                    f"WHERE _agency = ?", (agency,))}
        # The joined texts must split back into the values they joined.
        for c in cols:
            (bad,) = self.con.execute(
                f"SELECT COUNT(*) FROM t WHERE instr({q_ident(c)}, ?) OR "
                f"instr({q_ident(c)}, ?)", (SEP, PAIR)).fetchone()
            check(bad == 0, f"oracle: {src.name}.{c} holds a separator")
        if src.contributor:
            (bad,) = self.con.execute(
                f"SELECT COUNT(*) FROM t WHERE {q_ident(src.contributor)} "
                f"IS NULL").fetchone()
            check(bad == 0, f"oracle: {src.name} has records without a "
                            f"contributor")
        # Pooled members hold disjoint populations (docs/synthetic-data.md),
        # so distinct contributors over the union are the sum over the
        # agencies, as the gateway adds them.
        seen = set()
        for agency, ps in people.items():
            check(not (seen & ps), f"oracle: {agency} shares contributors "
                                   f"with another member of {src.name}")
            seen |= ps
        self.rows = self.con.execute("SELECT COUNT(*) FROM t").fetchone()[0]


_RAW = {}    # (agency, real path, mtime, table)... -> RawData
_FILES = {}  # (agency, path, table)... -> that key


def raw_data(src):
    """The RawData of src, loaded at its first use in this run (sources of
    several federations share it when their files are the same)."""
    files = tuple(src.files())
    key = _FILES.get(files)
    if key is None:
        key = _FILES[files] = tuple(
            (agency, os.path.realpath(path), os.path.getmtime(path), table)
            for agency, path, table in files)
    if key not in _RAW:
        _RAW[key] = RawData(src)
    return _RAW[key]


def oracle(src, spec, agencies=None, skip_below=0):
    """{key tuple: group} over the raw rows of src (only those of
    `agencies` if given); a group is {"records", "contributors",
    "parts": {agency: its own contributors}, "sum:<m>", "count:<m>";
    "n:<m>", "var:<m>" (None under two values) for VAR and STDDEV;
    "distinct:<c>" for COUNT(DISTINCT c); ("hist", m, edges): (counts,
    contributors) per bin; ("hist_parts", m, edges): {agency: its own
    contributors per bin}; ("quantile", m, q): a Quantile or None without
    values}. Groups of fewer than skip_below contributors (suppressed
    whole, so none of their values is ever compared) get only the first
    five."""
    raw = raw_data(src)
    members = [a for a, _, _ in src.files(agencies)]
    named = (spec["group_by"] + [f[1] for f in spec["filters"]] +
             [it[2] for it in spec["items"] if it[0] == "agg" and it[2]])
    # (SQLite would read an unknown "name" as a string.)
    check(set(named) <= set(src.columns),
          f"oracle: {sorted(set(named) - set(src.columns))} not in the "
          f"catalog of {src.name}.{src.dataset}")
    keys = [q_ident(c) for c in spec["group_by"]]
    sel = keys + ["COUNT(*)",
                  f"COUNT(DISTINCT {q_ident(src.contributor)})"
                  if src.contributor else "COUNT(*)"]
    # Each agency's own contributors to the group: what it knows of the
    # pooled cell (the insider rule).
    for a in members:
        lit = "'" + a.replace("'", "''") + "'"
        sel.append(f"COUNT(DISTINCT CASE WHEN _agency = {lit} THEN "
                   f"{q_ident(src.contributor)} END)" if src.contributor
                   else f"SUM(_agency = {lit})")
    ms = spec_measures(spec)
    for m in ms:
        sel += [f"SUM({q_ident(m)})", f"COUNT({q_ident(m)})"]
    # Each aggregate column's own contributors (those with a value),
    # pooled and per agency: the rules weigh these cell by cell.
    who = q_ident(src.contributor) if src.contributor else "rowid"
    ccs = spec_columns(spec)
    for c in ccs:
        nn = f"{q_ident(c)} IS NOT NULL"
        sel.append(f"COUNT(DISTINCT CASE WHEN {nn} THEN {who} END)")
        for a in members:
            lit = "'" + a.replace("'", "''") + "'"
            sel.append(f"COUNT(DISTINCT CASE WHEN {nn} AND _agency = {lit} "
                       f"THEN {who} END)")
    # The raw values, joined per group: measures (VAR, STDDEV, QUANTILE),
    # distinct candidates, and (value, contributor) pairs (HISTOGRAM).
    vms = spec_value_measures(spec)
    dcs = spec_distinct(spec)
    hms = spec_hist_measures(spec)
    for m in vms:
        sel.append(f"group_concat({q_ident(m)}, '{SEP}')")
    for c in dcs:
        sel.append(f"group_concat({q_ident(c)}, '{SEP}')")
    for m in hms:
        sel.append(f"group_concat({q_ident(m)} || '{PAIR}' || {who} || "
                   f"'{PAIR}' || _agency, '{SEP}')")
    where, params = [], []
    for f in spec["filters"]:
        if f[0] == "cmp":
            where.append(f"{q_ident(f[1])} {ORACLE_OPS[f[2]]} ?")
            params.append(f[3])
        elif f[0] == "between":
            where.append(f"{q_ident(f[1])} BETWEEN ? AND ?")
            params += [f[2], f[3]]
        else:
            where.append(f"{q_ident(f[1])} IN "
                         f"({', '.join('?' * len(f[2]))})")
            params += list(f[2])
    if spec.get("where"):
        # A filter tree rendered as text by language_tests' generator:
        # the same WHERE text fedq got, evaluated by SQLite itself.
        where.append("(" + spec["where"] + "\n)")
    if agencies is not None:
        where.append(f"_agency IN ({', '.join('?' * len(agencies))})")
        params += list(agencies)
    sql = f"SELECT {', '.join(sel)} FROM t"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if keys:
        sql += " GROUP BY " + ", ".join(keys)
    units = unit_totals(raw, src, spec, keys, where, params)
    hists = spec_histograms(spec)
    quants = spec_quantiles(spec)
    out = {}
    nk = len(keys)
    for row in raw.con.execute(sql, params):
        k = tuple(row[:nk])
        rest = row[nk:]
        # (no GROUP BY and no record: SQL's one row of zeros, which fedq
        # answers too, so that a missing row never tells a zero apart)
        g = {"records": rest[0], "contributors": rest[1],
             "parts": dict(zip(members, rest[2:2 + len(members)]))}
        j = 2 + len(members)
        for m in ms:
            g[f"sum:{m}"], g[f"count:{m}"] = rest[j], rest[j + 1]
            j += 2
        for c in ccs:
            g[f"contrib:{c}"] = rest[j]
            g[f"cparts:{c}"] = dict(zip(members,
                                        rest[j + 1:j + 1 + len(members)]))
            j += 1 + len(members)
        for m in units:
            g[f"units:{m}"] = units[m].get(k, {})
        out[k] = g
        if rest[1] < skip_below and rest[0] > 0:
            continue
        values = {}
        for m in vms:
            xs = [] if rest[j] is None else \
                list(map(int, rest[j].split(SEP)))
            check(len(xs) == g[f"count:{m}"],
                  f"oracle: {len(xs)} values of {m}, SQLite counts "
                  f"{g[f'count:{m}']}")
            values[m] = xs
            g[f"n:{m}"] = len(xs)
            g[f"var:{m}"] = variance(xs)
            j += 1
        for c in dcs:
            g[f"distinct:{c}"] = 0 if rest[j] is None else \
                len(set(rest[j].split(SEP)))
            j += 1
        for m in hms:
            flat = [] if rest[j] is None else \
                rest[j].replace(PAIR, SEP).split(SEP)
            vs, ws = list(map(int, flat[0::3])), flat[1::3]
            at = flat[2::3]
            for edges in hists[m]:
                h = g[("hist", m, edges)] = histogram(vs, ws, edges)
                check(sum(h[0]) == g[f"count:{m}"],
                      f"oracle: histogram of {m} holds {sum(h[0])} values, "
                      f"SQLite counts {g[f'count:{m}']}")
                g[("hist_parts", m, edges)] = {
                    a: histogram([v for v, x in zip(vs, at) if x == a],
                                 [w for w, x in zip(ws, at) if x == a],
                                 edges)[1] for a in members}
            j += 1
        for m, q in quants:
            g[("quantile", m, q)] = quantile(values[m], q,
                                             src.columns[m])
    return out


def spec_columns(spec):
    """Every column an aggregate item reads (all but COUNT(*))."""
    return list(dict.fromkeys(it[2] for it in spec["items"]
                              if it[0] == "agg" and it[2]))


MAGNITUDES = ("SUM", "AVG", "VAR", "STDDEV")


def unit_totals(raw, src, spec, keys, where, params):
    """{measure: {key: {agency: [|unit total|, ...]}}} for the magnitude
    items: the values added up per contributor unit (the column's declared
    contributor_unit, else the persons, else each record), per agency, for
    the dominance rules."""
    out = {}
    for m in dict.fromkeys(it[2] for it in spec_aggs(spec, *MAGNITUDES)):
        unit = src.columns[m].get("contributor_unit") or src.contributor
        ucol = q_ident(unit) if unit else "rowid"
        sql = (f"SELECT {', '.join(keys + ['_agency'])}, SUM({q_ident(m)}) "
               f"FROM t WHERE " +
               " AND ".join(where + [f"{q_ident(m)} IS NOT NULL"]) +
               " GROUP BY " + ", ".join(keys + ["_agency", ucol]))
        per = out[m] = {}
        for row in raw.con.execute(sql, params):
            k, agency, total = tuple(row[:len(keys)]), row[-2], row[-1]
            per.setdefault(k, {}).setdefault(agency, []).append(abs(total))
    return out


def variance(xs):
    """Sample variance (n - 1) of integers, None under two values: exact
    (integer sums, one fraction), rounded once to a float."""
    n = len(xs)
    if n < 2:
        return None
    s1 = sum(xs)
    s2 = sum(map(operator.mul, xs, xs))
    return float(Fraction(n * s2 - s1 * s1, n * (n - 1)))


def histogram(vs, ws, edges):
    """Values vs with their contributors ws into the bins (-inf, e1),
    [e1, e2), ..., [en, +inf): (counts, distinct contributors) per bin."""
    bins = list(map(functools.partial(bisect.bisect_right, edges), vs))
    counts = collections.Counter(bins)
    people = collections.Counter(map(operator.itemgetter(0),
                                     set(zip(bins, ws))))
    return (tuple(counts.get(b, 0) for b in range(len(edges) + 1)),
            tuple(people.get(b, 0) for b in range(len(edges) + 1)))


class Quantile:
    """QUANTILE(m, q) of a group's n values: the sketch's answer (value:
    the middle of the bin holding the rank-r value, walking bin counts),
    the exact r-th smallest value x_r, and the bound between them."""

    def __init__(self, xs, q, col):
        lo_b, hi_b = col["bounds"]["min"], col["bounds"]["max"]
        bins = col["quantile_bins"]
        w = sketch_width(col)

        def index(v):  # the sketch bin of v; out of bounds: an end bin
            return min(max((v - lo_b) // w, 0), bins - 1)
        xs = sorted(xs)
        self.n = n = len(xs)
        self.r = min(max(math.ceil(q * n), 1), n)
        self.x_r = xs[self.r - 1]
        # Walk the non-empty bins in increasing index, adding their counts
        # (bin i holds xs[start:end]) until the rank is reached.
        total = start = 0
        i = index(xs[0])
        while True:
            end = n if i == bins - 1 else \
                bisect.bisect_left(xs, lo_b + (i + 1) * w, start)
            total += end - start
            if total >= self.r:
                break
            start, i = end, index(xs[end])
        check(i == index(self.x_r),
              f"oracle: quantile walk ends in bin {i}, x_r {self.x_r} is in "
              f"bin {index(self.x_r)}")
        self.bin = i
        lo = lo_b + i * w
        hi = min(lo + w - 1, hi_b)
        self.value = lo + (hi - lo) // 2
        self.bound = w // 2
        check(abs(self.value - self.x_r) <= self.bound,
              f"oracle: quantile bin {i} [{lo}, {hi}] is {self.value}, "
              f"{abs(self.value - self.x_r)} from x_r {self.x_r} "
              f"(bound {self.bound})")

    def __eq__(self, other):
        return isinstance(other, Quantile) and vars(self) == vars(other)

    def __repr__(self):
        return (f"Quantile(value {self.value}, bin {self.bin}, n {self.n}, "
                f"r {self.r}, x_r {self.x_r})")


def quantile(xs, q, col):
    return Quantile(xs, q, col) if xs else None


def sketch_width(col):
    """The width of a QUANTILE sketch bin over the column's bounds."""
    span = col["bounds"]["max"] - col["bounds"]["min"] + 1
    bins = col["quantile_bins"]
    return (span + bins - 1) // bins


def error_bound(col):
    return float(sketch_width(col) // 2)


def spec_aggs(spec, *kinds):
    return [it for it in spec["items"] if it[0] == "agg" and it[1] in kinds]


def spec_measures(spec):
    return list(dict.fromkeys(it[2] for it in spec["items"]
                              if it[0] == "agg" and it[2]
                              and it[1] != "COUNT_DISTINCT"))


def spec_value_measures(spec):
    return list(dict.fromkeys(it[2] for it in spec_aggs(
        spec, "VAR", "STDDEV", "QUANTILE")))


def spec_distinct(spec):
    return list(dict.fromkeys(it[2] for it in spec_aggs(spec,
                                                        "COUNT_DISTINCT")))


def spec_hist_measures(spec):
    return list(dict.fromkeys(it[2] for it in spec_aggs(spec, "HISTOGRAM")))


def spec_histograms(spec):
    out = {}
    for it in spec_aggs(spec, "HISTOGRAM"):
        out.setdefault(it[2], []).append(it[3])
    return out


def spec_quantiles(spec):
    return list(dict.fromkeys((it[2], it[3])
                              for it in spec_aggs(spec, "QUANTILE")))


def key_order(k):
    """fedq's row order: NULL first, integers numerically, text bytewise."""
    return tuple((0, 0) if v is None else
                 (1, v) if isinstance(v, int) else (2, v.encode())
                 for v in k)


ORACLE_OPS = {"=": "=", "<>": "<>", "!=": "<>", "<": "<", "<=": "<=",
              ">": ">", ">=": ">="}


# ---- expected tables and their comparison -----------------------------------


def fmt_edge(e):
    """A HISTOGRAM edge as its column names print it."""
    return str(e) if isinstance(e, int) else f"{e:g}"


def agg_names(it):
    """The result column names of an aggregate item (a HISTOGRAM has one
    per bin: (-inf, e1), [e1, e2), ..., [en, +inf))."""
    if it[1] == "HISTOGRAM":
        es = ["-inf"] + [fmt_edge(e) for e in it[3]] + ["+inf"]
        return [f"HISTOGRAM({it[2]})[{a},{b})" for a, b in zip(es, es[1:])]
    if it[1] == "QUANTILE":
        return [f"QUANTILE({it[2]}, {it[3]:g})"]
    if it[1] == "COUNT_DISTINCT":
        return [f"COUNT(DISTINCT {it[2]})"]
    return ["COUNT(*)" if it[1] == "COUNT" else f"{it[1]}({it[2]})"]


def agg_name(it):
    return agg_names(it)[0]


def item_spans(spec):
    """(first column, number of columns) of each select item."""
    spans, n = [], 0
    for it in spec["items"]:
        w = len(it[3]) + 1 if it[0] == "agg" and it[1] == "HISTOGRAM" else 1
        spans.append((n, w))
        n += w
    return spans


def expected_columns(src, spec):
    """(name, type, aggregate, error_bound) of each result column."""
    cols = []
    for it in spec["items"]:
        if it[0] == "dim":
            cols.append((it[1], TYPE_ENUM[src.columns[it[1]]["type"]], False,
                         0.0))
        elif it[1] in ("COUNT", "COUNT_DISTINCT", "HISTOGRAM"):
            cols += [(n, "VALUE_TYPE_INTEGER", True, 0.0)
                     for n in agg_names(it)]
        elif it[1] == "QUANTILE":
            cols.append((agg_name(it), "VALUE_TYPE_INTEGER", True,
                         error_bound(src.columns[it[2]])))
        elif it[1] == "SUM":
            t = src.columns[it[2]]["type"]
            cols.append((agg_name(it), "VALUE_TYPE_DECIMAL" if t == "decimal"
                         else "VALUE_TYPE_INTEGER", True, 0.0))
        else:
            cols.append((agg_name(it), "VALUE_TYPE_DECIMAL", True, 0.0))
    return cols


SUPPRESSED = ("suppressed", None, None)
NOT_APPLICABLE = ("not_applicable", None, None)


def insider_small(pooled, parts, min_cell):
    """The insider rule: each agency knows its own part of a pooled count,
    so the rest, pooled less one agency's part, must not be 1 to
    min_cell - 1 (an agency without the group holds 0)."""
    return any(0 < pooled - p < min_cell for p in parts)


def group_hidden(g, min_cell=MIN_CELL):
    """Every aggregate of group g is suppressed: fewer than min_cell
    contributors pooled, or the insider rule. A group of no records at all
    (a table without GROUP BY over nothing) holds zeros, which are
    released."""
    if g["records"] == 0:
        return False
    return g["contributors"] < min_cell or insider_small(
        g["contributors"], g["parts"].values(), min_cell)


def bin_hidden(g, hist, b, min_cell=MIN_CELL):
    """Bin b of HISTOGRAM hist = ("hist", m, edges) of a released group g
    is suppressed: 1 to min_cell - 1 contributors, or the insider rule on
    each agency's part of the bin."""
    w = g[hist][1][b]
    parts = g[("hist_parts",) + hist[1:]]
    return 0 < w < min_cell or insider_small(
        w, [p[b] for p in parts.values()], min_cell)


# The example policies' release parameters left at their documented
# defaults (docs/disclosure-control.md): the "80/3" dominance rule, no p%
# rule, means and variances to two decimals.
DOM_UNITS, DOM_TOP, P_PERCENT, DECIMALS = 3, 80, 0, 2


def dominated(tops):
    """The dominance rules on a magnitude's |unit totals| (a cell without
    units holds no value and is not dominated)."""
    if not tops:
        return False
    tops = sorted(tops, reverse=True)
    total, t1 = sum(tops), tops[0]
    t2 = tops[1] if len(tops) > 1 else 0
    return (len(tops) < DOM_UNITS or (total > 0 and t1 * 100 >= DOM_TOP *
                                      total) or
            (P_PERCENT > 0 and (total - t1 - t2) * 100 < P_PERCENT * t1))


def magnitude_hidden(g, m, min_cell):
    """A magnitude of measure m in released group g is suppressed:
    dominated pooled, or, for some agency, the rest besides its part has
    1 to min_cell - 1 contributors or is dominated (insider rule)."""
    per = g[f"units:{m}"]
    if dominated([t for ts in per.values() for t in ts]):
        return True
    n, parts = g[f"contrib:{m}"], g[f"cparts:{m}"]
    if len(parts) < 2:
        return False
    for a in parts:
        if not g["parts"].get(a):
            continue  # no group there: the pooled rules weigh the rest
        rest = [t for b, ts in per.items() if b != a for t in ts]
        if 0 < n - parts[a] < min_cell or dominated(rest):
            return True
    return False


def column_hidden(g, c, min_cell):
    """An aggregate of column c: its own contributors (with a value) 1 to
    min_cell - 1, pooled or besides one agency's part."""
    n = g[f"contrib:{c}"]
    return 0 < n < min_cell or (len(g["parts"]) > 1 and insider_small(
        n, [p for a, p in g[f"cparts:{c}"].items() if g["parts"].get(a)],
        min_cell))


def round_half_away(v, decimals):
    """C's round(v * 10^d) / 10^d: halves away from zero (Python's round
    goes to even)."""
    x = v * 10.0 ** decimals
    r = math.floor(abs(x))
    if abs(x) - r >= 0.5:
        r += 1
    return math.copysign(r, x) / 10.0 ** decimals


def rounded(v):
    return ("rounded", "decimal", round_half_away(v, DECIMALS))


def structural_zero(src, m, edges, b):
    """HISTOGRAM bin b lies wholly outside m's declared bounds."""
    bounds = src.columns[m].get("bounds") or {}
    lo = edges[b - 1] if b > 0 else None
    hi = edges[b] if b < len(edges) else None
    return ((hi is not None and "min" in bounds and hi <= bounds["min"]) or
            (lo is not None and "max" in bounds and lo > bounds["max"]))


def expected_row(src, spec, k, g, min_cell=MIN_CELL):
    """The cells fedq must release for the oracle's group g (key k), one
    (status, kind, value) per result column; a "decimal" value is matched
    within 1e-9 relative, a "rounded" one within its DECIMALS."""
    gb = spec["group_by"]
    small = group_hidden(g, min_cell)
    cells = []
    for it in spec["items"]:
        if it[0] == "dim":
            v = k[gb.index(it[1])]
            cells.append(NOT_APPLICABLE if v is None else
                         ("exact", "int" if isinstance(v, int) else "text",
                          v))
            continue
        kind = it[1]
        if kind == "HISTOGRAM":
            if small:
                cells += [SUPPRESSED] * (len(it[3]) + 1)
                continue
            hist = ("hist", it[2], it[3])
            # A bin of 1 to min_cell - 1 contributors hides, as does one
            # the insider rule hides; an empty bin is an exact 0, or not
            # applicable where the column's bounds exclude it.
            cells += [SUPPRESSED if bin_hidden(g, hist, b, min_cell) else
                      NOT_APPLICABLE if c == 0 and structural_zero(
                          src, it[2], it[3], b) else
                      ("exact", "int", c) for b, c in enumerate(g[hist][0])]
            continue
        if small or (kind != "COUNT" and
                     column_hidden(g, it[2], min_cell)):
            cells.append(SUPPRESSED)
            continue
        if kind in MAGNITUDES and magnitude_hidden(g, it[2], min_cell):
            cells.append(SUPPRESSED)
            continue
        if kind == "COUNT":
            cells.append(("exact", "int", g["records"]))
        elif kind == "COUNT_DISTINCT":
            cells.append(("exact", "int", g[f"distinct:{it[2]}"]))
        elif kind == "SUM":
            s = g[f"sum:{it[2]}"] or 0  # a sum of no values is 0
            cells.append(("exact", "decimal", float(s))
                         if src.columns[it[2]]["type"] == "decimal"
                         else ("exact", "int", s))
        elif kind == "AVG":
            s, n = g[f"sum:{it[2]}"], g[f"count:{it[2]}"]
            b = src.columns[it[2]].get("bounds") or {}
            # a mean at a bound tells every value (a 0% or 100% share)
            cells.append(NOT_APPLICABLE if not n else
                         SUPPRESSED if s / n <= b.get("min", -math.inf) or
                         s / n >= b.get("max", math.inf) else
                         rounded(s / n))
        elif kind in ("VAR", "STDDEV"):
            var = g[f"var:{it[2]}"]
            # no spread tells every value too
            cells.append(NOT_APPLICABLE if var is None else
                         SUPPRESSED if var <= 0 else
                         rounded(var if kind == "VAR" else math.sqrt(var)))
        elif kind == "QUANTILE":
            qv = g[("quantile", it[2], it[3])]
            cells.append(NOT_APPLICABLE if qv is None else
                         ("rounded", "int", qv.value))
        else:
            raise TestFailure(f"oracle: no rule for {kind}")
    return cells


def same_cell(got, exp, via_json=False):
    """got matches the expected cell exp (JSON may print a decimal that is
    whole as an integer). A rounded decimal is within half a unit of its
    last place of the exact value, and on that grid."""
    if got == exp:
        return True
    if exp[1] != "decimal" or got[0] != exp[0] or not (
            got[1] == "decimal" or (via_json and got[1] == "int")):
        return False
    if exp[0] == "rounded":
        # (doubles hold about 15 digits: large values' last places blur)
        unit, blur = 10.0 ** -DECIMALS, 1e-12 * abs(exp[2])
        off_grid = abs(got[2] - round(got[2] / unit) * unit)
        return off_grid <= blur + 1e-9 and \
            abs(got[2] - exp[2]) <= unit * (1 + 1e-9) + blur
    return math.isclose(got[2], exp[2], rel_tol=1e-9, abs_tol=1e-6)


def cell_detail(spec, g, it, b):
    """What the oracle knows of a cell, for a failure message."""
    try:
        return _cell_detail(spec, g, it, b)
    except KeyError:  # a group the oracle skipped (skip_below)
        return ""


def _cell_detail(spec, g, it, b):
    if it[0] != "agg":
        return ""
    if it[1] == "HISTOGRAM":
        counts, people = g[("hist", it[2], it[3])]
        parts = {a: p[b] for a, p in
                 g[("hist_parts", it[2], it[3])].items()}
        return (f" (bin of {counts[b]} values, {people[b]} contributors, "
                f"parts {parts})")
    if it[1] == "QUANTILE":
        return f" ({g[('quantile', it[2], it[3])]!r})"
    if it[1] in ("VAR", "STDDEV"):
        return f" ({g[f'n:{it[2]}']} values)"
    if it[1] == "AVG":
        return f" ({g[f'sum:{it[2]}']}/{g[f'count:{it[2]}']})"
    return ""


_STATUS_NAMES = {}


def proto_table(p, r):
    """A QueryResponse as plain data: columns (name, type, aggregate,
    error_bound), rows of (status, kind, value) with kind the oneof
    actually set (None if none)."""
    names = _STATUS_NAMES.get(id(p.gw))
    if names is None:
        names = _STATUS_NAMES[id(p.gw)] = {
            v: n[12:].lower() for n, v in p.gw.CellStatus.items()}
    cols = [(c.name, p.catalog.ValueType.Name(c.type), c.aggregate,
             c.error_bound) for c in r.columns]
    rows = []
    for row in r.rows:
        cells = []
        for c in row.cells:
            kind = c.WhichOneof("value")
            cells.append((names.get(c.status, f"status {c.status}"),
                          kind and kind[:-6],
                          getattr(c, kind) if kind else None))
        rows.append(cells)
    return {"columns": cols, "rows": rows, "agencies": list(r.agencies),
            "partial": r.partial, "missing": [m.agency for m in r.missing],
            "min_cell_count": r.min_cell_count, "query_id": r.query_id,
            "vintages": [(v.agency, v.vintage) for v in r.vintages],
            "state": p.gw.QueryState.Name(r.state)[12:].lower(),
            "agreement": r.agreement, "pending": list(r.pending),
            "policies": [(x.agency, x.hash, x.version) for x in r.policies]}


JSON_TYPES = {"integer": "VALUE_TYPE_INTEGER", "text": "VALUE_TYPE_TEXT",
              "date": "VALUE_TYPE_DATE", "month": "VALUE_TYPE_MONTH",
              "quarter": "VALUE_TYPE_QUARTER",
              "decimal": "VALUE_TYPE_DECIMAL"}
JSON_COLUMN_KEYS = {"name", "type", "aggregate"}
VINTAGE_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
HASH_RE = re.compile(r"[0-9a-f]{64}")


RULE_KEYS = ["min_cell_count", "zeros_suppressed", "dominance_min_units",
             "dominance_top_percent", "p_percent", "perturbed",
             "max_deviation", "noise_variance", "magnitude_percent",
             "rounding_base", "protection_level", "protection_percent",
             "decimals"]


def json_table(doc):
    """`fedq query --format json` output in the form of proto_table. A
    column has keys name, type and aggregate, and error_bound only where
    it is not 0."""
    keys = sorted(doc) if isinstance(doc, dict) else doc
    check(keys == ["agencies", "agreement", "columns", "min_cell_count",
                   "missing", "partial", "pending", "policies", "query_id",
                   "rows", "rules", "state", "vintages"],
          f"JSON keys {keys!r}")
    check(doc["rules"]["min_cell_count"] == doc["min_cell_count"] and
          sorted(doc["rules"]) == sorted(RULE_KEYS), f"JSON rules "
                                                     f"{doc['rules']!r}")
    check(all(sorted(v) == ["agency", "vintage"] for v in doc["vintages"]),
          f"JSON vintages {doc['vintages']!r}")
    check(all(sorted(v) == ["agency", "hash", "version"]
              for v in doc["policies"]), f"JSON policies {doc['policies']!r}")
    cols = []
    for c in doc["columns"]:
        check(set(c) in (JSON_COLUMN_KEYS, JSON_COLUMN_KEYS | {
            "error_bound"}), f"JSON column keys {sorted(c)}")
        eb = c.get("error_bound", 0.0)
        check("error_bound" not in c or (
            isinstance(eb, (int, float)) and not isinstance(eb, bool) and
            eb != 0), f"JSON column {c!r}: error_bound printed but 0")
        cols.append((c["name"], JSON_TYPES.get(c["type"], c["type"]),
                     c["aggregate"], eb))
    rows = []
    for row in doc["rows"]:
        cells = []
        for c in row:
            check(set(c) <= {"status", "value"} and "status" in c,
                  f"JSON cell {c!r}")
            v = c.get("value")
            kind = (None if "value" not in c else
                    "int" if isinstance(v, int) and not isinstance(v, bool)
                    else "text" if isinstance(v, str)
                    else "decimal" if isinstance(v, float) else repr(type(v)))
            cells.append((c["status"], kind, v))
        rows.append(cells)
    return {"columns": cols, "rows": rows, "agencies": doc["agencies"],
            "partial": doc["partial"], "missing": doc["missing"],
            "min_cell_count": doc["min_cell_count"],
            "query_id": doc["query_id"],
            "vintages": [(v["agency"], v["vintage"])
                         for v in doc["vintages"]],
            "state": doc["state"], "agreement": doc["agreement"],
            "pending": doc["pending"],
            "policies": [(v["agency"], v["hash"], v["version"])
                         for v in doc["policies"]]}


def short(x, n=240):
    s = repr(x)
    return s if len(s) <= n else s[:n] + "..."


def compare(src, spec, got, want, agencies, via_json=False,
            min_cell=MIN_CELL):
    """Raises TestFailure at the first difference between a fedq table and
    the oracle's groups. A QUANTILE value must also lie within its
    column's error_bound of the exact r-th value."""
    ecols = expected_columns(src, spec)
    check(got["columns"] == ecols,
          f"columns {got['columns']}, expected {ecols}")
    # Every included agency says how fresh its data is: an extract's UTC
    # time, or "live" for a query on the source itself.
    check([a for a, _ in got["vintages"]] == got["agencies"] and all(
        v == "live" or VINTAGE_RE.fullmatch(v) for _, v in got["vintages"]),
        f"vintages {got['vintages']} for agencies {got['agencies']}")
    check(sorted(got["agencies"]) == sorted(agencies)
          and len(got["agencies"]) == len(agencies),
          f"agencies {got['agencies']}, expected {agencies}")
    check(got["min_cell_count"] == min_cell,
          f"min_cell_count {got['min_cell_count']}")
    check(got["query_id"], "empty query_id")
    # Released under the agreement named, each included agency naming the
    # signed policy it applied.
    check(got["state"] == "released" and not got["pending"],
          f"state {got['state']}, pending {got['pending']}")
    check(got["agreement"] == ri.EXAMPLE_TERMS.agreement,
          f"agreement {got['agreement']!r}")
    check([a for a, _, _ in got["policies"]] == got["agencies"] and all(
        HASH_RE.fullmatch(x) and v >= 1 for _, x, v in got["policies"]),
        f"policies {got['policies']} for agencies {got['agencies']}")
    gb = spec["group_by"]
    spans = item_spans(spec)
    # Where each GROUP BY column sits in the result.
    pos = [spans[next(i for i, it in enumerate(spec["items"])
                      if it[0] == "dim" and it[1] == c)][0] for c in gb]
    # Which item (and which of its columns) each result column is.
    col_item = [(it, b) for it, (_, w) in zip(spec["items"], spans)
                for b in range(w)]
    quants = [(spans[i][0], it) for i, it in enumerate(spec["items"])
              if it[0] == "agg" and it[1] == "QUANTILE"]
    keys = []
    for r in got["rows"]:
        check(len(r) == len(ecols), f"row of {len(r)} cells: {short(r)}")
        keys.append(tuple(r[i][2] if r[i][1] else None for i in pos))
    want_keys = sorted(want, key=key_order)
    if set(keys) != set(want_keys) or len(keys) != len(want_keys):
        miss = [k for k in want_keys if k not in set(keys)]
        extra = [k for k in keys if k not in want]
        raise TestFailure(
            f"groups differ: {len(keys)} rows, expected {len(want_keys)}; "
            f"missing {short(miss[:5])}, unexpected {short(extra[:5])}")
    check(keys == want_keys, f"rows out of key order: {short(keys[:8])}, "
                             f"expected {short(want_keys[:8])}")
    for r, k in zip(got["rows"], keys):
        g = want[k]
        exp = expected_row(src, spec, k, g, min_cell)
        if r != exp:
            for i, (c, e) in enumerate(zip(r, exp)):
                if not same_cell(c, e, via_json):
                    raise TestFailure(
                        f"group {k} ({g['contributors']} contributors, "
                        f"parts {g['parts']}), "
                        f"column {ecols[i][0]}: {c}, expected {e}"
                        f"{cell_detail(spec, g, *col_item[i])}")
        for i, it in quants:
            st, kind, v = r[i]
            if kind is None:
                continue
            qv = g[("quantile", it[2], it[3])]
            bound = got["columns"][i][3]
            check(abs(v - qv.x_r) <= bound,
                  f"group {k}, column {ecols[i][0]}: {v} is "
                  f"{abs(v - qv.x_r)} from the exact value x_r {qv.x_r} "
                  f"(rank {qv.r} of {qv.n}), over its error_bound {bound}")


# ---- the query generator --------------------------------------------------


SOURCES = [("dol", "wages"), ("dss", "enrollment"), ("doe", "k12_enrollment"),
           ("hied", "enrollment")]
ALL_OPS = ["=", "<>", "<", "<=", ">", ">=", "BETWEEN", "IN"]
OUTSIDE = {"text": ["ZZZ", "T999", "t001", "O'Hara", "", "CCS99"],
           "quarter": ["2021Q4", "2025Q1", "1999Q2"],
           "month": ["2022-12", "2025-01", "1999-07"]}
FRACTIONS = [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99]
# A grouping whose dimensions' domains multiply past this is mostly (not
# always) narrowed by an IN filter on its widest dimension: tens of
# thousands of suppressed groups per query test little and cost much.
WIDE_GROUPING = 2000
# HISTOGRAM and QUANTILE in the random queries (off only to run this file
# against binaries that predate them).
SKETCH_AGGS = True


class Generator:
    def __init__(self, rng, catalog, new_aggs=False):
        """new_aggs: also draw COUNT(DISTINCT c), VAR(m), STDDEV(m),
        HISTOGRAM(m, e1, ...) and QUANTILE(m, q), and narrow most wide
        groupings (off for subclasses that know only COUNT, SUM and AVG;
        off, the random stream is the one it was before them)."""
        self.rng = rng
        self.cat = catalog
        self.new_aggs = new_aggs
        self.measure_values = {}  # (source, measure) -> sorted values

    def values_of(self, src, m):
        """The distinct values of m in the data, NULL aside."""
        key = (src.name, m)
        if key not in self.measure_values:
            vals = set()
            for _, path, table in src.files():
                con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
                vals.update(v for (v,) in con.execute(
                    f"SELECT DISTINCT {q_ident(m)} FROM {q_ident(table)} "
                    f"WHERE {q_ident(m)} IS NOT NULL"))
                con.close()
            self.measure_values[key] = sorted(vals)
        return self.measure_values[key]

    def literal(self, src, col):
        """A value for col: mostly from its domain (dimensions) or from the
        data within its bounds (measures), sometimes outside."""
        rng, c = self.rng, src.columns[col]
        outside = rng.random() < 0.12
        if c["role"] == "measure":
            b = c["bounds"]
            if outside:
                return rng.choice([b["min"] - 1, b["max"] + 1, b["min"],
                                   b["max"], -5])
            return rng.choice(self.values_of(src, col))
        d = c["domain"]
        if "codes" in d:
            if outside:
                return rng.choice(OUTSIDE[c["type"]])
            return str(rng.choice(d["codes"]))
        if outside:
            return rng.choice([d["min"] - 1, d["max"] + 1, d["min"] - 50,
                               0, -1])
        return rng.randint(d["min"], d["max"])

    def filter(self, src, op):
        col = self.rng.choice(src.dims + src.measures)
        if op == "BETWEEN":
            a, b = self.literal(src, col), self.literal(src, col)
            if type(a) is type(b) and a > b and self.rng.random() < 0.85:
                a, b = b, a  # mostly low..high; sometimes an empty range
            if type(a) is not type(b):  # an outside int vs a code
                b = a
            return ("between", col, a, b)
        if op == "IN":
            return ("in", col, [self.literal(src, col)
                                for _ in range(self.rng.randint(1, 5))])
        if op == "<>" and self.rng.random() < 0.4:
            op = "!="
        return ("cmp", col, op, self.literal(src, col))

    # -- HISTOGRAM and QUANTILE arguments

    def edges(self, src, m):
        """1 to 5 strictly increasing integer edges: mostly values of the
        data (so records fall on edges), some anywhere in the bounds, a few
        on or past them."""
        rng, b = self.rng, src.columns[m]["bounds"]
        out = set()
        for _ in range(rng.randint(1, 5)):
            r = rng.random()
            if r < 0.6:
                out.add(rng.choice(self.values_of(src, m)))
            elif r < 0.85:
                out.add(rng.randint(b["min"], b["max"]))
            else:
                out.add(rng.choice([b["min"] - 1, b["min"], b["max"],
                                    b["max"] + 1, -5, b["max"] + 1000]))
        return tuple(sorted(out))

    def fraction(self):
        r = self.rng.random()
        if r < 0.6:
            return self.rng.choice(FRACTIONS)
        if r < 0.8:
            return self.rng.randint(1, 99) / 100
        return self.rng.randint(1, 999) / 1000

    def domain_size(self, src, col):
        d = src.columns[col]["domain"]
        return len(d["codes"]) if "codes" in d else d["max"] - d["min"] + 1

    def narrow(self, src, group_by):
        """IN filters on the widest grouped dimensions until the grouping's
        domains multiply to WIDE_GROUPING or less."""
        sizes = {c: self.domain_size(src, c) for c in group_by}
        out = []
        while math.prod(sizes.values()) > WIDE_GROUPING:
            c = max(sizes, key=sizes.get)
            d = src.columns[c]["domain"]
            pool = ([str(v) for v in d["codes"]] if "codes" in d else
                    list(range(d["min"], d["max"] + 1)))
            vals = self.rng.sample(pool, self.rng.randint(1, 4))
            out.append(("in", c, vals))
            sizes[c] = len(vals)
        return out

    def query(self, i):
        rng = self.rng
        sname, dname = SOURCES[i % len(SOURCES)]
        src = self.cat.source(sname, dname)
        n_gb = (i // len(SOURCES)) % 4
        group_by = rng.sample(src.dims, min(n_gb, len(src.dims)))
        aggs = []
        pooled = len(src.members) > 1
        binned = [m for m in src.measures
                  if src.columns[m].get("quantile_bins")]
        unbinned = [m for m in src.measures if m not in binned]
        for _ in range(rng.randint(1, 3)):
            kinds = ["COUNT", "SUM", "AVG"] if src.measures else ["COUNT"]
            if self.new_aggs:
                # COUNT(DISTINCT c) over c an identifier or a dimension;
                # over a pooled alias (hied) only now and then, as it is
                # refused there.
                if src.measures:
                    kinds += ["VAR", "STDDEV"]
                    if SKETCH_AGGS:
                        kinds += ["HISTOGRAM", "QUANTILE"] * 2
                if not pooled:
                    kinds.append("COUNT_DISTINCT")
                elif rng.random() < 0.1:
                    kinds = ["COUNT_DISTINCT"]
            kind = rng.choice(kinds)
            if kind == "COUNT":
                aggs.append(("agg", kind, None))
            elif kind == "COUNT_DISTINCT":
                aggs.append(("agg", kind,
                             rng.choice(src.identifiers + src.dims)))
            elif kind == "HISTOGRAM":
                m = rng.choice(src.measures)
                aggs.append(("agg", kind, m, self.edges(src, m)))
            elif kind == "QUANTILE":
                # A measure without quantile_bins (none in the example
                # catalog) now and then: refused.
                m = rng.choice(unbinned if unbinned and (
                    not binned or rng.random() < 0.1) else binned)
                aggs.append(("agg", kind, m, self.fraction()))
            else:
                aggs.append(("agg", kind, rng.choice(src.measures)))
        items = [("dim", c) for c in group_by] + aggs
        rng.shuffle(items)
        n_f = rng.randint(0, 3)
        filters = []
        for k in range(n_f):
            op = ALL_OPS[(i + k) % len(ALL_OPS)] if k == 0 \
                else rng.choice(ALL_OPS)
            filters.append(self.filter(src, op))
        if self.new_aggs and rng.random() < 0.85:
            filters += self.narrow(src, group_by)
        spec = {"source": sname, "dataset": dname, "items": items,
                "group_by": group_by, "filters": filters}
        sql = self.render(spec)
        refusals = []
        if pooled and any(it[1] == "COUNT_DISTINCT" for it in aggs):
            # Refused at the first COUNT(DISTINCT) item, where it starts.
            j = next(j for j, it in enumerate(items)
                     if it[0] == "agg" and it[1] == "COUNT_DISTINCT")
            off = spec["item_offsets"][j]
            line = sql.count("\n", 0, off) + 1
            col = off - (sql.rfind("\n", 0, off) + 1) + 1
            refusals.append(f"line {line}, column {col}: COUNT(DISTINCT) "
                            f"over {sname} pools several agencies")
        if any(it[1] == "QUANTILE" and it[2] in unbinned for it in aggs):
            refusals.append("QUANTILE is not enabled on")
        if len(refusals) == 1 and refusals[0].startswith("line "):
            spec["refusal"] = refusals[0]
        elif refusals:
            # Which of several faults is named first is not specified.
            spec["refusal_any"] = refusals
        return src, spec, sql

    # -- fedq SQL text, with the variations the grammar allows

    def kw(self, word):
        r = self.rng.random()
        return word if r < 0.7 else word.lower() if r < 0.9 else \
            word.capitalize()

    def sp(self):
        return self.rng.choice([" ", " ", " ", "  ", "\n", "\n  ", "\t"])

    def comma(self):
        return self.rng.choice([", ", ", ", ", ", ",", " , ", ",\n  "])

    def lit(self, v):
        if isinstance(v, str):
            return "'" + v.replace("'", "''") + "'"
        return str(v)

    def render_item(self, it):
        kw = self.kw
        if it[0] == "dim":
            return it[1]
        if it[1] == "COUNT_DISTINCT":
            return f"{kw('COUNT')}({kw('DISTINCT')}{self.sp()}{it[2]})"
        if it[1] == "HISTOGRAM":
            return f"{kw('HISTOGRAM')}({it[2]}{self.comma()}" + \
                self.comma().join(str(e) for e in it[3]) + ")"
        if it[1] == "QUANTILE":
            # Now and then with trailing zeros: the column is still named
            # by the value (QUANTILE(m, 0.5) for 0.50).
            q = f"{it[3]:g}" + ("" if self.rng.random() < 0.9 else
                                self.rng.choice(["0", "00"]))
            return f"{kw('QUANTILE')}({it[2]}{self.comma()}{q})"
        return f"{kw(it[1])}({it[2] or '*'})"

    def render(self, spec):
        kw, sp = self.kw, self.sp
        items = [self.render_item(it) for it in spec["items"]]
        sql = kw("SELECT") + sp()
        sep = "," + sp()
        offsets = []
        for n, item in enumerate(items):
            offsets.append(len(sql) + n * len(sep) + sum(map(len, items[:n])))
        sql += sep.join(items)
        spec["item_offsets"] = offsets
        if self.rng.random() < 0.1:
            sql += " -- what we want\n"
        sql += sp() + kw("FROM") + sp() + f"{spec['source']}.{spec['dataset']}"
        if spec["filters"]:
            terms = []
            for f in spec["filters"]:
                if f[0] == "cmp":
                    terms.append(f"{f[1]}{sp()}{f[2]}{sp()}{self.lit(f[3])}")
                elif f[0] == "between":
                    terms.append(f"{f[1]} {kw('BETWEEN')} {self.lit(f[2])} "
                                 f"{kw('AND')} {self.lit(f[3])}")
                else:
                    terms.append(f"{f[1]} {kw('IN')} (" + ", ".join(
                        self.lit(v) for v in f[2]) + ")")
            sql += sp() + kw("WHERE") + sp() + (sp() + kw("AND") + sp()).join(
                terms)
        if spec["group_by"]:
            sql += sp() + kw("GROUP") + " " + kw("BY") + sp() + \
                ", ".join(spec["group_by"])
        if self.rng.random() < 0.15:
            sql += self.rng.choice([";", " ;", ";\n"])
        return sql


# ---- calling fedq -----------------------------------------------------------


def query_grpc(p, stub, sql, allow_partial=False):
    r = stub.Query(qreq(p, sql, allow_partial=allow_partial),
                   timeout=CALL_TIMEOUT)
    return proto_table(p, r)


def query_cli(h, fed, sql, allow_partial=False, expect_rc=0):
    args = ["query", "--format", "json"] + fed.cli_terms()
    if allow_partial:
        args.append("--allow-partial")
    r = h.fedq(*args, "--", sql, config=fed.client_cfg)
    check(r.returncode == expect_rc,
          f"fedq query exited {r.returncode}, expected {expect_rc}: "
          f"{tail(r.stderr)}")
    try:
        doc = json.loads(r.stdout)
    except json.JSONDecodeError as e:
        raise TestFailure(f"fedq query --format json printed invalid JSON "
                          f"({e}): {r.stdout[:300]!r}")
    return json_table(doc), r


def failure_kind(msg):
    """A failure message without its particulars, to group alike ones."""
    msg = re.sub(r"^fedq query exited \d+, expected \d+: fedq: ", "", msg)
    msg = re.sub(r"\bagency [a-z]+\b", "agency _", msg)
    msg = re.sub(r"\(.*?\)|\[.*?\]|'[^']*'|\"[^\"]*\"|-?\d+(\.\d+)?",
                 "_", msg)
    return msg.split(",")[0][:70]


def one_line(sql):
    return " ".join(sql.split())


def expect_refusal(h, fed, stub, sql, prefix, via_cli=False, any_of=()):
    """INVALID_ARGUMENT whose message starts with prefix (gRPC), or exit 1
    with it on stderr (CLI); with any_of, a message containing one of
    those instead."""
    def ok(msg):
        return any(s in msg for s in any_of) if any_of else \
            msg.startswith(prefix) or (via_cli and prefix in msg)
    want = f"one of {list(any_of)!r}" if any_of else repr(prefix)
    if via_cli:
        r = h.fedq("query", "--format", "json", *cli_terms(), "--", sql,
                   config=fed.client_cfg)
        check(r.returncode == 1 and ok(r.stderr) and
              "INVALID_ARGUMENT" in r.stderr and not r.stdout.strip(),
              f"fedq query: rc {r.returncode}, stdout {r.stdout[:200]!r}, "
              f"stderr {tail(r.stderr)}; expected exit 1 with {want}")
        return
    try:
        e = rpc_error(stub.Query, qreq(h.proto, sql),
                      timeout=CALL_TIMEOUT)
    except TestFailure as ex:
        raise TestFailure(f"expected refusal {want}: {ex}")
    msg = e.details() or ""
    check(e.code() == grpc.StatusCode.INVALID_ARGUMENT and ok(msg),
          f"{e.code().name} {msg!r}, expected INVALID_ARGUMENT with {want}")


def explicit_new_aggregates(h, fed, stub):
    """Pooled COUNT(DISTINCT) refused at its position; the same over one
    hied member answered; VAR/STDDEV/COUNT(DISTINCT) on fixed queries."""
    p = h.proto
    pre = "COUNT(DISTINCT) over hied pools several agencies"
    for sql, pos in [
            ("SELECT COUNT(DISTINCT person_id) FROM hied.enrollment",
             "line 1, column 8"),
            ("SELECT term,\n  COUNT(*), count(distinct institution)\n"
             "FROM hied.enrollment GROUP BY term", "line 2, column 13"),
            ("SELECT COUNT(*),\tCount( Distinct  town ), COUNT(DISTINCT "
             "person_id)\nFROM hied.enrollment WHERE birth_year >= 1990",
             "line 1, column 18"),
            ("SELECT institution, COUNT(DISTINCT person_id) FROM "
             "hied.enrollment GROUP BY institution ORDER BY 2 DESC LIMIT 1",
             "line 1, column 21")]:
        try:
            expect_refusal(h, fed, stub, sql, f"{pos}: {pre}")
        except TestFailure as e:
            raise TestFailure(f"{one_line(sql)!r}: {e}")
    for pr in fed.procs():
        pr.check_alive()
    cases = [
        ("uhs", "enrollment",
         "SELECT institution, COUNT(DISTINCT person_id), COUNT(*) FROM "
         "uhs.enrollment GROUP BY institution",
         [("dim", "institution"), ("agg", "COUNT_DISTINCT", "person_id"),
          ("agg", "COUNT", None)], ["institution"]),
        ("doe", "k12_enrollment",
         "SELECT school_year, COUNT(DISTINCT district), COUNT(DISTINCT "
         "person_id) FROM doe.k12_enrollment GROUP BY school_year",
         [("dim", "school_year"), ("agg", "COUNT_DISTINCT", "district"),
          ("agg", "COUNT_DISTINCT", "person_id")], ["school_year"]),
        ("dol", "wages",
         "SELECT VAR(wages), STDDEV(wages), AVG(wages), COUNT(DISTINCT "
         "employer_id) FROM dol.wages",
         [("agg", "VAR", "wages"), ("agg", "STDDEV", "wages"),
          ("agg", "AVG", "wages"), ("agg", "COUNT_DISTINCT", "employer_id")],
         []),
        ("dss", "enrollment",
         "SELECT program, month, STDDEV(benefit), VAR(benefit) FROM "
         "dss.enrollment WHERE household_size >= 3 GROUP BY program, month",
         [("dim", "program"), ("dim", "month"), ("agg", "STDDEV", "benefit"),
          ("agg", "VAR", "benefit")], ["program", "month"]),
    ]
    # Narrow ranges of wages: a small variance far from the midpoint of
    # the declared bounds (0..100000000), where a one-pass sum of squares
    # loses its digits.
    for lo, hi in ((600000, 601999), (500000, 504999)):
        cases.append((
            "dol", "wages",
            f"SELECT COUNT(*), VAR(wages), STDDEV(wages) FROM dol.wages "
            f"WHERE wages BETWEEN {lo} AND {hi}",
            [("agg", "COUNT", None), ("agg", "VAR", "wages"),
             ("agg", "STDDEV", "wages")], [],
            [("between", "wages", lo, hi)]))
    for case in cases:
        sname, dname, sql, items, gb = case[:5]
        src = fed.catalog.source(sname, dname)
        spec = {"items": items, "group_by": gb,
                "filters": case[5] if len(case) > 5 else []}
        if "household_size" in sql:
            spec["filters"] = [("cmp", "household_size", ">=", 3)]
        try:
            got = query_grpc(p, stub, sql)
        except grpc.RpcError as e:
            raise TestFailure(f"{sql!r}: {e.code().name}: {e.details()}")
        try:
            compare(src, spec, got, oracle(src, spec), [sname])
        except TestFailure as e:
            raise TestFailure(f"{sql!r}: {e}")


def explicit_sketch_aggregates(h, fed, stub):
    """HISTOGRAM and QUANTILE on fixed queries: pooled over hied, edges on
    and past the bounds, 64 edges (65 bins), every QUANTILE fraction of
    note, a 4-column GROUP BY (the limit), and through the CLI."""
    p = h.proto
    H, Q = "HISTOGRAM", "QUANTILE"
    e64 = tuple(range(0, 64 * 3000, 3000))
    cases = [
        ("hied", "enrollment",
         "SELECT term, HISTOGRAM(credits, 6, 12, 15), QUANTILE(credits, "
         "0.5), COUNT(*) FROM hied.enrollment GROUP BY term",
         [("dim", "term"), ("agg", H, "credits", (6, 12, 15)),
          ("agg", Q, "credits", 0.5), ("agg", "COUNT", None)], ["term"], []),
        ("hied", "enrollment",
         "SELECT Quantile(credits,0.75), histogram(credits, 12), "
         "QUANTILE(credits, 0.01), QUANTILE(credits, 0.99) FROM "
         "hied.enrollment WHERE credits >= 1",
         [("agg", Q, "credits", 0.75), ("agg", H, "credits", (12,)),
          ("agg", Q, "credits", 0.01), ("agg", Q, "credits", 0.99)], [],
         [("cmp", "credits", ">=", 1)]),
        ("dol", "wages",
         "SELECT QUANTILE(wages, 0.01), QUANTILE(wages, 0.99), "
         "QUANTILE(wages, 0.5), HISTOGRAM(wages, 0, 100000, 1000000, "
         "100000000) FROM dol.wages",
         [("agg", Q, "wages", 0.01), ("agg", Q, "wages", 0.99),
          ("agg", Q, "wages", 0.5),
          ("agg", H, "wages", (0, 100000, 1000000, 100000000))], [], []),
        ("dss", "enrollment",
         "SELECT program, QUANTILE(benefit, 0.25), HISTOGRAM(benefit, -5, "
         "0, 200000, 200001) FROM dss.enrollment GROUP BY program",
         [("dim", "program"), ("agg", Q, "benefit", 0.25),
          ("agg", H, "benefit", (-5, 0, 200000, 200001))], ["program"], []),
        ("dss", "enrollment",
         "SELECT program, HISTOGRAM(benefit, " +
         ", ".join(map(str, e64)) + ") FROM dss.enrollment GROUP BY program",
         [("dim", "program"), ("agg", H, "benefit", e64)], ["program"], []),
        ("dss", "enrollment",
         "SELECT program, sex, household_size, month, COUNT(*), "
         "QUANTILE(benefit, 0.9) FROM dss.enrollment WHERE town = 'T169' "
         "GROUP BY program, sex, household_size, month",
         [("dim", "program"), ("dim", "sex"), ("dim", "household_size"),
          ("dim", "month"), ("agg", "COUNT", None),
          ("agg", Q, "benefit", 0.9)],
         ["program", "sex", "household_size", "month"],
         [("cmp", "town", "=", "T169")]),
    ]
    seen = {"bins": 0, "hidden_bins": 0, "quantiles": 0}
    for n, (sname, dname, sql, items, gb, filters) in enumerate(cases):
        src = fed.catalog.source(sname, dname)
        spec = {"items": items, "group_by": gb, "filters": filters}
        want = oracle(src, spec)
        agencies = HIED if sname == "hied" else [sname]
        for via_cli in (False, True) if n < 2 else (False,):
            try:
                if via_cli:
                    got, _ = query_cli(h, fed, sql)
                else:
                    got = query_grpc(p, stub, sql)
                compare(src, spec, got, want, agencies, via_json=via_cli)
            except grpc.RpcError as e:
                raise TestFailure(f"{sql[:200]!r}: {e.code().name}: "
                                  f"{e.details()}")
            except TestFailure as e:
                raise TestFailure(f"{sql[:200]!r}"
                                  f"{' (CLI)' if via_cli else ''}: {e}")
        for k, g in want.items():
            row = expected_row(src, spec, k, g)
            seen["bins"] += sum(c[0] == "exact" and c[2] > 0
                                for c, (it, _) in zip(row, col_items(spec))
                                if it[1] == H)
            seen["hidden_bins"] += not group_hidden(g) and sum(
                c[0] == "suppressed"
                for c, (it, _) in zip(row, col_items(spec)) if it[1] == H)
            seen["quantiles"] += not group_hidden(g) and sum(
                it[1] == Q for it in items)
    check(all(seen.values()), f"explicit HISTOGRAM/QUANTILE cases: {seen}")
    return seen


def col_items(spec):
    """(item, index among its columns) of each result column."""
    return [(it, b) for it, (_, w) in zip(spec["items"], item_spans(spec))
            for b in range(w)]


def min_cell_policy(text, n):
    """An example policy's text with every agreement's threshold set to n
    (the gateway applies the strictest of its own and the policies')."""
    def edit(pol):
        for ag in pol["agreements"]:
            ag["release"]["min_cell_count"] = n
    return ri.edit_policy_text(text, edit)


def min_cell_one(h):
    """With min_cell_count 1 groups of one record are released: VAR and
    STDDEV of a single value are not_applicable without a value, the
    others exact (the example data has no empty measure, so under the
    default rule every released group has 11 values or more); no
    HISTOGRAM bin hides; QUANTILE of one value is its bin's middle, and
    of no value (hied's credits may be NULL) not_applicable."""
    p = h.proto
    fed = ExampleFed(h, "varone", ["dol", "dss"] + HIED,
                     gw_extra={"min_cell_count": 1},
                     policy_edit=lambda a, t: min_cell_policy(t, 1))
    try:
        stub = fed.stub()
        cases = [
            ("dol", "wages",
             "SELECT town, industry, quarter, VAR(wages), COUNT(DISTINCT "
             "person_id), STDDEV(wages) FROM dol.wages WHERE town IN "
             "('T150', 'T160', 'T169', 'T001') GROUP BY town, industry, "
             "quarter",
             [("dim", "town"), ("dim", "industry"), ("dim", "quarter"),
              ("agg", "VAR", "wages"),
              ("agg", "COUNT_DISTINCT", "person_id"),
              ("agg", "STDDEV", "wages")], ["town", "industry", "quarter"],
             [("in", "town", ["T150", "T160", "T169", "T001"])]),
            ("dss", "enrollment",
             "SELECT STDDEV(benefit), town, program, VAR(benefit) FROM "
             "dss.enrollment WHERE month = '2024-03' GROUP BY town, program",
             [("agg", "STDDEV", "benefit"), ("dim", "town"),
              ("dim", "program"), ("agg", "VAR", "benefit")],
             ["town", "program"], [("cmp", "month", "=", "2024-03")]),
            ("dol", "wages",
             "SELECT town, industry, QUANTILE(wages, 0.5), HISTOGRAM(wages, "
             "100000, 500000), VAR(wages) FROM dol.wages WHERE town IN "
             "('T150', 'T160', 'T001') GROUP BY town, industry",
             [("dim", "town"), ("dim", "industry"),
              ("agg", "QUANTILE", "wages", 0.5),
              ("agg", "HISTOGRAM", "wages", (100000, 500000)),
              ("agg", "VAR", "wages")], ["town", "industry"],
             [("in", "town", ["T150", "T160", "T001"])]),
            ("hied", "enrollment",
             "SELECT institution, term, town, QUANTILE(credits, 0.1), "
             "HISTOGRAM(credits, 12), VAR(credits) FROM hied.enrollment "
             "GROUP BY institution, term, town",
             [("dim", "institution"), ("dim", "term"), ("dim", "town"),
              ("agg", "QUANTILE", "credits", 0.1),
              ("agg", "HISTOGRAM", "credits", (12,)),
              ("agg", "VAR", "credits")], ["institution", "term", "town"],
             []),
        ]
        ones = many = no_values = 0
        if not SKETCH_AGGS:
            cases = cases[:2]
        for sname, dname, sql, items, gb, filters in cases:
            src = fed.catalog.source(sname, dname)
            spec = {"items": items, "group_by": gb, "filters": filters}
            want = oracle(src, spec)
            try:
                got = query_grpc(p, stub, sql)
                compare(src, spec, got, want,
                        HIED if sname == "hied" else [sname], min_cell=1)
            except grpc.RpcError as e:
                raise TestFailure(f"{sql!r}: {e.code().name}: "
                                  f"{e.details()}")
            except TestFailure as e:
                raise TestFailure(f"{sql!r}: {e}")
            m = next(it[2] for it in items if it[1] == "VAR")
            ones += sum(g[f"var:{m}"] is None for g in want.values())
            many += sum(g[f"var:{m}"] is not None for g in want.values())
            no_values += sum(g.get(("quantile", m, 0.1), 0) is None
                             for g in want.values())
        check(ones and many, f"groups of one value {ones}, of more {many}: "
                             f"both needed")
        ri.print_note(f"min_cell_count 1: {ones} groups of one value "
                      f"(VAR not_applicable), {many} of more, {no_values} "
                      f"without credits")
    finally:
        fed.close()


# ---- tests -----------------------------------------------------------------


class Stopwatch:
    def __init__(self):
        self.t = {}

    def add(self, what, t0):
        self.t[what] = self.t.get(what, 0.0) + time.monotonic() - t0

    def __str__(self):
        return ", ".join(f"{k} {v:.1f}s" for k, v in self.t.items())


def run_oracle(h, name="oracle", n_queries=N_QUERIES, edit=None,
               explicit=True):
    """Random valid queries over dol, dss, doe and the pooled hied alias
    (COUNT, SUM, AVG, VAR, STDDEV, COUNT(DISTINCT), HISTOGRAM, QUANTILE),
    each compared with the oracle over the raw files: the groups, their
    order, exact values where a group has 11 or more contributors (and a
    HISTOGRAM bin 0 or 11 or more), suppressed cells without a value below
    that, QUANTILE's sketch value within its error_bound of the exact one;
    ~20 through the CLI. fedq answers each query while the oracle works."""
    p = h.proto
    fed = ExampleFed(h, name, EXAMPLE_AGENCIES, edit=edit)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        stub = fed.stub()
        rng = random.Random(SEED)
        gen = Generator(rng, fed.catalog, new_aggs=True)
        cli_at = set(rng.sample(range(n_queries), min(N_CLI, n_queries)))
        failures = []
        seen = {"ops": set(), "suppressed": 0, "exact": 0, "groups": set(),
                "cli": 0, "null_key": 0, "empty": 0, "sources": set(),
                "aggs": {}, "pooled": {}, "refused": 0, "refused_cli": 0,
                "bins": {"exact": 0, "zero": 0, "hidden": 0}, "big": 0,
                "insider": 0}
        watch = Stopwatch()
        t0 = time.monotonic()
        for i in range(n_queries):
            t1 = time.monotonic()
            src, spec, sql = gen.query(i)
            watch.add("generating", t1)
            via_cli = i in cli_at
            fut = None
            try:
                if spec.get("refusal") or spec.get("refusal_any"):
                    t1 = time.monotonic()
                    expect_refusal(h, fed, stub, sql, spec.get("refusal"),
                                   via_cli, spec.get("refusal_any", ()))
                    watch.add("fedq", t1)
                    seen["cli"] += via_cli
                    seen["refused"] += 1
                    seen["refused_cli"] += via_cli
                    continue
                # fedq works on the query while the oracle does.
                fut = pool.submit(query_cli, h, fed, sql) if via_cli else \
                    pool.submit(query_grpc, p, stub, sql)
                t1 = time.monotonic()
                want = oracle(src, spec, skip_below=MIN_CELL)
                watch.add("oracle", t1)
                t1 = time.monotonic()
                try:
                    got = fut.result()
                except grpc.RpcError as e:
                    raise TestFailure(f"{e.code().name}: {e.details()}")
                finally:
                    fut = None
                    watch.add("waiting for fedq", t1)
                if via_cli:
                    got = got[0]
                    seen["cli"] += 1
                t1 = time.monotonic()
                agencies = HIED if spec["source"] == "hied" \
                    else [spec["source"]]
                compare(src, spec, got, want, agencies, via_json=via_cli)
                check(not got["partial"] and not got["missing"],
                      f"partial {got['partial']} missing {got['missing']}")
                watch.add("comparing", t1)
            except TestFailure as e:
                failures.append((f"{i} ({'cli' if via_cli else 'grpc'}) "
                                 f"{one_line(sql)!r}", str(e)))
                continue
            finally:
                if fut is not None:
                    concurrent.futures.wait([fut])
            for f in spec["filters"]:
                seen["ops"].add(f[2] if f[0] == "cmp" else f[0].upper())
            seen["sources"].add(spec["source"])
            seen["groups"].add(len(spec["group_by"]))
            seen["empty"] += not want
            seen["null_key"] += any(None in k for k in want)
            seen["big"] += len(want) > 1000
            cols = col_items(spec)
            for k, g in want.items():
                if group_hidden(g):
                    seen["suppressed"] += 1
                    seen["insider"] += g["contributors"] >= MIN_CELL
                    continue
                seen["exact"] += 1
                for it in spec["items"]:
                    if it[0] == "agg":
                        seen["aggs"][it[1]] = seen["aggs"].get(it[1], 0) + 1
                        if spec["source"] == "hied":
                            seen["pooled"][it[1]] = \
                                seen["pooled"].get(it[1], 0) + 1
                if any(it[1] == "HISTOGRAM" for it in spec["items"]):
                    for c, (it, _) in zip(expected_row(src, spec, k, g),
                                          cols):
                        if it[1] == "HISTOGRAM":
                            seen["bins"]["hidden" if c[1] is None else
                                         "exact" if c[2] else "zero"] += 1
        took = time.monotonic() - t0
        try:
            if explicit:
                explicit_new_aggregates(h, fed, stub)
        except TestFailure as e:
            failures.append(("explicit COUNT(DISTINCT)/VAR cases", str(e)))
        sketch = None
        try:
            if SKETCH_AGGS and explicit:
                sketch = explicit_sketch_aggregates(h, fed, stub)
        except TestFailure as e:
            failures.append(("explicit HISTOGRAM/QUANTILE cases", str(e)))
        fed.close()
        try:
            if explicit:
                min_cell_one(h)
        except TestFailure as e:
            failures.append(("min_cell_count 1", str(e)))
        if failures:
            kinds = {}
            for f in failures:
                kinds.setdefault(failure_kind(f[1]), []).append(f)
            raise TestFailure(
                f"{len(failures)} wrong of {n_queries} random queries and "
                f"the explicit cases, "
                f"{len(kinds)} kinds: " + " || ".join(
                    f"{len(v)}x {k!r}, e.g. query {v[0][0]}: {v[0][1]}"
                    for k, v in sorted(kinds.items(),
                                       key=lambda kv: -len(kv[1]))))
        ops = {"<>" if o == "!=" else o for o in seen["ops"]}
        check(ops >= set(ALL_OPS), f"operators not exercised: "
                                   f"{set(ALL_OPS) - ops}")
        check(seen["suppressed"] and seen["exact"],
              f"groups: {seen['suppressed']} small, {seen['exact']} large; "
              f"both kinds needed")
        check(seen["groups"] == {0, 1, 2, 3} and len(seen["sources"]) == 4,
              f"coverage: group-by sizes {seen['groups']}, sources "
              f"{seen['sources']}")
        check(seen["cli"] >= min(N_CLI, n_queries),
              f"only {seen['cli']} CLI queries")
        released = {k for k, n in seen["aggs"].items() if n}
        need = {"COUNT", "SUM", "AVG", "VAR", "STDDEV", "COUNT_DISTINCT"}
        if SKETCH_AGGS:
            need |= {"HISTOGRAM", "QUANTILE"}
            check(n_queries < 400 or (
                {"HISTOGRAM", "QUANTILE"} <= set(seen["pooled"]) and
                all(seen["bins"].values())),
                f"HISTOGRAM/QUANTILE coverage: released over hied "
                f"{seen['pooled']}; histogram bins in released rows "
                f"{seen['bins']}")
        check(released >= need and seen["refused"],
              f"aggregates checked in released groups: {seen['aggs']}; "
              f"{seen['refused']} pooled COUNT(DISTINCT) refused")
        ri.print_note(f"seed {SEED}; {n_queries} queries in {took:.1f}s "
                      f"({watch}), {seen['cli']} via CLI; {seen['exact']} "
                      f"released and {seen['suppressed']} suppressed groups "
                      f"({seen['insider']} by the insider rule); "
                      f"{seen['big']} queries of over 1000 groups; "
                      f"{seen['empty']} empty; {seen['null_key']} with a "
                      f"NULL key; released cells by aggregate "
                      f"{dict(sorted(seen['aggs'].items()))}, over hied "
                      f"{dict(sorted(seen['pooled'].items()))}; histogram "
                      f"bins in released rows {seen['bins']}; "
                      f"{seen['refused']} refused ({seen['refused_cli']} via "
                      f"CLI); explicit HISTOGRAM/QUANTILE {sketch}")
    finally:
        pool.shutdown(wait=True)
        fed.close()


def engine_edit(engine):
    """An ExampleFed edit that runs every dataset on the given engine."""
    def edit(agency, text):
        doc = yaml.safe_load(text)
        for ds in doc["datasets"]:
            ds["engine"] = engine
        return yaml.safe_dump(doc, sort_keys=False)
    return edit


@test
@seeded
def query_oracle(h):
    """The differential test on the default engine, the columnar extract;
    see run_oracle."""
    run_oracle(h)


@test
@seeded
def query_oracle_sqlite_engine(h):
    """The same random queries (a quarter as many) on the reference
    engine, SQLite itself: both engines must agree with the oracle."""
    run_oracle(h, "oracle-sqlite", max(400, N_QUERIES // 4),
               edit=engine_edit("sqlite"), explicit=False)


# The raw-decode walk: every field on the wire must be one the .proto
# declares, with the wire type it declares.
WIRE_TYPES = {  # FieldDescriptor.TYPE_* -> wire type
    1: 1, 2: 5, 3: 0, 4: 0, 5: 0, 6: 1, 7: 5, 8: 0, 9: 2, 11: 2, 12: 2,
    13: 0, 14: 0, 15: 5, 16: 1, 17: 0, 18: 0}


def _varint(b, i):
    shift = v = 0
    while True:
        check(i < len(b), "truncated varint")
        c = b[i]
        i += 1
        v |= (c & 0x7f) << shift
        shift += 7
        if not c & 0x80:
            return v, i


def wire_walk(desc, b, path="QueryResponse"):
    """Walks bytes b as message desc; fails on an undeclared field, a wrong
    wire type or bad framing. Returns the field numbers seen."""
    seen, i = set(), 0
    while i < len(b):
        tag, i = _varint(b, i)
        num, wt = tag >> 3, tag & 7
        f = desc.fields_by_number.get(num)
        check(f is not None, f"{path}: field {num} is not in the .proto")
        check(WIRE_TYPES[f.type] == wt,
              f"{path}.{f.name}: wire type {wt}, the .proto says "
              f"{WIRE_TYPES[f.type]}")
        seen.add(f.name)
        if wt == 0:
            _, i = _varint(b, i)
        elif wt == 1:
            i += 8
        elif wt == 5:
            i += 4
        else:
            n, i = _varint(b, i)
            check(i + n <= len(b), f"{path}.{f.name}: length past the end")
            if f.type == 11:
                wire_walk(f.message_type, b[i:i + n], f"{path}.{f.name}")
            i += n
    check(i == len(b), f"{path}: framing overruns the message")
    return seen


@test
@seeded
def query_interop(h):
    """A raw Gateway/Query reply (bytes from a generic grpcio call) decoded
    with classes generated from the .proto files alone: every field on the
    wire is declared, columns carry names, types and aggregate flags,
    cells their oneof values, query_id differs per call, min_cell_count 11."""
    p = h.proto
    fed = ExampleFed(h, "interop", ["dss", "doe"])
    try:
        ch = h.channel(fed.gateway.addr)
        fed.channels.append(ch)
        raw = ch.unary_unary("/fedq.v1.Gateway/Query")
        sql = ("SELECT program, sex, COUNT(*), SUM(benefit), AVG(benefit) "
               "FROM dss.enrollment WHERE month BETWEEN '2024-01' AND "
               "'2024-06' AND household_size IN (1, 2, 3, 9) "
               "GROUP BY program, sex")
        req = qreq(p, sql).SerializeToString()
        blobs = [raw(req, timeout=CALL_TIMEOUT) for _ in range(2)]
        for b in blobs:
            check(isinstance(b, bytes) and b, f"raw reply {type(b)}")
            seen = wire_walk(p.gw.QueryResponse.DESCRIPTOR, b)
            check({"query_id", "columns", "rows", "agencies",
                   "min_cell_count"} <= seen, f"fields on the wire: {seen}")
        msgs = [p.gw.QueryResponse.FromString(b) for b in blobs]
        r = msgs[0]
        cols = [(c.name, p.catalog.ValueType.Name(c.type), c.aggregate)
                for c in r.columns]
        check(cols == [("program", "VALUE_TYPE_TEXT", False),
                       ("sex", "VALUE_TYPE_TEXT", False),
                       ("COUNT(*)", "VALUE_TYPE_INTEGER", True),
                       ("SUM(benefit)", "VALUE_TYPE_INTEGER", True),
                       ("AVG(benefit)", "VALUE_TYPE_DECIMAL", True)],
              f"columns {cols}")
        ids = [m.query_id for m in msgs]
        check(all(ids) and ids[0] != ids[1], f"query ids {ids}")
        check(all(m.min_cell_count == MIN_CELL for m in msgs),
              f"min_cell_count {[m.min_cell_count for m in msgs]}")
        check(list(r.agencies) == ["dss"] and not r.partial and
              not r.missing, f"agencies {list(r.agencies)} partial "
                             f"{r.partial} missing {list(r.missing)}")
        # Same table both times (the ids aside), and the oracle's values.
        a, b = (p.gw.QueryResponse(), p.gw.QueryResponse())
        a.CopyFrom(msgs[0])
        b.CopyFrom(msgs[1])
        a.query_id = b.query_id = ""
        check(a == b, "two identical queries gave different tables")
        src = fed.catalog.source("dss", "enrollment")
        spec = {"items": [("dim", "program"), ("dim", "sex"),
                          ("agg", "COUNT", None), ("agg", "SUM", "benefit"),
                          ("agg", "AVG", "benefit")],
                "group_by": ["program", "sex"],
                "filters": [("between", "month", "2024-01", "2024-06"),
                            ("in", "household_size", [1, 2, 3, 9])]}
        want = oracle(src, spec)
        compare(src, spec, proto_table(p, r), want, ["dss"])
        kinds = {(c.status, c.WhichOneof("value"))
                 for row in r.rows for c in row.cells}
        # (AVG is a mean rounded to the policy's decimals)
        check((p.gw.CELL_STATUS_EXACT, "text_value") in kinds and
              (p.gw.CELL_STATUS_EXACT, "int_value") in kinds and
              (p.gw.CELL_STATUS_ROUNDED, "decimal_value") in kinds,
              f"cell kinds seen: {kinds}")
        # A zero is a value: the group keyed graduated = 0 carries
        # int_value 0 on the wire (proto3 would drop a plain 0 field).
        r0 = p.gw.QueryResponse.FromString(raw(qreq(
            p, "SELECT graduated, COUNT(*) FROM doe.k12_enrollment GROUP BY "
               "graduated").SerializeToString(), timeout=CALL_TIMEOUT))
        keys = [(c.WhichOneof("value"), c.int_value)
                for c in (row.cells[0] for row in r0.rows)]
        check(keys == [("int_value", 0), ("int_value", 1)],
              f"graduated keys on the wire: {keys}")
    finally:
        fed.close()


def bad_cases():
    """(sql, exact message or None, substrings): positions counted by hand
    (1-based line and byte column)."""
    E = "expected"
    return [
        # -- syntax: the exact message
        ("", "line 1, column 1: expected SELECT, found end of input", ()),
        ("SELECT", "line 1, column 7: expected an aggregate or a column "
                   "name, found end of input", ()),
        ("SELECT COUNT(*) FORM dss.enrollment",
         f"line 1, column 17: {E} ',' or FROM, found 'FORM'", ()),
        ("SELECT COUNT(*) FROM dss",
         f"line 1, column 25: {E} '.' after the agency or alias, found end "
         f"of input", ()),
        ("SELECT COUNT(*) FROM dss.enrollment WHERE sex # 'F'",
         f"line 1, column 47: {E} a comparison operator, BETWEEN, IN, IS "
         f"or NOT, found '#'", ()),
        ("SELECT COUNT(*) FROM dss.enrollment WHERE program IN ('SNAP' "
         "'TANF')",
         f"line 1, column 62: {E} ',' or ')', found string 'TANF'", ()),
        ("SELECT COUNT(*) FROM dss.enrollment GROUP program",
         f"line 1, column 43: {E} BY, found 'program'", ()),
        ("SELECT COUNT(*) FROM dss.enrollment WHERE sex = 'F' XOR sex = 'M'",
         f"line 1, column 53: {E} AND, OR, GROUP BY, ORDER BY, LIMIT or end "
         f"of input, found 'XOR'", ()),
        ("SELECT sex, COUNT(*) FROM dss.enrollment GROUP BY sex sex",
         f"line 1, column 55: {E} ',', ORDER BY, LIMIT or end of input, "
         f"found 'sex'", ()),
        # -- OR, NOT, parentheses, IS [NOT] NULL, ORDER BY, LIMIT
        ("SELECT COUNT(*) FROM dss.enrollment WHERE (sex = 'F'",
         f"line 1, column 53: {E} AND, OR or ')', found end of input", ()),
        ("SELECT COUNT(*) FROM dss.enrollment WHERE NOT",
         f"line 1, column 46: {E} a column name, NOT or '(', found end of "
         f"input", ()),
        ("SELECT COUNT(*) FROM dss.enrollment WHERE sex = 'F' OR",
         f"line 1, column 55: {E} a column name, NOT or '(', found end of "
         f"input", ()),
        ("SELECT COUNT(*) FROM dss.enrollment WHERE sex IS 'F'",
         f"line 1, column 50: {E} NOT or NULL, found string 'F'", ()),
        ("SELECT COUNT(*) FROM dss.enrollment WHERE sex NOT = 'F'",
         f"line 1, column 51: {E} BETWEEN or IN, found '='", ()),
        ("SELECT COUNT(*) FROM dss.enrollment ORDER BY town",
         "line 1, column 46: ORDER BY must name a selected column or "
         "position, found 'town'", ()),
        ("SELECT COUNT(*) FROM dss.enrollment ORDER BY 2",
         "line 1, column 46: ORDER BY position must be from 1 to 1, found "
         "'2'", ()),
        ("SELECT COUNT(*) FROM dss.enrollment LIMIT -1",
         f"line 1, column 43: {E} a row count from 0 to 1000000, found '-1'",
         ()),
        ("SELECT COUNT(*) FROM dss.enrollment LIMIT 2 ORDER BY 1",
         f"line 1, column 45: {E} end of input, found 'ORDER'", ()),
        # Several lines: a comment line, a tab (one column), then the error
        # on line 4 after two spaces.
        ("-- monthly\nSELECT\tCOUNT(*)\nFROM dss.enrollment\n"
         "WHERE  month BETWEEN '2024-01' '2024-03'",
         f"line 4, column 32: {E} AND, found string '2024-03'", ()),
        ("SELECT program,\n       COUNT(*)\nFROM dss.enrollment\n"
         "WHERE month =\n  GROUP BY program",
         f"line 5, column 3: {E} a literal, found 'GROUP'", ()),
        ("SELECT COUNT(*)\nFROM dss.enrollment\nWHERE sex = é",
         f"line 3, column 13: {E} a literal, found '\\xc3\\xa9'", ()),
        ("SELECT COUNT(*)\nFROM dss.enrollment\nWHERE sex = 'F",
         "line 3, column 13: unterminated string literal", ()),
        ("SELECT SUM(*) FROM dol.wages",
         f"line 1, column 12: {E} a column name, found '*'", ()),
        # -- names
        ("SELECT COUNT(*) FROM xyz.enrollment",
         "line 1, column 22: unknown agency or alias 'xyz'", ()),
        ("SELECT COUNT(*) FROM dss.nope",
         "line 1, column 26: unknown dataset dss.nope", ()),
        ("SELECT COUNT(*)\n  FROM hied.nope",
         None, ("line 2, column 13:", "unknown dataset", "hied.nope")),
        ("SELECT COUNT(*) FROM dss.enrollment WHERE colour = 'red'",
         "line 1, column 43: unknown column 'colour' in dss.enrollment", ()),
        ("SELECT colour, COUNT(*) FROM hied.enrollment GROUP BY colour",
         None, ("line 1, column ", "unknown column 'colour'")),
        # -- types
        ("SELECT COUNT(*) FROM dol.wages WHERE quarter = 5",
         "line 1, column 48: column 'quarter': expected a quarter like "
         "'2024Q1', found 5", ()),
        ("SELECT COUNT(*) FROM dol.wages WHERE wages = 'x'",
         "line 1, column 46: column 'wages': expected an integer, found 'x'",
         ()),
        ("SELECT COUNT(*) FROM dss.enrollment WHERE month = '2024-13'",
         "line 1, column 51: column 'month': expected a month like "
         "'2024-01', found '2024-13'", ()),
        ("SELECT COUNT(*) FROM dss.enrollment\nWHERE benefit BETWEEN 1 AND "
         "2.5", "line 2, column 29: column 'benefit': expected an integer, "
                "found 2.5", ()),
        ("SELECT COUNT(*) FROM hied.enrollment WHERE birth_year IN (1999, "
         "'2000')", None, ("line 1, column 65:", "birth_year",
                           "expected an integer")),
        ("SELECT COUNT(*) FROM dss.enrollment WHERE month IS NULL AND "
         "month NOT BETWEEN '2024-01' AND 5",
         "line 1, column 93: column 'month': expected a month like "
         "'2024-01', found 5", ()),
        ("SELECT COUNT(*) FROM dss.enrollment WHERE sex = 1",
         "line 1, column 49: column 'sex': expected a quoted string, "
         "found 1", ()),
        # -- identifiers: refused wherever they appear
        ("SELECT COUNT(*) FROM dss.enrollment WHERE person_id = 'P1'",
         None, ("line 1, column 43:", "'person_id'", "identifier")),
        ("SELECT COUNT(*) FROM dss.enrollment WHERE sex = 'F' OR NOT "
         "(person_id IS NULL)",
         None, ("line 1, column 61:", "'person_id'", "identifier")),
        ("SELECT employer_id, COUNT(*) FROM dol.wages GROUP BY employer_id",
         None, ("line 1, column 54:", "'employer_id'", "identifier")),
        ("SELECT COUNT(*), SUM(person_id) FROM hied.enrollment",
         None, ("line 1, column 22:", "'person_id'", "identifier")),
        # -- roles
        ("SELECT SUM(household_size) FROM dss.enrollment",
         "line 1, column 12: column 'household_size' is not a measure: SUM "
         "takes a measure", ()),
        ("SELECT AVG(town) FROM dol.wages",
         None, ("line 1, column 12:", "'town'", "not a measure")),
        ("SELECT benefit, COUNT(*) FROM dss.enrollment GROUP BY benefit",
         None, ("line 1, column 55:", "'benefit'", "not a dimension")),
        ("SELECT program, COUNT(*) FROM dss.enrollment",
         "line 1, column 8: column 'program' must be in GROUP BY or inside "
         "an aggregate", ()),
        ("SELECT COUNT(*) FROM dss.enrollment GROUP BY sex",
         "line 1, column 46: grouped column 'sex' must also be selected", ()),
        ("SELECT program FROM dss.enrollment GROUP BY program",
         None, ("line 1, column 8:", "at least one aggregate")),
    ]


@test
def query_bad_input(h):
    """Malformed and invalid queries: INVALID_ARGUMENT with the line and
    column of the fault and what was expected there; identifiers, roles
    and types enforced; a query over 64 KiB refused; the gateway serves a
    valid query after each."""
    p = h.proto
    fed = ExampleFed(h, "bad", ["dol", "dss", "uhs", "csu", "ccs"])
    try:
        stub = fed.stub()
        good = "SELECT COUNT(*) FROM hied.enrollment"
        want = oracle(fed.catalog.source("hied", "enrollment"),
                      {"items": [("agg", "COUNT", None)], "group_by": [],
                       "filters": []})[()]["records"]
        problems = []
        cases = bad_cases() + [
            ("SELECT COUNT(*) FROM dss.enrollment WHERE program IN (" +
             ", ".join(["'SNAP'"] * 11000) + ")", None,
             ("65536",)),  # 77 KB of text
        ]
        check(len(cases[-1][0]) > 65536, "long query too short")
        for sql, exact, subs in cases:
            label = one_line(sql)[:70]
            try:
                e = rpc_error(stub.Query, qreq(p, sql),
                              timeout=CALL_TIMEOUT)
            except TestFailure as ex:
                problems.append(f"{label!r}: {ex}")
                continue
            msg = e.details() or ""
            if e.code() != grpc.StatusCode.INVALID_ARGUMENT:
                problems.append(f"{label!r}: {e.code().name} {msg!r}")
            elif exact is not None and msg != exact:
                problems.append(f"{label!r}: message {msg!r}, expected "
                                f"{exact!r}")
            elif any(s not in msg for s in subs):
                problems.append(f"{label!r}: message {msg!r} lacks "
                                f"{[s for s in subs if s not in msg]}")
            # The gateway still answers, and right.
            try:
                r = stub.Query(qreq(p, good),
                               timeout=CALL_TIMEOUT)
                v = r.rows[0].cells[0]
                if v.WhichOneof("value") != "int_value" and want >= MIN_CELL:
                    problems.append(f"after {label!r}: {r}")
            except grpc.RpcError as ex:
                problems.append(f"after {label!r}: {ex.code().name} "
                                f"{ex.details()}")
            for pr in fed.procs():
                pr.check_alive()
        check(not problems, f"{len(problems)} of {len(cases)} cases: "
                            + " || ".join(problems[:6]))
        ri.print_note(f"{len(cases)} bad queries")
    finally:
        fed.close()


def partial_view(p, r):
    return {"partial": r.partial, "missing": [m.agency for m in r.missing],
            "agencies": sorted(r.agencies)}


@test
@seeded
def query_agent_down(h):
    """A stopped hied member (agent_timeout 4s): the pooled query fails
    with UNAVAILABLE naming it within the deadline; with allow_partial it
    answers from the two others, marked partial, with the oracle's values
    over their files only (CLI: exit 3, the agency named on stderr). After
    SIGCONT the full query works again. A stopped single agency: UNAVAILABLE
    naming it."""
    p = h.proto
    fed = ExampleFed(h, "down", ["dol", "uhs", "csu", "ccs"],
                     gw_extra={"agent_timeout": "4s"})
    try:
        stub = fed.stub()
        src = fed.catalog.source("hied", "enrollment")
        specs = [
            {"items": [("agg", "COUNT", None)], "group_by": [],
             "filters": []},
            {"items": [("dim", "term"), ("agg", "COUNT", None)],
             "group_by": ["term"], "filters": []},
            {"items": [("agg", "COUNT", None), ("dim", "institution")],
             "group_by": ["institution"],
             "filters": [("cmp", "birth_year", ">=", 1995)]},
        ]
        sqls = ["SELECT COUNT(*) FROM hied.enrollment",
                "SELECT term, COUNT(*) FROM hied.enrollment GROUP BY term",
                "SELECT COUNT(*), institution FROM hied.enrollment WHERE "
                "birth_year >= 1995 GROUP BY institution"]
        # Baseline (this also fills the gateway's catalog cache, so the
        # stopped agent is met at Execute).
        for spec, sql in zip(specs, sqls):
            compare(src, spec, query_grpc(p, stub, sql), oracle(src, spec),
                    HIED)
        victim = "csu"
        rest = [a for a in HIED if a != victim]
        fed.agents[victim].signal(signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            e = rpc_error(stub.Query, qreq(p, sqls[0]),
                          timeout=10)
            took = time.monotonic() - t0
            expect_status(e, grpc.StatusCode.UNAVAILABLE, victim)
            # agent_timeout is 4 s: generous for ASan with full malloc
            # stacks on a loaded machine, and the bound stays loose.
            check(took < 9.0, f"UNAVAILABLE after {took:.1f}s with "
                              f"agent_timeout 4s")
            for spec, sql in zip(specs, sqls):
                t0 = time.monotonic()
                r = stub.Query(qreq(p, sql, allow_partial=True),
                               timeout=10)
                took = time.monotonic() - t0
                check(took < 9.0, f"partial answer after {took:.1f}s")
                pv = partial_view(p, r)
                check(pv == {"partial": True, "missing": [victim],
                             "agencies": sorted(rest)},
                      f"{sql!r}: {pv}")
                st = r.missing[0]
                check(st.state in (p.gw.AGENCY_STATE_TIMEOUT,
                                   p.gw.AGENCY_STATE_UNAVAILABLE)
                      and st.message,
                      f"missing status {p.gw.AgencyState.Name(st.state)} "
                      f"{st.message!r}")
                got = proto_table(p, r)
                compare(src, spec, got, oracle(src, spec, agencies=rest),
                        rest)
            # The CLI: exit 3, the missing agency on stderr, the table.
            got, res = query_cli(h, fed, sqls[1], allow_partial=True,
                                 expect_rc=3)
            check(victim in res.stderr and "missing" in res.stderr,
                  f"fedq stderr does not name {victim}: {tail(res.stderr)}")
            check(got["partial"] is True and got["missing"] == [victim],
                  f"CLI partial {got['partial']} missing {got['missing']}")
            compare(src, specs[1], got, oracle(src, specs[1], agencies=rest),
                    rest, via_json=True)
            # Without --allow-partial the CLI fails, naming the agency.
            r = h.fedq("query", *fed.cli_terms(), sqls[0],
                       config=fed.client_cfg)
            check(r.returncode == 1 and "UNAVAILABLE" in r.stderr and
                  victim in r.stderr,
                  f"fedq query without --allow-partial: rc {r.returncode} "
                  f"{tail(r.stderr)}")
        finally:
            os.kill(fed.agents[victim].pid, signal.SIGCONT)

        def whole():
            try:
                r = stub.Query(qreq(p, sqls[1]), timeout=10)
            except grpc.RpcError:
                return None
            return r if not r.partial else None
        t0 = time.monotonic()
        r = wait_until(whole, 15, "the full query to work after SIGCONT",
                       0.2, watch=fed.procs())
        ri.print_note(f"{victim} back {time.monotonic() - t0:.1f}s after "
                      f"SIGCONT")
        compare(src, specs[1], proto_table(p, r), oracle(src, specs[1]),
                HIED)

        # A single agency, stopped before any query of it (the gateway
        # has no catalog of it yet): UNAVAILABLE naming it, partial or not.
        fed.agents["dol"].signal(signal.SIGSTOP)
        try:
            for allow in (False, True):
                t0 = time.monotonic()
                e = rpc_error(stub.Query, qreq(
                    p, "SELECT COUNT(*) FROM dol.wages",
                    allow_partial=allow), timeout=10)
                took = time.monotonic() - t0
                expect_status(e, grpc.StatusCode.UNAVAILABLE, "dol")
                check(took < 9.0, f"dol: UNAVAILABLE after {took:.1f}s")
        finally:
            os.kill(fed.agents["dol"].pid, signal.SIGCONT)
        wait_until(lambda: len(stub.Query(qreq(
            p, "SELECT COUNT(*) FROM dol.wages"), timeout=10).rows) == 1,
            15, "dol to answer after SIGCONT", 0.2, watch=fed.procs())
        # Stopped again, now with its catalog cached: the failure comes at
        # Execute, and must still be UNAVAILABLE naming dol.
        fed.agents["dol"].signal(signal.SIGSTOP)
        try:
            e = rpc_error(stub.Query, qreq(
                p, "SELECT quarter, COUNT(*) FROM dol.wages GROUP BY "
                   "quarter"), timeout=10)
            expect_status(e, grpc.StatusCode.UNAVAILABLE, "dol")
            # allow_partial with nobody left to answer: nothing to release.
            try:
                r = stub.Query(qreq(
                    p, "SELECT quarter, COUNT(*) FROM dol.wages GROUP BY "
                       "quarter", allow_partial=True), timeout=10)
                raise TestFailure(
                    f"dol stopped, allow_partial: answered with "
                    f"{len(r.rows)} rows, agencies {list(r.agencies)}, "
                    f"partial {r.partial}, missing "
                    f"{[m.agency for m in r.missing]}; expected UNAVAILABLE "
                    f"as when its catalog is not cached")
            except grpc.RpcError as e:
                expect_status(e, grpc.StatusCode.UNAVAILABLE, "dol")
        finally:
            os.kill(fed.agents["dol"].pid, signal.SIGCONT)
    finally:
        fed.close()


@test
def query_roles(h):
    """Only analysts may query: a steward, an agent and the gateway's own
    identity get PERMISSION_DENIED naming them; an analyst gets the table."""
    p = h.proto
    fed = ExampleFed(h, "roles", ["doe"])
    try:
        sql = ("SELECT school_year, graduated, COUNT(*) FROM "
               "doe.k12_enrollment GROUP BY school_year, graduated")
        for party, ident in (("steward-dol-bob", "steward/dol/bob"),
                             ("agency-doe", "agency/doe/agent"),
                             ("gateway", "gateway")):
            e = rpc_error(fed.stub(party).Query, qreq(p, sql),
                          timeout=CALL_TIMEOUT)
            expect_status(e, grpc.StatusCode.PERMISSION_DENIED,
                          ri.identity(ident))
        src = fed.catalog.source("doe", "k12_enrollment")
        spec = {"items": [("dim", "school_year"), ("dim", "graduated"),
                          ("agg", "COUNT", None)],
                "group_by": ["school_year", "graduated"], "filters": []}
        compare(src, spec, query_grpc(p, fed.stub(), sql), oracle(src, spec),
                ["doe"])
        # The steward may still read the catalog: the refusal is per method.
        r = fed.stub("steward-dol-bob").ListDatasets(
            p.gw.ListDatasetsRequest(), timeout=CALL_TIMEOUT)
        check([d.name for d in r.datasets] == ["k12_enrollment"],
              f"steward ListDatasets: {[d.name for d in r.datasets]}")
    finally:
        fed.close()


# ---- the insider rule -------------------------------------------------------

# Planted hied data: per town, each agency's persons (one record each) and
# their credits. With k = 11: T001 pools 25, of which uhs holds 20, so csu's
# 5 would be known to uhs (insider); T002 pools 34 with 14 outside uhs
# (released), its bin under 12 credits 23 of which uhs holds 20 (insider),
# the other 11 at csu alone (released); T003 is uhs's alone (released);
# T004 pools 12 with every agency's part leaving 7 to 9 (insider); T005
# pools 28, no agency leaving fewer than 12 (released), its bin of 12
# credits or more 1 (primary); T006 pools 5 (primary).
INSIDER_PLANT = {
    "T001": {"uhs": [6] * 20, "csu": [6] * 5},
    "T002": {"uhs": [6] * 20, "csu": [6] * 3 + [15] * 11},
    "T003": {"uhs": [6] * 20},
    "T004": {"uhs": [6] * 5, "csu": [6] * 3, "ccs": [6] * 4},
    "T005": {"uhs": [6] * 15, "csu": [6] * 12, "ccs": [15]},
    "T006": {"uhs": [6] * 5},
}
INSIDER_SQL = ("SELECT town, COUNT(*), SUM(credits), HISTOGRAM(credits, 12) "
               "FROM hied.enrollment GROUP BY town")
S, E = SUPPRESSED, lambda v: ("exact", "int", v)  # noqa: E731
INSIDER_WANT = [  # (town, COUNT(*), SUM(credits), bins [-inf,12), [12,+inf))
    ("T001", S, S, S, S),
    ("T002", E(34), E(303), S, E(11)),
    ("T003", E(20), E(120), E(20), E(0)),
    ("T004", S, S, S, S),
    ("T005", E(28), E(177), E(27), S),
    ("T006", S, S, S, S),
]


def plant_hied(d):
    """One SQLite file per hied agency in d holding INSIDER_PLANT (the
    table fedq-synth writes); {agency: path}."""
    d.mkdir(parents=True, exist_ok=True)
    out = {}
    for a in HIED:
        path = out[a] = d / f"{a}.sqlite"
        con = sqlite3.connect(path)
        con.execute("CREATE TABLE enrollment (person_id TEXT NOT NULL, "
                    "institution TEXT NOT NULL, term TEXT NOT NULL, "
                    "credential TEXT NOT NULL, graduation_year INTEGER, "
                    "birth_year INTEGER NOT NULL, town TEXT NOT NULL, "
                    "credits INTEGER)")
        for town, parts in INSIDER_PLANT.items():
            for i, credits in enumerate(parts.get(a, [])):
                con.execute("INSERT INTO enrollment VALUES (?, ?, ?, ?, ?, "
                            "?, ?, ?)", (f"{a}-{town}-{i}",
                                         f"{a.upper()}01", "2024FA", "BA",
                                         None, 2000, town, credits))
        con.commit()
        con.close()
    return out


@test
def query_insider_rule(h):
    """The insider rule on planted hied data: a pooled group (or HISTOGRAM
    bin) where one agency holds all but 1 to 10 contributors is suppressed
    whole, while the same shape with 11 or more outside that agency is
    released; a group of one agency only is released; the oracle agrees.
    Asked of uhs alone, the same group is released (one agency knows the
    whole of its own cells). The analyst sees only "suppressed"; the
    gateway's log counts the insider cells apart from the primary ones;
    Explain names the rule for the pooled source only."""
    p = h.proto
    files = plant_hied(h.root / "insider-data")

    def edit(agency, text):
        return text.replace(f"sqlite: ../data/{agency}/{agency}.sqlite",
                            f"sqlite: {files[agency]}")
    fed = ExampleFed(h, "insider", HIED, edit=edit)
    try:
        stub = fed.stub()
        src = fed.catalog.source("hied", "enrollment")
        spec = {"items": [("dim", "town"), ("agg", "COUNT", None),
                          ("agg", "SUM", "credits"),
                          ("agg", "HISTOGRAM", "credits", (12,))],
                "group_by": ["town"], "filters": []}
        want = oracle(src, spec)
        check(set(want) == {(t,) for t in INSIDER_PLANT},
              f"oracle groups {sorted(want)}")
        # The oracle's own reading of the rule, on the planted shapes.
        hidden = {k[0] for k, g in want.items() if group_hidden(g)}
        check(hidden == {"T001", "T004", "T006"},
              f"oracle hides {sorted(hidden)}")
        r = stub.Query(fed.qreq(INSIDER_SQL), timeout=CALL_TIMEOUT)
        got = proto_table(p, r)
        compare(src, spec, got, want, HIED)
        rows = [tuple([c[2] for c in row[:1]] + list(row[1:]))
                for row in got["rows"]]
        check(rows == INSIDER_WANT, f"rows {rows}, expected {INSIDER_WANT}")
        # Nothing says why: a suppressed cell is a status without a value.
        text = str(r)
        check("insider" not in text and "primary" not in text,
              "the answer names a reason")
        # The reason is in the gateway's log: 9 insider cells (T001 and
        # T004 whole, T002's first bin), 5 primary (T006, T005's bin).
        log = fed.gateway.stderr_text()
        check(re.search(r"suppressed: primary 5, zero 0, dominance 0, "
                        r"derived 0, insider 9,", log),
              f"gateway log: {tail(log)}")
        # uhs alone: T001 is 20 of its own, released.
        r = stub.Query(fed.qreq("SELECT town, COUNT(*) FROM uhs.enrollment "
                                "GROUP BY town"), timeout=CALL_TIMEOUT)
        uhs = {row[0][2]: row[1] for row in proto_table(p, r)["rows"]}
        check(uhs == {"T001": E(20), "T002": E(20), "T003": E(20),
                      "T004": S, "T005": E(15), "T006": S},
              f"uhs alone: {uhs}")
        usrc = fed.catalog.source("uhs", "enrollment")
        uspec = {"items": [("dim", "town"), ("agg", "COUNT", None)],
                 "group_by": ["town"], "filters": []}
        compare(usrc, uspec, proto_table(p, r), oracle(usrc, uspec), ["uhs"])
        rule = "each agency knows its own part of a pooled cell"
        x = stub.Explain(fed.ereq(INSIDER_SQL), timeout=CALL_TIMEOUT)
        check(any(c.startswith(rule) for c in x.checks),
              f"Explain hied: {list(x.checks)}")
        x = stub.Explain(fed.ereq("SELECT town, COUNT(*) FROM "
                                  "uhs.enrollment GROUP BY town"),
                         timeout=CALL_TIMEOUT)
        check(not any(c.startswith(rule) for c in x.checks),
              f"Explain uhs: {list(x.checks)}")
    finally:
        fed.close()
