"""
fedq integration tests of PostgreSQL sources (imported by
run_integration.py, registered with its @test decorator, run by its
runner): the pushdown engine, which compiles each plan to parameterised SQL
run in the agency's database, and the extract engine built from a
PostgreSQL table.

A scratch PostgreSQL cluster (tests/pg/pg-cluster.sh) is started at the
first test that needs it and stopped when the run ends. The fedq-synth data
of query_tests (same seed, same persons) is copied into it by
tests/pg/load_synth.py, one table per example dataset (<agency>_<table>,
text columns in ICU's en-US collation where the server has it), and the
example federation runs with every dataset's source moved there.
Answers are checked against query_tests' oracle, which reads the SQLite
files the tables were loaded from: nothing of PostgreSQL or of fedq feeds
an expectation. FEDQ_PUSHDOWN_QUERY_COUNT sets the number of random
queries (default 300, plus a quarter as many filter trees).
"""

import atexit
import concurrent.futures
import copy
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

import grpc
import yaml

import run_integration as ri
from run_integration import (EXAMPLE_AGENCIES, REPO, TestFailure, check,
                             gateway_config, qreq, tail, test, wait_until,
                             write_yaml)
import query_tests as qt
import language_tests as lt

N_QUERIES = int(os.environ.get("FEDQ_PUSHDOWN_QUERY_COUNT", "300"))
N_TREES = max(N_QUERIES // 4, 1)
N_EXTRACT = max(N_QUERIES // 4, 1)
PG_CLUSTER = REPO / "tests/pg/pg-cluster.sh"
PG_LOADER = REPO / "tests/pg/load_synth.py"
SECRET = "pd-Secret-7731"  # a password that must never show in a message


# ---- the PostgreSQL cluster ------------------------------------------------


class PgCluster:
    """A scratch cluster from tests/pg/pg-cluster.sh; stop() is
    idempotent and also runs when the test run ends."""

    def __init__(self):
        r = subprocess.run(["bash", str(PG_CLUSTER), "start"],
                           capture_output=True, text=True, timeout=180)
        check(r.returncode == 0,
              f"pg-cluster.sh start failed ({r.returncode}): "
              f"{tail(r.stderr)} (deploy/install-deps.sh installs "
              f"postgresql)")
        self.vars = {m[0]: m[1] if m[1] else m[2] for m in re.findall(
            r"(\w+)=(?:'([^']*)'|(\S+))", r.stdout)}
        self.dir = Path(self.vars["FEDQ_PG_DIR"])
        self.conninfo = self.vars["FEDQ_PG_CONNINFO"]
        self.loaded = set()
        atexit.register(self.stop)
        # Text in an agency's database rarely sorts by bytes: the tables
        # get a linguistic collation where ICU has one, so that only the
        # pushed-down SQL's own COLLATE "C" can give SQLite's order.
        self.collate = self.psql(
            "SELECT collname FROM pg_collation WHERE collname = "
            "'en-US-x-icu'").strip() or None

    def stop(self):
        subprocess.run(["bash", str(PG_CLUSTER), "stop", str(self.dir)],
                       capture_output=True, timeout=120)

    def psql(self, *sql, user=None):
        """Runs statements; as the superuser postgres if user says so."""
        ci = self.conninfo + (f" user={user}" if user else "")
        argv = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-d", ci]
        for s in sql:
            argv += ["-c", s]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, f"psql: {tail(r.stderr)}")
        return r.stdout

    def load(self, sqlite_path, table, pg_table):
        key = (str(sqlite_path), pg_table)
        if key in self.loaded:
            return
        r = subprocess.run([sys.executable, str(PG_LOADER), "--conninfo",
                            self.conninfo, "--sqlite", str(sqlite_path),
                            "--table", table, "--as", pg_table] +
                           (["--collate", self.collate]
                            if self.collate else []),
                           capture_output=True, text=True, timeout=600)
        check(r.returncode == 0, f"load_synth.py {pg_table}: "
                                 f"{tail(r.stderr)}")
        self.loaded.add(key)


def pg_cluster(h):
    """The run's shared cluster, started at first use."""
    c = getattr(h, "pg_cluster", None)
    if c is None:
        c = h.pg_cluster = PgCluster()
    return c


def pg_table(agency, ds):
    return f"{agency}_{ds['source']['table']}"


def example_config(agency):
    return yaml.safe_load(
        (REPO / f"deploy/examples/etc/agent-{agency}.yaml").read_text())


def load_examples(h, cluster, agencies=EXAMPLE_AGENCIES):
    """Each example dataset's fedq-synth table into <agency>_<table>."""
    data = qt.query_data(h)
    for a in agencies:
        for ds in example_config(a)["datasets"]:
            rel = Path(ds["source"]["sqlite"]).relative_to("../data")
            cluster.load(data / rel, ds["source"]["table"], pg_table(a, ds))


# ---- federations over PostgreSQL -------------------------------------------


class PgFed(qt.FedClient):
    """The example federation with every dataset's source in PostgreSQL
    (its table <agency>_<table>) and run by `engine`: configs written to
    etc/, the untouched example configs to sqlite-etc/ for the oracle and
    the query generator (they read the SQLite files the tables came from).
    datasets(agency, cfg) may rewrite an agent's datasets further, and
    policy(agency, policy mapping) its example policy."""

    def __init__(self, h, name, conninfo, engine="pushdown",
                 agencies=EXAMPLE_AGENCIES, datasets=None, policy=None):
        self.h = h
        self.root = h.root / f"pg-{name}"
        self.etc = self.root / "etc"
        self.run = self.root / "run"
        oracle_etc = self.root / "sqlite-etc"
        for d in (self.etc, self.run, oracle_etc):
            d.mkdir(parents=True)
        (self.root / "pki").symlink_to(h.pki)
        (self.root / "data").symlink_to(qt.query_data(h))
        self.agencies = list(agencies)
        self.aliases = ([("hied", qt.HIED)]
                        if all(a in agencies for a in qt.HIED) else [])
        self.agents = {}
        self.channels = []
        for a in agencies:
            shutil.copy(REPO / f"deploy/examples/etc/agent-{a}.yaml",
                        oracle_etc / f"agent-{a}.yaml")
            cfg = example_config(a)
            for ds in cfg["datasets"]:
                ds["source"] = {"postgres": conninfo,
                                "table": pg_table(a, ds)}
                ds["engine"] = engine
            if datasets:
                datasets(a, cfg)
            cfg.setdefault("policy", ri.example_policy_section(a))
            path = self.etc / f"agent-{a}.yaml"
            write_yaml(path, cfg)
            ri.install_example_policy(
                h, path, policy and (lambda t, a=a: ri.edit_policy_text(
                    t, lambda doc: policy(a, doc))))
            self.agents[a] = h.start_agent(path, timeout=120)
        gw = gateway_config(h, self.run,
                            [(a, self.agents[a].addr) for a in agencies],
                            self.aliases)
        self.gw_cfg_path = self.etc / "gateway.yaml"
        write_yaml(self.gw_cfg_path, gw)
        self.gateway = h.start_gateway(self.gw_cfg_path)
        self.client_cfg = h.client_config(self.gateway.addr,
                                          name=f"pg-{name}-client")
        self.catalog = qt.Catalog([oracle_etc / f"agent-{a}.yaml"
                                   for a in agencies], self.aliases)


# ---- checking random queries against the oracle ---------------------------


def expect_answer(h, stub, src, spec, sql):
    """fedq's table for sql equals the oracle's (returned), or it is the
    refusal the generator predicts (None)."""
    p = h.proto
    if spec.get("refusal") or spec.get("refusal_any"):
        any_of = spec.get("refusal_any", ())
        kw = {"any_of": any_of} if any_of else {}
        qt.expect_refusal(h, None, stub, sql, spec.get("refusal"), **kw)
        return None
    want = qt.oracle(src, spec)
    try:
        got = qt.query_grpc(p, stub, sql)
    except grpc.RpcError as e:
        raise TestFailure(f"{e.code().name}: {e.details()}")
    agencies = qt.HIED if spec["source"] == "hied" else [spec["source"]]
    qt.compare(src, spec, got, want, agencies)
    check(not got["partial"] and not got["missing"],
          f"partial {got['partial']} missing {got['missing']}")
    return want


def run_random(h, fed, n_queries, n_trees, seed_offset):
    """n_queries from query_tests' generator (every aggregate) and n_trees
    filter trees from language_tests' generator, each compared with the
    oracle. Returns (answered, refused, released groups); raises with the
    failures grouped by kind."""
    stub = fed.stub()
    gen = qt.Generator(random.Random(qt.SEED + seed_offset), fed.catalog,
                       new_aggs=True)
    trees = lt.BoolGenerator(random.Random(qt.SEED + seed_offset + 1),
                             fed.catalog)
    failures, answered, refused, released = [], 0, 0, 0
    for i in range(n_queries + n_trees):
        if i < n_queries:
            src, spec, sql = gen.query(i)
        else:
            src, spec, sql = trees.bool_query(i - n_queries)
        try:
            want = expect_answer(h, stub, src, spec, sql)
        except TestFailure as e:
            failures.append((f"{i} {qt.one_line(sql)!r}", str(e)))
            continue
        if want is None:
            refused += 1
            continue
        answered += 1
        released += sum(not qt.group_hidden(g) for g in want.values())
    if failures:
        kinds = {}
        for f in failures:
            kinds.setdefault(qt.failure_kind(f[1]), []).append(f)
        raise TestFailure(
            f"{len(failures)} wrong of {n_queries + n_trees} random "
            f"queries, {len(kinds)} kinds: " + " || ".join(
                f"{len(v)}x {k!r}, e.g. query {v[0][0]}: {v[0][1]}"
                for k, v in sorted(kinds.items(),
                                   key=lambda kv: -len(kv[1]))))
    return answered, refused, released


def run_parallel(h, fed, n, seed_offset, workers=4):
    """n random queries in flight `workers` at a time (the agents' pooled
    connections shared between calls), each compared with the oracle."""
    p = h.proto
    stub = fed.stub()
    gen = qt.Generator(random.Random(qt.SEED + seed_offset), fed.catalog,
                       new_aggs=True)
    cases = []
    for i in range(n * 2):
        src, spec, sql = gen.query(i)
        if not (spec.get("refusal") or spec.get("refusal_any")):
            cases.append((src, spec, sql, qt.oracle(src, spec)))
        if len(cases) == n:
            break
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futs = [pool.submit(qt.query_grpc, p, stub, sql)
                for _, _, sql, _ in cases]
        for (src, spec, sql, want), fut in zip(cases, futs):
            try:
                got = fut.result()
            except grpc.RpcError as e:
                raise TestFailure(f"{qt.one_line(sql)!r}: {e.code().name}: "
                                  f"{e.details()}")
            agencies = (qt.HIED if spec["source"] == "hied"
                        else [spec["source"]])
            try:
                qt.compare(src, spec, got, want, agencies)
            except TestFailure as e:
                raise TestFailure(f"in parallel: {qt.one_line(sql)!r}: {e}")
    return len(cases)


GROUP_BY_SQL = ("SELECT town, COUNT(*), SUM(benefit) FROM dss.enrollment "
                "WHERE birth_year BETWEEN 1950 AND 1990 GROUP BY town")


def median_ms(stub, p, sql, n=15):
    times = []
    for _ in range(n):
        t0 = time.monotonic()
        stub.Query(qreq(p, sql), timeout=qt.CALL_TIMEOUT)
        times.append((time.monotonic() - t0) * 1000)
    return statistics.median(times)


# ---- tests -----------------------------------------------------------------


@test
@qt.seeded
def pushdown_oracle(h):
    """The example federation with every dataset in PostgreSQL and engine
    pushdown: random queries of every aggregate (COUNT, SUM, AVG, VAR,
    STDDEV, COUNT(DISTINCT), HISTOGRAM, QUANTILE, NULL keys, the pooled
    hied alias) and random filter trees agree with the oracle over the
    SQLite files the tables were loaded from, one at a time and four at a
    time."""
    cluster = pg_cluster(h)
    load_examples(h, cluster)
    fed = PgFed(h, "pushdown", cluster.conninfo)
    try:
        t0 = time.monotonic()
        answered, refused, released = run_random(h, fed, N_QUERIES, N_TREES,
                                                 0)
        took = time.monotonic() - t0
        check(answered >= (N_QUERIES + N_TREES) // 2 and released,
              f"only {answered} queries answered, {released} groups "
              f"released")
        n_par = run_parallel(h, fed, 40, 7)
        ms = median_ms(fed.stub(), h.proto, GROUP_BY_SQL)
        ri.print_note(f"seed {qt.SEED}; {answered} answered and {refused} "
                      f"refused as predicted of {N_QUERIES} random queries "
                      f"and {N_TREES} filter trees in {took:.1f}s; "
                      f"{released} released groups; {n_par} more, 4 at a "
                      f"time; GROUP BY town through "
                      f"the gateway: median {ms:.1f} ms")
    finally:
        fed.close()


def sql_lines(log_text):
    """The statements a PostgreSQL log shows (log_statement = all), and
    the parameter lines that follow them."""
    stmts = re.findall(r"(?:statement|execute [^:]*): (.*)", log_text)
    params = re.findall(r"DETAIL:\s+[Pp]arameters: (.*)", log_text)
    return stmts, params


@test
def pushdown_parameterised(h):
    """Every literal of a plan reaches PostgreSQL as a bound parameter,
    never in the statement's text; the statement runs read-only."""
    cluster = pg_cluster(h)
    load_examples(h, cluster, ["dss"])
    fed = PgFed(h, "params", cluster.conninfo, agencies=["dss"])
    p = h.proto
    log = cluster.dir / "server.log"
    sql = ("SELECT program, COUNT(*), HISTOGRAM(benefit, 12345, 67891) "
           "FROM dss.enrollment WHERE town IN ('T123', 'T042') AND "
           "month >= '2024-03' AND NOT (household_size = 7) GROUP BY "
           "program")
    try:
        cluster.psql("ALTER SYSTEM SET log_statement = 'all'",
                     "SELECT pg_reload_conf()", user="postgres")
        start = log.stat().st_size
        time.sleep(0.2)  # the reload reaches the backends
        stub = fed.stub()
        # A pooled connection may predate the reload: ask until logged.
        def logged():
            stub.Query(qreq(p, sql), timeout=qt.CALL_TIMEOUT)
            with open(log, errors="replace") as f:
                f.seek(start)
                text = f.read()
            return text if "T123" in text else None
        text = wait_until(logged, 20, "the query in the PostgreSQL log", 0.5)
        stmts, params = sql_lines(text)
        ours = [s for s in stmts if "enrollment" in s]
        check(ours, f"no statement of ours in the log: {tail(text)}")
        for lit in ("T123", "T042", "2024-03", "12345", "67891"):
            check(not any(lit in s for s in ours),
                  f"literal {lit!r} in the statement text: {ours[0][:300]}")
            check(any(lit in s for s in params),
                  f"literal {lit!r} not among the bound parameters "
                  f"{params[:3]}")
        check("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" in text,
              "no read-only transaction logged")
    finally:
        cluster.psql("ALTER SYSTEM RESET log_statement",
                     "SELECT pg_reload_conf()", user="postgres")
        fed.close()


@test
def pushdown_unreachable(h):
    """A pushdown dataset whose database goes away: its queries fail with
    a message that names the dataset and the failed connection (and never
    the password), while the agent keeps serving its other dataset and
    exits cleanly."""
    main = pg_cluster(h)
    load_examples(h, main, ["dss"])
    lost = PgCluster()  # a second cluster, stopped during the test
    fed = None
    try:
        src = next(ds for ds in example_config("dss")["datasets"]
                   if ds["name"] == "enrollment")
        data = qt.query_data(h)
        sqlite_path = data / Path(src["source"]["sqlite"]).relative_to(
            "../data")
        lost.load(sqlite_path, src["source"]["table"], "lost_enrollment")
        lost_ci = f"{lost.conninfo} password={SECRET}"

        def two_datasets(agency, cfg):
            kept = dict(copy.deepcopy(cfg["datasets"][0]),
                        name="enrollment_kept")
            cfg["datasets"][0]["source"] = {"postgres": lost_ci,
                                            "table": "lost_enrollment"}
            cfg["datasets"].append(kept)

        def kept_policy(agency, pol):
            for ag in pol["agreements"]:
                ag["datasets"] += [dict(d, name="enrollment_kept")
                                   for d in ag["datasets"]
                                   if d["name"] == "enrollment"]

        fed = PgFed(h, "lost", main.conninfo, agencies=["dss"],
                    datasets=two_datasets, policy=kept_policy)
        p = h.proto
        stub = fed.stub()
        con = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
        (n,) = con.execute(f"SELECT COUNT(*) FROM "
                           f"{src['source']['table']}").fetchone()
        con.close()

        def count(ds):
            r = stub.Query(qreq(p, f"SELECT COUNT(*) FROM dss.{ds}"),
                           timeout=qt.CALL_TIMEOUT)
            return r.rows[0].cells[0].int_value
        check(count("enrollment") == n, "before: wrong count")
        lost.stop()
        t0 = time.monotonic()
        e = ri.rpc_error(stub.Query, qreq(
            p, "SELECT program, COUNT(*) FROM dss.enrollment GROUP BY "
               "program"), timeout=qt.CALL_TIMEOUT)
        took = time.monotonic() - t0
        msg = e.details() or ""
        check("dataset 'enrollment'" in msg and
              "cannot connect to its PostgreSQL database" in msg,
              f"{e.code().name} {msg!r}: the message should name the "
              f"dataset and the failed connection")
        check(SECRET not in msg, f"the password shows in {msg!r}")
        check(took < 15, f"the failure took {took:.1f}s")
        check(count("enrollment_kept") == n, "the other dataset: wrong "
                                             "count")
        fed.agents["dss"].check_alive()
        check(SECRET not in fed.agents["dss"].stderr_text(),
              "the password shows in the agent's log")
        ri.print_note(f"{e.code().name} in {took * 1000:.0f} ms: "
                      f"{msg[:160]}")
    finally:
        lost.stop()
        if fed:
            fed.close()


@test
@qt.seeded
def pushdown_extract_source(h):
    """engine: extract with source postgres: the extracts built from the
    PostgreSQL tables answer random queries as the oracle over the SQLite
    files does."""
    cluster = pg_cluster(h)
    load_examples(h, cluster)
    fed = PgFed(h, "extract", cluster.conninfo, engine="extract")
    try:
        t0 = time.monotonic()
        answered, refused, released = run_random(
            h, fed, N_EXTRACT, max(N_EXTRACT // 4, 1), 104729)
        check(answered and released, f"{answered} answered, {released} "
                                     f"groups released")
        ri.print_note(f"seed {qt.SEED}; {answered} answered and {refused} "
                      f"refused as predicted in "
                      f"{time.monotonic() - t0:.1f}s; {released} released "
                      f"groups")
    finally:
        fed.close()
