"""
fedq integration tests of Gateway/Query (imported by run_integration.py,
registered with its @test decorator, run by its runner).

The federation is the one of deploy/examples/etc (six agencies, alias hied
over uhs, csu and ccs) on data written by fedq-synth. Expected tables come
from an oracle that reads the agencies' SQLite files directly with Python's
sqlite3 module (the three hied files ATTACHed and UNIONed): per group the
records, COUNT(DISTINCT contributor), SUM and COUNT of each measure; for
COUNT(DISTINCT c), VAR(m) and STDDEV(m) the raw rows are fetched and the
distinct counts and sample variances computed in Python (statistics, exact
over the integer values), not by SQLite's aggregates. The
catalog (dimensions, measures, domains, bounds) comes from the YAML of the
example configs. Nothing of fedq's output feeds an expectation.

Randomness: one seed per run, from the environment variable FEDQ_TEST_SEED
or else from the clock. It seeds the query generator and is also the
fedq-synth --seed of the data, so one number reproduces a run. Every
failure message of a seeded test names it.
"""

import json
import math
import statistics
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import grpc
import yaml

import run_integration as ri
from run_integration import (EXAMPLE_AGENCIES, REPO, TYPE_ENUM, TestFailure,
                             check, expect_status, gateway_config, resolve,
                             rpc_error, sanitizer_report, tail, test,
                             wait_until, write_yaml)

HIED = ["uhs", "csu", "ccs"]
PERSONS = 3000
MIN_CELL = 11  # the gateway's default min_cell_count
N_QUERIES = int(os.environ.get("FEDQ_QUERY_COUNT", "160"))
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


class ExampleFed:
    """Agents from the example configs (copied as they are into a root of
    their own, with pki/ and data/ beside etc/ as the configs expect) and
    a gateway; the harness stops them all after the test."""

    def __init__(self, h, name, agencies, gw_extra=None):
        self.h = h
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
        self.agents = {}
        for a in agencies:
            path = self.etc / f"agent-{a}.yaml"
            shutil.copy(REPO / f"deploy/examples/etc/agent-{a}.yaml", path)
            self.agents[a] = h.start_agent(path)
        gw = gateway_config(h, self.run,
                            [(a, self.agents[a].addr) for a in agencies],
                            self.aliases, **(gw_extra or {}))
        self.gw_cfg_path = self.etc / "gateway.yaml"
        write_yaml(self.gw_cfg_path, gw)
        self.gateway = h.start_gateway(self.gw_cfg_path)
        self.client_cfg = h.client_config(self.gateway.addr,
                                          name=f"q-{name}-client")
        self.channels = []
        self.catalog = Catalog([self.etc / f"agent-{a}.yaml"
                                for a in agencies], self.aliases)

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


def q_ident(name):
    return '"' + name.replace('"', '""') + '"'


def oracle(src, spec, agencies=None):
    """{key tuple: {"records", "contributors", "sum:<m>", "count:<m>",
    "var:<m>" (None under two values), "distinct:<c>"}} over the raw files
    of src (only those of `agencies` if given)."""
    files = src.files(agencies)
    con = sqlite3.connect("file:oracle?mode=memory", uri=True)
    try:
        for i, (_, path, _) in enumerate(files):
            con.execute(f"ATTACH DATABASE ? AS s{i}",
                        (f"file:{path}?mode=ro",))
        needed = list(dict.fromkeys(
            ([src.contributor] if src.contributor else []) +
            spec["group_by"] + [m for m in spec_measures(spec)] +
            spec_distinct(spec) +
            [f[1] for f in spec["filters"]] +
            list(spec.get("where_columns", ()))))
        cols = ", ".join(q_ident(c) for c in needed) or "1"
        union = " UNION ALL ".join(
            f"SELECT {cols} FROM s{i}.{q_ident(table)}"
            for i, (_, _, table) in enumerate(files))
        keys = [q_ident(c) for c in spec["group_by"]]
        sel = keys + ["COUNT(*)",
                      f"COUNT(DISTINCT {q_ident(src.contributor)})"
                      if src.contributor else "COUNT(*)"]
        ms = spec_measures(spec)
        for m in ms:
            sel += [f"SUM({q_ident(m)})", f"COUNT({q_ident(m)})"]
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
        sql = f"SELECT {', '.join(sel)} FROM ({union})"
        if spec.get("where"):
            # A filter tree rendered as text by language_tests' generator:
            # the same WHERE text fedq got, evaluated by SQLite itself.
            where.append("(" + spec["where"] + "\n)")
        if where:
            sql += " WHERE " + " AND ".join(where)
        if keys:
            sql += " GROUP BY " + ", ".join(keys)
        out = {}
        for row in con.execute(sql, params):
            k = tuple(row[:len(keys)])
            rest = row[len(keys):]
            if rest[0] == 0:
                continue  # no GROUP BY and no record: no group
            g = {"records": rest[0], "contributors": rest[1]}
            for i, m in enumerate(ms):
                g[f"sum:{m}"] = rest[2 + 2 * i]
                g[f"count:{m}"] = rest[3 + 2 * i]
            out[k] = g
        vms = spec_var_measures(spec)
        dcs = spec_distinct(spec)
        if vms or dcs:
            # The raw rows, grouped and reduced here in Python.
            rsel = keys + [q_ident(c) for c in vms + dcs] or ["1"]
            rsql = f"SELECT {', '.join(rsel)} FROM ({union})"
            if where:
                rsql += " WHERE " + " AND ".join(where)
            vals = {}
            for row in con.execute(rsql, params):
                k = tuple(row[:len(keys)])
                acc = vals.setdefault(k, ([[] for _ in vms],
                                          [set() for _ in dcs]))
                rest = row[len(keys):]
                for j in range(len(vms)):
                    if rest[j] is not None:
                        acc[0][j].append(rest[j])
                for j in range(len(dcs)):
                    if rest[len(vms) + j] is not None:
                        acc[1][j].add(rest[len(vms) + j])
            for k, g in out.items():
                lists, sets = vals.get(k, ([[] for _ in vms],
                                           [set() for _ in dcs]))
                for m, xs in zip(vms, lists):
                    g[f"n:{m}"] = len(xs)
                    g[f"var:{m}"] = variance(xs)
                for c, xs in zip(dcs, sets):
                    g[f"distinct:{c}"] = len(xs)
        return out
    finally:
        con.close()


def variance(xs):
    """Sample variance (n - 1), None under two values: exact for integers
    (statistics sums them as fractions), then rounded once to a float;
    checked against a two-pass formula."""
    if len(xs) < 2:
        return None
    v = statistics.variance(xs)
    mean = math.fsum(xs) / len(xs)
    v2 = math.fsum((x - mean) ** 2 for x in xs) / (len(xs) - 1)
    check(math.isclose(v, v2, rel_tol=1e-9, abs_tol=1e-6),
          f"oracle: variance {v!r} vs two-pass {v2!r} of {len(xs)} values")
    return float(v)


def spec_measures(spec):
    return list(dict.fromkeys(it[2] for it in spec["items"]
                              if it[0] == "agg" and it[2]
                              and it[1] != "COUNT_DISTINCT"))


def spec_var_measures(spec):
    return list(dict.fromkeys(it[2] for it in spec["items"]
                              if it[0] == "agg" and it[1] in ("VAR",
                                                              "STDDEV")))


def spec_distinct(spec):
    return list(dict.fromkeys(it[2] for it in spec["items"]
                              if it[0] == "agg"
                              and it[1] == "COUNT_DISTINCT"))


def key_order(k):
    """fedq's row order: NULL first, integers numerically, text bytewise."""
    return tuple((0, 0) if v is None else
                 (1, v) if isinstance(v, int) else (2, v.encode())
                 for v in k)


ORACLE_OPS = {"=": "=", "<>": "<>", "!=": "<>", "<": "<", "<=": "<=",
              ">": ">", ">=": ">="}


# ---- expected tables and their comparison -----------------------------------


def agg_name(it):
    if it[1] == "COUNT_DISTINCT":
        return f"COUNT(DISTINCT {it[2]})"
    return "COUNT(*)" if it[1] == "COUNT" else f"{it[1]}({it[2]})"


def expected_columns(src, spec):
    cols = []
    for it in spec["items"]:
        if it[0] == "dim":
            cols.append((it[1], TYPE_ENUM[src.columns[it[1]]["type"]], False))
        elif it[1] == "COUNT":
            cols.append(("COUNT(*)", "VALUE_TYPE_INTEGER", True))
        elif it[1] == "COUNT_DISTINCT":
            cols.append((agg_name(it), "VALUE_TYPE_INTEGER", True))
        elif it[1] == "SUM":
            t = src.columns[it[2]]["type"]
            cols.append((agg_name(it), "VALUE_TYPE_DECIMAL" if t == "decimal"
                         else "VALUE_TYPE_INTEGER", True))
        else:
            cols.append((agg_name(it), "VALUE_TYPE_DECIMAL", True))
    return cols


def proto_table(p, r):
    """A QueryResponse as plain data: columns, rows of (status, kind,
    value) with kind the oneof actually set (None if none)."""
    cols = [(c.name, p.catalog.ValueType.Name(c.type), c.aggregate)
            for c in r.columns]
    rows = []
    for row in r.rows:
        cells = []
        for c in row.cells:
            kind = c.WhichOneof("value")
            cells.append((p.gw.CellStatus.Name(c.status)[12:].lower(),
                          kind and kind[:-6],
                          getattr(c, kind) if kind else None))
        rows.append(cells)
    return {"columns": cols, "rows": rows, "agencies": list(r.agencies),
            "partial": r.partial, "missing": [m.agency for m in r.missing],
            "min_cell_count": r.min_cell_count, "query_id": r.query_id}


JSON_TYPES = {"integer": "VALUE_TYPE_INTEGER", "text": "VALUE_TYPE_TEXT",
              "date": "VALUE_TYPE_DATE", "month": "VALUE_TYPE_MONTH",
              "quarter": "VALUE_TYPE_QUARTER",
              "decimal": "VALUE_TYPE_DECIMAL"}


def json_table(doc):
    """`fedq query --format json` output in the form of proto_table."""
    keys = sorted(doc) if isinstance(doc, dict) else doc
    check(keys == ["agencies", "columns", "min_cell_count", "missing",
                   "partial", "query_id", "rows"], f"JSON keys {keys!r}")
    cols = [(c["name"], JSON_TYPES.get(c["type"], c["type"]), c["aggregate"])
            for c in doc["columns"]]
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
            "query_id": doc["query_id"]}


def short(x, n=240):
    s = repr(x)
    return s if len(s) <= n else s[:n] + "..."


def compare(src, spec, got, want, agencies, via_json=False,
            min_cell=MIN_CELL):
    """Raises TestFailure at the first difference between a fedq table and
    the oracle's groups."""
    ecols = expected_columns(src, spec)
    check(got["columns"] == ecols,
          f"columns {got['columns']}, expected {ecols}")
    check(sorted(got["agencies"]) == sorted(agencies)
          and len(got["agencies"]) == len(agencies),
          f"agencies {got['agencies']}, expected {agencies}")
    check(got["min_cell_count"] == min_cell,
          f"min_cell_count {got['min_cell_count']}")
    check(got["query_id"], "empty query_id")
    gb = spec["group_by"]
    # Where each GROUP BY column sits in the select list.
    pos = [next(i for i, it in enumerate(spec["items"])
                if it[0] == "dim" and it[1] == c) for c in gb]
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
    decimal_kinds = ("decimal", "int") if via_json else ("decimal",)
    for r, k in zip(got["rows"], keys):
        g = want[k]
        small = g["contributors"] < min_cell
        for i, it in enumerate(spec["items"]):
            st, kind, v = r[i]
            where = f"group {k} ({g['contributors']} contributors), " \
                    f"column {ecols[i][0]}"
            if it[0] == "dim":
                kv = k[gb.index(it[1])]
                if kv is None:
                    # The group of records where the dimension is NULL.
                    check(st == "not_applicable" and kind is None,
                          f"{where}: NULL key cell {r[i]}")
                else:
                    check(st == "exact", f"{where}: key status {st}")
                    check(kind == ("int" if isinstance(kv, int) else "text")
                          and v == kv,
                          f"{where}: key cell {r[i]}, expected {kv!r}")
                continue
            if small:
                check(st == "suppressed" and kind is None,
                      f"{where}: {r[i]}, expected suppressed without value")
                continue
            if it[1] in ("VAR", "STDDEV"):
                var = g[f"var:{it[2]}"]
                if var is None:
                    check(st == "not_applicable" and kind is None,
                          f"{where}: {r[i]}, expected not_applicable "
                          f"without value ({g[f'n:{it[2]}']} values)")
                    continue
                exp = var if it[1] == "VAR" else math.sqrt(var)
                check(st == "exact" and kind in decimal_kinds and
                      math.isclose(v, exp, rel_tol=1e-9, abs_tol=1e-6),
                      f"{where}: {r[i]}, expected exact {exp!r} "
                      f"({g[f'n:{it[2]}']} values)")
                continue
            check(st == "exact", f"{where}: status {st}, expected exact")
            if it[1] == "COUNT":
                check(kind == "int" and v == g["records"],
                      f"{where}: {r[i]}, expected {g['records']}")
            elif it[1] == "COUNT_DISTINCT":
                exp = g[f"distinct:{it[2]}"]
                check(kind == "int" and v == exp,
                      f"{where}: {r[i]}, expected {exp}")
            elif it[1] == "SUM":
                exp = g[f"sum:{it[2]}"]
                check(kind == "int" and v == exp,
                      f"{where}: {r[i]}, expected {exp}")
            else:
                s, n = g[f"sum:{it[2]}"], g[f"count:{it[2]}"]
                exp = s / n
                check(kind in decimal_kinds and
                      math.isclose(v, exp, rel_tol=1e-9, abs_tol=0.0),
                      f"{where}: {r[i]}, expected {exp!r} ({s}/{n})")


# ---- the query generator --------------------------------------------------


SOURCES = [("dol", "wages"), ("dss", "enrollment"), ("doe", "k12_enrollment"),
           ("hied", "enrollment")]
ALL_OPS = ["=", "<>", "<", "<=", ">", ">=", "BETWEEN", "IN"]
OUTSIDE = {"text": ["ZZZ", "T999", "t001", "O'Hara", "", "CCS99"],
           "quarter": ["2021Q4", "2025Q1", "1999Q2"],
           "month": ["2022-12", "2025-01", "1999-07"]}


class Generator:
    def __init__(self, rng, catalog, new_aggs=False):
        """new_aggs: also draw COUNT(DISTINCT c), VAR(m) and STDDEV(m)
        (off for subclasses that know only COUNT, SUM and AVG; off, the
        random stream is the one it was before them)."""
        self.rng = rng
        self.cat = catalog
        self.new_aggs = new_aggs
        self.measure_values = {}  # (source, measure) -> sorted values

    def values_of(self, src, m):
        key = (src.name, m)
        if key not in self.measure_values:
            vals = set()
            for _, path, table in src.files():
                con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
                vals.update(v for (v,) in con.execute(
                    f"SELECT DISTINCT {q_ident(m)} FROM {q_ident(table)}"))
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

    def query(self, i):
        rng = self.rng
        sname, dname = SOURCES[i % len(SOURCES)]
        src = self.cat.source(sname, dname)
        n_gb = (i // len(SOURCES)) % 4
        group_by = rng.sample(src.dims, min(n_gb, len(src.dims)))
        aggs = []
        pooled = len(src.members) > 1
        for _ in range(rng.randint(1, 3)):
            kinds = ["COUNT", "SUM", "AVG"] if src.measures else ["COUNT"]
            if self.new_aggs:
                # COUNT(DISTINCT c) over c an identifier or a dimension;
                # over a pooled alias (hied) only now and then, as it is
                # refused there.
                if src.measures:
                    kinds += ["VAR", "STDDEV"]
                if not pooled:
                    kinds.append("COUNT_DISTINCT")
                elif rng.random() < 0.1:
                    kinds = ["COUNT_DISTINCT"]
            kind = rng.choice(kinds)
            if kind == "COUNT":
                col = None
            elif kind == "COUNT_DISTINCT":
                col = rng.choice(src.identifiers + src.dims)
            else:
                col = rng.choice(src.measures)
            aggs.append(("agg", kind, col))
        items = [("dim", c) for c in group_by] + aggs
        rng.shuffle(items)
        n_f = rng.randint(0, 3)
        filters = []
        for k in range(n_f):
            op = ALL_OPS[(i + k) % len(ALL_OPS)] if k == 0 \
                else rng.choice(ALL_OPS)
            filters.append(self.filter(src, op))
        spec = {"source": sname, "dataset": dname, "items": items,
                "group_by": group_by, "filters": filters}
        sql = self.render(spec)
        if pooled and any(it[1] == "COUNT_DISTINCT" for it in aggs):
            # Refused at the first COUNT(DISTINCT) item, where it starts.
            j = next(j for j, it in enumerate(items)
                     if it[0] == "agg" and it[1] == "COUNT_DISTINCT")
            off = spec["item_offsets"][j]
            line = sql.count("\n", 0, off) + 1
            col = off - (sql.rfind("\n", 0, off) + 1) + 1
            spec["refusal"] = (f"line {line}, column {col}: COUNT(DISTINCT) "
                               f"over {sname} pools several agencies")
        return src, spec, sql

    # -- fedq SQL text, with the variations the grammar allows

    def kw(self, word):
        r = self.rng.random()
        return word if r < 0.7 else word.lower() if r < 0.9 else \
            word.capitalize()

    def sp(self):
        return self.rng.choice([" ", " ", " ", "  ", "\n", "\n  ", "\t"])

    def lit(self, v):
        if isinstance(v, str):
            return "'" + v.replace("'", "''") + "'"
        return str(v)

    def render(self, spec):
        kw, sp = self.kw, self.sp
        items = []
        for it in spec["items"]:
            if it[0] == "dim":
                items.append(it[1])
            elif it[1] == "COUNT_DISTINCT":
                items.append(f"{kw('COUNT')}({kw('DISTINCT')}{sp()}{it[2]})")
            else:
                items.append(f"{kw(it[1])}({it[2] or '*'})")
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
    r = stub.Query(p.gw.QueryRequest(sql=sql, allow_partial=allow_partial),
                   timeout=CALL_TIMEOUT)
    return proto_table(p, r)


def query_cli(h, fed, sql, allow_partial=False, expect_rc=0):
    args = ["query", "--format", "json"]
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


def expect_refusal(h, fed, stub, sql, prefix, via_cli=False):
    """INVALID_ARGUMENT whose message starts with prefix (gRPC), or exit 1
    with it on stderr (CLI)."""
    if via_cli:
        r = h.fedq("query", "--format", "json", "--", sql,
                   config=fed.client_cfg)
        check(r.returncode == 1 and prefix in r.stderr and
              "INVALID_ARGUMENT" in r.stderr and not r.stdout.strip(),
              f"fedq query: rc {r.returncode}, stdout {r.stdout[:200]!r}, "
              f"stderr {tail(r.stderr)}; expected exit 1 with {prefix!r}")
        return
    try:
        e = rpc_error(stub.Query, h.proto.gw.QueryRequest(sql=sql),
                      timeout=CALL_TIMEOUT)
    except TestFailure as ex:
        raise TestFailure(f"expected refusal {prefix!r}: {ex}")
    msg = e.details() or ""
    check(e.code() == grpc.StatusCode.INVALID_ARGUMENT and
          msg.startswith(prefix),
          f"{e.code().name} {msg!r}, expected INVALID_ARGUMENT starting "
          f"{prefix!r}")


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


def var_single_values(h):
    """With min_cell_count 1 groups of one record are released: VAR and
    STDDEV of a single value are not_applicable without a value, the
    others exact (the example data has no empty measure, so under the
    default rule every released group has 11 values or more)."""
    p = h.proto
    fed = ExampleFed(h, "varone", ["dol", "dss"],
                     gw_extra={"min_cell_count": 1})
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
        ]
        ones = many = 0
        for sname, dname, sql, items, gb, filters in cases:
            src = fed.catalog.source(sname, dname)
            spec = {"items": items, "group_by": gb, "filters": filters}
            want = oracle(src, spec)
            try:
                got = query_grpc(p, stub, sql)
                compare(src, spec, got, want, [sname], min_cell=1)
            except grpc.RpcError as e:
                raise TestFailure(f"{sql!r}: {e.code().name}: "
                                  f"{e.details()}")
            except TestFailure as e:
                raise TestFailure(f"{sql!r}: {e}")
            m = next(it[2] for it in items if it[1] == "VAR")
            ones += sum(g[f"var:{m}"] is None for g in want.values())
            many += sum(g[f"var:{m}"] is not None for g in want.values())
        check(ones and many, f"groups of one value {ones}, of more {many}: "
                             f"both needed")
        ri.print_note(f"min_cell_count 1: {ones} groups of one value "
                      f"(VAR not_applicable), {many} of more")
    finally:
        fed.close()


# ---- tests -----------------------------------------------------------------


@test
@seeded
def query_oracle(h):
    """Random valid queries over dol, dss, doe and the pooled hied alias,
    each compared with the oracle over the raw files: the groups, their
    order, exact values where a group has 11 or more contributors, and
    suppressed cells without a value below that; ~20 through the CLI."""
    p = h.proto
    fed = ExampleFed(h, "oracle", EXAMPLE_AGENCIES)
    try:
        stub = fed.stub()
        rng = random.Random(SEED)
        gen = Generator(rng, fed.catalog, new_aggs=True)
        cli_at = set(rng.sample(range(N_QUERIES), N_CLI))
        failures = []
        seen = {"ops": set(), "suppressed": 0, "exact": 0, "groups": set(),
                "cli": 0, "null_key": 0, "empty": 0, "sources": set(),
                "aggs": {}, "refused": 0, "refused_cli": 0}
        t0 = time.monotonic()
        for i in range(N_QUERIES):
            src, spec, sql = gen.query(i)
            via_cli = i in cli_at
            try:
                if spec.get("refusal"):
                    expect_refusal(h, fed, stub, sql, spec["refusal"],
                                   via_cli)
                    seen["cli"] += via_cli
                    seen["refused"] += 1
                    seen["refused_cli"] += via_cli
                    continue
                want = oracle(src, spec)
                if via_cli:
                    got, _ = query_cli(h, fed, sql)
                    seen["cli"] += 1
                else:
                    try:
                        got = query_grpc(p, stub, sql)
                    except grpc.RpcError as e:
                        raise TestFailure(f"{e.code().name}: {e.details()}")
                agencies = HIED if spec["source"] == "hied" \
                    else [spec["source"]]
                compare(src, spec, got, want, agencies, via_json=via_cli)
                check(not got["partial"] and not got["missing"],
                      f"partial {got['partial']} missing {got['missing']}")
            except TestFailure as e:
                failures.append((f"{i} ({'cli' if via_cli else 'grpc'}) "
                                 f"{one_line(sql)!r}", str(e)))
                continue
            for f in spec["filters"]:
                seen["ops"].add(f[2] if f[0] == "cmp" else f[0].upper())
            seen["sources"].add(spec["source"])
            seen["groups"].add(len(spec["group_by"]))
            seen["empty"] += not want
            seen["null_key"] += any(None in k for k in want)
            for g in want.values():
                if g["contributors"] < MIN_CELL:
                    seen["suppressed"] += 1
                else:
                    seen["exact"] += 1
                    for it in spec["items"]:
                        if it[0] == "agg":
                            seen["aggs"][it[1]] = \
                                seen["aggs"].get(it[1], 0) + 1
        took = time.monotonic() - t0
        try:
            explicit_new_aggregates(h, fed, stub)
        except TestFailure as e:
            failures.append(("explicit COUNT(DISTINCT)/VAR cases", str(e)))
        fed.close()
        try:
            var_single_values(h)
        except TestFailure as e:
            failures.append(("VAR/STDDEV with min_cell_count 1", str(e)))
        if failures:
            kinds = {}
            for f in failures:
                kinds.setdefault(failure_kind(f[1]), []).append(f)
            raise TestFailure(
                f"{len(failures)} wrong of {N_QUERIES} random queries and "
                f"the explicit cases, "
                f"{len(kinds)} kinds: " + " || ".join(
                    f"{len(v)}x {k!r}, e.g. query {v[0][0]}: {v[0][1]}"
                    for k, v in sorted(kinds.items(),
                                       key=lambda kv: -len(kv[1]))))
        ops = {"!=" if o == "!=" else o for o in seen["ops"]}
        ops = {"<>" if o == "!=" else o for o in ops}
        check(ops >= set(ALL_OPS), f"operators not exercised: "
                                   f"{set(ALL_OPS) - ops}")
        check(seen["suppressed"] and seen["exact"],
              f"groups: {seen['suppressed']} small, {seen['exact']} large; "
              f"both kinds needed")
        check(seen["groups"] == {0, 1, 2, 3} and len(seen["sources"]) == 4,
              f"coverage: group-by sizes {seen['groups']}, sources "
              f"{seen['sources']}")
        check(seen["cli"] >= N_CLI, f"only {seen['cli']} CLI queries")
        released = {k for k, n in seen["aggs"].items() if n}
        check(released >= {"COUNT", "SUM", "AVG", "VAR", "STDDEV",
                           "COUNT_DISTINCT"} and seen["refused"],
              f"aggregates checked in released groups: {seen['aggs']}; "
              f"{seen['refused']} pooled COUNT(DISTINCT) refused")
        ri.print_note(f"seed {SEED}; {N_QUERIES} queries in {took:.1f}s, "
                      f"{seen['cli']} via CLI; {seen['exact']} released and "
                      f"{seen['suppressed']} suppressed groups; "
                      f"{seen['empty']} empty; {seen['null_key']} with a "
                      f"NULL key; released cells by aggregate "
                      f"{dict(sorted(seen['aggs'].items()))}; "
                      f"{seen['refused']} pooled COUNT(DISTINCT) refused "
                      f"({seen['refused_cli']} via CLI)")
    finally:
        fed.close()


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
        req = p.gw.QueryRequest(sql=sql).SerializeToString()
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
        check((p.gw.CELL_STATUS_EXACT, "text_value") in kinds and
              (p.gw.CELL_STATUS_EXACT, "int_value") in kinds and
              (p.gw.CELL_STATUS_EXACT, "decimal_value") in kinds,
              f"cell kinds seen: {kinds}")
        # A zero is a value: the group keyed graduated = 0 carries
        # int_value 0 on the wire (proto3 would drop a plain 0 field).
        r0 = p.gw.QueryResponse.FromString(raw(p.gw.QueryRequest(
            sql="SELECT graduated, COUNT(*) FROM doe.k12_enrollment GROUP BY "
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
                e = rpc_error(stub.Query, p.gw.QueryRequest(sql=sql),
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
                r = stub.Query(p.gw.QueryRequest(sql=good),
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
            e = rpc_error(stub.Query, p.gw.QueryRequest(sql=sqls[0]),
                          timeout=10)
            took = time.monotonic() - t0
            expect_status(e, grpc.StatusCode.UNAVAILABLE, victim)
            # agent_timeout is 4 s: generous for ASan with full malloc
            # stacks on a loaded machine, and the bound stays loose.
            check(took < 9.0, f"UNAVAILABLE after {took:.1f}s with "
                              f"agent_timeout 4s")
            for spec, sql in zip(specs, sqls):
                t0 = time.monotonic()
                r = stub.Query(p.gw.QueryRequest(sql=sql, allow_partial=True),
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
            r = h.fedq("query", sqls[0], config=fed.client_cfg)
            check(r.returncode == 1 and "UNAVAILABLE" in r.stderr and
                  victim in r.stderr,
                  f"fedq query without --allow-partial: rc {r.returncode} "
                  f"{tail(r.stderr)}")
        finally:
            os.kill(fed.agents[victim].pid, signal.SIGCONT)

        def whole():
            try:
                r = stub.Query(p.gw.QueryRequest(sql=sqls[1]), timeout=10)
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
                e = rpc_error(stub.Query, p.gw.QueryRequest(
                    sql="SELECT COUNT(*) FROM dol.wages",
                    allow_partial=allow), timeout=10)
                took = time.monotonic() - t0
                expect_status(e, grpc.StatusCode.UNAVAILABLE, "dol")
                check(took < 9.0, f"dol: UNAVAILABLE after {took:.1f}s")
        finally:
            os.kill(fed.agents["dol"].pid, signal.SIGCONT)
        wait_until(lambda: len(stub.Query(p.gw.QueryRequest(
            sql="SELECT COUNT(*) FROM dol.wages"), timeout=10).rows) == 1,
            15, "dol to answer after SIGCONT", 0.2, watch=fed.procs())
        # Stopped again, now with its catalog cached: the failure comes at
        # Execute, and must still be UNAVAILABLE naming dol.
        fed.agents["dol"].signal(signal.SIGSTOP)
        try:
            e = rpc_error(stub.Query, p.gw.QueryRequest(
                sql="SELECT quarter, COUNT(*) FROM dol.wages GROUP BY "
                    "quarter"), timeout=10)
            expect_status(e, grpc.StatusCode.UNAVAILABLE, "dol")
            # allow_partial with nobody left to answer: nothing to release.
            try:
                r = stub.Query(p.gw.QueryRequest(
                    sql="SELECT quarter, COUNT(*) FROM dol.wages GROUP BY "
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
            e = rpc_error(fed.stub(party).Query, p.gw.QueryRequest(sql=sql),
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
