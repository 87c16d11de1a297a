#!/usr/bin/env bash
# The benchmark of issue 5, side by side on the same data, in one run:
# the agent's extract engine (in process, plan to encoded partial, 1 and 2
# threads), the hand-written C loop over the extract's own columns (1 and
# 2 threads), SQLite (full scan, covering indexes), PostgreSQL (two
# parallel workers), and end to end through a real gateway and four
# agents over mutual TLS (4 agents x 1M rows, pooled by an alias); and
# the agents' differencing ledger against a merge loop and SQLite.
#
#   tests/bench/run.sh [--rows 1M,10M] [--runs 11] [--e2e-runs 100]
#                      [--skip pg,sqlite,e2e,ledger] [--out FILE.md]
#
# Data: fedq-synth's social-services enrollment (dss.enrollment), generated
# once for the largest size; each size is its first N rows (by rowid).
# Everything lives under $FEDQ_BENCH_DIR (default build-bench/bench/);
# data and indexes are reused by later runs. The build is build-bench/
# (Release, the project's flags; FEDQ_BENCH_BUILD overrides).
# Prints the table (report.py) and writes it to --out if given. Never part
# of tests/run.sh: it takes minutes and measures the machine.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
BENCH=$REPO/tests/bench
BUILD=${FEDQ_BENCH_BUILD:-$REPO/build-bench}
WORK=${FEDQ_BENCH_DIR:-$BUILD/bench}

rows=1M,10M runs=11 e2e_runs=100 skip="" out=""
while [ $# -gt 0 ]; do
    case $1 in
    --rows) rows=$2; shift ;;
    --runs) runs=$2; shift ;;
    --e2e-runs) e2e_runs=$2; shift ;;
    --skip) skip=$2; shift ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ "$e2e_runs" -ge 50 ] || { echo "run.sh: --e2e-runs must be at least 50" >&2; exit 2; }

step() { printf '== %s\n' "$*" >&2; }
# elapsed T0: seconds since T0 (from date +%s.%N), two decimals.
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }
skipped() { [[ ",$skip," == *",$1,"* ]]; }
# "1M" -> 1000000, "10M" -> 10000000, "250k" -> 250000
count_of() {
    local v=${1%[MmKk]} u=${1: -1}
    case $u in M|m) echo $((v * 1000000)) ;; K|k) echo $((v * 1000)) ;; *) echo "$1" ;; esac
}

IFS=, read -r -a labels <<<"$rows"
# The end-to-end part pools four agents of 1M rows each.
need=("${labels[@]}")
skipped e2e || [[ " ${need[*]} " == *" 1M "* ]] || need+=(1M)
max=0
for l in "${need[@]}"; do
    n=$(count_of "$l")
    [[ "$n" =~ ^[0-9]+$ && "$n" -ge 1000 ]] || { echo "run.sh: bad size '$l'" >&2; exit 2; }
    [ "$n" -le "$max" ] || max=$n
done

step "dependencies"
"$REPO/deploy/install-deps.sh" >&2

step "build ($BUILD, Release)"
cmake -S "$REPO" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DFQ_SANITIZE=OFF -DFQ_WERROR=ON >/dev/null
ninja -C "$BUILD" fedq-bench fedq-synth fedq-agent fedq-gateway fedq >&2

mkdir -p "$WORK"/{data,results,extracts}
RESULTS=$WORK/results
rm -f "$RESULTS"/*.tsv
OUT=$WORK/measurements.tsv
: >"$OUT"
info() { printf 'info\t%s\n' "$*" >>"$OUT"; }
info "machine	-	$(nproc) vCPU, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(lscpu | sed -n 's/^Model name: *//p' | head -1), L3 $(lscpu | sed -n 's/^L3 cache: *//p')"
info "software	-	$(cc --version | head -1); SQLite $(sqlite3 --version | cut -d' ' -f1); $(psql --version)"
# Other work on the machine skews every figure: the load is recorded.
info "load_start	-	$(cut -d' ' -f1-3 /proc/loadavg)"
info "commit	-	$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$REPO" diff --quiet HEAD -- agent common gateway 2>/dev/null || echo ' (with uncommitted changes)')"
info "command	-	tests/bench/run.sh --rows $rows --runs $runs --e2e-runs $e2e_runs${skip:+ --skip $skip}"

# ---- data ---------------------------------------------------------------
# About 8.1 enrollment rows per person (measured: 8.14 at 121k persons,
# 8.11 at 1.25M); 1 person in 8 rows leaves a margin.
persons=$((max / 8 + 1000))
SYNTH=$WORK/data/synth-$persons
if [ ! -f "$SYNTH/ok" ]; then
    step "generate: fedq-synth --persons $persons --agencies dss"
    rm -rf "$SYNTH"
    t0=$(date +%s.%N)
    "$BUILD/fedq-synth" --out "$SYNTH" --persons "$persons" --seed 42 --agencies dss >&2
    info "synth_s	-	$(elapsed "$t0")"
    touch "$SYNTH/ok"
fi
SRC=$SYNTH/dss/dss.sqlite
have=$(sqlite3 "$SRC" "SELECT max(rowid) FROM enrollment")
[ "$have" -ge "$max" ] || { echo "run.sh: $persons persons gave $have rows, fewer than $max" >&2; exit 1; }
info "synth	-	$persons persons, $have rows"

schema=$(sqlite3 "$SRC" "SELECT sql FROM sqlite_master WHERE name = 'enrollment'")
# data_file LABEL: the first N rows, as a plain table and a copy with the
# covering indexes of perf-baselines §4 (one per query).
data_file() {
    local label=$1 n db cov t0
    n=$(count_of "$label")
    db=$WORK/data/dss-$label.sqlite
    cov=$WORK/data/dss-$label-cov.sqlite
    # The marker names the generated file the rows were taken from.
    if [ "$(cat "$db.ok" 2>/dev/null)" != "$SRC" ]; then
        step "data $label: first $n rows"
        rm -f "$db" "$cov" "$cov.ok"
        sqlite3 "$db" "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;
            $schema;
            ATTACH '$SRC' AS src;
            INSERT INTO enrollment SELECT * FROM src.enrollment WHERE rowid <= $n ORDER BY rowid;" >/dev/null
        echo "$SRC" >"$db.ok"
    fi
    if ! skipped sqlite && [ ! -f "$cov.ok" ]; then
        step "data $label: covering indexes"
        cp "$db" "$cov"
        t0=$(date +%s.%N)
        sqlite3 "$cov" "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;
            CREATE INDEX c_prog ON enrollment(program);
            CREATE INDEX c_by ON enrollment(birth_year, town, benefit);
            CREATE INDEX c_grp ON enrollment(town, program, household_size, month, benefit);
            ANALYZE;" >/dev/null
        elapsed "$t0" >"$cov.ok"
    fi
    [ ! -f "$cov.ok" ] || info "sqlite_index_s	$label	$(cat "$cov.ok")"
    info "sqlite_bytes	$label	$(stat -c %s "$db")	$( [ -f "$cov" ] && stat -c %s "$cov" || echo 0)"
}
for l in "${need[@]}"; do data_file "$l"; done

# ---- PKI and agent configurations ----------------------------------------
export FEDQ_HOME=$WORK/fed
FQ_AGENCIES="dss1 dss2 dss3 dss4"
. "$REPO/deploy/lib/federation.sh"
fq_running && fq_stop_all
mkdir -p "$FEDQ_HOME"/{pki,etc,run,log}
pki=$FEDQ_HOME/pki
"$REPO/deploy/pki.sh" init "$pki" "$FQ_FEDERATION" >/dev/null
"$REPO/deploy/pki.sh" gateway "$pki" >/dev/null
for a in dss $FQ_AGENCIES; do
    "$REPO/deploy/pki.sh" agent "$pki" "$a" >/dev/null
    fq_cell_key "$a"
done
"$REPO/deploy/pki.sh" analyst "$pki" alice >/dev/null

# Agents serve only under a signed policy: each agency gets the example dss
# policy (agreement P20W-2026-01, which fedq-bench names), renamed, pooling
# with the other benchmark agencies, signed with its own key.
for a in dss $FQ_AGENCIES; do
    others=$(for o in $FQ_AGENCIES; do [ "$o" = "$a" ] || printf '%s, ' "$o"; done)
    sed -e "s|^  agency: dss\$|  agency: $a|" \
        -e "s|^      pool_with: \[dol\]\$|      pool_with: [${others%, }]|" \
        "$REPO/deploy/examples/etc/policy-dss.yaml" >"$FEDQ_HOME/etc/policy-$a.yaml"
    fq_sign_policy "$BUILD/fedq" "$a" "$FEDQ_HOME/etc/policy-$a.yaml"
done

# agent_config AGENCY DATAFILE FILE: the example dss agent, renamed (its
# certificate and policy too) and pointed at DATAFILE.
agent_config() {
    sed -e "s|^agency: dss\$|agency: $1|" \
        -e "s|agency-dss\\.|agency-$1.|" \
        -e "s|policy-dss\\.|policy-$1.|g" \
        -e "s|cellkey-dss\\.|cellkey-$1.|" \
        -e "s|sqlite: .*|sqlite: $2|" \
        "$REPO/deploy/examples/etc/agent-dss.yaml" >"$3"
}

# ---- in-process engine, C loop, SQLite ---------------------------------
bench() { "$BUILD/fedq-bench" "$@" --runs "$runs" --results "$RESULTS" >>"$OUT"; }
for l in "${labels[@]}"; do
    cfg=$FEDQ_HOME/etc/bench-dss-$l.yaml
    agent_config dss "$WORK/data/dss-$l.sqlite" "$cfg"
    x=$WORK/extracts/dss-$l.fqx
    step "$l: extract engine (build the extract, then 1 and 2 threads)"
    bench engine --config "$cfg" --extract "$x" --label "$l"
    step "$l: C loop over the extract's columns"
    bench cloop --config "$cfg" --extract "$x" --label "$l"
    if ! skipped sqlite; then
        step "$l: SQLite full scan"
        bench sqlite --db "$WORK/data/dss-$l.sqlite" --engine sqlite-scan --label "$l"
        step "$l: SQLite covering indexes"
        bench sqlite --db "$WORK/data/dss-$l-cov.sqlite" --engine sqlite-covering --label "$l"
    fi
done

# ---- PostgreSQL ----------------------------------------------------------
pg_dir=""
cleanup() {
    fq_running && fq_stop_all
    [ -z "$pg_dir" ] || "$REPO/tests/pg/pg-cluster.sh" stop "$pg_dir"
}
trap cleanup EXIT
if ! skipped pg; then
    step "PostgreSQL: scratch cluster"
    rm -rf "$WORK/pg"
    eval "$("$REPO/tests/pg/pg-cluster.sh" start "$WORK/pg")"
    pg_dir=$FEDQ_PG_DIR
    # perf-baselines §5: a buffer pool that holds the table, 2 workers.
    psql -X -q -v ON_ERROR_STOP=1 -U postgres -d postgres \
        -c "ALTER SYSTEM SET shared_buffers = '2GB'" \
        -c "ALTER SYSTEM SET work_mem = '64MB'" \
        -c "ALTER SYSTEM SET max_parallel_workers_per_gather = 2" >/dev/null
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    if [ "$(id -u)" -eq 0 ]; then as_pg=(runuser -u postgres --); else as_pg=(); fi
    "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w -t 60 restart >/dev/null
    for l in "${labels[@]}"; do
        t=enrollment_$(echo "$l" | tr 'A-Z' 'a-z')
        step "$l: PostgreSQL load ($t, COPY)"
        t0=$(date +%s.%N)
        # Byte-order text, as SQLite and the extract's dictionaries compare.
        psql -X -q -v ON_ERROR_STOP=1 -c "CREATE TABLE $t (
            person_id text COLLATE \"C\" NOT NULL, program text COLLATE \"C\" NOT NULL,
            month text COLLATE \"C\" NOT NULL, town text COLLATE \"C\" NOT NULL,
            household_size smallint NOT NULL, birth_year smallint NOT NULL,
            sex text COLLATE \"C\" NOT NULL, benefit integer NOT NULL)" >/dev/null
        sqlite3 -csv "$WORK/data/dss-$l.sqlite" "SELECT * FROM enrollment ORDER BY rowid" |
            psql -X -q -v ON_ERROR_STOP=1 -c "COPY $t FROM STDIN WITH (FORMAT csv)" >/dev/null
        psql -X -q -v ON_ERROR_STOP=1 -c "VACUUM ANALYZE $t" >/dev/null
        info "pg_load_s	$l	$(elapsed "$t0")"
        info "pg_bytes	$l	$(psql -X -A -t -c "SELECT pg_table_size('$t')")"
        step "$l: PostgreSQL queries"
        bench pg --conninfo "$FEDQ_PG_CONNINFO" --table "$t" --label "$l"
    done
    info "pg_settings	-	$(psql -X -A -t -F' ' -c "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) FROM pg_settings WHERE name IN ('shared_buffers', 'work_mem', 'max_parallel_workers_per_gather', 'max_parallel_workers', 'jit')")"
    "$REPO/tests/pg/pg-cluster.sh" stop "$pg_dir"
    pg_dir=""
fi

# ---- end to end: gateway and four agents of 1M rows ---------------------
if ! skipped e2e; then
    step "4 x 1M: four agents and a gateway (mutual TLS), $e2e_runs runs per query"
    rm -rf "$FEDQ_HOME/extracts"
    for a in $FQ_AGENCIES; do
        agent_config "$a" "$WORK/data/dss-1M.sqlite" "$FEDQ_HOME/etc/agent-$a.yaml"
        fq_start "agent-$a" "$BUILD/fedq-agent" --config "$FEDQ_HOME/etc/agent-$a.yaml"
    done
    # One agent alone, called as the gateway calls it: the agent's RPC
    # and transport cost on top of the in-process engine.
    "$BUILD/fedq-bench" agent --target "ipv4:$(cat "$FEDQ_HOME/run/agent-dss1.addr")" \
        --identity "spiffe://$FQ_FEDERATION/agency/dss1/agent" --pki "$pki" \
        --label 1M --runs "$e2e_runs" --results "$RESULTS" >>"$OUT"
    # shellcheck disable=SC2086 # one member per agency
    fq_write_gateway_config pool $FQ_AGENCIES
    fq_start gateway "$BUILD/fedq-gateway" --config "$FEDQ_HOME/etc/gateway.yaml"
    "$BUILD/fedq-bench" gateway --target "ipv4:$(cat "$FEDQ_HOME/run/gateway.addr")" \
        --pki "$pki" --source pool --label 4x1M --runs "$e2e_runs" \
        --results "$RESULTS" >>"$OUT"
    fq_stop_all
fi

# ---- the differencing ledger (issue 7) ----------------------------------
if ! skipped ledger; then
    step "differencing ledger: 1000 released cells, 100 candidates"
    "$BUILD/fedq-bench" ledger --cells 1000 --candidates 50 >>"$OUT"
fi

info "load_end	-	$(cut -d' ' -f1-3 /proc/loadavg)"
step "report"
/usr/bin/python3 "$BENCH/report.py" "$OUT" "$RESULTS" ${out:+--out "$out"}
