#!/usr/bin/python3
"""
fedq integration tests: real fedq-agent / fedq-gateway / fedq processes over
mutual TLS on 127.0.0.1, checked from the outside.

Usage:
    /usr/bin/python3 tests/integration/run_integration.py --bin build-asan \
        [--keep-logs] [-k SUBSTRING]

Run it with Debian's interpreter (/usr/bin/python3): it needs grpcio,
grpc_tools, protobuf and yaml. The Python gRPC stubs are generated from the
.proto files at run time, so every call made from Python is an interop test
of the wire contract: nothing but proto/ is shared with the C code.

Expectations are computed independently of the programs under test: from the
YAML of the configurations (parsed with PyYAML), from the PKI we issued, and
from the status codes the protocol documents. Output: one line per test
(`PASS name (1.2s)` / `FAIL name: reason`), then exactly one summary line
`N passed, M failed, 0 skipped`; the exit code is 0 iff nothing failed.
"""

import argparse
import collections
import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

# The C servers are children of this process; gRPC's fork handlers are only
# a source of warnings here (subprocess execs at once).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
# The Python side's own gRPC core logs (e.g. an impostor server whose
# certificate lacks 127.0.0.1) are noise here; the servers keep theirs.
_GRPC_VERBOSITY = os.environ.get("GRPC_VERBOSITY")
os.environ["GRPC_VERBOSITY"] = "NONE"

import grpc  # noqa: E402
import yaml  # noqa: E402
from grpc_tools import protoc  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FED = "fedq.local"  # the federation of deploy/examples, so they run as-is
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                     "UndefinedBehaviorSanitizer")
AGENCIES = ["dol", "dss", "uhs", "csu", "ccs"]  # the fixture federation
EXAMPLE_AGENCIES = ["dol", "dss", "doe", "uhs", "csu", "ccs"]
STOP_TIMEOUT = 20.0  # seconds a server may take to exit after SIGTERM
# What every query names (issue 6): the data sharing agreement and the
# purpose. The test federations run a permissive policy per agency under
# TEST-2026; the example federations the example policies' P20W-2026-01.
Terms = collections.namedtuple("Terms", "agreement purpose")
TEST_TERMS = Terms("TEST-2026", "testing")
EXAMPLE_TERMS = Terms("P20W-2026-01", "program evaluation")
ALL_AGGREGATES = ["COUNT", "COUNT_DISTINCT", "SUM", "AVG", "VAR", "STDDEV",
                  "HISTOGRAM", "QUANTILE"]


class TestFailure(Exception):
    """An expectation did not hold; the message is the test's reason."""


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def wait_until(pred, timeout, what, interval=0.05, watch=()):
    """Polls pred until it returns something truthy; bounded by timeout.
    Fails at once if a process in watch has exited (with its sanitizer
    report, if any, which is the likely reason)."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        for p in watch:
            p.check_alive()
        try:
            v = pred()
            if v:
                return v
        except TestFailure:
            raise
        except Exception as e:  # keep polling; report the last error
            last_exc = e
        if time.monotonic() >= deadline:
            extra = f" (last error: {last_exc})" if last_exc else ""
            raise TestFailure(f"timed out after {timeout:.0f}s waiting for "
                              f"{what}{extra}")
        time.sleep(interval)


def free_port():
    """A port nothing listens on (bound, then closed: connects are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- stubs generated from the .proto files --------------------------------


class Proto:
    """Python modules generated from proto/ into a temporary directory."""

    def __init__(self, outdir):
        protos = sorted(str(p.relative_to(REPO / "proto"))
                        for p in (REPO / "proto/fedq/v1").glob("*.proto"))
        self._protoc(["-I", str(REPO / "proto")] + protos, outdir,
                     cwd=REPO / "proto")
        # health.proto is compiled with its own directory as the include
        # root: generated as grpc/health/v1/health_pb2.py it would sit under
        # the name "grpc", which the grpcio package already owns. The proto
        # package (grpc.health.v1), and so the wire names, are unchanged.
        self._protoc(["-I", str(REPO / "proto/grpc/health/v1"),
                      "health.proto"], outdir,
                     cwd=REPO / "proto/grpc/health/v1")
        sys.path.insert(0, str(outdir))
        import importlib
        self.catalog = importlib.import_module("fedq.v1.catalog_pb2")
        self.gw = importlib.import_module("fedq.v1.gateway_pb2")
        self.gw_grpc = importlib.import_module("fedq.v1.gateway_pb2_grpc")
        self.agent = importlib.import_module("fedq.v1.agent_pb2")
        self.agent_grpc = importlib.import_module("fedq.v1.agent_pb2_grpc")
        self.health = importlib.import_module("health_pb2")
        self.health_grpc = importlib.import_module("health_pb2_grpc")

    @staticmethod
    def _protoc(args, outdir, cwd):
        argv = ["grpc_tools.protoc", f"--python_out={outdir}",
                f"--grpc_python_out={outdir}"] + args
        old = os.getcwd()
        os.chdir(cwd)
        try:
            rc = protoc.main(argv)
        finally:
            os.chdir(old)
        if rc != 0:
            raise RuntimeError(f"protoc failed ({rc}): {' '.join(argv)}")


# ---- processes --------------------------------------------------------------


class Proc:
    """A server process with its stdout/stderr in FEDQ_HOME/log/."""

    def __init__(self, h, name, argv):
        self.h = h
        self.name = name
        h.seq += 1
        base = h.log / f"{h.seq:03d}-{name}"
        self.out_path = base.with_suffix(".out")
        self.err_path = base.with_suffix(".err")
        self._out = open(self.out_path, "wb")
        self._err = open(self.err_path, "wb")
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                  stdout=self._out, stderr=self._err,
                                  env=h.env)
        self.pid = self.p.pid
        self.stopped_by_signal = False
        self.addr = None
        self.port = None

    def running(self):
        return self.p.poll() is None

    def stderr_text(self):
        return self.err_path.read_text(errors="replace")

    def check_alive(self):
        if self.running():
            return
        report = sanitizer_report(self.stderr_text())
        raise TestFailure(f"{self.name} exited with {self.p.returncode}"
                          + (f"; sanitizer: {report}" if report else
                             f": {tail(self.stderr_text())}"))

    def signal(self, sig):
        self.check_alive()
        os.kill(self.pid, sig)
        if sig == signal.SIGSTOP:
            # kill() returns before every thread has stopped; the test's
            # premise is a process that no longer runs.
            wait_until(lambda: self.proc_state() == "T", 5,
                       f"{self.name} to be stopped", 0.005)

    def proc_state(self):
        text = Path(f"/proc/{self.pid}/stat").read_text()
        return text.rsplit(")", 1)[1].split()[0]

    def wait_addr(self, run_dir, file_name, timeout=30):
        """Waits for the run file the server writes once it answers."""
        path = Path(run_dir) / file_name

        def ready():
            if not self.running():
                raise TestFailure(
                    f"{self.name} exited with {self.p.returncode} before "
                    f"writing {path}: {tail(self.stderr_text())}")
            if path.exists():
                text = path.read_text().strip()
                return text or None
            return None
        self.addr = wait_until(ready, timeout, f"{path}")
        self.port = int(self.addr.rsplit(":", 1)[1])
        return self.addr

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM (SIGCONT first, in case a test stopped it); asserts a clean
        exit: code 0 and no sanitizer report. Returns seconds to exit."""
        t0 = time.monotonic()
        if self.running():
            os.kill(self.pid, signal.SIGCONT)
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                self._close()
                raise TestFailure(f"{self.name} did not exit within "
                                  f"{timeout:.0f}s of SIGTERM (killed)")
        took = time.monotonic() - t0
        self._close()
        rc = self.p.returncode
        report = sanitizer_report(self.stderr_text())
        check(report is None, f"{self.name}: sanitizer report in "
                              f"{self.err_path}: {report}")
        check(rc == 0, f"{self.name} exited with {rc}, expected 0; "
                       f"see {self.err_path}: {tail(self.stderr_text())}")
        return took

    def kill(self):
        if self.running():
            self.p.kill()
            self.p.wait()
        self._close()

    def _close(self):
        for f in (self._out, self._err):
            if not f.closed:
                f.close()


def sanitizer_report(text):
    for m in SANITIZER_MARKERS:
        i = text.find(m)
        if i >= 0:
            return text[max(0, i - 80):i + 300].replace("\n", " | ")
    return None


def tail(text, n=400):
    text = text.strip().replace("\n", " | ")
    return text[-n:]


# ---- the harness: FEDQ_HOME, PKI, configs, processes, channels -------------


class Harness:
    def __init__(self, bindir, proto, keep_logs):
        self.bin = bindir
        self.proto = proto
        self.keep_logs = keep_logs
        self.root = Path(tempfile.mkdtemp(prefix="fedq-it-"))
        for d in ("pki", "etc", "data", "run", "log"):
            (self.root / d).mkdir()
        self.pki = self.root / "pki"
        self.etc = self.root / "etc"
        self.data = self.root / "data"
        self.run = self.root / "run"
        self.log = self.root / "log"
        self.seq = 0
        self.procs = []  # started by the running test; stopped after it
        self.env = dict(os.environ)
        if _GRPC_VERBOSITY is None:
            del self.env["GRPC_VERBOSITY"]
        else:
            self.env["GRPC_VERBOSITY"] = _GRPC_VERBOSITY
        self.env["FEDQ_HOME"] = str(self.root)
        self.env.pop("FEDQ_CONFIG", None)
        # tests/run.sh sets the sanitizer options (with the libcares leak
        # suppression); alone, we still want leaks reported.
        self.env.setdefault("LSAN_OPTIONS", "detect_leaks=1")
        self.shared = {}  # long-lived federations, by name

    # -- PKI

    def pki_sh(self, *args, cwd=None):
        r = subprocess.run(["bash", str(REPO / "deploy/pki.sh")] + list(args),
                           capture_output=True, text=True, cwd=cwd)
        if r.returncode != 0:
            raise RuntimeError(f"pki.sh {' '.join(args)} failed: "
                               f"{r.stderr.strip()}")

    def make_pki(self):
        self.pki_sh("init", str(self.pki), FED)
        self.pki_sh("gateway", str(self.pki))
        for a in sorted(set(AGENCIES + EXAMPLE_AGENCIES)):
            self.pki_sh("agent", str(self.pki), a)
        for a in sorted(set(AGENCIES + EXAMPLE_AGENCIES)):
            self.pki_sh("policy-key", str(self.pki), a)
            self.pki_sh("cell-key", str(self.pki), a)
        self.pki_sh("analyst", str(self.pki), "alice")
        self.pki_sh("analyst", str(self.pki), "bob")  # in no policy
        self.pki_sh("steward", str(self.pki), "dol", "bob")
        for agency, name in (("dss", "carol"), ("uhs", "dave"),
                             ("csu", "erin")):
            self.pki_sh("steward", str(self.pki), agency, name)
        # A second CA, same federation name: nothing it signs may get in.
        self.other_pki = self.root / "pki-other-ca"
        self.pki_sh("init", str(self.other_pki), FED)
        self.pki_sh("analyst", str(self.other_pki), "alice")
        self.pki_sh("gateway", str(self.other_pki))
        # Our CA's key, but a federation file naming another federation:
        # certificates that verify yet name spiffe://other.fed/...
        self.foreign_pki = self.root / "pki-other-fed"
        self.foreign_pki.mkdir()
        for f in ("ca.crt", "ca.key"):
            shutil.copy2(self.pki / f, self.foreign_pki / f)
        (self.foreign_pki / "federation").write_text("other.fed\n")
        self.pki_sh("gateway", str(self.foreign_pki))
        self.pki_sh("analyst", str(self.foreign_pki), "alice")
        # pki.sh gives analysts clientAuth only; an impostor server needs a
        # certificate that passes X.509 checks and names the wrong party.
        self.issue_custom("server-analyst-mallory",
                          identity("analyst/mallory"),
                          "serverAuth, clientAuth")

    def issue_custom(self, base, uri, eku):
        d = self.root / "pki-custom"
        d.mkdir(exist_ok=True)
        key, csr, crt, ext = (d / f"{base}.key", d / f"{base}.csr",
                              self.pki / f"{base}.crt", d / f"{base}.ext")
        ext.write_text(
            "basicConstraints = critical, CA:false\n"
            "keyUsage = critical, digitalSignature\n"
            f"extendedKeyUsage = {eku}\n"
            f"subjectAltName = {uri and 'URI:' + uri + ', '}"
            "IP:127.0.0.1, DNS:localhost\n")
        for argv in (
                ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                 "ec_paramgen_curve:P-256", "-out", str(key)],
                ["openssl", "req", "-new", "-key", str(key), "-subj",
                 f"/O={FED}/CN={base}", "-out", str(csr)],
                ["openssl", "x509", "-req", "-in", str(csr), "-CA",
                 str(self.pki / "ca.crt"), "-CAkey", str(self.pki / "ca.key"),
                 "-set_serial", str(int.from_bytes(os.urandom(8), "big")),
                 "-days", "30", "-sha256", "-extfile", str(ext), "-out",
                 str(crt)]):
            r = subprocess.run(argv, capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"{' '.join(argv[:2])}: {r.stderr}")
        os.chmod(key, 0o600)
        shutil.copy2(key, self.pki / f"{base}.key")

    def tls(self, party, pki=None):
        """The tls: section of a config for a party ('gateway',
        'agency-dol', 'analyst-alice', ...)."""
        pki = Path(pki or self.pki)
        return {"ca": str(self.pki / "ca.crt"),
                "cert": str(pki / f"{party}.crt"),
                "key": str(pki / f"{party}.key")}

    # -- processes

    def start(self, name, argv):
        p = Proc(self, name, argv)
        self.procs.append(p)
        return p

    def start_agent(self, cfg_path, timeout=30):
        cfg = yaml.safe_load(Path(cfg_path).read_text())
        p = self.start(f"agent-{cfg['agency']}",
                       [str(self.bin / "fedq-agent"), "--config",
                        str(cfg_path)])
        p.cfg_path = Path(cfg_path)
        run_dir = resolve(cfg_path, cfg["run_dir"])
        p.wait_addr(run_dir, f"agent-{cfg['agency']}.addr", timeout)
        return p

    def start_gateway(self, cfg_path, timeout=30):
        cfg = yaml.safe_load(Path(cfg_path).read_text())
        p = self.start("gateway", [str(self.bin / "fedq-gateway"),
                                   "--config", str(cfg_path)])
        p.cfg_path = Path(cfg_path)
        p.wait_addr(resolve(cfg_path, cfg["run_dir"]), "gateway.addr",
                    timeout)
        return p

    def stop_procs(self, procs):
        """Stops every process (all of them, even after a failure) and
        raises the first failure."""
        first = None
        for p in procs:
            try:
                p.stop()
            except TestFailure as e:
                first = first or e
            except Exception as e:  # noqa: BLE001
                first = first or TestFailure(f"stopping {p.name}: {e}")
        if first:
            raise first

    # -- the CLI

    def fedq(self, *args, config=None, env=None, cwd=None, timeout=60):
        argv = [str(self.bin / "fedq")]
        if config:
            argv += ["--config", str(config)]
        argv += list(args)
        r = subprocess.run(argv, capture_output=True, text=True,
                           env=env or self.env, cwd=cwd, timeout=timeout)
        report = sanitizer_report(r.stderr)
        if report is not None:
            # the whole report (stacks) for the logs; the failure quotes
            # its start
            n = len(list(self.log.glob("fedq-cli-sanitizer-*.txt")))
            (self.log / f"fedq-cli-sanitizer-{n}.txt").write_text(
                f"fedq {' '.join(args)}\n{r.stderr}")
        check(report is None, f"fedq {' '.join(args)}: sanitizer report: "
                              f"{report}")
        return r

    def fedq_json(self, *args, config, expect_rc=(0,)):
        r = self.fedq(*args, "--format", "json", config=config)
        check(r.returncode in expect_rc,
              f"fedq {' '.join(args)} exited {r.returncode}, expected "
              f"{expect_rc}: {tail(r.stderr)}")
        try:
            return json.loads(r.stdout), r
        except json.JSONDecodeError as e:
            raise TestFailure(f"fedq {' '.join(args)} --format json printed "
                              f"invalid JSON ({e}): {r.stdout[:300]!r}")

    def client_config(self, gateway_addr, name="client", party="analyst-alice",
                      extra=None):
        cfg = {"federation": FED, "gateway": f"ipv4:{gateway_addr}",
               "tls": self.tls(party)}
        cfg.update(extra or {})
        path = self.etc / f"{name}.yaml"
        write_yaml(path, cfg)
        return path

    # -- Python channels

    def channel(self, addr, party="analyst-alice", pki=None, client_cert=True,
                options=()):
        """A mutual-TLS channel as `party` (a basename in pki/). The server
        certificate is checked against our CA and 127.0.0.1."""
        pki = Path(pki or self.pki)
        ca = (self.pki / "ca.crt").read_bytes()
        if client_cert:
            creds = grpc.ssl_channel_credentials(
                root_certificates=ca,
                private_key=(pki / f"{party}.key").read_bytes(),
                certificate_chain=(pki / f"{party}.crt").read_bytes())
        else:
            creds = grpc.ssl_channel_credentials(root_certificates=ca)
        opts = [("grpc.use_local_subchannel_pool", 1)] + list(options)
        return grpc.secure_channel(addr, creds, options=opts)

    def gateway_stub(self, addr, **kw):
        ch = self.channel(addr, **kw)
        return ch, self.proto.gw_grpc.GatewayStub(ch)

    def health_stub(self, addr, **kw):
        ch = self.channel(addr, **kw)
        return ch, self.proto.health_grpc.HealthStub(ch)

    def cleanup(self, failed):
        if self.keep_logs or failed:
            print(f"logs kept in {self.root}", file=sys.stderr)
        else:
            shutil.rmtree(self.root, ignore_errors=True)


def resolve(cfg_path, p):
    p = Path(p)
    return p if p.is_absolute() else (Path(cfg_path).parent / p)


def write_yaml(path, obj):
    """Writes atomically (a server reloading on SIGHUP never sees half a
    file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(obj, sort_keys=False))
    os.replace(tmp, path)


def write_text(path, text):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# ---- fixtures: small catalogs and their SQLite sources ----------------------


def codes(prefix, n):
    return [f"{prefix}{i:03d}" for i in range(1, n + 1)]


def col(name, role, type_, **kw):
    c = {"name": name, "role": role, "type": type_}
    c.update(kw)
    return c


ENROLLMENT_COLUMNS = [
    col("person_id", "identifier", "text"),
    col("institution", "dimension", "text",
        description="Campus, across all three systems",
        domain={"codes": ["UHS1", "CSU1", "CCS1"]}),
    col("term", "dimension", "text", domain={"codes": ["2023FA", "2024SP"]}),
    col("birth_year", "dimension", "integer",
        domain={"min": 1990, "max": 2006}),
    col("credits", "measure", "integer", unit="credits",
        bounds={"min": 0, "max": 40}),
    col("start_date", "date", "date"),
]

# Agency -> datasets (as written in an agent config, minus `source`). The
# quotes, commas and non-ASCII in descriptions exercise the CLI's escaping.
CATALOG = {
    "dol": [
        {"name": "wages",
         "description": 'Quarterly UI wages, one row per person and '
                        '"quarter" (café workers included)',
         "columns": [
             col("person_id", "identifier", "text",
                 description="Person key"),
             col("quarter", "dimension", "quarter",
                 domain={"codes": ["2024Q1", "2024Q2", "2024Q3",
                                   "2024Q4"]}),
             col("wages", "measure", "integer", unit="cents",
                 description="Wages paid in the quarter",
                 bounds={"min": 0, "max": 100000000}),
             col("town", "dimension", "text",
                 domain={"codes": codes("T", 12)}),
             col("paid_month", "date", "month"),
         ]},
        {"name": "employers",
         "columns": [
             col("employer_id", "identifier", "text"),
             col("industry", "dimension", "text",
                 domain={"codes": ["11", "23", "31", "44", "52", "62"]}),
             col("headcount", "measure", "integer", unit="persons",
                 bounds={"min": 0, "max": 100000}),
             col("avg_wage", "measure", "decimal", unit="cents",
                 bounds={"min": 0, "max": 1000000}),
         ]},
    ],
    "dss": [
        {"name": "snap", "description": "SNAP benefits by household",
         "columns": [
             col("person_id", "identifier", "text"),
             col("benefit_month", "date", "month"),
             col("household_size", "dimension", "integer",
                 domain={"min": 1, "max": 12}),
             col("benefit", "measure", "integer", unit="cents",
                 bounds={"min": 0, "max": 500000}),
             col("county", "dimension", "text",
                 domain={"codes": ["C1", "C2", "C3"]}),
             col("cohort", "dimension", "quarter",
                 domain={"codes": ["2023Q4", "2024Q1"]}),
         ]},
    ],
    "uhs": [
        {"name": "enrollment", "description": "UHS enrollment",
         "columns": ENROLLMENT_COLUMNS},
        {"name": "degrees",
         "columns": [col("person_id", "identifier", "text"),
                     col("degree", "dimension", "text",
                         domain={"codes": ["BA", "MA"]}),
                     col("year", "dimension", "integer",
                         domain={"min": 2020, "max": 2024})]},
    ],
    "csu": [
        {"name": "enrollment", "description": "CSU enrollment",
         "columns": ENROLLMENT_COLUMNS},
        # Same name as uhs.degrees but `year` has another type: not pooled.
        {"name": "degrees",
         "columns": [col("person_id", "identifier", "text"),
                     col("degree", "dimension", "text",
                         domain={"codes": ["BA", "MA"]}),
                     col("year", "dimension", "text",
                         domain={"codes": ["2020", "2024"]})]},
    ],
    "ccs": [
        {"name": "enrollment", "description": "CCS enrollment",
         "columns": ENROLLMENT_COLUMNS},
        {"name": "noncredit",
         "columns": [col("course", "dimension", "text",
                         domain={"codes": ["ESL", "GED", "CDL"]}),
                     col("hours", "measure", "integer", unit="hours",
                         bounds={"min": 0, "max": 500})]},
    ],
}

SQL_TYPES = {"integer": "INTEGER", "decimal": "REAL"}


def fixture_db(h, agency):
    return h.data / agency / "fixtures.sqlite"


def make_fixture_data(h):
    """One SQLite file per agency, one table (t_<dataset>) per dataset, with
    exactly the configured columns plus one that is never exposed."""
    for agency, datasets in CATALOG.items():
        path = fixture_db(h, agency)
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path)
        for ds in datasets:
            cols = ", ".join(f"{c['name']} {SQL_TYPES.get(c['type'], 'TEXT')}"
                             for c in ds["columns"])
            db.execute(f"CREATE TABLE t_{ds['name']} ({cols}, secret TEXT)")
        db.commit()
        db.close()


# ---- release policies (issue 6) and the terms queries name ------------------


def qreq(p, sql, terms=EXAMPLE_TERMS, **kw):
    """A Gateway QueryRequest naming terms' agreement and purpose (kw may
    set either, "" to leave it out). The default is what the example
    policies cover: most queries go to federations of deploy/examples."""
    kw.setdefault("agreement", terms.agreement)
    kw.setdefault("purpose", terms.purpose)
    return p.gw.QueryRequest(sql=sql, **kw)


def ereq(p, sql, terms=EXAMPLE_TERMS, **kw):
    """The ExplainRequest of the same: Explain then checks the policies as
    Query would."""
    kw.setdefault("agreement", terms.agreement)
    kw.setdefault("purpose", terms.purpose)
    return p.gw.ExplainRequest(sql=sql, **kw)


def cli_terms(terms=EXAMPLE_TERMS):
    """The options of `fedq query` and `fedq explain` naming them."""
    return ["--agreement", terms.agreement, "--purpose", terms.purpose]


class PolicyTerms:
    """Requests as the federation's analysts make them: naming the
    agreement and purpose (self.terms) its agents' policies cover."""
    terms = TEST_TERMS

    def qreq(self, sql, **kw):
        return qreq(self.h.proto, sql, self.terms, **kw)

    def ereq(self, sql, **kw):
        return ereq(self.h.proto, sql, self.terms, **kw)

    def cli_terms(self):
        return cli_terms(self.terms)


def policy_sha(path):
    """What every answer names the policy by: SHA-256 of the file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def sign_policy(h, path, key_agency):
    """`fedq policy sign` with key_agency's policy key: writes PATH.sig."""
    r = h.fedq("policy", "sign", "--key",
               str(h.pki / f"policy-{key_agency}.key"), str(path))
    check(r.returncode == 0, f"fedq policy sign {path}: rc {r.returncode}: "
                             f"{tail(r.stderr)}")


def test_agreement(agency, **changes):
    """The permissive agreement of a fixture agency: TEST-2026 for
    purpose "testing" by alice, every dataset of CATALOG with all its
    columns and every aggregate, threshold 11, no review, pooled with
    every other fixture agency, a cell budget of 10^8. changes replace
    keys."""
    ag = {"id": TEST_TERMS.agreement,
          "title": f"fedq integration tests ({agency})",
          "legal_basis": ["synthetic fixtures, no personal data"],
          "purposes": [TEST_TERMS.purpose],
          "analysts": [identity("analyst/alice")],
          "valid_from": "2026-01-01", "valid_until": "2030-12-31",
          "datasets": [{"name": ds["name"],
                        "columns": [c["name"] for c in ds["columns"]],
                        "aggregates": list(ALL_AGGREGATES)}
                       for ds in CATALOG[agency]],
          "release": {"min_cell_count": 11,
                      "min_cell_count_rationale":
                          "the federation's default threshold; the fixture "
                          "data is synthetic",
                      # exact values for the oracles, query by query
                      **EXACT_RELEASE,
                      # thousands of oracle queries per run
                      "cell_budget": 100000000,
                      "cell_budget_rationale":
                          "the oracle tests' thousands of random queries; "
                          "the fixture data is synthetic"},
          "review": "none",
          "pool_with": [a for a in AGENCIES if a != agency]}
    ag.update(changes)
    return ag


def policy_doc(agency, agreements, version=1, fed=FED):
    return {"policy": {"agency": agency, "federation": fed,
                       "version": version, "agreements": list(agreements)}}


def write_policy(h, path, doc, key_agency=None):
    """Writes a policy (a mapping, or text as is) and signs it with the
    policy key of key_agency (default: the policy's own agency)."""
    if isinstance(doc, str):
        write_text(path, doc)
        agency = yaml.safe_load(doc)["policy"]["agency"]
    else:
        write_text(path, yaml.dump(doc, Dumper=NoAliasDumper,
                                   sort_keys=False))
        agency = doc["policy"]["agency"]
    sign_policy(h, path, key_agency or agency)
    return Path(path)


def test_policy_path(h, agency):
    """The permissive policy of a fixture agency, written and signed once
    per run."""
    path = h.root / "policies" / f"policy-{agency}.yaml"
    if not path.exists():
        write_policy(h, path, policy_doc(agency, [test_agreement(agency)]))
    return path


def policy_section(h, agency, path):
    return {"file": str(path),
            "public_key": str(h.pki / f"policy-{agency}.pub")}


def example_policy_text(agency):
    return (REPO / f"deploy/examples/etc/policy-{agency}.yaml").read_text()


def example_policy_section(agency):
    """The policy: section of an example agent config: the policy beside
    the config, the key in ../pki/ as deploy/pki.sh writes it."""
    return {"file": f"policy-{agency}.yaml",
            "public_key": f"../pki/policy-{agency}.pub"}


def with_policy_section(text, agency):
    """An example agent config's text with a policy: section (the one the
    examples carry, or ours if they have none)."""
    if any(ln.startswith("policy:") for ln in text.splitlines()):
        return text
    return text.rstrip("\n") + "\n" + yaml.safe_dump(
        {"policy": example_policy_section(agency)}, sort_keys=False)


def edit_policy_text(text, fn):
    """A policy's text after fn(its policy: mapping) edited it in place
    (comments are lost; the keys keep their order)."""
    doc = yaml.safe_load(text)
    fn(doc["policy"])
    return yaml.dump(doc, Dumper=NoAliasDumper, sort_keys=False)


class NoAliasDumper(yaml.SafeDumper):
    """Writes an object used twice twice: policies allow no anchors."""

    def ignore_aliases(self, data):
        return True


# What the exact oracles compare: true values (no perturbation) of each
# query on its own (no differencing ledger and no secondary suppression,
# which depend on the queries before); they have tests of their own
# (disclosure_tests.py).
EXACT_RELEASE = {
    "perturbation": "none",
    "perturbation_rationale": "the exact oracle tests compare true values",
    "differencing_ledger": "off",
    "differencing_ledger_rationale": "the exact oracle tests weigh each "
                                     "query on its own",
    "protection_level": 0, "protection_percent": 0,
    "protection_rationale": "the exact oracle tests weigh each query on its "
                            "own"}


def exact_release(text):
    """A policy's text with perturbation: none in every agreement: what
    the exact oracles compare (perturbation has tests of its own,
    disclosure_tests.py)."""
    def fn(pol):
        for ag in pol["agreements"]:
            ag["release"].update(EXACT_RELEASE)
    return edit_policy_text(text, fn)


def no_dominance(text):
    """A policy's text with the dominance rules off (one unit may hold
    100 %): for oracles that weigh only the minimum cell count."""
    def fn(pol):
        for ag in pol["agreements"]:
            ag["release"].update({
                "dominance_min_units": 1, "dominance_top_percent": 100,
                "dominance_rationale": "tests of other rules"})
    return edit_policy_text(text, fn)


def install_example_policy(h, cfg_path, edit=None, key_agency=None,
                           perturb=False):
    """Puts the example policy of the agent whose config is at cfg_path
    where that config's policy: section says, released exact unless
    perturb, through edit (text -> text), signed with key_agency's policy
    key (default its own). Returns its path; None if the config has no
    policy: section."""
    cfg = yaml.safe_load(Path(cfg_path).read_text())
    sec = cfg.get("policy")
    if not sec:
        return None
    agency = cfg["agency"]
    text = example_policy_text(agency)
    if not perturb:
        text = exact_release(text)
    if edit:
        text = edit(text)
    path = resolve(cfg_path, sec["file"])
    write_text(path, text)
    sign_policy(h, path, key_agency or agency)
    return path


def agent_config(h, agency, run_dir, datasets=None, listen="127.0.0.1:0",
                 policy="test", **extra):
    """policy: "test" (the agency's permissive policy), a path (signed by
    the agency's key, or not), a ready policy: mapping, or None for no
    policy: section. Held queries go to run_dir/reviews-AGENCY."""
    datasets = CATALOG[agency] if datasets is None else datasets
    cfg = {"agency": agency, "federation": FED, "listen": listen,
           "run_dir": str(run_dir), "tls": h.tls(f"agency-{agency}"),
           "review_dir": str(Path(run_dir) / f"reviews-{agency}"),
           "cell_key_secret": str(h.pki / f"cellkey-{agency}.key")}
    if policy == "test":
        cfg["policy"] = policy_section(h, agency, test_policy_path(h, agency))
    elif isinstance(policy, dict):
        cfg["policy"] = policy
    elif policy is not None:
        cfg["policy"] = policy_section(h, agency, policy)
    cfg.update(extra)
    cfg["datasets"] = [dict(ds, source={"sqlite": str(fixture_db(h, agency)),
                                        "table": f"t_{ds['name']}"})
                       for ds in datasets]
    return cfg


def gateway_config(h, run_dir, agents, aliases=(), **extra):
    """agents: [(agency, 'host:port')], each with its agency's policy key;
    held queries in run_dir/gateway-state (state_dir=None: the gateway's
    default place)."""
    # Under ASan with full malloc stacks (tests/run.sh) SQLite runs about
    # ten times slower than in production, so the product default of 3 s
    # per agent is too tight for the larger oracle queries; tests about
    # timeouts set their own.
    cfg = {"federation": FED, "listen": "127.0.0.1:0", "run_dir": str(run_dir),
           "tls": h.tls("gateway"), "agent_timeout": "20s",
           "state_dir": str(Path(run_dir) / "gateway-state")}
    cfg.update(extra)
    cfg = {k: v for k, v in cfg.items() if v is not None}
    cfg["agents"] = [{"agency": a, "address": f"ipv4:{addr}",
                      "policy_key": str(h.pki / f"policy-{a}.pub")}
                     for a, addr in agents]
    if aliases:
        cfg["aliases"] = [{"name": n, "agencies": list(m)} for n, m in aliases]
    return cfg


class Federation(PolicyTerms):
    """Agents (from configs we write) plus a gateway, in run/<name>/ and
    etc/<name>/; each agent runs its agency's permissive test policy
    unless agent_extra or start_agent says otherwise (policy=...)."""

    def __init__(self, h, name, agencies=AGENCIES, aliases=(), gw_extra=None,
                 agent_extra=None):
        self.h = h
        self.name = name
        self.run_dir = h.run / name
        self.etc = h.etc / name
        self.agencies = list(agencies)
        self.aliases = aliases
        self.gw_extra = gw_extra or {}
        self.agent_extra = agent_extra or {}
        self.agents = {}
        self.gateway = None

    def agent_cfg_path(self, agency):
        return self.etc / f"agent-{agency}.yaml"

    def start_agent(self, agency, **kw):
        path = self.agent_cfg_path(agency)
        if not path.exists() or kw:
            write_yaml(path, agent_config(self.h, agency, self.run_dir,
                                          **dict(self.agent_extra, **kw)))
        self.agents[agency] = self.h.start_agent(path)
        return self.agents[agency]

    def gateway_cfg(self, **extra):
        return gateway_config(
            self.h, self.run_dir,
            [(a, self.agents[a].addr) for a in self.agencies],
            self.aliases, **dict(self.gw_extra, **extra))

    def start(self):
        for a in self.agencies:
            self.start_agent(a)
        self.gw_cfg_path = self.etc / "gateway.yaml"
        write_yaml(self.gw_cfg_path, self.gateway_cfg())
        self.gateway = self.h.start_gateway(self.gw_cfg_path)
        self.client_cfg = self.h.client_config(self.gateway.addr,
                                               name=f"{self.name}/client")
        self.wait_ready()
        return self

    def wait_ready(self, timeout=15):
        """Readiness: the gateway reports every agency OK. (The gateway
        connects lazily; tests of first contact do not use this.)"""
        wait_states(self.h, self.stub(), {a: "OK" for a in self.agencies},
                    timeout, watch=self.procs())

    def procs(self):
        return list(self.agents.values()) + [self.gateway]

    def agent_yaml(self, agency):
        return yaml.safe_load(self.agents[agency].cfg_path.read_text())

    def stub(self, **kw):
        return self.h.gateway_stub(self.gateway.addr, **kw)[1]


# ---- independent expectations, from the YAML -----------------------------


ROLE_ENUM = {"identifier": "COLUMN_ROLE_IDENTIFIER",
             "dimension": "COLUMN_ROLE_DIMENSION",
             "measure": "COLUMN_ROLE_MEASURE", "date": "COLUMN_ROLE_DATE"}
TYPE_ENUM = {t: f"VALUE_TYPE_{t.upper()}" for t in
             ("integer", "text", "date", "month", "quarter", "decimal")}


def yaml_catalog(cfg_paths):
    """{(agency, dataset): dataset mapping} from agent config files, in
    config order."""
    out = {}
    for p in cfg_paths:
        cfg = yaml.safe_load(Path(p).read_text())
        for ds in cfg.get("datasets") or []:
            out[(cfg["agency"], ds["name"])] = ds
    return out


def domain_cell(c):
    """The `domain` cell of `fedq datasets --columns`: a dimension's codes
    (the first five and a count beyond six) or min..max, a measure's
    bounds."""
    if c["role"] == "measure":
        return f"{c['bounds']['min']}..{c['bounds']['max']}"
    if c["role"] != "dimension":
        return ""
    d = c["domain"]
    if "codes" in d:
        cs = [str(x) for x in d["codes"]]
        if len(cs) <= 6:
            return ",".join(cs)
        return ",".join(cs[:5]) + f",... ({len(cs)} codes)"
    return f"{d['min']}..{d['max']}"


def expected_column_rows(cat):
    return sorted((a, d, str(c["name"]), c["role"], c["type"], domain_cell(c),
                   str(c.get("unit") or ""))
                  for (a, d), ds in cat.items() for c in ds["columns"])


def expected_alias_datasets(cat, members):
    """Datasets every member holds with identical column declarations."""
    def cols(a, d):
        ds = cat.get((a, d))
        return None if ds is None else json.dumps(
            [{k: v for k, v in c.items() if k != "description"}
             for c in ds["columns"]], sort_keys=True)
    first = [d for (a, d) in cat if a == members[0]]
    return sorted(d for d in first
                  if all(cols(m, d) == cols(members[0], d) for m in members))


def proto_dataset_view(p, ds):
    """A comparable view of a fedq.v1.Dataset."""
    cols = []
    for c in ds.columns:
        dom = None
        if c.HasField("domain"):
            kind = c.domain.WhichOneof("kind")
            dom = ({"codes": list(c.domain.codes.codes)} if kind == "codes"
                   else {"min": c.domain.range.min, "max": c.domain.range.max})
        bounds = ({"min": c.bounds.min, "max": c.bounds.max}
                  if c.HasField("bounds") else None)
        cols.append({"name": c.name,
                     "role": p.catalog.ColumnRole.Name(c.role),
                     "type": p.catalog.ValueType.Name(c.type),
                     "description": c.description, "domain": dom,
                     "unit": c.unit, "bounds": bounds})
    return {"agency": ds.agency, "name": ds.name,
            "description": ds.description, "columns": cols}


def yaml_dataset_view(agency, ds):
    cols = []
    for c in ds["columns"]:
        dom = None
        if c["role"] == "dimension":
            d = c["domain"]
            dom = ({"codes": [str(x) for x in d["codes"]]} if "codes" in d
                   else {"min": d["min"], "max": d["max"]})
        bounds = dict(c["bounds"]) if c["role"] == "measure" else None
        cols.append({"name": str(c["name"]), "role": ROLE_ENUM[c["role"]],
                     "type": TYPE_ENUM[c["type"]],
                     "description": str(c.get("description") or ""),
                     "domain": dom, "unit": str(c.get("unit") or ""),
                     "bounds": bounds})
    return {"agency": agency, "name": str(ds["name"]),
            "description": str(ds.get("description") or ""), "columns": cols}


def wait_states(h, stub, want, timeout=10, watch=()):
    """Polls ListDatasets until each agency in want ({agency: 'OK', ...})
    is in that state; returns the last response."""
    p = h.proto
    last = {}

    def reached():
        r = stub.ListDatasets(p.gw.ListDatasetsRequest(), timeout=5)
        last.clear()
        last.update({s.agency: (p.gw.AgencyState.Name(s.state)[13:],
                                s.message) for s in r.agencies})
        return r if all(last.get(a, ("?",))[0] == st
                        for a, st in want.items()) else None
    try:
        return wait_until(reached, timeout, f"agency states {want}", 0.1,
                          watch=watch)
    except TestFailure as e:
        raise TestFailure(f"{e}; last seen {last}")


def diff_sets(what, got, want):
    got, want = set(got), set(want)
    if got != want:
        raise TestFailure(f"{what}: missing {sorted(want - got)[:5]}, "
                          f"unexpected {sorted(got - want)[:5]}")


def rpc_error(fn, *args, **kw):
    """Runs a call that must fail; returns the grpc.RpcError."""
    try:
        fn(*args, **kw)
    except grpc.RpcError as e:
        return e
    raise TestFailure(f"{getattr(fn, '_method', fn)} succeeded, expected an "
                      f"error")


def expect_status(e, code, *must_contain):
    check(e.code() == code, f"status {e.code()} ({e.details()!r}), expected "
                            f"{code}")
    for s in must_contain:
        check(s in (e.details() or ""),
              f"status message {e.details()!r} does not name {s!r}")


def identity(role_path, fed=FED):
    return f"spiffe://{fed}/{role_path}"


# ---- tests ------------------------------------------------------------------

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def shared_federation(h):
    """The fixture federation (5 agencies, alias hied), started once and
    shared by the read-only tests; stopped and checked by the last test."""
    if "main" not in h.shared:
        saved, h.procs = h.procs, []
        fed = Federation(h, "main", aliases=[("hied", ["uhs", "csu", "ccs"])])
        h.shared["main"] = fed
        try:
            fed.start()
        except Exception as e:
            fed.error = f"starting the shared federation: {e}"
        finally:
            h.shared_procs = h.procs
            h.procs = saved
    fed = h.shared["main"]
    check(not getattr(fed, "error", None), getattr(fed, "error", ""))
    return fed


def check_catalog_cli(h, fed, agencies, aliases):
    """`fedq datasets` and `--columns` list exactly what the agent configs
    declare; aliases list the datasets common to their members."""
    cat = yaml_catalog(fed.agents[a].cfg_path for a in agencies)
    out, _ = h.fedq_json("datasets", config=fed.client_cfg)
    rows = {(r["agency"], r["dataset"]): r for r in out["datasets"]}
    diff_sets("datasets listed", rows, cat)
    for key, ds in cat.items():
        r = rows[key]
        check(r["columns"] == str(len(ds["columns"])),
              f"{key}: {r['columns']} columns, config has "
              f"{len(ds['columns'])}")
        want_desc = str(ds.get("description") or "")
        check(r["description"] == want_desc,
              f"{key}: description {r['description']!r}, config has "
              f"{want_desc!r}")
    check([r["agency"] for r in out["agencies"]] == list(agencies),
          f"agencies {[r['agency'] for r in out['agencies']]}, expected "
          f"{agencies} in config order")
    bad = [r for r in out["agencies"] if r["state"] != "ok"]
    check(not bad, f"agencies not ok: {bad}")
    got_aliases = {r["alias"]: r for r in out["aliases"]}
    diff_sets("aliases", got_aliases, [n for n, _ in aliases])
    for name, members in aliases:
        r = got_aliases[name]
        check(r["agencies"] == ",".join(members),
              f"alias {name}: agencies {r['agencies']!r}")
        want = expected_alias_datasets(cat, members)
        got = sorted(x for x in r["datasets"].split(",") if x)
        check(got == want, f"alias {name}: datasets {got}, expected {want}")
        check(r["complete"] == "yes", f"alias {name}: complete "
                                      f"{r['complete']!r}, expected yes")

    out, _ = h.fedq_json("datasets", "--columns", config=fed.client_cfg)
    got = sorted((r["agency"], r["dataset"], r["column"], r["role"], r["type"],
                  r["domain"], r["unit"]) for r in out["columns"])
    want = expected_column_rows(cat)
    if got != want:
        missing = sorted(set(want) - set(got))[:3]
        extra = sorted(set(got) - set(want))[:3]
        raise TestFailure(f"fedq datasets --columns: missing {missing}, "
                          f"unexpected {extra}")
    return cat


@test
def catalog_cli(h):
    fed = shared_federation(h)
    check_catalog_cli(h, fed, AGENCIES, [("hied", ["uhs", "csu", "ccs"])])
    # The table and CSV formats carry the same rows (spot check: every
    # dataset name appears, and CSV has one line per dataset plus header).
    r = h.fedq("--format", "csv", "datasets", config=fed.client_cfg)
    check(r.returncode == 0, f"fedq --format csv datasets: rc "
                             f"{r.returncode}: {tail(r.stderr)}")
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    n = sum(len(CATALOG[a]) for a in AGENCIES)
    check(len(lines) == n + 1, f"CSV: {len(lines)} lines, expected {n + 1}")


@test
def catalog_grpc(h):
    fed = shared_federation(h)
    p = h.proto
    stub = fed.stub()
    cat = yaml_catalog(fed.agents[a].cfg_path for a in AGENCIES)
    resp = stub.ListDatasets(p.gw.ListDatasetsRequest(), timeout=10)
    got = {(d.agency, d.name): proto_dataset_view(p, d) for d in resp.datasets}
    diff_sets("ListDatasets datasets", got, cat)
    for (a, d), ds in cat.items():
        want = yaml_dataset_view(a, ds)
        check(got[(a, d)] == want, f"{a}.{d}: got {got[(a, d)]}, "
                                   f"config says {want}")
    check([s.agency for s in resp.agencies] == AGENCIES,
          f"agencies {[s.agency for s in resp.agencies]}")
    check(all(s.state == p.gw.AGENCY_STATE_OK for s in resp.agencies),
          f"not all OK: {resp.agencies}")
    check(len(resp.aliases) == 1 and resp.aliases[0].name == "hied",
          f"aliases {resp.aliases}")
    al = resp.aliases[0]
    check(list(al.agencies) == ["uhs", "csu", "ccs"] and al.complete,
          f"alias hied: {al}")
    want = expected_alias_datasets(cat, ["uhs", "csu", "ccs"])
    check(sorted(al.datasets) == want,
          f"alias hied datasets {list(al.datasets)}, expected {want}")

    # One agency only: its datasets, its status, no aliases.
    resp = stub.ListDatasets(p.gw.ListDatasetsRequest(agency="dol"),
                             timeout=10)
    diff_sets("ListDatasets(agency=dol)",
              [(d.agency, d.name) for d in resp.datasets],
              [k for k in cat if k[0] == "dol"])
    check([s.agency for s in resp.agencies] == ["dol"],
          f"agencies {[s.agency for s in resp.agencies]}, expected [dol]")
    check(not resp.aliases, f"aliases listed for one agency: {resp.aliases}")
    e = rpc_error(stub.ListDatasets, p.gw.ListDatasetsRequest(agency="nope"),
                  timeout=10)
    expect_status(e, grpc.StatusCode.NOT_FOUND, "nope")


@test
def health(h):
    fed = shared_federation(h)
    hp = h.proto.health
    _, gw = h.health_stub(fed.gateway.addr)
    SERVING = hp.HealthCheckResponse.SERVING
    for svc in ("", "fedq.v1.Gateway"):
        r = gw.Check(hp.HealthCheckRequest(service=svc), timeout=5)
        check(r.status == SERVING, f"gateway Check({svc!r}): {r.status}")
    for svc in ("fedq.v1.Nope", "fedq.v1.Agent", "fedq.v1"):
        e = rpc_error(gw.Check, hp.HealthCheckRequest(service=svc), timeout=5)
        expect_status(e, grpc.StatusCode.NOT_FOUND)
    # Agents serve only the gateway's identity: ask as the gateway.
    _, ag = h.health_stub(fed.agents["dss"].addr, party="gateway")
    for svc in ("", "fedq.v1.Agent"):
        r = ag.Check(hp.HealthCheckRequest(service=svc), timeout=5)
        check(r.status == SERVING, f"agent Check({svc!r}): {r.status}")
    e = rpc_error(ag.Check, hp.HealthCheckRequest(service="fedq.v1.Gateway"),
                  timeout=5)
    expect_status(e, grpc.StatusCode.NOT_FOUND)
    # Watch is declared but not served.
    e = rpc_error(lambda: list(gw.Watch(hp.HealthCheckRequest(), timeout=5)))
    expect_status(e, grpc.StatusCode.UNIMPLEMENTED)

    out, _ = h.fedq_json("health", config=fed.client_cfg)
    gws = out.get("gateway") or [{}]
    check(gws[0].get("state") == "serving" and
          gws[0].get("federation") == FED, f"gateway row {gws}")
    check([r["agency"] for r in out["agencies"]] == AGENCIES,
          f"fedq health agencies {[r['agency'] for r in out['agencies']]}")
    bad = [r for r in out["agencies"] if r["state"] != "ok"]
    check(not bad, f"fedq health: not ok: {bad}")


@test
def interop_python_stubs_mtls(h):
    """Python stubs built from proto/ only: Gateway/ListDatasets and
    FederationStatus as an analyst, Agent/Describe as the gateway (compared
    with the agent's YAML), Health/Check on both."""
    fed = shared_federation(h)
    p = h.proto
    stub = fed.stub()
    resp = stub.ListDatasets(p.gw.ListDatasetsRequest(), timeout=10)
    check(len(resp.datasets) == sum(len(v) for v in CATALOG.values()),
          f"{len(resp.datasets)} datasets")
    st = stub.FederationStatus(p.gw.FederationStatusRequest(), timeout=10)
    check(st.federation == FED and st.gateway_version,
          f"FederationStatus: {st.federation!r} {st.gateway_version!r}")
    check([s.agency for s in st.agencies] == AGENCIES and
          all(s.state == p.gw.AGENCY_STATE_OK for s in st.agencies),
          f"FederationStatus agencies: {st.agencies}")
    ch = h.channel(fed.agents["uhs"].addr, party="gateway")
    d = p.agent_grpc.AgentStub(ch).Describe(p.agent.DescribeRequest(),
                                            timeout=10)
    check(d.agency == "uhs" and d.agent_version, f"Describe: {d.agency!r} "
                                                 f"{d.agent_version!r}")
    want = {k[1]: yaml_dataset_view("uhs", v) for k, v in
            yaml_catalog([fed.agents["uhs"].cfg_path]).items()}
    got = {x.name: proto_dataset_view(p, x) for x in d.datasets}
    check(got == want, f"Describe datasets {got} != config {want}")
    # An Execute without a plan is refused by the agent, not run.
    e = rpc_error(p.agent_grpc.AgentStub(ch).Execute,
                  p.agent.ExecuteRequest(), timeout=10)
    expect_status(e, grpc.StatusCode.INVALID_ARGUMENT, "no plan")
    hc = h.proto.health_grpc.HealthStub(ch).Check(
        h.proto.health.HealthCheckRequest(), timeout=5)
    check(hc.status == h.proto.health.HealthCheckResponse.SERVING,
          f"agent health {hc.status}")


@test
def reject_bad_clients(h):
    """Calls refused by the transport or the identity check, each with its
    status, before any handler runs."""
    fed = shared_federation(h)
    p = h.proto
    req = p.gw.ListDatasetsRequest()
    gw = fed.gateway.addr

    def list_as(**kw):
        return h.gateway_stub(gw, **kw)[1].ListDatasets(req, timeout=5)

    # No client certificate: the TLS handshake fails.
    e = rpc_error(list_as, client_cert=False)
    expect_status(e, grpc.StatusCode.UNAVAILABLE)
    # A certificate from another CA (same federation name).
    e = rpc_error(list_as, pki=h.other_pki)
    expect_status(e, grpc.StatusCode.UNAVAILABLE)
    # Our CA, but an identity of another federation.
    e = rpc_error(list_as, pki=h.foreign_pki)
    expect_status(e, grpc.StatusCode.PERMISSION_DENIED,
                  identity("analyst/alice", "other.fed"))
    # An agent's certificate may not list datasets.
    e = rpc_error(list_as, party="agency-dol")
    expect_status(e, grpc.StatusCode.PERMISSION_DENIED,
                  identity("agency/dol/agent"))
    # A steward may.
    r = list_as(party="steward-dol-bob")
    check(len(r.datasets) > 0, "steward got no datasets")
    # A gateway certificate is not an analyst either.
    e = rpc_error(list_as, party="gateway")
    expect_status(e, grpc.StatusCode.PERMISSION_DENIED, identity("gateway"))

    # Agents serve their gateway only.
    dol = fed.agents["dol"].addr
    describe = p.agent.DescribeRequest()

    def describe_as(**kw):
        ch = h.channel(dol, **kw)
        return p.agent_grpc.AgentStub(ch).Describe(describe, timeout=5)
    e = rpc_error(describe_as, party="analyst-alice")
    expect_status(e, grpc.StatusCode.PERMISSION_DENIED,
                  identity("analyst/alice"))
    e = rpc_error(describe_as, party="agency-dss")
    expect_status(e, grpc.StatusCode.PERMISSION_DENIED,
                  identity("agency/dss/agent"))
    e = rpc_error(describe_as, party="gateway", pki=h.foreign_pki)
    expect_status(e, grpc.StatusCode.PERMISSION_DENIED,
                  identity("gateway", "other.fed"))
    e = rpc_error(describe_as, party="gateway", pki=h.other_pki)
    expect_status(e, grpc.StatusCode.UNAVAILABLE)
    log = fed.agents["dol"].stderr_text()
    check("refused call to /fedq.v1.Agent/Describe" in log and
          identity("analyst/alice") in log,
          "agent log does not record the refused analyst call")

    # Declared-but-unimplemented and unknown methods.
    stub = fed.stub()
    # Explain checks a query like Query does: "SELECT 1" is not fedq SQL.
    e = rpc_error(stub.Explain, fed.ereq("SELECT 1"),
                  timeout=5)
    expect_status(e, grpc.StatusCode.INVALID_ARGUMENT, "line 1, column 8")
    ch = h.channel(gw)
    for method in ("/fedq.v1.Gateway/Nope", "/fedq.v1.Agent/Describe",
                   "/grpc.health.v1.Health/Watch"):
        fn = ch.unary_unary(method, request_serializer=lambda b: b,
                            response_deserializer=lambda b: b)
        e = rpc_error(fn, b"", timeout=5)
        expect_status(e, grpc.StatusCode.UNIMPLEMENTED)


class ImpostorAgent:
    """A Python gRPC server posing as an agent with some other party's
    certificate. Counts the Describe calls that reach it (there must be
    none: the gateway refuses the identity during the handshake)."""

    def __init__(self, h, party):
        p = h.proto
        self.calls = 0

        def describe(req, ctx):
            self.calls += 1
            ds = p.catalog.Dataset(agency="uhs", name="stolen")
            return p.agent.DescribeResponse(agency="uhs", datasets=[ds])
        resp_type = p.agent.DescribeResponse
        handler = grpc.method_handlers_generic_handler("fedq.v1.Agent", {
            "Describe": grpc.unary_unary_rpc_method_handler(
                describe,
                request_deserializer=p.agent.DescribeRequest.FromString,
                response_serializer=resp_type.SerializeToString),
        })
        from concurrent import futures
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2),
                                  handlers=[handler])
        creds = grpc.ssl_server_credentials(
            [((h.pki / f"{party}.key").read_bytes(),
              (h.pki / f"{party}.crt").read_bytes())],
            root_certificates=(h.pki / "ca.crt").read_bytes(),
            require_client_auth=True)
        port = self.server.add_secure_port("127.0.0.1:0", creds)
        check(port > 0, "impostor could not bind")
        self.addr = f"127.0.0.1:{port}"
        self.server.start()

    def stop(self):
        self.server.stop(None).wait(5)


@test
def reject_wrong_agents(h):
    """The gateway refuses an agent whose certificate names another party:
    a real agent of dol configured as dss, and an analyst's certificate
    serving Describe as uhs. Neither's data is listed; the alias over uhs is
    incomplete."""
    main = shared_federation(h)
    impostors = [ImpostorAgent(h, "analyst-alice"),
                 ImpostorAgent(h, "server-analyst-mallory")]
    try:
        run_dir = h.run / "impostor"
        cfg = gateway_config(
            h, run_dir,
            [("dol", main.agents["dol"].addr),
             ("dss", main.agents["dol"].addr),   # dol's agent at dss' place
             ("uhs", impostors[0].addr),         # an analyst posing as uhs
             ("ccs", impostors[1].addr),         # ... with a server cert
             ("csu", main.agents["csu"].addr)],
            aliases=[("hied", ["uhs", "csu", "ccs"])])
        path = h.etc / "impostor" / "gateway.yaml"
        write_yaml(path, cfg)
        gw = h.start_gateway(path)
        wait_states(h, h.gateway_stub(gw.addr)[1],
                    {"dol": "OK", "csu": "OK"}, watch=[gw])
        client = h.client_config(gw.addr, name="impostor/client")
        out, r = h.fedq_json("datasets", config=client, expect_rc=(3,))
        states = {x["agency"]: x for x in out["agencies"]}
        # The analyst's certificate (clientAuth only) already fails X.509
        # verification as a server certificate, so the gateway never sees
        # its identity; it must still be refused, not "unavailable".
        for agency, presented in (("dss", "agency/dol/agent"),
                                  ("ccs", "analyst/mallory"),
                                  ("uhs", None)):
            s = states.get(agency, {})
            check(s.get("state") == "refused",
                  f"{agency}: state {s.get('state')!r} ({s.get('message')!r})"
                  f", expected refused")
            if presented:
                check(identity(presented) in s.get("message", ""),
                      f"{agency}: message {s.get('message')!r} does not name "
                      f"the identity presented ({identity(presented)})")
            check(f"agency {agency} did not answer" in r.stderr,
                  f"fedq stderr does not name {agency}: {tail(r.stderr)}")
        for agency in ("dol", "csu"):
            check(states.get(agency, {}).get("state") == "ok",
                  f"{agency}: {states.get(agency)}")
        listed = {(x["agency"], x["dataset"]) for x in out["datasets"]}
        want = {("dol", d["name"]) for d in CATALOG["dol"]} | \
               {("csu", d["name"]) for d in CATALOG["csu"]}
        check(listed == want, f"datasets {sorted(listed)}, expected only "
                              f"dol's and csu's {sorted(want)}")
        # Only csu answered for hied: its datasets, marked incomplete.
        al = {x["alias"]: x for x in out["aliases"]}.get("hied", {})
        check(al.get("complete") == "no", f"alias hied: {al}, expected "
                                          f"complete=no")
        want = ",".join(sorted(d["name"] for d in CATALOG["csu"]))
        got = ",".join(sorted(al.get("datasets", "").split(",")))
        check(got == want, f"alias hied with only csu answering: datasets "
                           f"{got!r}, expected {want!r}")
        check(all(i.calls == 0 for i in impostors),
              f"impostors received {[i.calls for i in impostors]} Describe "
              f"calls; the handshake should have refused them")
    finally:
        for i in impostors:
            i.stop()


@test
def refused_agent_gone_is_unavailable(h):
    """A refusal describes the party that answered: once nothing listens at
    the address any more, the agency is unavailable, not still 'refused'
    with the old impostor's identity."""
    p = h.proto
    main = shared_federation(h)
    impostor = ImpostorAgent(h, "server-analyst-mallory")
    stopped = False
    try:
        path = h.etc / "gone" / "gateway.yaml"
        write_yaml(path, gateway_config(
            h, h.run / "gone", [("dol", main.agents["dol"].addr),
                                ("ccs", impostor.addr)]))
        gw = h.start_gateway(path)
        stub = h.gateway_stub(gw.addr)[1]

        def ccs_state():
            r = stub.ListDatasets(p.gw.ListDatasetsRequest(), timeout=5)
            s = {x.agency: x for x in r.agencies}["ccs"]
            return p.gw.AgencyState.Name(s.state), s.message
        state, msg = ccs_state()
        check(state == "AGENCY_STATE_REFUSED", f"impostor: {state} {msg!r}")
        impostor.stop()
        stopped = True
        last = []

        def unavailable():
            last[:] = ccs_state()
            return last[0] == "AGENCY_STATE_UNAVAILABLE"
        try:
            wait_until(unavailable, 5, "ccs to be reported unavailable", 0.2,
                       watch=[gw])
        except TestFailure:
            raise TestFailure(f"nothing listens at ccs' address any more, "
                              f"yet ccs is {last[0]}: {last[1]!r}")
    finally:
        if not stopped:
            impostor.stop()


@test
def fault_stopped_agent(h):
    """A SIGSTOPped agent costs each call agent_timeout, never more, and
    blocks no worker; it comes back after SIGCONT and after a restart on
    the same port."""
    p = h.proto
    fed = Federation(h, "faults", agencies=["dol", "dss", "ccs"],
                     gw_extra={"threads": 2, "agent_timeout": "1s"}).start()
    stub = fed.stub()
    _, hstub = h.health_stub(fed.gateway.addr)
    req = p.gw.ListDatasetsRequest()
    OK, TIMEOUT = p.gw.AGENCY_STATE_OK, p.gw.AGENCY_STATE_TIMEOUT

    def states(resp):
        return {s.agency: s.state for s in resp.agencies}

    first = stub.ListDatasets(req, timeout=5)
    check(set(states(first).values()) == {OK}, f"baseline: {first.agencies}")

    dss = fed.agents["dss"]
    dss.signal(signal.SIGSTOP)
    try:
        done = {}
        t0 = time.monotonic()
        futs = [stub.ListDatasets.future(req, timeout=5) for _ in range(8)]
        for i, f in enumerate(futs):
            f.add_done_callback(
                lambda _f, i=i: done.__setitem__(i, time.monotonic() - t0))
        # While the 8 fan-outs wait on dss, the gateway still answers.
        hc_t0 = time.monotonic()
        hc = hstub.Check(p.health.HealthCheckRequest(), timeout=5)
        hc_lat = time.monotonic() - hc_t0
        check(hc.status == p.health.HealthCheckResponse.SERVING,
              f"health during stall: {hc.status}")
        check(hc_lat < 1.0, f"gateway Health/Check took {hc_lat:.2f}s with "
                            f"8 calls waiting on a stopped agent")
        for i, f in enumerate(futs):
            try:
                r = f.result()
            except grpc.RpcError as e:
                raise TestFailure(f"call {i} failed: {e.code()} "
                                  f"{e.details()}")
            st = states(r)
            check(st == {"dol": OK, "dss": TIMEOUT, "ccs": OK},
                  f"call {i}: states {st}, expected dss TIMEOUT, others OK")
            msg = [s.message for s in r.agencies if s.agency == "dss"][0]
            check(msg, "dss timeout without a message")
            listed = sorted({d.agency for d in r.datasets})
            check(listed == ["ccs", "dol"], f"call {i}: datasets of {listed}")
        slow = {i: round(t, 2) for i, t in done.items() if t >= 3.0}
        check(len(done) == 8 and not slow,
              f"calls slower than 3s with agent_timeout 1s: {slow}")
        hc_t0 = time.monotonic()
        hstub.Check(p.health.HealthCheckRequest(), timeout=5)
        check(time.monotonic() - hc_t0 < 1.0, "gateway Health/Check slow "
                                              "while the agent is stopped")
        out, r = h.fedq_json("health", config=fed.client_cfg,
                             expect_rc=(3,))
        st = {x["agency"]: x["state"] for x in out["agencies"]}
        check(st == {"dol": "ok", "dss": "timeout", "ccs": "ok"},
              f"fedq health while dss is stopped: {st}")
    finally:
        os.kill(dss.pid, signal.SIGCONT)

    def dss_ok():
        return states(stub.ListDatasets(req, timeout=5)).get("dss") == OK
    t = time.monotonic()
    wait_until(dss_ok, 10, "dss to answer again after SIGCONT", 0.2,
               watch=[fed.gateway])
    print_note(f"dss back {time.monotonic() - t:.1f}s after SIGCONT")

    # Restart on the same port: the same gateway process picks it up.
    old_port = dss.port
    h.procs.remove(dss)
    dss.stop()
    r = stub.ListDatasets(req, timeout=5)
    check(states(r).get("dss") == p.gw.AGENCY_STATE_UNAVAILABLE,
          f"dss down: state {states(r).get('dss')}, expected UNAVAILABLE")
    new = fed.start_agent("dss", listen=f"127.0.0.1:{old_port}")
    check(new.port == old_port, f"restarted on {new.port}, not {old_port}")
    t = time.monotonic()
    wait_until(dss_ok, 10, "the gateway to use the restarted dss", 0.2,
               watch=[fed.gateway, new])
    print_note(f"dss back {time.monotonic() - t:.1f}s after restart")
    check(fed.gateway.running(), "gateway died")


@test
def fault_closed_port(h):
    """An agency whose agent is not running is reported unavailable at once,
    without holding up the others."""
    p = h.proto
    main = shared_federation(h)
    port = free_port()
    run_dir = h.run / "closed"
    path = h.etc / "closed" / "gateway.yaml"
    write_yaml(path, gateway_config(
        h, run_dir, [("dol", main.agents["dol"].addr),
                     ("doe", f"127.0.0.1:{port}")],
        agent_timeout="5s"))
    gw = h.start_gateway(path)
    stub = h.gateway_stub(gw.addr)[1]
    wait_states(h, stub, {"dol": "OK"}, watch=[gw])
    for _ in range(3):  # first connects, then while backing off
        t0 = time.monotonic()
        r = stub.ListDatasets(p.gw.ListDatasetsRequest(), timeout=10)
        took = time.monotonic() - t0
        st = {s.agency: s for s in r.agencies}
        check(st["doe"].state == p.gw.AGENCY_STATE_UNAVAILABLE,
              f"doe: {p.gw.AgencyState.Name(st['doe'].state)} "
              f"({st['doe'].message!r}), expected UNAVAILABLE")
        check(st["dol"].state == p.gw.AGENCY_STATE_OK, f"dol: {st['dol']}")
        check(took < 1.0 and st["doe"].latency_ms < 1000,
              f"closed port took {took:.2f}s (latency_ms "
              f"{st['doe'].latency_ms}); expected < 1s")


class DelayProxy:
    """A TCP relay that holds every chunk for `delay` seconds each way: an
    agent behind a WAN link (40 ms each way is a cross-country link)."""

    def __init__(self, target_port, delay):
        self.target = target_port
        self.delay = delay
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.addr = f"127.0.0.1:{self.ls.getsockname()[1]}"
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.ls.accept()
                s = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                return
            self.socks += [c, s]
            for a, b in ((c, s), (s, c)):
                threading.Thread(target=self._pump, args=(a, b),
                                 daemon=True).start()

    def _pump(self, a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                time.sleep(self.delay)  # the link's latency, not a wait
                b.sendall(data)
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        for s in [self.ls] + self.socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


@test
def slow_link_first_contact(h):
    """An agent 80 ms round trip away answers the gateway's very first
    ListDatasets (agent_timeout 3s leaves ample time for TCP + TLS)."""
    p = h.proto
    main = shared_federation(h)
    proxy = DelayProxy(main.agents["dss"].port, 0.04)
    try:
        path = h.etc / "slow" / "gateway.yaml"
        write_yaml(path, gateway_config(
            h, h.run / "slow", [("dss", proxy.addr)], agent_timeout="3s"))
        gw = h.start_gateway(path)
        stub = h.gateway_stub(gw.addr)[1]
        r = stub.ListDatasets(p.gw.ListDatasetsRequest(), timeout=10)
        s = r.agencies[0]
        check(s.state == p.gw.AGENCY_STATE_OK,
              f"first call over an 80 ms link: dss "
              f"{p.gw.AgencyState.Name(s.state)} after {s.latency_ms} ms: "
              f"{s.message!r}")
    finally:
        proxy.close()


@test
def oversized_request(h):
    fed = shared_federation(h)
    p = h.proto
    big = ("x" * (5 * 1024 * 1024))
    stub = h.gateway_stub(fed.gateway.addr,
                          options=[("grpc.max_send_message_length", -1)])[1]
    e = rpc_error(stub.ListDatasets, p.gw.ListDatasetsRequest(agency=big),
                  timeout=10)
    expect_status(e, grpc.StatusCode.RESOURCE_EXHAUSTED)
    r = stub.ListDatasets(p.gw.ListDatasetsRequest(), timeout=10)
    check(len(r.datasets) > 0, "gateway stopped serving after an oversized "
                               "request")
    check(fed.gateway.running(), "gateway died")
    # Just under the cap still reaches the handler (unknown agency).
    almost = "y" * (4 * 1024 * 1024 - 64)
    e = rpc_error(stub.ListDatasets, p.gw.ListDatasetsRequest(agency=almost),
                  timeout=10)
    expect_status(e, grpc.StatusCode.NOT_FOUND)


# -- configuration errors


def agent_lines(h, agency="dol", table="t_wages"):
    """A valid agent config as numbered lines (the line numbers in the
    error cases below refer to this list, 1-based)."""
    db = fixture_db(h, agency)
    return [
        "# --check fixture",                              # 1
        f"agency: {agency}",                              # 2
        f"federation: {FED}",                             # 3
        "listen: 127.0.0.1:0",                            # 4
        f"run_dir: {h.run / 'check'}",                    # 5
        "tls:",                                           # 6
        f"  ca: {h.pki / 'ca.crt'}",                      # 7
        f"  cert: {h.pki / f'agency-{agency}.crt'}",      # 8
        f"  key: {h.pki / f'agency-{agency}.key'}",       # 9
        "threads: 2",                                     # 10
        "datasets:",                                      # 11
        "  - name: wages",                                # 12
        "    source:",                                    # 13
        f"      sqlite: {db}",                            # 14
        f"      table: {table}",                          # 15
        "    columns:",                                   # 16
        "      - name: person_id",                        # 17
        "        role: identifier",                       # 18
        "        type: text",                             # 19
        "      - name: quarter",                          # 20
        "        role: dimension",                        # 21
        "        type: quarter",                          # 22
        "        domain:",                                # 23
        "          codes: [2024Q1, 2024Q2]",              # 24
        "      - name: wages",                            # 25
        "        role: measure",                          # 26
        "        type: integer",                          # 27
        "        bounds: {min: 0, max: 100}",             # 28
        "policy:",                                        # 29
        f"  file: {test_policy_path(h, agency)}",         # 30
        f"  public_key: {h.pki / f'policy-{agency}.pub'}",  # 31
        f"cell_key_secret: {h.pki / f'cellkey-{agency}.key'}",  # 32
    ]


def gateway_lines(h):
    return [
        f"federation: {FED}",                             # 1
        "listen: 127.0.0.1:0",                            # 2
        f"run_dir: {h.run / 'check'}",                    # 3
        "tls:",                                           # 4
        f"  ca: {h.pki / 'ca.crt'}",                      # 5
        f"  cert: {h.pki / 'gateway.crt'}",               # 6
        f"  key: {h.pki / 'gateway.key'}",                # 7
        "threads: 4",                                     # 8
        "agent_timeout: 2s",                              # 9
        "agents:",                                        # 10
        "  - agency: dol",                                # 11
        "    address: ipv4:127.0.0.1:1",                  # 12
        f"    policy_key: {h.pki / 'policy-dol.pub'}",    # 13
        "  - agency: dss",                                # 14
        "    address: ipv4:127.0.0.1:2",                  # 15
        f"    policy_key: {h.pki / 'policy-dss.pub'}",    # 16
        "aliases:",                                       # 17
        "  - name: labor",                                # 18
        "    agencies: [dol, dss]",                       # 19
    ]


def replace(lines, lineno, new):
    out = list(lines)
    out[lineno - 1:lineno] = [new] if isinstance(new, str) else new
    return out


def delete(lines, first, last=None):
    out = list(lines)
    del out[first - 1:(last or first)]
    return out


def loose_key(h):
    """A copy of dol's key readable by the group."""
    p = h.root / "pki-loose"
    p.mkdir(exist_ok=True)
    shutil.copy2(h.pki / "agency-dol.key", p / "agency-dol.key")
    os.chmod(p / "agency-dol.key", 0o640)
    return p / "agency-dol.key"


def loose_secret(h):
    """A copy of dol's cell-key secret readable by the group."""
    p = h.root / "pki-loose"
    p.mkdir(exist_ok=True)
    shutil.copy2(h.pki / "cellkey-dol.key", p / "cellkey-dol.key")
    os.chmod(p / "cellkey-dol.key", 0o640)
    return p / "cellkey-dol.key"


def bad_secret(h):
    """A private file that is not 64 hex digits (one short)."""
    p = h.root / "pki-loose" / "cellkey-short.key"
    p.parent.mkdir(exist_ok=True)
    p.write_text("ab" * 31 + "\n")
    os.chmod(p, 0o600)
    return p


def agent_bad_cases(h):
    L = agent_lines(h)
    return [
        # (name, lines, expected line, substrings of the message)
        ("unknown key", replace(L, 10, ["threads: 2", "colour: blue"]), 11,
         ["colour"]),
        ("wrong type", replace(L, 10, "threads: many"), 10, ["threads"]),
        ("threads out of bounds", replace(L, 10, "threads: 65"), 10,
         ["threads"]),
        ("threads zero", replace(L, 10, "threads: 0"), 10, ["threads"]),
        # A missing key is reported at the mapping that lacks it.
        ("missing agency", delete(L, 2), 2, ["agency"]),
        ("missing column type", delete(L, 19), 17, ["type"]),
        ("dimension without domain", delete(L, 23, 24), 20,
         ["quarter", "domain"]),
        ("measure without bounds", delete(L, 28), 25, ["wages", "bounds"]),
        ("no such table", agent_lines(h, table="t_nosuch"), 14,
         ["t_nosuch"]),
        ("no such column", replace(L, 17, "      - name: nosuch_col"), 17,
         ["nosuch_col"]),
        ("cert of another agency",
         replace(replace(L, 8, f"  cert: {h.pki / 'agency-dss.crt'}"), 9,
                 f"  key: {h.pki / 'agency-dss.key'}"), 7,
         [identity("agency/dss/agent")]),
        ("analyst cert",
         replace(replace(L, 8, f"  cert: {h.pki / 'analyst-alice.crt'}"), 9,
                 f"  key: {h.pki / 'analyst-alice.key'}"), 7,
         [identity("analyst/alice")]),
        ("group-readable key",
         replace(replace(L, 8, f"  cert: {h.pki / 'agency-dol.crt'}"),
                 9, f"  key: {loose_key(h)}"), 7, ["readable"]),
        ("cert of another CA",
         replace(replace(L, 8, f"  cert: {h.other_pki / 'gateway.crt'}"), 9,
                 f"  key: {h.other_pki / 'gateway.key'}"), 7, ["verify"]),
        # libyaml notices the missing ']' on the next line.
        ("yaml syntax", replace(L, 24, "          codes: [2024Q1, 2024Q2"),
         25, []),
        # The cell-key secret: required, private, 256 bits in hex; its
        # errors name the key and the file (at the top mapping's line).
        ("no cell-key secret", delete(L, 32), 2, ["cell_key_secret"]),
        ("group-readable secret",
         replace(L, 32, f"cell_key_secret: {loose_secret(h)}"), 2,
         ["cell_key_secret", "readable by group or others"]),
        ("secret not hex",
         replace(L, 32, f"cell_key_secret: {bad_secret(h)}"), 2,
         ["cell_key_secret", "64 hex digits"]),
        ("no such secret",
         replace(L, 32, f"cell_key_secret: {h.root / 'nosuch.key'}"), 2,
         ["cell_key_secret", "nosuch.key"]),
    ]


def gateway_bad_cases(h):
    L = gateway_lines(h)
    return [
        ("unknown key", replace(L, 8, ["threads: 4", "colour: blue"]), 9,
         ["colour"]),
        ("wrong type", replace(L, 9, "agent_timeout: soon"), 9,
         ["agent_timeout"]),
        ("threads out of bounds", replace(L, 8, "threads: 100"), 8,
         ["threads"]),
        ("missing federation", delete(L, 1), 1, ["federation"]),
        ("agent without address", delete(L, 15), 14, ["address"]),
        ("agent without policy_key", delete(L, 16), 14, ["policy_key"]),
        ("alias of unknown agency", replace(L, 19, "    agencies: [dol, doe]"),
         18, ["doe"]),
        ("agency twice", replace(L, 14, "  - agency: dol"), 14, ["dol"]),
        ("agent cert",
         replace(replace(L, 6, f"  cert: {h.pki / 'agency-dol.crt'}"), 7,
                 f"  key: {h.pki / 'agency-dol.key'}"), 5,
         [identity("agency/dol/agent")]),
    ]


def run_server_check(h, prog, path, timeout=30):
    r = subprocess.run([str(h.bin / prog), "--check", str(path)],
                       capture_output=True, text=True, env=h.env,
                       timeout=timeout)
    report = sanitizer_report(r.stderr)
    check(report is None, f"{prog} --check {path.name}: sanitizer: {report}")
    return r


def check_config_cases(h, prog, good_lines, cases, label):
    d = h.etc / "check"
    good = d / f"{label}-good.yaml"
    write_text(good, "\n".join(good_lines) + "\n")
    r = run_server_check(h, prog, good)
    check(r.returncode == 0, f"{prog} --check on a good config: rc "
                             f"{r.returncode}: {tail(r.stdout + r.stderr)}")
    failures = []
    for i, (name, lines, line, subs) in enumerate(cases):
        path = d / f"{label}-bad{i:02d}.yaml"
        write_text(path, "\n".join(lines) + "\n")
        r = run_server_check(h, prog, path)
        text = (r.stdout + r.stderr).strip()
        want = f"{path}:{line}: "
        problems = []
        if r.returncode == 0:
            problems.append("exit 0")
        if want not in text:
            problems.append(f"no '{want}'")
        problems += [f"no {s!r}" for s in subs if s not in text]
        if problems:
            failures.append(f"{name}: {', '.join(problems)} in "
                            f"{tail(text, 200)!r}")
            continue
        # Starting with the same file fails the same way, at once.
        p = subprocess.run([str(h.bin / prog), "--config", str(path)],
                           capture_output=True, text=True, env=h.env,
                           timeout=30)
        msg = next(ln for ln in text.splitlines() if want in ln)
        if p.returncode == 0 or msg not in p.stdout + p.stderr:
            failures.append(f"{name}: --config exit {p.returncode}, output "
                            f"{tail(p.stdout + p.stderr, 200)!r} lacks "
                            f"{msg!r}")
        report = sanitizer_report(p.stderr)
        if report:
            failures.append(f"{name}: sanitizer: {report}")
    check(not failures, "; ".join(failures))


@test
def config_errors_agent(h):
    check_config_cases(h, "fedq-agent", agent_lines(h), agent_bad_cases(h),
                       "agent")


@test
def config_errors_gateway(h):
    check_config_cases(h, "fedq-gateway", gateway_lines(h),
                       gateway_bad_cases(h), "gateway")


@test
def reload_sighup(h):
    p = h.proto
    fed = Federation(h, "reload", agencies=["dol", "dss"]).start()
    dol = fed.agents["dol"]
    stub = fed.stub()

    def dol_datasets():
        r = stub.ListDatasets(p.gw.ListDatasetsRequest(agency="dol"),
                              timeout=5)
        return sorted(d.name for d in r.datasets)
    before = sorted(d["name"] for d in CATALOG["dol"])
    check(dol_datasets() == before, f"dol lists {dol_datasets()}")

    # A new dataset: listed after SIGHUP, by the same process.
    cfg = yaml.safe_load(dol.cfg_path.read_text())
    extra = {"name": "wages_copy", "description": "added by reload",
             "source": {"sqlite": str(fixture_db(h, "dol")),
                        "table": "t_wages"},
             "columns": CATALOG["dol"][0]["columns"][:3]}
    cfg["datasets"].append(extra)
    write_yaml(dol.cfg_path, cfg)
    dol.signal(signal.SIGHUP)
    after = sorted(before + ["wages_copy"])
    wait_until(lambda: dol_datasets() == after, 10,
               "wages_copy to be listed after SIGHUP", 0.1, watch=fed.procs())
    out, _ = h.fedq_json("datasets", "--columns", config=fed.client_cfg)
    got = sorted((r["column"]) for r in out["columns"]
                 if r["agency"] == "dol" and r["dataset"] == "wages_copy")
    check(got == sorted(c["name"] for c in extra["columns"]),
          f"wages_copy columns via fedq: {got}")
    check(dol.running(), "agent restarted or died")

    # A broken config: the running catalog stays, the log says why.
    lines = yaml.safe_dump(cfg, sort_keys=False).splitlines()
    lines.insert(1, "bogus_key: 1")
    write_text(dol.cfg_path, "\n".join(lines) + "\n")
    dol.signal(signal.SIGHUP)
    want = f"{dol.cfg_path}:2:"
    wait_until(lambda: "reload failed" in dol.stderr_text() and
               want in dol.stderr_text(), 10,
               f"the agent log to report the failed reload ({want})",
               watch=fed.procs())
    check(dol_datasets() == after, f"after a failed reload dol lists "
                                   f"{dol_datasets()}, expected {after}")
    # A catalog that does not match its source fails the reload too.
    cfg["datasets"][-1]["source"]["table"] = "t_missing"
    write_yaml(dol.cfg_path, cfg)
    n = dol.stderr_text().count("reload failed")
    dol.signal(signal.SIGHUP)
    wait_until(lambda: dol.stderr_text().count("reload failed") > n, 10,
               "a second failed reload in the agent log", watch=fed.procs())
    check("t_missing" in dol.stderr_text(), "reload failure does not name "
                                            "the missing table")
    check(dol_datasets() == after, f"dol lists {dol_datasets()}")

    # The gateway: a new alias after SIGHUP.
    gcfg = yaml.safe_load(fed.gw_cfg_path.read_text())
    gcfg["aliases"] = [{"name": "labor", "agencies": ["dol", "dss"]}]
    write_yaml(fed.gw_cfg_path, gcfg)
    fed.gateway.signal(signal.SIGHUP)

    def aliases():
        r = stub.ListDatasets(p.gw.ListDatasetsRequest(), timeout=5)
        return {a.name: (list(a.agencies), a.complete) for a in r.aliases}
    wait_until(lambda: aliases() == {"labor": (["dol", "dss"], True)}, 10,
               "alias labor after gateway SIGHUP", 0.1, watch=fed.procs())
    out, _ = h.fedq_json("datasets", config=fed.client_cfg)
    check([a["alias"] for a in out["aliases"]] == ["labor"],
          f"fedq datasets aliases: {out['aliases']}")
    # A broken gateway config keeps the running one.
    write_text(fed.gw_cfg_path, fed.gw_cfg_path.read_text() +
               "threads: lots\n")
    fed.gateway.signal(signal.SIGHUP)
    wait_until(lambda: "reload failed" in fed.gateway.stderr_text(), 10,
               "the gateway log to report the failed reload",
               watch=fed.procs())
    check("labor" in aliases(), "alias lost after a failed gateway reload")


# -- client configuration lookup


@test
def client_config_lookup(h):
    fed = shared_federation(h)
    base = h.root / "lookup"
    home = base / "home"
    fhome = base / "fedq-home"
    proj = base / "proj"
    cwd = proj / "a" / "b"
    for d in (home / ".config/fedq", fhome, proj / ".fedq-local", cwd):
        d.mkdir(parents=True, exist_ok=True)
    # Each candidate carries an unknown key: the error names the file that
    # was picked, without any gateway involved.
    files = {
        "explicit": base / "explicit.yaml",
        "env": base / "env.yaml",
        "fedq_home": fhome / "client.yaml",
        "local": proj / ".fedq-local" / "client.yaml",
        "home": home / ".config/fedq/client.yaml",
    }
    for label, path in files.items():
        write_text(path, f"marker_{label}: 1\n")
    for d in [cwd] + list(cwd.parents):
        if d != proj and (d / ".fedq-local/client.yaml").exists():
            raise TestFailure(f"{d}/.fedq-local/client.yaml exists outside "
                              f"the test tree; the lookup test cannot run")
    env = {k: v for k, v in h.env.items()
           if k not in ("FEDQ_CONFIG", "FEDQ_HOME")}
    env["HOME"] = str(home)

    def picked(args, extra_env, label, where=cwd):
        e = dict(env, **extra_env)
        r = h.fedq(*args, "health", env=e, cwd=where)
        path = str(files[label])
        check(r.returncode == 2 and path in r.stderr and
              f"marker_{label}" in r.stderr,
              f"expected {label} ({path}) to be used: rc {r.returncode}, "
              f"stderr {tail(r.stderr, 300)!r}")

    all_env = {"FEDQ_CONFIG": str(files["env"]), "FEDQ_HOME": str(fhome)}
    picked(["--config", str(files["explicit"])], all_env, "explicit")
    picked([], all_env, "env")
    picked([], {"FEDQ_HOME": str(fhome)}, "fedq_home")
    # FEDQ_HOME without a client.yaml falls through to the next places.
    picked([], {"FEDQ_HOME": str(base)}, "local")
    picked([], {}, "local", where=proj)
    picked([], {}, "home", where=base)
    # Nothing anywhere: usage error explaining how to configure.
    files["home"].unlink()
    r = h.fedq("health", env=env, cwd=base)
    check(r.returncode == 2, f"no config: rc {r.returncode}, expected 2")
    for s in ("--config", "FEDQ_CONFIG"):
        check(s in r.stderr, f"no-config message lacks {s!r}: "
                             f"{tail(r.stderr)!r}")
    # And a working one found through $HOME reaches the gateway.
    shutil.copy(fed.client_cfg, files["home"])
    r = h.fedq("health", env=env, cwd=base)
    check(r.returncode == 0, f"fedq health via ~/.config: rc {r.returncode}: "
                             f"{tail(r.stderr)}")
    # Usage errors: unknown command, bad format.
    r = h.fedq("frobnicate", env=env, cwd=base)
    check(r.returncode == 2, f"unknown command: rc {r.returncode}")
    r = h.fedq("--format", "xml", "datasets", env=env, cwd=base)
    check(r.returncode == 2, f"--format xml: rc {r.returncode}")


@test
def shutdown_with_calls_in_flight(h):
    """SIGTERM while 8 ListDatasets wait on a stopped agent: the gateway
    cancels them and exits 0 within seconds."""
    p = h.proto
    fed = Federation(h, "shutdown", agencies=["dol", "dss"],
                     gw_extra={"threads": 2, "agent_timeout": "30s"}).start()
    ch, stub = h.gateway_stub(fed.gateway.addr)
    req = p.gw.ListDatasetsRequest()
    r = stub.ListDatasets(req, timeout=5)  # connects the gateway to both
    check(all(s.state == p.gw.AGENCY_STATE_OK for s in r.agencies),
          f"baseline {r.agencies}")
    fed.agents["dss"].signal(signal.SIGSTOP)
    futs = [stub.ListDatasets.future(req, timeout=60) for _ in range(8)]
    # Same connection, later stream: once this answers, the gateway has
    # taken the 8 calls (they cannot finish before dss or the 30 s cap).
    h.proto.health_grpc.HealthStub(ch).Check(p.health.HealthCheckRequest(),
                                             timeout=5)
    check(not any(f.done() for f in futs), "a call finished while dss was "
                                           "stopped and agent_timeout 30s")
    h.procs.remove(fed.gateway)
    t0 = time.monotonic()
    took = fed.gateway.stop(timeout=15)
    check(took < 5.0, f"gateway took {took:.1f}s to exit with 8 calls in "
                      f"flight")
    codes_ = []
    for f in futs:
        try:
            f.result(timeout=max(0.1, 5 - (time.monotonic() - t0)))
            codes_.append("OK")
        except grpc.FutureTimeoutError:
            raise TestFailure("a client call was still pending 5s after the "
                              "gateway exited")
        except grpc.RpcError as e:
            codes_.append(e.code().name)
    print_note(f"gateway exited in {took:.2f}s; the 8 calls ended with "
               f"{sorted(set(codes_))}")


@test
def examples_federation(h):
    """deploy/examples/etc with fedq-synth data: every example config checks
    OK, and through a gateway the catalog is exactly what they declare,
    with the hied alias over uhs, csu and ccs."""
    src = REPO / "deploy/examples/etc"
    missing = [a for a in EXAMPLE_AGENCIES
               if not (src / f"agent-{a}.yaml").exists()]
    check(not missing, f"example configs missing for {missing}")
    r = subprocess.run([str(h.bin / "fedq-synth"), "--out", str(h.data),
                        "--persons", "1000", "--seed", "7"],
                       capture_output=True, text=True, env=h.env, timeout=120)
    check(r.returncode == 0 and sanitizer_report(r.stderr) is None,
          f"fedq-synth rc {r.returncode}: {tail(r.stderr)}")
    for a in EXAMPLE_AGENCIES:
        path = h.etc / f"agent-{a}.yaml"
        write_text(path, with_policy_section(
            (src / f"agent-{a}.yaml").read_text(), a))
        install_example_policy(h, path)
        c = run_server_check(h, "fedq-agent", path)
        check(c.returncode == 0, f"example agent-{a}.yaml: "
                                 f"{tail(c.stdout + c.stderr)}")
    fed = Federation(h, "examples", agencies=EXAMPLE_AGENCIES,
                     aliases=[("hied", ["uhs", "csu", "ccs"])])
    fed.run_dir = h.run  # as the examples say (run_dir: ../run)
    for a in EXAMPLE_AGENCIES:
        fed.agents[a] = h.start_agent(h.etc / f"agent-{a}.yaml")
    fed.gw_cfg_path = h.etc / "gateway-examples.yaml"
    write_yaml(fed.gw_cfg_path, fed.gateway_cfg())
    fed.gateway = h.start_gateway(fed.gw_cfg_path)
    fed.client_cfg = h.client_config(fed.gateway.addr, name="client-examples")
    cat = check_catalog_cli(h, fed, EXAMPLE_AGENCIES,
                            [("hied", ["uhs", "csu", "ccs"])])
    check(expected_alias_datasets(cat, ["uhs", "csu", "ccs"]),
          "the example configs share no dataset across uhs, csu and ccs")


# Gateway/Query tests, in their own file; they register with @test above
# (run as a script, this module is __main__: let them import it by name).
sys.modules.setdefault("run_integration", sys.modules[__name__])
import query_tests  # noqa: E402,F401
import language_tests  # noqa: E402,F401
import pushdown_tests  # noqa: E402,F401
import store_tests  # noqa: E402,F401
import policy_tests  # noqa: E402,F401
import budget_tests  # noqa: E402,F401
import disclosure_tests  # noqa: E402,F401
import redteam_tests  # noqa: E402,F401


# ---- runner -----------------------------------------------------------------


NOTES = []


def print_note(msg):
    NOTES.append(msg)


def run_test(h, fn):
    h.procs = []
    NOTES.clear()
    t0 = time.monotonic()
    err = None
    try:
        fn(h)
    except TestFailure as e:
        err = str(e)
    except Exception as e:  # noqa: BLE001
        err = f"{type(e).__name__}: {e}"
        with open(h.log / "tracebacks.txt", "a") as f:
            f.write(f"== {fn.__name__}\n{traceback.format_exc()}\n")
    # Last started, first stopped: the gateway before its agents, as an
    # operator would.
    procs, h.procs = h.procs[::-1], []
    try:
        h.stop_procs(procs)
    except TestFailure as e:
        # A crash is usually the cause of the first failure: show both.
        err = f"{err}; and then: {e}" if err else str(e)
    took = time.monotonic() - t0
    note = f" [{'; '.join(NOTES)}]" if NOTES else ""
    if err:
        err = " ".join(err.split())  # one line per test
        print(f"FAIL {fn.__name__}: {err}", flush=True)
    else:
        print(f"PASS {fn.__name__} ({took:.1f}s){note}", flush=True)
    return err is None


def stop_shared(h):
    """The shared federation's servers must also exit cleanly."""
    procs = getattr(h, "shared_procs", [])[::-1]
    h.procs = []
    t0 = time.monotonic()
    err = None
    try:
        h.stop_procs(procs)
    except TestFailure as e:
        err = str(e)
    if err:
        err = " ".join(err.split())
        print(f"FAIL shared_federation_clean_exit: {err}", flush=True)
    else:
        print(f"PASS shared_federation_clean_exit "
              f"({time.monotonic() - t0:.1f}s)", flush=True)
    return err is None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True, help="build directory")
    ap.add_argument("--keep-logs", action="store_true")
    ap.add_argument("-k", dest="filter", default="",
                    help="run only tests whose name contains this")
    args = ap.parse_args()
    bindir = Path(args.bin)
    if not bindir.is_absolute():
        bindir = (Path.cwd() / bindir).resolve()
    for b in ("fedq-agent", "fedq-gateway", "fedq", "fedq-synth"):
        if not os.access(bindir / b, os.X_OK):
            print(f"FAIL setup: {bindir / b} is not an executable")
            print("0 passed, 1 failed, 0 skipped")
            return 1

    selected = [t for t in TESTS if args.filter in t.__name__]
    if not selected:
        print(f"FAIL setup: no test matches -k {args.filter!r}")
        print("0 passed, 1 failed, 0 skipped")
        return 1
    t0 = time.monotonic()
    passed = failed = 0
    h = None
    try:
        stubdir = Path(tempfile.mkdtemp(prefix="fedq-it-stubs-"))
        proto = Proto(stubdir)
        h = Harness(bindir, proto, args.keep_logs)
        h.make_pki()
        make_fixture_data(h)
    except Exception as e:  # noqa: BLE001
        print(f"FAIL setup: {type(e).__name__}: {e}")
        print("0 passed, 1 failed, 0 skipped")
        if h:
            h.cleanup(True)
        return 1
    try:
        for fn in selected:
            if run_test(h, fn):
                passed += 1
            else:
                failed += 1
        if "main" in h.shared:
            if stop_shared(h):
                passed += 1
            else:
                failed += 1
    finally:
        for p in h.procs + getattr(h, "shared_procs", []):
            p.kill()
        shutil.rmtree(stubdir, ignore_errors=True)
        h.cleanup(failed > 0)
    print(f"# total {time.monotonic() - t0:.1f}s", file=sys.stderr)
    print(f"{passed} passed, {failed} failed, 0 skipped", flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
