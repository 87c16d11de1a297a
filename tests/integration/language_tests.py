"""
fedq integration tests of the extended query language (imported by
run_integration.py after query_tests, registered with its @test decorator):

- filters with OR, NOT, parentheses, IS [NOT] NULL, NOT IN and NOT BETWEEN,
  compared with the sqlite3 oracle of query_tests evaluating the very same
  WHERE text (SQLite's three-valued logic is the specification);
- ORDER BY and LIMIT, applied after suppression: the expected row order is
  computed here from the oracle's groups (a stable sort of the key-ordered
  released table, cells without a value last in both directions);
- Gateway/Explain: canonical SQL, plan tree, agencies, columns, order,
  limit and checks; it runs nothing (it still answers with every agent
  stopped); its errors are Query's; `fedq explain --format json`;
- HISTOGRAM and QUANTILE: accepted (checked against the oracle, also
  under ORDER BY a QUANTILE and with a HISTOGRAM before the key), and
  refused where the rules say so (ORDER BY a HISTOGRAM, q outside (0, 1),
  edges not increasing or not of the measure's type, more than 64 edges or
  256 bins, QUANTILE on a measure without quantile_bins, more GROUP BY
  columns than max_group_by).

Seeded like query_tests (FEDQ_TEST_SEED); every failure names the seed.
"""

import functools
import json
import math
import os
import random
import re
import signal
import time

import grpc

import run_integration as ri
from run_integration import (EXAMPLE_AGENCIES, TestFailure, check, ereq,
                             qreq, test)
import query_tests as qt
from query_tests import (CALL_TIMEOUT, HIED, ExampleFed, Generator,
                         compare, one_line, oracle, proto_table, query_grpc,
                         seeded, short)

N_BOOL = int(os.environ.get("FEDQ_BOOL_QUERY_COUNT", "100"))
N_ORDER = int(os.environ.get("FEDQ_ORDER_QUERY_COUNT", "40"))


# ---- filter trees -----------------------------------------------------------
#
# ("cmp", col, op, v) | ("between", col, lo, hi, negated)
# | ("in", col, [v...], negated) | ("isnull", col, negated)
# | ("and", [kids]) | ("or", [kids]) | ("not", kid)

PREC = {"or": 1, "and": 2, "not": 3}  # leaves bind tightest


def tree_columns(t):
    if t[0] in ("and", "or"):
        return [c for k in t[1] for c in tree_columns(k)]
    if t[0] == "not":
        return tree_columns(t[1])
    return [t[1]]


def tree_depth(t):
    if t[0] in ("and", "or"):
        return 1 + max(tree_depth(k) for k in t[1])
    if t[0] == "not":
        return 1 + tree_depth(t[1])
    return 0


class BoolGenerator(Generator):
    """query_tests' generator, with filters that are trees, now and then
    a double-quoted column name and a /* */ comment (SQLite reads both
    the same way)."""

    COMMENTS = [" /* c */ ", "/**/", " /* -- 'x' * / */\n", "\n/*\n*/ "]

    def sp(self):
        if self.rng.random() < 0.04:
            return self.rng.choice(self.COMMENTS)
        return super().sp()

    def col(self, name):
        return f'"{name}"' if self.rng.random() < 0.12 else name

    def leaf(self, src):
        rng = self.rng
        r = rng.random()
        nullable = [c for c in ("graduation_year",) if c in src.columns]
        if r < 0.14:
            if nullable and rng.random() < 0.7:
                return ("isnull", rng.choice(nullable), rng.random() < 0.5)
            # A column without NULLs: mostly IS NOT NULL (always true).
            return ("isnull", rng.choice(src.dims + src.measures),
                    rng.random() < 0.7)
        if r < 0.3:
            f = self.filter(src, "BETWEEN")
            return ("between", f[1], f[2], f[3], rng.random() < 0.6)
        if r < 0.48:
            f = self.filter(src, "IN")
            return ("in", f[1], f[2], rng.random() < 0.6)
        f = self.filter(src, rng.choice(["=", "<>", "<", "<=", ">", ">="]))
        if nullable and rng.random() < 0.25:
            # graduation_year compared: NULL rows are neither in nor out.
            f = ("cmp", nullable[0], f[2], rng.choice([2023, 2024, 2022]))
        return f

    def tree(self, src, depth):
        rng = self.rng
        if depth <= 0 or rng.random() < 0.25:
            return self.leaf(src)
        r = rng.random()
        if r < 0.22:
            return ("not", self.tree(src, depth - 1))
        kind = "or" if r < 0.65 else "and"
        return (kind, [self.tree(src, depth - 1)
                       for _ in range(rng.randint(2, 3))])

    def render_tree(self, t, parent=0):
        """Text with the parentheses precedence needs, and now and then
        some it does not need."""
        kw, sp, lit = self.kw, self.sp, self.lit
        k = t[0]
        if k == "cmp":
            s = f"{self.col(t[1])}{sp()}{t[2]}{sp()}{lit(t[3])}"
        elif k == "between":
            s = (f"{self.col(t[1])} {kw('NOT') + ' ' if t[4] else ''}"
                 f"{kw('BETWEEN')} "
                 f"{lit(t[2])} {kw('AND')} {lit(t[3])}")
        elif k == "in":
            s = (f"{self.col(t[1])} {kw('NOT') + ' ' if t[3] else ''}"
                 f"{kw('IN')} (" +
                 ", ".join(lit(v) for v in t[2]) + ")")
        elif k == "isnull":
            s = f"{self.col(t[1])} {kw('IS')} " \
                f"{kw('NOT') + ' ' if t[2] else ''}" \
                f"{kw('NULL')}"
        elif k == "not":
            inner = self.render_tree(t[1], PREC["not"])
            s = kw("NOT") + (" " if not inner.startswith("(") or
                             self.rng.random() < 0.5 else "") + inner
        else:
            word = sp() + kw(k.upper()) + sp()
            s = word.join(self.render_tree(c, PREC[k]) for c in t[1])
        mine = PREC.get(k, 4)
        if mine < parent:
            return f"({s})"
        if self.rng.random() < 0.12 and parent:
            return f"({sp() if self.rng.random() < 0.3 else ''}{s})"
        return s

    def bool_query(self, i, order=False):
        rng = self.rng
        src, spec, _ = self.query(i)
        t = self.tree(src, rng.choice([1, 2, 3, 3, 4]))
        spec = dict(spec, filters=[], tree=t,
                    where_columns=tree_columns(t))
        spec["where"] = self.render_tree(t)
        if order:
            self.add_order(spec)
        return src, spec, self.render_where_query(spec)

    # -- ORDER BY / LIMIT

    def add_order(self, spec):
        rng = self.rng
        keys, used = [], set()
        for _ in range(rng.randint(1, min(3, len(spec["items"])))):
            idx = rng.randrange(len(spec["items"]))
            if idx in used:
                continue
            used.add(idx)
            it = spec["items"][idx]
            r = rng.random()
            if r < 0.3:
                ref = str(idx + 1)
            elif it[0] == "dim":
                ref = self.col(it[1])
            else:
                ref = f"{self.kw(it[1])}({it[2] or '*'})"
            d = rng.choice([None, "ASC", "DESC", "DESC"])
            keys.append((idx, d == "DESC", ref, d))
        if rng.random() < 0.12:
            keys = []  # LIMIT alone: it cuts the key-ordered table
        spec["order"] = keys
        spec["limit"] = (None if rng.random() < 0.4 and keys else
                         rng.choice([0, 1, 2, 3, 5, 8, 13, 40, 400]))

    def render_where_query(self, spec):
        kw, sp = self.kw, self.sp
        items = [it[1] if it[0] == "dim" else f"{kw(it[1])}({it[2] or '*'})"
                 for it in spec["items"]]
        sql = kw("SELECT") + sp() + ("," + sp()).join(items)
        sql += sp() + kw("FROM") + sp() + \
            f"{spec['source']}.{spec['dataset']}"
        if spec.get("where"):
            sql += sp() + kw("WHERE") + sp() + spec["where"]
        if spec["group_by"]:
            sql += sp() + kw("GROUP") + " " + kw("BY") + sp() + \
                ", ".join(spec["group_by"])
        if spec.get("order"):
            sql += sp() + kw("ORDER") + " " + kw("BY") + sp() + ", ".join(
                ref + (" " + kw(d) if d else "")
                for _, _, ref, d in spec["order"])
        if spec.get("limit") is not None:
            sql += sp() + kw("LIMIT") + " " + str(spec["limit"])
        if self.rng.random() < 0.15:
            sql += self.rng.choice([";", " ;", ";\n"])
        return sql


# ---- the ordering rule, implemented here ----------------------------------


def released_rows(src, spec, want):
    """The oracle's table as fedq must release it, in group-key order:
    rows of cells (status, kind, value), one per result column."""
    return [qt.expected_row(src, spec, k, want[k])
            for k in sorted(want, key=qt.key_order)]


def order_rows(rows, keys):
    """Stable sort by (column, descending) keys; a cell without a value
    sorts after every cell with one, whatever the direction."""
    def cmp(x, y):
        for col, desc in keys:
            a, b = x[col][2] if x[col][1] else None, \
                y[col][2] if y[col][1] else None
            if a is None and b is None:
                continue
            if a is None:
                return 1
            if b is None:
                return -1
            if a == b:
                continue
            c = -1 if a < b else 1
            return -c if desc else c
        return 0
    return sorted(rows, key=functools.cmp_to_key(cmp))


def same_cell(a, b):
    if a[0] != b[0] or a[1] != b[1]:
        return False
    if a[1] == "decimal":
        return math.isclose(a[2], b[2], rel_tol=1e-9, abs_tol=0.0)
    return a[2] == b[2]


def compare_ordered(got, want_rows, ecols):
    check(got["columns"] == ecols,
          f"columns {got['columns']}, expected {ecols}")
    check(len(got["rows"]) == len(want_rows),
          f"{len(got['rows'])} rows, expected {len(want_rows)}; got "
          f"{short(got['rows'][:4])}, expected {short(want_rows[:4])}")
    for n, (g, w) in enumerate(zip(got["rows"], want_rows)):
        if len(g) != len(w) or not all(same_cell(a, b)
                                       for a, b in zip(g, w)):
            raise TestFailure(f"row {n}: {short(g)}, expected {short(w)}; "
                              f"expected rows {n - 1}..{n + 1}: "
                              f"{short(want_rows[max(0, n - 1):n + 2], 400)}")


def expected_agencies(spec):
    return HIED if spec["source"] == "hied" else [spec["source"]]


# ---- tests -----------------------------------------------------------------


@test
@seeded
def lang_boolean_oracle(h):
    """Random queries whose WHERE is a tree of AND, OR, NOT, parentheses,
    IS [NOT] NULL, NOT IN and NOT BETWEEN (depth up to 4) over dol, dss,
    doe and the pooled hied alias, compared with SQLite evaluating the same
    WHERE text over the raw files; each query's Explain gives a canonical
    SQL that Explains to itself with the same plan."""
    p = h.proto
    fed = ExampleFed(h, "bool", EXAMPLE_AGENCIES)
    try:
        stub = fed.stub()
        rng = random.Random(SEED_OFFSET + qt.SEED)
        gen = BoolGenerator(rng, fed.catalog)
        failures = []
        seen = {"kinds": set(), "depth": set(), "null_rows": 0,
                "suppressed": 0, "exact": 0, "empty": 0}
        t0 = time.monotonic()
        for i in range(N_BOOL):
            src, spec, sql = gen.bool_query(i)
            try:
                want = oracle(src, spec)
                try:
                    got = query_grpc(p, stub, sql)
                except grpc.RpcError as e:
                    raise TestFailure(f"{e.code().name}: {e.details()}")
                compare(src, spec, got, want, expected_agencies(spec))
                # Explain: the canonical text is a fixed point.
                try:
                    e1 = stub.Explain(ereq(p, sql),
                                      timeout=CALL_TIMEOUT)
                    e2 = stub.Explain(ereq(p, e1.canonical_sql),
                                      timeout=CALL_TIMEOUT)
                except grpc.RpcError as e:
                    raise TestFailure(f"Explain: {e.code().name}: "
                                      f"{e.details()}")
                check(e2.canonical_sql == e1.canonical_sql,
                      f"canonical SQL not a fixed point: "
                      f"{e1.canonical_sql!r} -> {e2.canonical_sql!r}")
                check(e2.plan == e1.plan,
                      f"plan of the canonical SQL {e1.canonical_sql!r} "
                      f"differs: {one_line(str(e2.plan))[:300]} vs "
                      f"{one_line(str(e1.plan))[:300]}")
                check(filter_sql(p, e1.plan) is not None,
                      "Explain plan without a filter")
                # The plan's own tree, as SQL, selects the same records.
                spec2 = dict(spec, where=filter_sql(p, e1.plan))
                want2 = oracle(src, spec2)
                check(want2 == want, f"the plan's filter "
                                     f"{spec2['where']!r} selects other "
                                     f"records than the query's")
            except TestFailure as e:
                failures.append((f"{i} {one_line(sql)!r}", str(e)))
                continue
            seen["kinds"].update(kinds_of(spec["tree"]))
            seen["depth"].add(tree_depth(spec["tree"]))
            seen["empty"] += not want
            for g in want.values():
                seen["suppressed" if qt.group_hidden(g)
                     else "exact"] += 1
        took = time.monotonic() - t0
        if failures:
            kinds = {}
            for f in failures:
                kinds.setdefault(qt.failure_kind(f[1]), []).append(f)
            raise TestFailure(
                f"{len(failures)} of {N_BOOL} queries wrong, "
                f"{len(kinds)} kinds: " + " || ".join(
                    f"{len(v)}x {k!r}, e.g. query {v[0][0]}: {v[0][1]}"
                    for k, v in sorted(kinds.items(),
                                       key=lambda kv: -len(kv[1]))))
        need = {"and", "or", "not", "isnull", "isnotnull", "notin",
                "notbetween", "in", "between", "cmp"}
        if N_BOOL >= 100:
            check(need <= seen["kinds"], f"not exercised: "
                                         f"{need - seen['kinds']}")
            check(max(seen["depth"]) >= 3, f"depths {seen['depth']}")
        ri.print_note(f"seed {qt.SEED}; {N_BOOL} filter-tree queries in "
                      f"{took:.1f}s; depths {sorted(seen['depth'])}; "
                      f"{seen['exact']} released and {seen['suppressed']} "
                      f"suppressed groups; {seen['empty']} empty")
    finally:
        fed.close()


SEED_OFFSET = 7919  # another stream than query_oracle's, same seed


def kinds_of(t):
    k = t[0]
    if k in ("and", "or"):
        return {k}.union(*(kinds_of(c) for c in t[1]))
    if k == "not":
        return {"not"} | kinds_of(t[1])
    if k == "isnull":
        return {"isnotnull" if t[2] else "isnull"}
    if k == "in":
        return {"notin" if t[3] else "in"}
    if k == "between":
        return {"notbetween" if t[4] else "between"}
    return {"cmp"}


# ---- a plan's filter tree as SQL, and as plain data -------------------------

PLAN_OPS = {1: "=", 2: "<>", 3: "<", 4: "<=", 5: ">", 6: ">="}


def plan_literal(lit):
    kind = lit.WhichOneof("value")
    v = getattr(lit, kind) if kind else None
    return (kind and kind[:-6], v)


def sql_lit(lit):
    kind, v = plan_literal(lit)
    check(kind is not None, "a plan literal without a value")
    if kind == "text":
        return "'" + v.replace("'", "''") + "'"
    return repr(v)


def filter_sql(p, plan):
    """The plan's filter tree as SQLite SQL (None without a filter)."""
    if not plan.HasField("filter"):
        return None

    def walk(pr):
        node = pr.WhichOneof("node")
        check(node is not None, "a Predicate with no node set")
        if node in ("all", "any"):
            terms = getattr(pr, node).terms
            check(len(terms) >= 1, f"{node} without terms")
            j = " AND " if node == "all" else " OR "
            return "(" + j.join(walk(t) for t in terms) + ")"
        if node == "not":
            return "(NOT " + walk(getattr(pr, "not").term) + ")"
        x = getattr(pr, node)
        c = qt.q_ident(x.column)
        if node == "compare":
            check(x.op in PLAN_OPS, f"compare op {x.op}")
            return f"({c} {PLAN_OPS[x.op]} {sql_lit(x.value)})"
        if node == "between":
            return f"({c} BETWEEN {sql_lit(x.low)} AND {sql_lit(x.high)})"
        if node == "in":
            return f"({c} IN ({', '.join(sql_lit(v) for v in x.values)}))"
        if node == "is_null":
            return f"({c} IS {'NOT ' if x.negated else ''}NULL)"
        raise TestFailure(f"unknown predicate node {node}")
    return walk(plan.filter)


def plan_tree(pr):
    """A Predicate as plain data, AND and OR flattened, a one-term AND or
    OR reduced to its term (so equivalent shapes compare equal)."""
    node = pr.WhichOneof("node")
    if node in ("all", "any"):
        kind = "and" if node == "all" else "or"
        kids = []
        for t in getattr(pr, node).terms:
            k = plan_tree(t)
            kids += k[1] if k[0] == kind else [k]
        return kids[0] if len(kids) == 1 else (kind, kids)
    if node == "not":
        t = plan_tree(getattr(pr, "not").term)
        # NOT NOT x may reach the agencies as x: the same filter.
        return t[1] if t[0] == "not" else ("not", t)
    x = getattr(pr, node)
    if node == "compare":
        return ("cmp", x.column, PLAN_OPS.get(x.op), plan_literal(x.value))
    if node == "between":
        return ("between", x.column, plan_literal(x.low),
                plan_literal(x.high))
    if node == "in":
        return ("in", x.column, [plan_literal(v) for v in x.values])
    if node == "is_null":
        return ("isnull", x.column, x.negated)
    return ("?", node)


def I(v):  # noqa: E743 - a typed literal as plan_tree shows it
    return ("int", v)


def T(v):
    return ("text", v)


# ---- ORDER BY / LIMIT -------------------------------------------------------


@test
@seeded
def lang_order_limit(h):
    """ORDER BY (dimensions, aggregates as written, positions; ASC, DESC,
    several keys) and LIMIT on random queries, some with filter trees:
    the exact rows, in the order of a stable sort of the key-ordered
    released table with cells without a value last in both directions, cut
    after suppression. Then a table with suppressed COUNT(*) cells ordered
    by COUNT(*) both ways: suppressed rows last, in key order; LIMIT cuts
    the suppressed table. Then ORDER BY a QUANTILE, by name and by its
    position after a HISTOGRAM (order_by_quantile)."""
    p = h.proto
    fed = ExampleFed(h, "order", EXAMPLE_AGENCIES)
    try:
        stub = fed.stub()
        rng = random.Random(2 * SEED_OFFSET + qt.SEED)
        gen = BoolGenerator(rng, fed.catalog)
        failures = []
        seen = {"desc": 0, "pos": 0, "agg": 0, "limit": 0, "hidden_key": 0,
                "cut": 0}
        t0 = time.monotonic()
        for i in range(N_ORDER):
            if i % 3 == 0:
                src, spec, sql = gen.bool_query(i, order=True)
            else:
                src, spec, _ = gen.query(i)
                gen.add_order(spec)
                spec = dict(spec)
                leaves = [f + (False,) if f[0] != "cmp" else f
                          for f in spec["filters"]]
                spec["where"] = " AND ".join(
                    gen.render_tree(f, PREC["and"]) for f in leaves) or None
                spec["where_columns"] = [f[1] for f in spec["filters"]]
                spec["filters"] = []
                sql = gen.render_where_query(spec)
            try:
                want = oracle(src, spec)
                rows = released_rows(src, spec, want)
                keys = [(c, d) for c, d, _, _ in spec["order"]]
                rows = order_rows(rows, keys)
                if spec["limit"] is not None:
                    seen["cut"] += spec["limit"] < len(rows)
                    rows = rows[:spec["limit"]]
                try:
                    got = query_grpc(p, stub, sql)
                except grpc.RpcError as e:
                    raise TestFailure(f"{e.code().name}: {e.details()}")
                compare_ordered(got, rows, qt.expected_columns(src, spec))
                check(sorted(got["agencies"]) ==
                      sorted(expected_agencies(spec)),
                      f"agencies {got['agencies']}")
            except TestFailure as e:
                failures.append((f"{i} {one_line(sql)!r}", str(e)))
                continue
            for c, d, ref, _ in spec["order"]:
                seen["desc"] += d
                seen["pos"] += ref.isdigit()
                seen["agg"] += spec["items"][c][0] == "agg"
                seen["hidden_key"] += any(r[c][1] is None for r in rows)
            seen["limit"] += spec["limit"] is not None
        if failures:
            raise TestFailure(
                f"{len(failures)} of {N_ORDER} ordered queries wrong: " +
                " || ".join(f"query {q}: {e}" for q, e in failures[:4]))
        check(all(seen[k] for k in ("desc", "pos", "agg", "limit", "cut")),
              f"coverage {seen}")

        # -- suppressed cells under ORDER BY COUNT(*): last in both
        # directions, in key order among themselves; LIMIT after that.
        src = fed.catalog.source("dss", "enrollment")
        base = ("SELECT town, COUNT(*), AVG(benefit) FROM dss.enrollment "
                "WHERE month = '2024-06' AND town IN ({towns}) "
                "GROUP BY town ORDER BY {key}")
        spec0 = {"items": [("dim", "town"), ("agg", "COUNT", None),
                           ("agg", "AVG", "benefit")],
                 "group_by": ["town"],
                 "filters": [("cmp", "month", "=", "2024-06")]}
        allg = oracle(src, spec0)
        small = sorted(k[0] for k, g in allg.items()
                       if qt.group_hidden(g))
        big = sorted(k[0] for k, g in allg.items()
                     if not qt.group_hidden(g))
        check(len(small) >= 3 and len(big) >= 3,
              f"dss 2024-06: {len(small)} small and {len(big)} large towns")
        # Interleave small and large towns so key order mixes them.
        towns = sorted(rng.sample(small, min(6, len(small))) +
                       rng.sample(big, min(6, len(big))))
        spec0["filters"].append(("in", "town", towns))
        want = oracle(src, spec0)
        n_small = sum(qt.group_hidden(g) for g in want.values())
        tl = ", ".join(f"'{t}'" for t in towns)
        cases = 0
        for key, keys in (("COUNT(*)", [(1, False)]),
                          ("COUNT(*) ASC", [(1, False)]),
                          ("2 DESC", [(1, True)]),
                          ("count(*) DESC, town DESC", [(1, True),
                                                        (0, True)]),
                          ("AVG(benefit) DESC", [(2, True)])):
            town_desc = key.endswith("town DESC")
            full = order_rows(released_rows(src, spec0, want), keys)
            n_rel = len(full) - n_small
            # Independent of order_rows: the hidden ones are the last
            # n_small rows, in town order.
            tail_towns = [r[0][2] for r in full[n_rel:]]
            check(all(r[1][0] == "suppressed" for r in full[n_rel:]) and
                  tail_towns == sorted(tail_towns, reverse=town_desc),
                  f"oracle ordering broken: {full}")
            for limit in (None, n_rel - 1, n_rel, n_rel + 2, 0):
                sql = base.format(towns=tl, key=key) + (
                    f" LIMIT {limit}" if limit is not None else "")
                exp = full if limit is None else full[:limit]
                got = query_grpc(p, stub, sql)
                try:
                    compare_ordered(got, exp, qt.expected_columns(src,
                                                                  spec0))
                except TestFailure as e:
                    raise TestFailure(f"{sql!r}: {e}")
                if limit is None:
                    hid = [r for r in got["rows"] if r[1][0] ==
                           "suppressed"]
                    check(got["rows"][len(got["rows"]) - len(hid):] == hid,
                          f"{key}: suppressed rows not last")
                cases += 1
        # -- the NULL graduation_year group (first in key order) sorts last
        # under ORDER BY graduation_year, ASC or DESC.
        hsrc = fed.catalog.source("hied", "enrollment")
        hspec = {"items": [("dim", "graduation_year"),
                           ("agg", "COUNT", None)],
                 "group_by": ["graduation_year"], "filters": []}
        hwant = oracle(hsrc, hspec)
        check((None,) in hwant and len(hwant) >= 3,
              f"hied graduation_year groups {sorted(hwant, key=str)}")
        for d in ("", " ASC", " DESC"):
            sql = ("SELECT graduation_year, COUNT(*) FROM hied.enrollment "
                   f"GROUP BY graduation_year ORDER BY graduation_year{d}")
            got = query_grpc(p, stub, sql)
            exp = order_rows(released_rows(hsrc, hspec, hwant),
                             [(0, d == " DESC")])
            check(exp[-1][0][0] == "not_applicable", f"oracle: {exp}")
            try:
                compare_ordered(got, exp,
                                qt.expected_columns(hsrc, hspec))
            except TestFailure as e:
                raise TestFailure(f"{sql!r}: {e}")
            cases += 1
        cases += order_by_quantile(p, stub, fed, towns)
        ri.print_note(f"seed {qt.SEED}; {N_ORDER} ordered queries and "
                      f"{cases} suppression and QUANTILE cases ({n_small} "
                      f"suppressed of {len(want)} rows) in "
                      f"{time.monotonic() - t0:.1f}s; coverage {seen}")
    finally:
        fed.close()


def order_by_quantile(p, stub, fed, towns):
    """ORDER BY a QUANTILE (as written, or by its position in the select
    list after a HISTOGRAM's several columns): by its value, ties in key
    order, suppressed cells last both ways; Explain's order_by names the
    result column. Returns the number of cases."""
    src = fed.catalog.source("dss", "enrollment")
    tl = ", ".join(f"'{t}'" for t in towns)
    sql0 = ("SELECT town, HISTOGRAM(benefit, 50000), QUANTILE(benefit, 0.9), "
            "COUNT(*) FROM dss.enrollment WHERE month = '2024-06' AND town "
            f"IN ({tl}) GROUP BY town ORDER BY ")
    spec = {"items": [("dim", "town"),
                      ("agg", "HISTOGRAM", "benefit", (50000,)),
                      ("agg", "QUANTILE", "benefit", 0.9),
                      ("agg", "COUNT", None)],
            "group_by": ["town"],
            "filters": [("cmp", "month", "=", "2024-06"),
                        ("in", "town", towns)]}
    hsrc = fed.catalog.source("hied", "enrollment")
    hspec = {"items": [("dim", "term"), ("agg", "QUANTILE", "credits", 0.5),
                       ("agg", "HISTOGRAM", "credits", (12,))],
             "group_by": ["term"], "filters": []}
    hsql = ("SELECT term, QUANTILE(credits, 0.5), HISTOGRAM(credits, 12) "
            "FROM hied.enrollment GROUP BY term ORDER BY ")
    # Result columns: town 0, the HISTOGRAM's two bins 1 and 2, the
    # QUANTILE 3, COUNT(*) 4; hied: term 0, QUANTILE 1, bins 2 and 3.
    runs = [(src, spec, sql0, key, keys, limit)
            for key, keys in (("QUANTILE(benefit, 0.9)", [(3, False)]),
                              ("quantile(benefit, 0.9) DESC", [(3, True)]),
                              ("3 DESC, town DESC", [(3, True), (0, True)]),
                              ("QUANTILE(benefit, 0.9), COUNT(*) DESC",
                               [(3, False), (4, True)]))
            for limit in (None, 2)]
    runs += [(hsrc, hspec, hsql, "QUANTILE(credits, 0.5) DESC, term DESC",
              [(1, True), (0, True)], None),
             (hsrc, hspec, hsql, "2", [(1, False)], 1)]
    hidden = 0
    for s, sp, base, key, keys, limit in runs:
        sql = base + key + (f" LIMIT {limit}" if limit is not None else "")
        exp = order_rows(released_rows(s, sp, oracle(s, sp)), keys)
        if limit is not None:
            exp = exp[:limit]
        try:
            got = query_grpc(p, stub, sql)
            compare_ordered(got, exp, qt.expected_columns(s, sp))
            e = stub.Explain(ereq(p, sql),
                             timeout=CALL_TIMEOUT)
        except grpc.RpcError as ex:
            raise TestFailure(f"{sql!r}: {ex.code().name} {ex.details()}")
        except TestFailure as ex:
            raise TestFailure(f"{sql!r}: {ex}")
        ob = [(k.column, k.descending) for k in e.order_by]
        check(ob == keys, f"Explain {sql!r}: order_by {ob}, expected "
                          f"{keys} (indexes of result columns)")
        hidden += any(r[keys[0][0]][1] is None for r in exp)
    check(hidden, "no QUANTILE ordering met a suppressed cell")
    return len(runs)


# ---- Explain ----------------------------------------------------------------


def explain_cases():
    """(sql, expected): agencies, columns (name, aggregate), plan (dataset,
    group_by, aggregates, filter tree as plan_tree gives it), order_by,
    limit (None: no LIMIT)."""
    return [
        ("SELECT quarter, COUNT(*), SUM(wages) FROM dol.wages\n"
         "WHERE quarter BETWEEN '2023Q1' AND '2023Q4'\n"
         "  AND (industry = '23' OR NOT town IN ('T001', 'T002'))\n"
         "GROUP BY quarter ORDER BY 2 DESC, quarter LIMIT 5",
         {"agencies": ["dol"],
          "columns": [("quarter", False), ("COUNT(*)", True),
                      ("SUM(wages)", True)],
          "dataset": "wages", "group_by": ["quarter"],
          "aggregates": [("COUNT", ""), ("SUM", "wages")],
          "filter": ("and", [
              ("between", "quarter", T("2023Q1"), T("2023Q4")),
              ("or", [("cmp", "industry", "=", T("23")),
                      ("not", ("in", "town", [T("T001"), T("T002")]))])]),
          "order_by": [(1, True), (0, False)], "limit": 5}),
        ("select graduation_year, credential, count(*) from hied.enrollment "
         "where graduation_year is not null and birth_year not between 1995 "
         "and 1999 and not (term = '2023FA' or credential in ('CERT')) "
         "group by graduation_year, credential "
         "order by count(*) desc, credential limit 0",
         {"agencies": HIED,
          "columns": [("graduation_year", False), ("credential", False),
                      ("COUNT(*)", True)],
          "dataset": "enrollment",
          "group_by": ["graduation_year", "credential"],
          "aggregates": [("COUNT", "")],
          "filter": ("and", [
              ("isnull", "graduation_year", True),
              ("not", ("between", "birth_year", I(1995), I(1999))),
              ("not", ("or", [("cmp", "term", "=", T("2023FA")),
                              ("in", "credential", [T("CERT")])]))]),
          "order_by": [(2, True), (1, False)], "limit": 0}),
        ("SELECT AVG(benefit), program FROM dss.enrollment GROUP BY program",
         {"agencies": ["dss"],
          "columns": [("AVG(benefit)", True), ("program", False)],
          "dataset": "enrollment", "group_by": ["program"],
          "aggregates": [("AVG", "benefit")], "filter": None,
          "order_by": [], "limit": None}),
        ("SELECT COUNT(*) FROM doe.k12_enrollment WHERE grade IS NULL OR "
         "NOT NOT (graduated = 1 AND school_year <> '2022-23') "
         "ORDER BY COUNT(*) ASC",
         {"agencies": ["doe"], "columns": [("COUNT(*)", True)],
          "dataset": "k12_enrollment", "group_by": [],
          "aggregates": [("COUNT", "")],
          "filter": ("or", [
              ("isnull", "grade", False),
              ("and", [
                  ("cmp", "graduated", "=", I(1)),
                  ("cmp", "school_year", "<>", T("2022-23"))])]),
          "order_by": [(0, False)], "limit": None}),
    ]


KIND_NAMES = {1: "COUNT", 2: "SUM", 3: "AVG"}


def check_explain(p, r, sql, exp):
    where = f"Explain {one_line(sql)[:60]!r}"
    check(sorted(r.agencies) == sorted(exp["agencies"]) and
          len(r.agencies) == len(exp["agencies"]),
          f"{where}: agencies {list(r.agencies)}, expected "
          f"{exp['agencies']}")
    cols = [(c.name, c.aggregate) for c in r.columns]
    check(cols == exp["columns"], f"{where}: columns {cols}")
    pl = r.plan
    check(pl.dataset == exp["dataset"], f"{where}: dataset {pl.dataset!r}")
    check(list(pl.group_by) == exp["group_by"],
          f"{where}: group_by {list(pl.group_by)}")
    aggs = [(KIND_NAMES.get(a.kind, a.kind), a.column)
            for a in pl.aggregates]
    check(aggs == exp["aggregates"], f"{where}: aggregates {aggs}")
    if exp["filter"] is None:
        check(not pl.HasField("filter"),
              f"{where}: a filter {one_line(str(pl.filter))}")
    else:
        check(pl.HasField("filter"), f"{where}: no filter")
        got = plan_tree(pl.filter)
        check(got == exp["filter"],
              f"{where}: filter {got}, expected {exp['filter']}")
    ob = [(k.column, k.descending) for k in r.order_by]
    check(ob == exp["order_by"], f"{where}: order_by {ob}")
    if exp["limit"] is None:
        check(not r.has_limit and r.limit == 0,
              f"{where}: has_limit {r.has_limit} limit {r.limit}")
    else:
        check(r.has_limit and r.limit == exp["limit"],
              f"{where}: has_limit {r.has_limit} limit {r.limit}")
    check(r.checks and all(c.strip() for c in r.checks),
          f"{where}: checks {list(r.checks)}")
    check(any("11" in c for c in r.checks),
          f"{where}: no check names the threshold 11: {list(r.checks)}")
    check(r.canonical_sql.strip(), f"{where}: empty canonical_sql")


# COUNT(DISTINCT) pooled over an alias needs linkage: refused.
COUNT_DISTINCT = ("SELECT COUNT(DISTINCT person_id) FROM hied.enrollment", 8)


@test
@seeded
def lang_explain(h):
    """Gateway/Explain: agencies, columns, the plan's dataset, group_by,
    aggregates and filter tree, order_by, limit and checks (naming the
    threshold 11) as expected; the canonical SQL Explains to itself; the
    same plan with every agent stopped (catalogs cached, nothing runs);
    errors exactly Query's; `fedq explain --format json`; pooled
    COUNT(DISTINCT) refused at its position."""
    p = h.proto
    fed = ExampleFed(h, "explain", EXAMPLE_AGENCIES,
                     gw_extra={"agent_timeout": "5s"})
    try:
        stub = fed.stub()
        cases = explain_cases()
        # Query each once (fills the catalog cache; and ORDER BY/LIMIT
        # on these too).
        for sql, _ in cases:
            query_grpc(p, stub, sql)
        first = {}
        for sql, exp in cases:
            r = stub.Explain(ereq(p, sql),
                             timeout=CALL_TIMEOUT)
            check_explain(p, r, sql, exp)
            r2 = stub.Explain(ereq(p, r.canonical_sql),
                              timeout=CALL_TIMEOUT)
            check(r2.canonical_sql == r.canonical_sql,
                  f"canonical SQL {r.canonical_sql!r} Explains as "
                  f"{r2.canonical_sql!r}")
            r2c = p.gw.ExplainResponse()
            r2c.CopyFrom(r2)
            r2c.canonical_sql = r.canonical_sql
            check(r2c == r, f"Explain of the canonical SQL "
                            f"{r.canonical_sql!r} differs from the "
                            f"original's")
            first[sql] = r
        # Nothing runs: with every agent stopped Explain still answers,
        # fast, the same; Query fails.
        for a in fed.agents.values():
            a.signal(signal.SIGSTOP)
        try:
            for sql, exp in cases:
                t0 = time.monotonic()
                r = stub.Explain(ereq(p, sql), timeout=5)
                took = time.monotonic() - t0
                # Well under agent_timeout (5 s): Explain waited for no
                # agent. A loose bound, since CI machines are noisy.
                check(took < 4.0, f"Explain took {took:.2f}s with the "
                                  f"agents stopped")
                check(r == first[sql], f"Explain with the agents stopped "
                                       f"differs: {one_line(str(r))[:300]}")
            e = ri.rpc_error(stub.Query, qreq(p, cases[0][0]),
                             timeout=10)
            ri.expect_status(e, grpc.StatusCode.UNAVAILABLE, "dol")
        finally:
            for a in fed.agents.values():
                os.kill(a.pid, signal.SIGCONT)

        # Errors: exactly Query's.
        bad = [sql for sql, _, _ in qt.bad_cases()] + [
            "SELECT COUNT(*) FROM dss.enrollment WHERE colour = 'red' OR "
            "sex = 'F'",
            "SELECT COUNT(*) FROM dss.enrollment WHERE (sex = 'F'",
            "SELECT COUNT(*) FROM dss.enrollment WHERE NOT",
            "SELECT COUNT(*) FROM dss.enrollment ORDER BY town",
            "SELECT COUNT(*) FROM dss.enrollment ORDER BY 2",
            "SELECT COUNT(*) FROM dss.enrollment LIMIT -1",
            "SELECT COUNT(*) FROM dss.enrollment WHERE person_id IS NULL",
            "SELECT COUNT(*) FROM dss.enrollment WHERE month IS NULL AND "
            "month NOT BETWEEN '2024-01' AND 5",
        ]
        problems = []
        for sql in bad:
            try:
                eq = ri.rpc_error(stub.Query, qreq(p, sql),
                                  timeout=CALL_TIMEOUT)
            except TestFailure as ex:
                problems.append(f"{one_line(sql)[:60]!r}: Query: {ex}")
                continue
            try:
                ee = ri.rpc_error(stub.Explain, ereq(p, sql),
                                  timeout=CALL_TIMEOUT)
            except TestFailure as ex:
                problems.append(f"{one_line(sql)[:60]!r}: Explain: {ex}")
                continue
            if eq.code() != grpc.StatusCode.INVALID_ARGUMENT or \
                    not (eq.details() or "").startswith("line "):
                problems.append(f"{one_line(sql)[:60]!r}: Query "
                                f"{eq.code().name} {eq.details()!r}")
            if (ee.code(), ee.details()) != (eq.code(), eq.details()):
                problems.append(f"{one_line(sql)[:60]!r}: Explain "
                                f"{ee.code().name} {ee.details()!r}, Query "
                                f"{eq.code().name} {eq.details()!r}")
        check(not problems, f"{len(problems)} of {len(bad)}: " +
              " || ".join(problems[:5]))

        sql, col = COUNT_DISTINCT
        e = ri.rpc_error(stub.Query, qreq(p, sql),
                         timeout=CALL_TIMEOUT)
        d = e.details() or ""
        check(e.code() == grpc.StatusCode.INVALID_ARGUMENT and
              d.startswith(f"line 1, column {col}: COUNT(DISTINCT) over "
                           "hied pools several agencies"),
              f"{sql!r}: {e.code().name} {d!r}")
        count_distinct_msg = d

        # The CLI.
        sql0, exp0 = cases[0]
        r = h.fedq("explain", *fed.cli_terms(), sql0, "--format", "json",
                   config=fed.client_cfg)
        check(r.returncode == 0, f"fedq explain rc {r.returncode}: "
                                 f"{ri.tail(r.stderr)}")
        try:
            doc = json.loads(r.stdout)
        except json.JSONDecodeError as ex:
            raise TestFailure(f"fedq explain --format json: invalid JSON "
                              f"({ex}): {r.stdout[:300]!r}")
        check(sorted(doc) == ["agencies", "checks", "columns", "plan",
                              "query"], f"fedq explain JSON keys "
                                        f"{sorted(doc)}")
        check(len(doc["query"]) == 1 and
              list(doc["query"][0].values()) == [first[sql0].canonical_sql],
              f"JSON query {doc['query']}, canonical "
              f"{first[sql0].canonical_sql!r}")
        check([list(x.values()) for x in doc["agencies"]] == [["dol"]],
              f"JSON agencies {doc['agencies']}")
        check([list(x.values())[0] for x in doc["columns"]] ==
              [c for c, _ in exp0["columns"]],
              f"JSON columns {doc['columns']}")
        check(len(doc["checks"]) == len(first[sql0].checks),
              f"JSON checks {doc['checks']}")
        check(len(doc["plan"]) >= 4 and
              "wages" in json.dumps(doc["plan"]),
              f"JSON plan {doc['plan']}")
        # An error through the CLI: exit 1, Query's message.
        r = h.fedq("explain", *fed.cli_terms(),
                   "SELECT COUNT(*) FROM dss.enrollment WHERE "
                   "colour = 'red'", config=fed.client_cfg)
        check(r.returncode == 1 and "INVALID_ARGUMENT" in r.stderr and
              "line 1, column 43: unknown column 'colour' in dss.enrollment"
              in r.stderr, f"fedq explain of a bad query: rc "
                           f"{r.returncode} {ri.tail(r.stderr)}")
        ri.print_note(f"{len(cases)} plans, {len(bad)} errors, a pooled "
                      f"COUNT(DISTINCT) refused ({count_distinct_msg!r})")
    finally:
        fed.close()


# ---- limits of filter trees -------------------------------------------------


@test
def lang_filter_limits(h):
    """Filter trees at the documented limits answer with SQLite's count
    (256 terms under OR or AND; 32 levels of NOT or of parentheses; NOT (
    counting as one level, so 20 levels of NOT (a OR ...)); one past a
    limit is INVALID_ARGUMENT at the point it is crossed, as every query
    error is (docs/fedq-sql.md: "Every error is INVALID_ARGUMENT with a
    position"; "Each gives a clear error at the point it is crossed")."""
    p = h.proto
    fed = ExampleFed(h, "limits", ["dss"])
    try:
        stub = fed.stub()
        src = fed.catalog.source("dss", "enrollment")
        B = "SELECT COUNT(*) FROM dss.enrollment WHERE "
        F = "sex = 'F'"
        ok = [
            " OR ".join([F] * 256),
            " AND ".join([F] * 256),
            "NOT " * 32 + F,
            "(" * 32 + F + ")" * 32,
            "NOT (" * 16 + F + ")" * 16,
            "NOT (sex = 'F' OR " * 20 + "sex = 'M'" + ")" * 20,
            "NOT (sex = 'F' AND NOT (sex = 'M' OR " * 10 + F + "))" * 10,
        ]
        bad = [
            (" OR ".join([F] * 257), len(B) + 1 + 256 * 13,
             "more than 256"),
            ("NOT " * 33 + F, len(B) + 1 + 32 * 4, "deeper than 32"),
            ("(" * 33 + F + ")" * 33, len(B) + 1 + 32, "deeper than 32"),
        ]
        problems = []
        for where in ok:
            sql = B + where
            spec = {"items": [("agg", "COUNT", None)], "group_by": [],
                    "filters": [], "where": where,
                    "where_columns": ["sex"]}
            want = oracle(src, spec)
            exp = [[("exact", "int", want[()]["records"])]] if want else []
            for name, call, req in (
                    ("Query", stub.Query, qreq(p, sql)),
                    ("Explain", stub.Explain,
                     ereq(p, sql))):
                try:
                    r = call(req, timeout=CALL_TIMEOUT)
                except grpc.RpcError as e:
                    problems.append(f"{name} {one_line(sql)[:90]!r}...: "
                                    f"{e.code().name} {e.details()!r}")
                    continue
                if name == "Query" and proto_table(p, r)["rows"] != exp:
                    problems.append(f"{one_line(sql)[:90]!r}...: rows "
                                    f"{proto_table(p, r)['rows']}, "
                                    f"expected {exp}")
        for where, col, sub in bad:
            sql = B + where
            e = ri.rpc_error(stub.Query, qreq(p, sql),
                             timeout=CALL_TIMEOUT)
            d = e.details() or ""
            if e.code() != grpc.StatusCode.INVALID_ARGUMENT or \
                    not d.startswith(f"line 1, column {col}: ") or \
                    sub not in d:
                problems.append(f"{one_line(sql)[:60]!r}...: "
                                f"{e.code().name} {d!r}, expected "
                                f"INVALID_ARGUMENT at column {col}")
        check(not problems, f"{len(problems)} problems: " +
              " || ".join(problems))
    finally:
        fed.close()


# ---- HISTOGRAM and QUANTILE -------------------------------------------------


def pos_of(sql, needle, nth=1, shift=0):
    """"line L, column C" of the nth occurrence of needle in sql, plus
    shift bytes."""
    off = -1
    for _ in range(nth):
        off = sql.index(needle, off + 1)
    off += shift
    line = sql.count("\n", 0, off) + 1
    return f"line {line}, column {off - (sql.rfind(chr(10), 0, off) + 1) + 1}"


H, Q = "HISTOGRAM", "QUANTILE"

# Accepted: (source, dataset, sql, items, group_by, WHERE text or None,
# ORDER BY as ([(result column, descending)], LIMIT) or None).
SKETCH_OK = [
    ("dss", "enrollment",
     "SELECT program,\n  Histogram(benefit, 0, 100, 1000) FROM "
     "dss.enrollment GROUP BY program",
     [("dim", "program"), ("agg", H, "benefit", (0, 100, 1000))],
     ["program"], None, None),
    ("dss", "enrollment",
     "SELECT COUNT(*), QUANTILE(benefit, 0.5) FROM dss.enrollment",
     [("agg", "COUNT", None), ("agg", Q, "benefit", 0.5)], [], None, None),
    ("dss", "enrollment",
     "SELECT COUNT(*), QUANTILE(benefit, 0.9) FROM dss.enrollment WHERE "
     "sex = 'F' OR NOT program IN ('SNAP') ORDER BY 1 LIMIT 3",
     [("agg", "COUNT", None), ("agg", Q, "benefit", 0.9)], [],
     "sex = 'F' OR NOT program IN ('SNAP')", ([(0, False)], 3)),
    ("hied", "enrollment",
     "select credential, histogram(credits, 6, 12, 15), quantile(credits, "
     "0.25), count(*) from hied.enrollment where credits is not null or "
     "term = '2024FA' group by credential",
     [("dim", "credential"), ("agg", H, "credits", (6, 12, 15)),
      ("agg", Q, "credits", 0.25), ("agg", "COUNT", None)], ["credential"],
     "credits is not null or term = '2024FA'", None),
    ("dol", "wages",
     "SELECT quarter, QUANTILE(wages, 0.99), HISTOGRAM(wages, -1, "
     "100000001) FROM dol.wages WHERE NOT (industry = '23') GROUP BY "
     "quarter ORDER BY 2 DESC LIMIT 4",
     [("dim", "quarter"), ("agg", Q, "wages", 0.99),
      ("agg", H, "wages", (-1, 100000001))], ["quarter"],
     "NOT (industry = '23')", ([(1, True)], 4)),
]


def sketch_refusals():
    """(sql, message prefix, substrings): INVALID_ARGUMENT, from Query and
    Explain alike."""
    out = []
    s = ("SELECT program, HISTOGRAM(benefit, 1000, 50000) FROM dss.enrollment "
         "GROUP BY program ORDER BY HISTOGRAM(benefit, 1000, 50000)")
    out.append((s, f"{pos_of(s, 'HISTOGRAM', 2)}: ORDER BY cannot use "
                   f"HISTOGRAM", ()))
    s = ("SELECT program, HISTOGRAM(benefit, 1000) FROM dss.enrollment "
         "GROUP BY program ORDER BY program, 2 DESC")
    out.append((s, f"{pos_of(s, '2 DESC')}: ORDER BY cannot use HISTOGRAM",
                ()))
    s = ("select term, histogram(credits, 12) from hied.enrollment\n"
         "group by term order by term, histogram(credits, 12) desc")
    out.append((s, f"{pos_of(s, 'histogram', 2)}: ORDER BY cannot use "
                   f"HISTOGRAM", ()))
    for q in ("1.5", "0", "1.0", "-0.5", "1", "0.0"):
        s = f"SELECT COUNT(*), QUANTILE(benefit, {q}) FROM dss.enrollment"
        out.append((s, f"{pos_of(s, f'benefit, {q})', shift=9)}: "
                       f"expected a decimal between 0 and 1", ()))
    for edges, bad, prev in (("5, 5", "5", "5"), ("10, 20, 15", "15", "20"),
                             ("-5, -10", "-10", "-5")):
        s = f"SELECT HISTOGRAM(benefit, {edges}) FROM dss.enrollment"
        out.append((s, f"{pos_of(s, f', {bad})', shift=2)}: histogram "
                       f"edges must be strictly increasing, found {bad} "
                       f"after {prev}", ()))
    # Edges of another type than the integer measure.
    s = ("SELECT program, HISTOGRAM(benefit, 10, 'a') FROM dss.enrollment "
         "GROUP BY program")
    out.append((s, f"{pos_of(s, chr(39) + 'a')}:", ()))
    s = "SELECT HISTOGRAM(benefit, 10, 20.5) FROM dss.enrollment"
    out.append((s, f"{pos_of(s, '20.5')}:", ("expected an integer",)))
    s = "SELECT HISTOGRAM(credits, 12.0) FROM hied.enrollment"
    out.append((s, f"{pos_of(s, '12.0')}:", ("expected an integer",)))
    # Not on dimensions or identifiers.
    for s, col, what in (
            ("SELECT HISTOGRAM(household_size, 3) FROM dss.enrollment",
             "household_size", "not a measure"),
            ("SELECT QUANTILE(town, 0.5) FROM dol.wages", "town",
             "not a measure"),
            ("SELECT QUANTILE(person_id, 0.5) FROM hied.enrollment",
             "person_id", "identifier")):
        out.append((s, f"{pos_of(s, col)}:", (f"'{col}'", what)))
    # 65 edges.
    s = ("SELECT HISTOGRAM(benefit, " + ", ".join(str(10 * i) for i in
                                                 range(65)) +
         ") FROM dss.enrollment")
    out.append((s, f"{pos_of(s, '640)')}: more than 64 histogram edges",
                ()))
    # More GROUP BY columns than max_group_by (4 by default).
    out.append(("SELECT program, month, town, sex, household_size, COUNT(*) "
                 "FROM dss.enrollment GROUP BY program, month, town, sex, "
                 "household_size", "", ("GROUP BY",)))
    out.append(("SELECT institution, term, credential, town, birth_year, "
                "QUANTILE(credits, 0.5) FROM hied.enrollment GROUP BY "
                "institution, term, credential, town, birth_year", "",
                ("GROUP BY",)))
    return out


def no_bins(agency, text):
    """An agent config without any quantile_bins."""
    return re.sub(r"\n +quantile_bins:[^\n]*", "", text)


@test
@seeded
def lang_sketch_aggregates(h):
    """HISTOGRAM and QUANTILE: the catalog publishes quantile_bins; fixed
    queries (filter trees, ORDER BY, LIMIT, pooled over hied) answered as
    the oracle says, Explained with their expanded columns, error_bound,
    edges and fraction, the canonical SQL a fixed point; refused with the
    position of the fault by Query and Explain alike (and the CLI) where
    the rules say so; QUANTILE on a measure whose catalog gives no
    quantile_bins refused while HISTOGRAM on it answers."""
    p = h.proto
    fed = ExampleFed(h, "sketch", EXAMPLE_AGENCIES)
    try:
        stub = fed.stub()
        r = stub.ListDatasets(p.gw.ListDatasetsRequest(),
                              timeout=CALL_TIMEOUT)
        bins = {(d.agency, c.name): c.quantile_bins
                for d in r.datasets for c in d.columns if c.quantile_bins}
        check(bins == {("dol", "wages"): 1000, ("dss", "benefit"): 200,
                       ("uhs", "credits"): 8, ("csu", "credits"): 8,
                       ("ccs", "credits"): 8},
              f"ListDatasets quantile_bins {bins}")
        for sname, dname, sql, items, gb, where, order in SKETCH_OK:
            src = fed.catalog.source(sname, dname)
            spec = {"items": items, "group_by": gb, "filters": [],
                    "where": where}
            want = oracle(src, spec)
            try:
                got = query_grpc(p, stub, sql)
                if order:
                    exp = order_rows(released_rows(src, spec, want),
                                     order[0])
                    compare_ordered(got, exp[:order[1]],
                                    qt.expected_columns(src, spec))
                else:
                    compare(src, spec, got, want, expected_agencies(
                        {"source": sname}))
                e1 = stub.Explain(ereq(p, sql),
                                  timeout=CALL_TIMEOUT)
                e2 = stub.Explain(ereq(p, e1.canonical_sql),
                                  timeout=CALL_TIMEOUT)
            except grpc.RpcError as e:
                raise TestFailure(f"{one_line(sql)!r}: {e.code().name}: "
                                  f"{e.details()}")
            except TestFailure as e:
                raise TestFailure(f"{one_line(sql)!r}: {e}")
            where_ = f"Explain {one_line(sql)[:70]!r}"
            check(e2.canonical_sql == e1.canonical_sql and
                  e2.plan == e1.plan,
                  f"{where_}: canonical SQL {e1.canonical_sql!r} Explains "
                  f"as {e2.canonical_sql!r}")
            cols = [(c.name, p.catalog.ValueType.Name(c.type), c.aggregate,
                     c.error_bound) for c in e1.columns]
            check(cols == qt.expected_columns(src, spec),
                  f"{where_}: columns {cols}")
            aggs = [(kind_name(a), a.column,
                     [plan_literal(x) for x in a.edges], a.fraction)
                    for a in e1.plan.aggregates]
            for it in items:
                if it[0] == "agg" and it[1] in (H, Q):
                    exp = (f"AGGREGATE_KIND_{it[1]}", it[2],
                           [I(x) for x in it[3]] if it[1] == H else [],
                           it[3] if it[1] == Q else 0.0)
                    check(exp in aggs, f"{where_}: {exp} not in the plan's "
                                       f"aggregates {aggs}")
        problems = []
        refusals = sketch_refusals()
        for sql, prefix, subs in refusals:
            try:
                eq = ri.rpc_error(stub.Query, qreq(p, sql),
                                  timeout=CALL_TIMEOUT)
                ee = ri.rpc_error(stub.Explain, ereq(p, sql),
                                  timeout=CALL_TIMEOUT)
            except TestFailure as ex:
                problems.append(f"{one_line(sql)[:90]!r}: {ex}")
                continue
            d = eq.details() or ""
            if eq.code() != grpc.StatusCode.INVALID_ARGUMENT or \
                    not d.startswith(prefix) or any(x not in d for x in subs):
                problems.append(f"{one_line(sql)[:90]!r}: {eq.code().name} "
                                f"{d!r}, expected INVALID_ARGUMENT starting "
                                f"{prefix!r} with {list(subs)}")
            if (ee.code(), ee.details()) != (eq.code(), eq.details()):
                problems.append(f"{one_line(sql)[:90]!r}: Explain "
                                f"{ee.code().name} {ee.details()!r}, Query "
                                f"{eq.code().name} {d!r}")
        for pr in fed.procs():
            pr.check_alive()
        check(not problems, f"{len(problems)} of {len(refusals)} refusals: "
                            + " || ".join(problems[:6]))
        # The CLI: exit 1 with the message.
        sql, prefix, _ = refusals[0]
        qt.expect_refusal(h, fed, stub, sql, prefix, via_cli=True)
    finally:
        fed.close()

    # A catalog without quantile_bins: QUANTILE refused, HISTOGRAM answered.
    fed = ExampleFed(h, "nobins", ["dss", "dol"], edit=no_bins)
    try:
        stub = fed.stub()
        for sql in ("SELECT program, QUANTILE(benefit, 0.5) FROM "
                    "dss.enrollment GROUP BY program",
                    "SELECT COUNT(*), HISTOGRAM(wages, 1000), QUANTILE(wages, "
                    "0.25) FROM dol.wages"):
            for m, req in ((stub.Query, qreq(p, sql)),
                           (stub.Explain, ereq(p, sql))):
                e = ri.rpc_error(m, req, timeout=CALL_TIMEOUT)
                d = e.details() or ""
                check(e.code() == grpc.StatusCode.INVALID_ARGUMENT and
                      "QUANTILE is not enabled on" in d and
                      ("benefit" in d or "wages" in d),
                      f"{sql!r} without quantile_bins: {e.code().name} "
                      f"{d!r}")
        src = fed.catalog.source("dss", "enrollment")
        check(not src.columns["benefit"].get("quantile_bins"),
              "no_bins left quantile_bins in the config")
        spec = {"items": [("dim", "program"),
                          ("agg", H, "benefit", (50000, 100000))],
                "group_by": ["program"], "filters": []}
        compare(src, spec, query_grpc(
            p, stub, "SELECT program, HISTOGRAM(benefit, 50000, 100000) "
                     "FROM dss.enrollment GROUP BY program"),
            oracle(src, spec), ["dss"])
        ri.print_note(f"{len(SKETCH_OK)} queries, {len(refusals)} "
                      f"refusals and QUANTILE without quantile_bins")
    finally:
        fed.close()


def kind_name(a):
    """An Aggregate's kind by its enum name."""
    return a.DESCRIPTOR.fields_by_name["kind"].enum_type.values_by_number[
        a.kind].name


@test
def lang_histogram_bin_limit(h):
    """At most 256 HISTOGRAM bins in one query (docs/fedq-sql.md): four
    HISTOGRAMs of 63 edges (256 bins) answer as the oracle says; four of
    64 edges (260 bins) are refused like every query error, with
    INVALID_ARGUMENT and a position."""
    p = h.proto
    fed = ExampleFed(h, "bins", ["dss"])
    try:
        stub = fed.stub()
        src = fed.catalog.source("dss", "enrollment")
        for n in (63, 64):
            edges = tuple(range(0, n * 3000, 3000))
            items = [("agg", H, "benefit", edges)] * 4
            sql = ("SELECT " + ", ".join(
                f"HISTOGRAM(benefit, {', '.join(map(str, edges))})"
                for _ in items) + " FROM dss.enrollment")
            if n == 63:
                spec = {"items": items, "group_by": [], "filters": []}
                try:
                    compare(src, spec, query_grpc(p, stub, sql),
                            oracle(src, spec), ["dss"])
                except grpc.RpcError as e:
                    raise TestFailure(f"256 bins: {e.code().name}: "
                                      f"{e.details()}")
                continue
            e = ri.rpc_error(stub.Query, qreq(p, sql),
                             timeout=CALL_TIMEOUT)
            d = e.details() or ""
            check(e.code() == grpc.StatusCode.INVALID_ARGUMENT and
                  d.startswith("line 1, column ") and "256" in d,
                  f"260 bins: {e.code().name} {d!r}, expected "
                  f"INVALID_ARGUMENT with a position (docs/fedq-sql.md: "
                  f"\"Every error is INVALID_ARGUMENT with a position\")")
    finally:
        fed.close()
