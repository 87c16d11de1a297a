"""
fedq integration tests of the extract store and the steward's control
channel (imported by run_integration.py, registered with its @test
decorator, run by its runner).

Each test runs one dss agent (the example configuration, on a private copy
of fedq-synth's dss.sqlite, which the test changes with Python's sqlite3)
and a gateway. Expected tables come from an oracle over that SQLite file:
per group COUNT(*), SUM(benefit) and COUNT(DISTINCT person_id), with the
gateway's rule that a group of fewer than 11 persons shows no value.
Nothing of fedq's output feeds an expectation.
"""

import calendar
import inspect
import os
import re
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import threading
import time
from pathlib import Path

import yaml

import run_integration as ri
from run_integration import (REPO, check, cli_terms, free_port,
                             gateway_config, qreq, rpc_error,
                             sanitizer_report, tail, test, wait_until,
                             write_yaml)

MIN_CELL = 11
CALL_TIMEOUT = 30
VINTAGE_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
BY_PROGRAM = ("SELECT program, COUNT(*), SUM(benefit) FROM dss.enrollment "
              "GROUP BY program")
BY_TOWN = ("SELECT program, town, COUNT(*), SUM(benefit) FROM dss.enrollment "
           "WHERE town <= 'T012' GROUP BY program, town")
EXTRA_PREFIX = "ZZ"  # person ids of the rows the tests add


def store_data(h):
    """The run's fedq-synth data (query_tests writes it once per run);
    tests copy its dss.sqlite."""
    import query_tests
    return query_tests.query_data(h)


# ---- the oracle ------------------------------------------------------------


def oracle(db_path, sql=BY_PROGRAM):
    """{key tuple: (count, sum)} for the groups that show values."""
    groups = ["program", "town"] if sql == BY_TOWN else ["program"]
    where = "WHERE town <= 'T012'" if sql == BY_TOWN else ""
    g = ", ".join(groups)
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        rows = db.execute(
            f"SELECT {g}, COUNT(*), SUM(benefit), COUNT(DISTINCT person_id) "
            f"FROM enrollment {where} GROUP BY {g}").fetchall()
    finally:
        db.close()
    n = len(groups)
    return {tuple(r[:n]): (r[n], r[n + 1]) for r in rows
            if r[n + 2] >= MIN_CELL}


def answer(r, n_keys):
    """A QueryResponse as {key tuple: (count, sum)}, rows with values only."""
    out = {}
    for row in r.rows:
        vals = []
        for c in row.cells:
            kind = c.WhichOneof("value")
            vals.append(getattr(c, kind) if kind else None)
        if vals[n_keys] is not None:
            out[tuple(vals[:n_keys])] = (vals[n_keys], vals[n_keys + 1])
    return out


def add_persons(db_path, n, tag="A"):
    """Adds n persons (one TANF row each, in T001..T006) marked by tag."""
    db = sqlite3.connect(db_path)
    with db:
        db.executemany(
            "INSERT INTO enrollment (person_id, program, month, town, "
            "household_size, birth_year, sex, benefit) "
            "VALUES (?, 'TANF', '2024-01', ?, 1, 1980, 'F', ?)",
            [(f"{EXTRA_PREFIX}{tag}{i:05d}", f"T00{1 + i % 6}", 1000 + i)
             for i in range(n)])
    db.close()


def remove_persons(db_path):
    db = sqlite3.connect(db_path)
    with db:
        db.execute("DELETE FROM enrollment WHERE person_id LIKE ?",
                   (EXTRA_PREFIX + "%",))
    db.close()


# ---- one agency's agent and a gateway ---------------------------------------


class StoreFed:
    """The dss agent from deploy/examples (a fixed port, so a restarted
    agent keeps its address) on a private copy of the data, and a
    gateway."""

    def __init__(self, h, name, edit=None, check_first=False):
        self.h = h
        self.root = h.root / f"st-{name}"
        self.etc = self.root / "etc"
        self.run = self.root / "run"
        self.data = self.root / "data" / "dss"
        for d in (self.etc, self.run, self.data):
            d.mkdir(parents=True)
        (self.root / "pki").symlink_to(h.pki)
        self.db = self.data / "dss.sqlite"
        shutil.copy(store_data(h) / "dss" / "dss.sqlite", self.db)
        self.extracts = self.root / "extracts" / "dss"
        cfg = yaml.safe_load(
            (REPO / "deploy/examples/etc/agent-dss.yaml").read_text())
        cfg["listen"] = f"127.0.0.1:{free_port()}"
        cfg.setdefault("policy", ri.example_policy_section("dss"))
        if edit:
            edit(cfg)
        self.cfg = cfg
        self.cfg_path = self.etc / "agent-dss.yaml"
        write_yaml(self.cfg_path, cfg)
        # The oracle here weighs only the minimum cell count: the store's
        # refreshes are what these tests check, not the dominance rules.
        ri.install_example_policy(h, self.cfg_path, ri.no_dominance)
        if check_first:
            self.check_config()
        self.agent = h.start_agent(self.cfg_path)
        gw = gateway_config(h, self.run, [("dss", self.agent.addr)])
        self.gw_cfg_path = self.etc / "gateway.yaml"
        write_yaml(self.gw_cfg_path, gw)
        self.gateway = h.start_gateway(self.gw_cfg_path)
        self.channels = []
        self.stub = self.new_stub()
        self.client_cfg = h.client_config(self.gateway.addr,
                                          name=f"st-{name}-client")

    def check_config(self):
        """--check validates without building an extract."""
        r = subprocess.run([str(self.h.bin / "fedq-agent"), "--check",
                            str(self.cfg_path)], capture_output=True,
                           text=True, env=self.h.env, timeout=60)
        check(r.returncode == 0 and "configuration OK" in r.stdout and
              sanitizer_report(r.stderr) is None,
              f"--check: rc {r.returncode}: {tail(r.stderr)}")
        check(not self.extracts.parent.exists(),
              f"--check created {self.extracts.parent}")

    def new_stub(self):
        ch, stub = self.h.gateway_stub(self.gateway.addr)
        self.channels.append(ch)
        return stub

    def close(self):
        for ch in self.channels:
            ch.close()

    def procs(self):
        return [self.agent, self.gateway]

    def query(self, sql=BY_PROGRAM, stub=None):
        r = (stub or self.stub).Query(qreq(self.h.proto, sql),
                                      timeout=CALL_TIMEOUT)
        return answer(r, 2 if sql == BY_TOWN else 1), \
            [(v.agency, v.vintage) for v in r.vintages]

    def restart_agent(self):
        self.agent.stop()
        self.h.procs.remove(self.agent)
        self.agent = self.h.start_agent(self.cfg_path)
        return self.agent

    def steward(self, *args, user=None, timeout=120):
        """fedq-agent ARGS --config (as user, with runuser, if given)."""
        argv = [str(self.h.bin / "fedq-agent")] + list(args) + \
            ["--config", str(self.cfg_path)]
        if user:
            argv = ["runuser", "-u", user, "--"] + argv
        r = subprocess.run(argv, capture_output=True, text=True,
                           env=self.h.env, timeout=timeout)
        check(sanitizer_report(r.stderr) is None,
              f"fedq-agent {' '.join(args)}: {sanitizer_report(r.stderr)}")
        return r

    def refresh(self):
        r = self.steward("refresh", "enrollment")
        check(r.returncode == 0 and r.stdout.startswith("ok "),
              f"fedq-agent refresh: rc {r.returncode}, out {r.stdout!r}, "
              f"err {tail(r.stderr)}")
        v = r.stdout.split()[1]
        check(VINTAGE_RE.match(v), f"refresh answered vintage {v!r}")
        return v

    def socket_path(self):
        return self.run / "agent-dss.ctl"

    def files(self):
        return sorted(p.name for p in self.extracts.glob("enrollment.*.fqx"))


def control(path, data, timeout=10):
    """Sends raw bytes to the control socket; returns the whole answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(data)
        chunks = []
        while True:
            try:
                b = s.recv(4096)
            except ConnectionResetError:
                break
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks).decode()


def check_answer(fed, want, sql=BY_PROGRAM, what=""):
    got, vintages = fed.query(sql)
    check(got == want, f"{what}: answer {sorted(got.items())} != oracle "
                       f"{sorted(want.items())}")
    return vintages


def one_vintage(vintages):
    check(len(vintages) == 1 and vintages[0][0] == "dss" and
          VINTAGE_RE.match(vintages[0][1]),
          f"vintages {vintages}: want one for dss, UTC ISO 8601")
    return vintages[0][1]


def next_second(vintage):
    """Waits until the wall clock is past vintage's second, so that a new
    extract gets another vintage."""
    t = calendar.timegm(time.strptime(vintage, "%Y-%m-%dT%H:%M:%SZ"))
    while time.time() < t + 1.05:
        time.sleep(0.05)


# ---- tests -------------------------------------------------------------------


@test
def store_build_then_map(h):
    """(a) The first start builds the extract, a restart maps it without
    rebuilding, a truncated file is refused with a log line and rebuilt."""
    fed = StoreFed(h, "start", check_first=True)
    try:
        log = fed.agent.stderr_text()
        check("extract enrollment: built at start" in log,
              f"first start did not log a build: {tail(log)}")
        check(fed.files() == ["enrollment.1.fqx"], f"files {fed.files()}")
        mode = stat.S_IMODE(fed.extracts.stat().st_mode)
        check(mode == 0o700, f"extract directory mode {oct(mode)}")
        want = oracle(fed.db)
        v1 = one_vintage(check_answer(fed, want, what="first start"))
        f1 = fed.extracts / "enrollment.1.fqx"
        mtime = f1.stat().st_mtime_ns

        t0 = time.monotonic()
        agent = fed.restart_agent()
        took = time.monotonic() - t0
        log = agent.stderr_text()
        check("extract enrollment: mapped" in log and "built" not in log,
              f"restart did not map the extract: {tail(log)}")
        check(f1.stat().st_mtime_ns == mtime and
              fed.files() == ["enrollment.1.fqx"],
              f"restart touched the files: {fed.files()}")
        v2 = one_vintage(wait_until(
            lambda: check_answer(fed, want, what="after restart"), 20,
            "the gateway to reach the restarted agent", 0.2,
            watch=fed.procs()))
        check(v2 == v1, f"vintage {v2} after restart, was {v1}")
        ri.print_note(f"restart with a mapped extract {took:.2f}s")

        agent.stop()
        h.procs.remove(agent)
        os.truncate(f1, f1.stat().st_size // 2)
        fed.agent = agent = h.start_agent(fed.cfg_path)
        log = agent.stderr_text()
        check("refusing" in log and "enrollment.1.fqx" in log and
              "built at start" in log,
              f"a truncated extract was not refused and rebuilt: "
              f"{tail(log)}")
        check("enrollment.2.fqx" in fed.files(), f"files {fed.files()}")
        wait_until(lambda: check_answer(fed, want, what="rebuilt"), 20,
                   "answers from the rebuilt extract", 0.2,
                   watch=fed.procs())
    finally:
        fed.close()


@test
def store_refresh_command(h):
    """(b) fedq-agent refresh after the source changed: the answers follow
    the new data and carry the new vintage (gRPC, the CLI's table footer
    and JSON); status lists rows, bytes and vintage."""
    fed = StoreFed(h, "refresh")
    try:
        old = oracle(fed.db)
        v1 = one_vintage(check_answer(fed, old, what="before"))
        add_persons(fed.db, 40)
        new = oracle(fed.db)
        check(new != old, "the added persons do not change the oracle")
        check_answer(fed, old, what="changed source, no refresh yet")
        next_second(v1)
        v2 = fed.refresh()
        check(v2 != v1, f"refresh kept vintage {v1}")
        check(one_vintage(check_answer(fed, new, what="after refresh")) == v2,
              "the answer's vintage is not the refresh's")
        check_answer(fed, oracle(fed.db, BY_TOWN), BY_TOWN, "by town")

        r = h.fedq("query", *cli_terms(), BY_PROGRAM, config=fed.client_cfg)
        check(r.returncode == 0 and f"data as of: dss {v2}\n" in r.stdout,
              f"fedq query footer: rc {r.returncode}: {r.stdout[-300:]!r}")
        out, _ = h.fedq_json("query", *cli_terms(), BY_PROGRAM,
                             config=fed.client_cfg)
        check(out.get("vintages") == [{"agency": "dss", "vintage": v2}],
              f"fedq query --format json vintages: {out.get('vintages')}")

        st = fed.steward("status")
        n_rows = sum(1 for _ in sqlite3.connect(fed.db).execute(
            "SELECT 1 FROM enrollment"))
        check(st.returncode == 0 and st.stdout.startswith("ok 1 datasets\n"),
              f"status: rc {st.returncode}: {st.stdout!r} {tail(st.stderr)}")
        line = st.stdout.splitlines()[1]
        check(line.startswith("enrollment engine=extract ") and
              f" rows={n_rows} " in line and f" vintage={v2}" in line and
              re.search(r" bytes=\d+ ", line),
              f"status line {line!r} (want rows={n_rows}, vintage={v2})")

        r = fed.steward("refresh", "nosuch")
        check(r.returncode == 1 and "no dataset 'nosuch'" in r.stderr,
              f"refresh nosuch: rc {r.returncode}, {r.stderr!r}")
        log = fed.agent.stderr_text()
        check(re.search(r"extract enrollment: refresh: \d+ rows, \d+ bytes, "
                        r"[0-9.]+ s, vintage " + re.escape(v2), log),
              f"no refresh log line: {tail(log)}")
        check(EXTRA_PREFIX not in log, "the log shows data")
    finally:
        fed.close()


@test
def store_refresh_concurrent(h):
    """(c) 4 threads query without pause while the extract is refreshed 5
    times between two states of the source: every answer is one state's
    oracle, whole, and none fails."""
    fed = StoreFed(h, "concurrent")
    try:
        a = oracle(fed.db, BY_TOWN)
        add_persons(fed.db, 120, "C")  # 20 per town: past the threshold
        b = oracle(fed.db, BY_TOWN)
        remove_persons(fed.db)
        check(a != b, "the two states have the same oracle")
        stop = threading.Event()
        seen = {"a": 0, "b": 0}
        bad = []
        lock = threading.Lock()

        def worker():
            stub = fed.new_stub()
            while not stop.is_set():
                try:
                    got, _ = fed.query(BY_TOWN, stub=stub)
                except Exception as e:  # noqa: BLE001
                    with lock:
                        bad.append(f"error: {e}")
                    continue
                with lock:
                    if got == a:
                        seen["a"] += 1
                    elif got == b:
                        seen["b"] += 1
                    else:
                        bad.append(f"mixed: {sorted(got.items())[:6]}")

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.5)
            for i in range(5):
                if i % 2 == 0:
                    add_persons(fed.db, 120, "C")
                else:
                    remove_persons(fed.db)
                fed.refresh()
                time.sleep(0.3)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        check(not bad, f"{len(bad)} bad answers, first: {bad[:2]}")
        check(seen["a"] > 0 and seen["b"] > 0,
              f"answers seen: {seen} (want both states)")
        check_answer(fed, b, BY_TOWN, "after the last refresh")
        check(len(fed.files()) == 2, f"files kept: {fed.files()}")
        ri.print_note(f"{seen['a'] + seen['b']} answers during 5 refreshes")
    finally:
        fed.close()


@test
def store_refresh_failure(h):
    """(d) A refresh that fails (the source is gone) keeps the old extract
    serving; the socket answers "error ..."; the log says why."""
    fed = StoreFed(h, "failure")
    try:
        old = oracle(fed.db)
        v1 = one_vintage(check_answer(fed, old, what="before"))
        moved = fed.db.with_suffix(".away")
        fed.db.rename(moved)
        try:
            ans = control(fed.socket_path(), b"refresh enrollment\n")
            check(ans.startswith("error ") and ans.endswith("\n") and
                  ans.count("\n") == 1, f"socket answered {ans!r}")
            r = fed.steward("refresh", "enrollment")
            check(r.returncode == 1 and r.stderr.startswith("fedq-agent: "),
                  f"refresh of a missing source: rc {r.returncode} "
                  f"{r.stderr!r}")
            check(one_vintage(check_answer(fed, old, what="failed refresh"))
                  == v1, "the vintage changed after a failed refresh")
            log = fed.agent.stderr_text()
            check("refresh failed, the old extract keeps serving" in log,
                  f"no log of the failed refresh: {tail(log)}")
            check(fed.files() == ["enrollment.1.fqx"],
                  f"a failed refresh left files: {fed.files()}")
        finally:
            moved.rename(fed.db)
        fed.refresh()
    finally:
        fed.close()


# The same control(), run by another process as another user.
RUN_AS_NOBODY = ("import socket, sys\n" + inspect.getsource(control) + """
try:
    print("answer", control(sys.argv[1], b"status\\n").strip())
except OSError as e:
    print("connect-failed", e.errno)
""")


@test
def store_control_access(h):
    """(e) The control socket is 0600, refuses another uid (the file mode,
    and SO_PEERCRED when the mode is loosened), garbage lines and
    over-long lines."""
    fed = StoreFed(h, "access")
    try:
        path = fed.socket_path()
        st = path.stat()
        check(stat.S_ISSOCK(st.st_mode) and
              stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.geteuid(),
              f"socket mode {oct(st.st_mode)} uid {st.st_uid}")
        ans = control(path, b"hello world\n")
        check(ans.startswith("error unknown command"), f"garbage: {ans!r}")
        ans = control(path, b"x" * 5000 + b"\n")
        check(ans == "error request line too long\n", f"long line: {ans!r}")
        ans = control(path, b"refresh ../../etc/passwd\n")
        check(ans.startswith("error "), f"bad name: {ans!r}")
        ans = control(path, b"status\n")
        check(ans.startswith("ok 1 datasets\n"), f"status: {ans!r}")

        if os.geteuid() != 0 or not shutil.which("runuser"):
            ri.print_note("not root: other-uid checks skipped")
            return
        # nobody must reach the socket's directory to be refused by it.
        saved = stat.S_IMODE(h.root.stat().st_mode)
        os.chmod(h.root, 0o711)
        try:
            def as_nobody():
                r = subprocess.run(
                    ["runuser", "-u", "nobody", "--", "/usr/bin/python3",
                     "-c", RUN_AS_NOBODY, str(path)],
                    capture_output=True, text=True, timeout=30)
                check(r.returncode == 0, f"python as nobody: {r.stderr}")
                return r.stdout.strip()
            out = as_nobody()
            check(out.startswith("connect-failed 13"),
                  f"nobody on a 0600 socket: {out!r}")
            os.chmod(path, 0o666)  # the mode is not the only guard
            out = as_nobody()
            check(out.startswith("answer error permission denied: uid "
                                 f"{65534}"),
                  f"nobody past the mode: {out!r}")
            check("refusing uid 65534" in fed.agent.stderr_text(),
                  "the refusal is not logged")
            r = fed.steward("status", user="nobody")
            check(r.returncode == 1 and "permission denied" in r.stderr,
                  f"fedq-agent status as nobody: rc {r.returncode} "
                  f"{r.stderr!r}")
        finally:
            os.chmod(h.root, saved)
    finally:
        fed.close()


@test
def store_scheduled_refresh(h):
    """(f) refresh: 1s picks up a change of the source by itself."""
    def edit(cfg):
        cfg["datasets"][0]["refresh"] = "1s"
    fed = StoreFed(h, "schedule", edit)
    try:
        old = oracle(fed.db)
        v1 = one_vintage(check_answer(fed, old, what="before"))
        add_persons(fed.db, 30)
        new = oracle(fed.db)
        got = wait_until(lambda: (lambda r: r if r[0] == new else None)(
            fed.query()), 30, "the scheduled refresh to serve the new data",
            0.2, watch=fed.procs())
        check(one_vintage(got[1]) != v1, "the vintage did not change")
        check("scheduled refresh" in fed.agent.stderr_text(),
              "no scheduled refresh in the log")
    finally:
        fed.close()


@test
def store_sighup_columns(h):
    """(g) SIGHUP with a changed column list rebuilds the extract; SIGHUP
    with the same configuration does not."""
    fed = StoreFed(h, "sighup")
    try:
        want = oracle(fed.db)
        check_answer(fed, want, what="before")
        agent = fed.agent
        cfg = fed.cfg
        cfg["datasets"][0]["columns"] = [
            c for c in cfg["datasets"][0]["columns"] if c["name"] != "sex"]
        write_yaml(fed.cfg_path, cfg)
        agent.signal(signal.SIGHUP)
        wait_until(lambda: "reloaded" in agent.stderr_text(), 30,
                   "the reload", 0.1, watch=fed.procs())
        log = agent.stderr_text()
        check("extract enrollment: built on reload" in log,
              f"no rebuild on reload: {tail(log)}")
        check(fed.files() == ["enrollment.1.fqx", "enrollment.2.fqx"],
              f"files {fed.files()}")
        check_answer(fed, want, what="after the reload")
        e = rpc_error(fed.stub.Query, qreq(
            h.proto, "SELECT sex, COUNT(*) FROM dss.enrollment GROUP BY sex"),
            timeout=CALL_TIMEOUT)
        check("sex" in (e.details() or ""),
              f"a removed column: {e.details()!r}")

        n = log.count("built on reload")
        agent.signal(signal.SIGHUP)
        wait_until(lambda: agent.stderr_text().count("reloaded") >= 2, 30,
                   "the second reload", 0.1, watch=fed.procs())
        check(agent.stderr_text().count("built on reload") == n,
              "an unchanged reload rebuilt the extract")
        check_answer(fed, want, what="after the second reload")
    finally:
        fed.close()
