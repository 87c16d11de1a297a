#!/usr/bin/python3
"""
Copies a table of a SQLite file (as fedq-synth writes them) into a
PostgreSQL table with the same columns: INTEGER columns become bigint,
REAL double precision, everything else text (DATE, MONTH and QUARTER
columns stay the text SQLite holds; --collate gives them a collation),
NOT NULL kept. The rows stream through `psql -c "COPY ... FROM STDIN"`,
so no Python driver is needed and memory stays flat however many rows
there are.

    tests/pg/load_synth.py --conninfo "$FEDQ_PG_CONNINFO" \
        --sqlite DATA/dss/dss.sqlite --table enrollment [--as dss_enrollment]

The PostgreSQL table (default: the SQLite table's name) is dropped and
created again, then ANALYZEd. Prints "TABLE ROWS" on success.
"""

import argparse
import sqlite3
import subprocess
import sys

PG_TYPES = {"INTEGER": "bigint", "INT": "bigint", "BIGINT": "bigint",
            "REAL": "double precision", "DOUBLE": "double precision"}


def q_ident(name):
    return '"' + name.replace('"', '""') + '"'


def copy_field(v):
    """A value in COPY's text format."""
    if v is None:
        return "\\N"
    if isinstance(v, float):
        return repr(v)
    s = str(v)
    return (s.replace("\\", "\\\\").replace("\t", "\\t")
            .replace("\n", "\\n").replace("\r", "\\r"))


def psql(conninfo, *args, stdin=None):
    return subprocess.Popen(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
                             "-d", conninfo] + list(args),
                            stdin=stdin, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def run_psql(conninfo, sql):
    p = psql(conninfo, "-c", sql)
    _, err = p.communicate()
    if p.returncode != 0:
        sys.exit(f"load_synth.py: psql failed: {err.strip()}")


def columns(db, table):
    """[(name, pg type, not null)] of a SQLite table, in order."""
    cols = [(name, PG_TYPES.get((decl or "").upper(), "text"), bool(notnull))
            for _, name, decl, notnull, _, _ in
            db.execute(f"PRAGMA table_info({q_ident(table)})")]
    if not cols:
        sys.exit(f"load_synth.py: no table '{table}' in the SQLite file")
    return cols


def load(conninfo, path, table, pg_table, collate=None):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    cols = columns(db, table)
    coll = f" COLLATE {q_ident(collate)}" if collate else ""
    ddl = ", ".join(f"{q_ident(n)} {t}{coll if t == 'text' else ''}"
                    f"{' NOT NULL' if nn else ''}" for n, t, nn in cols)
    run_psql(conninfo, f"DROP TABLE IF EXISTS {q_ident(pg_table)}; "
                       f"CREATE TABLE {q_ident(pg_table)} ({ddl})")
    names = ", ".join(q_ident(n) for n, _, _ in cols)
    p = psql(conninfo, "-c",
             f"COPY {q_ident(pg_table)} ({names}) FROM STDIN",
             stdin=subprocess.PIPE)
    n = 0
    try:
        for row in db.execute(f"SELECT {names} FROM {q_ident(table)}"):
            p.stdin.write("\t".join(map(copy_field, row)) + "\n")
            n += 1
        p.stdin.close()
    except BrokenPipeError:
        pass
    err = p.stderr.read()
    if p.wait() != 0:
        sys.exit(f"load_synth.py: COPY into {pg_table} failed: "
                 f"{err.strip()}")
    run_psql(conninfo, f"ANALYZE {q_ident(pg_table)}")
    db.close()
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    ap.add_argument("--conninfo", required=True)
    ap.add_argument("--sqlite", required=True, help="the SQLite file")
    ap.add_argument("--table", required=True, help="its table")
    ap.add_argument("--as", dest="pg_table",
                    help="the PostgreSQL table (default: --table)")
    ap.add_argument("--collate", help="collation of the text columns "
                    "(default: the database's)")
    args = ap.parse_args()
    pg_table = args.pg_table or args.table
    n = load(args.conninfo, args.sqlite, args.table, pg_table, args.collate)
    print(f"{pg_table} {n}")


if __name__ == "__main__":
    main()
