#!/usr/bin/python3
"""
The benchmark's report: reads what fedq-bench printed (measurements.tsv)
and the result files of each engine's warm-up run, checks that every
engine returned the same groups, and prints markdown tables (medians,
ratios, bytes per row, threads, memory, end to end) and each target of
issue 5 as met or not met.

    report.py MEASUREMENTS.tsv RESULTS_DIR [--out FILE.md]
"""

import argparse
import sys
from collections import defaultdict
from pathlib import Path

QUERIES = {
    "a": "(a) COUNT WHERE program = 'SNAP'",
    "b": "(b) GROUP BY town, birth_year range, SUM",
    "c": "(c) GROUP BY town, program, household_size, month range, SUM",
}
COLUMNS = [  # (engine, header)
    ("engine-2t", "engine 2 thr"),
    ("engine-1t", "engine 1 thr"),
    ("cloop-2t", "C loop 2 thr"),
    ("cloop-1t", "C loop 1 thr"),
    ("cloopc-2t", "C loop + persons 2 thr"),
    ("sqlite-scan", "SQLite scan"),
    ("sqlite-covering", "SQLite covering"),
    ("postgres", "PostgreSQL 2 workers"),
]
REFERENCE = "cloop-2t"  # results of every engine are compared to these
E2E_LABEL = "4x1M"
E2E_AGENTS = 4


def read_measurements(path):
    times, checks, info = {}, {}, defaultdict(list)
    for line in Path(path).read_text().splitlines():
        f = line.split("\t")
        if f[0] == "time":
            eng, label, q = f[1], f[2], f[3]
            times[(eng, label, q)] = {
                "threads": int(f[4]), "runs": int(f[5]),
                "median": float(f[6]), "min": float(f[7]), "max": float(f[8])}
        elif f[0] == "check":
            checks[(f[1], f[2], f[3])] = tuple(int(x) for x in f[4:8])
        elif f[0] == "info":
            info[(f[1], f[2])].append(f[3:])
    return times, checks, info


def read_groups(path):
    groups = {}
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        key, records, total = line.split("\t")
        groups[key] = (int(records), int(total))
    return groups


def ms(t):
    if t is None:
        return "-"
    v = t["median"]
    fmt = "{:,.2f}" if v < 10 else "{:,.1f}" if v < 100 else "{:,.0f}"
    lo = fmt.format(t["min"])
    hi = fmt.format(t["max"])
    return f"**{fmt.format(v)}** ({lo}-{hi})"


def plural(n, noun):
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def ratio(a, b):
    """a / b of two medians, or None."""
    if a is None or b is None or b["median"] <= 0:
        return None
    return a["median"] / b["median"]


def fx(r, digits=1):
    return "-" if r is None else f"{r:,.{digits}f}×"


class Report:
    def __init__(self, times, checks, info, results):
        self.times, self.checks, self.info = times, checks, info
        self.results = Path(results)
        self.out = []
        self.targets = []  # (text, met or None)
        self.labels = []
        for (_, label, _) in times:
            if label != E2E_LABEL and label not in self.labels:
                self.labels.append(label)
        self.labels.sort(key=lambda s: float(s.rstrip("MkK")) *
                         (1e6 if s.endswith("M") else 1e3))

    def p(self, s=""):
        self.out.append(s)

    def t(self, eng, label, q):
        return self.times.get((eng, label, q))

    def info1(self, key, label, i=0, default=None):
        v = self.info.get((key, label))
        return v[0][i] if v else default

    # ---- result checks ---------------------------------------------------

    def check_label(self, label):
        lines, ok = [], True
        for q in QUERIES:
            # The C loop's answer, or the first engine's that ran.
            engines = [REFERENCE] + [e for e, _ in COLUMNS
                                     if e != REFERENCE] + ["agent"]
            found = [(e, read_groups(self.results / f"{e}-{label}-{q}.tsv"))
                     for e in engines if (e, label, q) in self.checks]
            found = [(e, g) for e, g in found if g is not None]
            if not found:
                continue
            (ref_eng, ref), same, differ = found[0], [], []
            for eng, g in found[1:]:
                (same if g == ref else differ).append(eng)
                if g != ref:
                    bad = sorted(set(g) ^ set(ref)) or \
                        [k for k in ref if g.get(k) != ref[k]]
                    differ[-1] += f" (e.g. group '{bad[0]}': " \
                        f"{g.get(bad[0])} vs {ref.get(bad[0])})"
            recs = sum(v[0] for v in ref.values())
            tot = sum(v[1] for v in ref.values())
            lines.append(f"- {label} {QUERIES[q]}: {plural(len(ref), 'group')}, "
                         f"{recs:,} records, SUM {tot:,}; identical in "
                         f"{', '.join([ref_eng] + same)}"
                         + (f"; **DIFFERENT in {'; '.join(differ)}**"
                            if differ else ""))
            ok = ok and not differ
        return lines, ok

    def check_e2e(self):
        lines, ok = [], True
        for q in QUERIES:
            g = read_groups(self.results / f"gateway-{E2E_LABEL}-{q}.tsv")
            one = read_groups(self.results / f"engine-2t-1M-{q}.tsv") or \
                read_groups(self.results / f"{REFERENCE}-1M-{q}.tsv")
            if g is None or one is None:
                continue
            want = {k: (E2E_AGENTS * v[0], E2E_AGENTS * v[1])
                    for k, v in one.items()}
            wrong = [k for k, v in g.items() if want.get(k) != v]
            sup = self.checks.get(("gateway", E2E_LABEL, q), (0,) * 4)[3]
            lines.append(
                f"- {E2E_LABEL} {QUERIES[q]}: {plural(len(g), 'released group')} + "
                f"{sup:,} suppressed (fewer than 11 persons) of "
                f"{len(want):,}; released values "
                + ("= 4 × the 1M answer" if not wrong else
                   f"**differ** (e.g. '{wrong[0]}')"))
            ok = ok and not wrong and len(g) + sup == len(want)
        return lines, ok

    # ---- tables ------------------------------------------------------------

    def table_times(self, label):
        self.p(f"### {label} rows: median ms (min-max)")
        self.p()
        self.p("| query | " + " | ".join(h for _, h in COLUMNS) + " |")
        self.p("|---" * (len(COLUMNS) + 1) + "|")
        for q, name in QUERIES.items():
            if not any(self.t(e, label, q) for e, _ in COLUMNS):
                continue
            self.p(f"| {name} | " + " | ".join(
                ms(self.t(e, label, q)) for e, _ in COLUMNS) + " |")
        self.p()

    def table_ratios(self, label):
        self.p(f"### {label} rows: ratios (engine = extract engine, 2 threads)")
        self.p()
        self.p("| query | engine ÷ C loop | engine ÷ C loop + persons | "
               "SQLite scan ÷ engine | "
               "SQLite covering ÷ engine | PostgreSQL ÷ engine | "
               "engine 1→2 thr | C loop 1→2 thr |")
        self.p("|---|---|---|---|---|---|---|---|")
        for q, name in QUERIES.items():
            e2 = self.t("engine-2t", label, q)
            if not e2:
                continue
            self.p(f"| {name} | {fx(ratio(e2, self.t('cloop-2t', label, q)), 2)}"
                   f" | {fx(ratio(e2, self.t('cloopc-2t', label, q)), 2)}"
                   f" | {fx(ratio(self.t('sqlite-scan', label, q), e2), 0)}"
                   f" | {fx(ratio(self.t('sqlite-covering', label, q), e2), 0)}"
                   f" | {fx(ratio(self.t('postgres', label, q), e2), 0)}"
                   f" | {fx(ratio(self.t('engine-1t', label, q), e2), 2)}"
                   f" | {fx(ratio(self.t('cloop-1t', label, q), self.t('cloop-2t', label, q)), 2)} |")
        self.p()

    def table_bytes(self, label):
        rows = int(self.info1("rows", label, 0, "0"))
        bpr = {v[0]: (float(v[1]), float(v[2]))
               for v in self.info.get(("bytes_row", label), [])}
        part = {v[0]: int(v[1])
                for v in self.info.get(("partial_bytes", label), [])}
        if not rows or not bpr:
            return
        self.p(f"### {label} rows: bytes per row touched and bandwidth "
               "(2 threads)")
        self.p()
        self.p("| query | groups | bytes/row engine (C loop) | engine GB/s | "
               "C loop GB/s | encoded partial |")
        self.p("|---|---|---|---|---|---|")
        for q, name in QUERIES.items():
            if q not in bpr:
                continue
            eb, cb = bpr[q]
            e2, c2 = self.t("engine-2t", label, q), self.t("cloop-2t", label, q)
            gbs = (lambda b, t: "-" if not t else
                   f"{b * rows / (t['median'] / 1e3) / 1e9:,.1f}")
            groups = self.checks.get((REFERENCE, label, q), (0,))[0]
            self.p(f"| {name} | {groups:,} | {eb:g} ({cb:g}) | {gbs(eb, e2)} | "
                   f"{gbs(cb, c2)} | {part.get(q, 0):,} B |")
        self.p()

    def table_memory(self):
        self.p("### Memory")
        self.p()
        self.p("| rows | extract mapped | packed column width | mapped ÷ packed "
               "| B/row | extract build (SQLite source) | SQLite file (covering) "
               "| PostgreSQL table |")
        self.p("|---|---|---|---|---|---|---|---|")
        for label in self.labels:
            mapped = self.info1("extract_mapped", label)
            packed = self.info1("extract_packed", label)
            rows = self.info1("rows", label)
            if not mapped:
                continue
            mapped, packed, rows = int(mapped), int(packed), int(rows)
            sq = self.info.get(("sqlite_bytes", label), [["0", "0"]])[0]
            pg = self.info1("pg_bytes", label, 0, "0")
            self.p(f"| {label} | {mapped / 1e6:,.1f} MB | {packed / 1e6:,.1f} MB"
                   f" | {mapped / packed:.2f}× | {mapped / rows:.1f} | "
                   f"{self.info1('extract_build_s', label, 0, '-')} s | "
                   f"{int(sq[0]) / 1e6:,.0f} MB ({int(sq[1]) / 1e6:,.0f} MB) | "
                   f"{int(pg) / 1e6:,.0f} MB |")
        self.p()
        cols = self.info.get(("column", self.labels[-1]), []) \
            if self.labels else []
        if cols:
            self.p("Extract columns (" + self.labels[-1] + "): " + ", ".join(
                f"{c[0]} {c[1]} B {c[2]}"
                + (f" ({int(c[3]):,} entries)" if c[2] == "dict" else "")
                for c in cols) + ".")
            self.p()

    def table_ledger(self):
        size = self.info1("ledger_size", "-")
        chk = self.info.get(("ledger_check_ms", "-"))
        if not size or not chk:
            return
        cells, members, mbytes, sent = (int(x) for x in
                                        self.info[("ledger_size", "-")][0])
        fedq, loop, sql, n, reported = chk[0]
        fedq, loop, sql = float(fedq), float(loop), float(sql)
        self.p("### Differencing ledger (one agency)")
        self.p()
        self.p(f"{cells:,} released cells of {members:,} members (persons, "
               f"one record each; log-uniform sizes): {mbytes / 2**20:,.1f} MiB "
               f"in memory (16 B a member, {sent} B of sentinels a cell); "
               f"recording a cell (synchronous SQLite) "
               f"{self.info1('ledger_record_ms', '-')} ms.")
        self.p()
        self.p("| check one candidate against every released cell | median "
               "ms | ratio |")
        self.p("|---|---|---|")
        self.p(f"| fedq ledger (sentinel prefilter, exact merge) | {fedq:.3f} "
               f"| 1× |")
        self.p(f"| hand-written merge loop, every pair | {loop:.3f} | "
               f"{loop / fedq:.1f}× |")
        self.p(f"| SQLite, EXCEPT per pair (sampled, scaled) | {sql:,.1f} | "
               f"{sql / fedq:,.0f}× |")
        self.p()
        self.p(f"Median of {n} candidates, half of them near copies of a "
               f"released cell ({reported} pairs reported).")
        self.p()

    def table_e2e(self):
        if not any(self.t("gateway", E2E_LABEL, q) for q in QUERIES):
            return
        self.p(f"### End to end: gateway + {E2E_AGENTS} agents × 1M rows "
               "(alias pooling them), mutual TLS, one persistent client")
        self.p()
        self.p("| query | gateway, 4 agents × 1M: median ms (min-max) | runs | "
               "released groups | suppressed | one agent's Execute over mTLS, "
               "1M | in-process engine, 1M, 2 thr |")
        self.p("|---|---|---|---|---|---|---|")
        for q, name in QUERIES.items():
            t = self.t("gateway", E2E_LABEL, q)
            if not t:
                continue
            c = self.checks.get(("gateway", E2E_LABEL, q), (0, 0, 0, 0))
            self.p(f"| {name} | {ms(t)} | {t['runs']} | {c[0]:,} | {c[3]:,} | "
                   f"{ms(self.t('agent', '1M', q))} | "
                   f"{ms(self.t('engine-2t', '1M', q))} |")
        self.p()

    # ---- targets -------------------------------------------------------------

    def target(self, text, value, ok):
        self.targets.append((text, value, ok))

    def targets_10m(self):
        label = "10M"
        t = self.t
        for q, lim in (("a", 2), ("b", 3), ("c", 3)):
            r = ratio(t("engine-2t", label, q), t("cloop-2t", label, q))
            self.target(f"{label} {QUERIES[q][:3]} within {lim}× of the C loop",
                        fx(r, 2), None if r is None else r <= lim)
        for q in ("b", "c"):
            e2 = t("engine-2t", label, q)
            for eng, lim, what in (("sqlite-scan", 40, "SQLite full scan"),
                                   ("sqlite-covering", 20,
                                    "SQLite covering indexes"),
                                   ("postgres", 30, "PostgreSQL")):
                r = ratio(t(eng, label, q), e2)
                self.target(f"{label} {QUERIES[q][:3]} ≥ {lim}× faster than "
                            f"{what}", fx(r, 0),
                            None if r is None else r >= lim)
        for q in QUERIES:
            r = ratio(t("engine-1t", label, q), t("engine-2t", label, q))
            self.target(f"{label} {QUERIES[q][:3]} 2 threads ≥ 1.7× faster "
                        "than 1", fx(r, 2), None if r is None else r >= 1.7)
        mapped, packed = self.info1("extract_mapped", label), \
            self.info1("extract_packed", label)
        r = int(mapped) / int(packed) if mapped and packed else None
        self.target(f"{label} extract memory ≤ 1.5× the packed column width",
                    fx(r, 2), None if r is None else r <= 1.5)
        for q in QUERIES:
            e = t("gateway", E2E_LABEL, q)
            self.target(f"end to end {E2E_LABEL} {QUERIES[q][:3]} median "
                        "≤ 2 ms", "-" if not e else f"{e['median']:.2f} ms",
                        None if not e else e["median"] <= 2.0)

    def run(self):
        self.p("## Setup")
        self.p()
        for key in ("machine", "software", "commit", "command", "synth",
                    "pg_settings",
                    "load_start", "load_end"):
            v = self.info1(key, "-")
            if v:
                self.p(f"- {key}: {v}")
        self.p()
        self.p("## Same answers")
        self.p()
        all_ok = True
        for label in self.labels:
            lines, ok = self.check_label(label)
            self.out.extend(lines)
            all_ok = all_ok and ok
        lines, ok = self.check_e2e()
        self.out.extend(lines)
        all_ok = all_ok and ok
        self.p()
        self.p("## Times")
        self.p()
        for label in self.labels:
            self.table_times(label)
            self.table_ratios(label)
            self.table_bytes(label)
        self.table_memory()
        self.table_e2e()
        self.table_ledger()
        self.targets_10m()
        self.p("## Targets (issue 5)")
        self.p()
        self.p("| target | measured | |")
        self.p("|---|---|---|")
        for text, value, ok in self.targets:
            verdict = "not measured" if ok is None else \
                "met" if ok else "**not met**"
            self.p(f"| {text} | {value} | {verdict} |")
        self.p()
        return all_ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("measurements")
    ap.add_argument("results")
    ap.add_argument("--out")
    a = ap.parse_args()
    times, checks, info = read_measurements(a.measurements)
    r = Report(times, checks, info, a.results)
    ok = r.run()
    text = "\n".join(r.out) + "\n"
    sys.stdout.write(text)
    if a.out:
        Path(a.out).write_text(text)
    if not ok:
        print("report.py: the engines' answers differ (see above)",
              file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
