#!/usr/bin/env bash
# Brings up a whole local fedq federation on loopback and shows it working:
# installs what is missing, builds, creates a PKI, synthetic agencies and
# each agency's signed release policy, starts one agent per agency and the
# gateway (mutual TLS everywhere), asks for the catalogs and the
# federation's health, runs queries under the P-20 workforce agreement and
# one round of steward review, then stops what it started.
#
#   deploy/quickstart.sh            run, show, stop
#   deploy/quickstart.sh --keep     leave the federation running
#   deploy/quickstart.sh --stop     stop a federation left running
#
# Everything it creates lives under $FEDQ_HOME (default .fedq-local/ at the
# repository root). Options: --persons N (default 20000), --seed S.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
export FEDQ_HOME=${FEDQ_HOME:-$REPO/.fedq-local}
BUILD=${FEDQ_BUILD_DIR:-$REPO/build}
. "$REPO/deploy/lib/federation.sh"

keep=0 stop=0 persons=20000 seed=42
while [ $# -gt 0 ]; do
    case $1 in
    --keep) keep=1 ;;
    --stop) stop=1 ;;
    --persons) persons=$2; shift ;;
    --seed) seed=$2; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) fq_die "unknown option '$1' (see --help)" ;;
    esac
    shift
done

if [ $stop -eq 1 ]; then
    fq_running || { echo "quickstart: no federation running under $FEDQ_HOME"; exit 0; }
    fq_stop_all
    echo "quickstart: stopped the federation under $FEDQ_HOME"
    exit 0
fi

step() { printf '\n== %s\n' "$*"; }

step "dependencies"
"$REPO/deploy/install-deps.sh"

step "build ($BUILD)"
# An existing build directory keeps its own settings (tests point this
# script at their sanitizer build).
[ -f "$BUILD/CMakeCache.txt" ] ||
    cmake -S "$REPO" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C "$BUILD" >/dev/null
echo "built fedq-agent, fedq-gateway, fedq, fedq-synth"

if fq_running; then
    echo "quickstart: stopping the federation already running under $FEDQ_HOME"
    fq_stop_all
fi
mkdir -p "$FEDQ_HOME"/{pki,etc,data,run,log,state}

step "PKI: one CA for federation $FQ_FEDERATION, a certificate per party"
pki=$FEDQ_HOME/pki
"$REPO/deploy/pki.sh" init "$pki" "$FQ_FEDERATION"
"$REPO/deploy/pki.sh" gateway "$pki"
for a in $FQ_AGENCIES; do
    "$REPO/deploy/pki.sh" agent "$pki" "$a"
    fq_cell_key "$a"
done
"$REPO/deploy/pki.sh" analyst "$pki" alice
"$REPO/deploy/pki.sh" steward "$pki" dss sam

step "release policies: a policy key per agency, its policy signed with it"
for a in $FQ_AGENCIES; do
    fq_sign_policy "$BUILD/fedq" "$a"
    "$BUILD/fedq" policy verify --pubkey "$pki/policy-$a.pub" "$FEDQ_HOME/etc/policy-$a.yaml"
done

step "synthetic agencies ($persons persons, seed $seed)"
"$BUILD/fedq-synth" --out "$FEDQ_HOME/data" --persons "$persons" --seed "$seed"

step "agents"
for a in $FQ_AGENCIES; do
    cp "$REPO/deploy/examples/etc/agent-$a.yaml" "$FEDQ_HOME/etc/"
    fq_start "agent-$a" "$BUILD/fedq-agent" --config "$FEDQ_HOME/etc/agent-$a.yaml"
    echo "agent $a listening on $(cat "$FEDQ_HOME/run/agent-$a.addr")"
done

step "gateway"
fq_write_gateway_config hied uhs csu ccs
fq_start gateway "$BUILD/fedq-gateway" --config "$FEDQ_HOME/etc/gateway.yaml"
gw=$(cat "$FEDQ_HOME/run/gateway.addr")
echo "gateway listening on $gw"

# alice's queries name the P-20 workforce agreement and her purpose unless
# she gives --agreement and --purpose.
cat >"$FEDQ_HOME/client.yaml" <<YAML
# Written by deploy/quickstart.sh: analyst alice of federation $FQ_FEDERATION.
federation: $FQ_FEDERATION
gateway: ipv4:$gw
agreement: P20W-2026-01
purpose: program evaluation
tls:
  ca: pki/ca.crt
  cert: pki/analyst-alice.crt
  key: pki/analyst-alice.key
YAML

# sam, a data steward of dss, reviews on dss's own agent, not the gateway.
cat >"$FEDQ_HOME/steward-dss.yaml" <<YAML
# Written by deploy/quickstart.sh: data steward sam of dss (fedq review).
federation: $FQ_FEDERATION
agent: ipv4:$(cat "$FEDQ_HOME/run/agent-dss.addr")
tls:
  ca: pki/ca.crt
  cert: pki/steward-dss-sam.crt
  key: pki/steward-dss-sam.key
YAML

# Ready means every agency answers through the gateway (bounded poll).
deadline=$((SECONDS + 30))
until "$BUILD/fedq" health >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { "$BUILD/fedq" health || true; fq_stop_all; fq_die "federation not healthy after 30 s"; }
    sleep 0.1
done

step "fedq datasets   (the catalogs of all agencies, through the gateway)"
"$BUILD/fedq" datasets
step "fedq health"
"$BUILD/fedq" health

# Federated queries under the P-20 workforce agreement, which every
# agency's signed policy lists: pooled over the three higher-education
# systems, over labor wages, over social services. Small groups come back
# suppressed, never as a number. The last two show the richer language: a
# nested filter, distributions (bins and approximate quantiles with their
# error bound), spread, ORDER BY and LIMIT, and the plan Explain shows.
terms=(--agreement P20W-2026-01 --purpose "program evaluation")
q1="SELECT credential, COUNT(*) FROM hied.enrollment WHERE term = '2024FA' GROUP BY credential"
q2="SELECT quarter, COUNT(*), SUM(wages), AVG(wages) FROM dol.wages WHERE quarter BETWEEN '2024Q1' AND '2024Q4' AND industry IN ('23', '31', '62') GROUP BY quarter"
q3="SELECT program, town, COUNT(*), AVG(benefit) FROM dss.enrollment WHERE month = '2024-06' AND town IN ('T001', 'T002', 'T150', 'T169') GROUP BY program, town"
q4="SELECT credential, COUNT(*), HISTOGRAM(credits, 6, 12), QUANTILE(credits, 0.5) FROM hied.enrollment WHERE term <> '2023FA' AND (graduation_year IS NULL OR credential IN ('AA', 'CERT')) GROUP BY credential ORDER BY COUNT(*) DESC"
q5="SELECT program, QUANTILE(benefit, 0.5), QUANTILE(benefit, 0.9), STDDEV(benefit) FROM dss.enrollment WHERE month BETWEEN '2024-01' AND '2024-06' GROUP BY program ORDER BY 2 DESC LIMIT 2"
for q in "$q1" "$q2" "$q3" "$q4" "$q5"; do
    step "fedq query --agreement P20W-2026-01 --purpose \"program evaluation\" \"$q\""
    "$BUILD/fedq" query "${terms[@]}" "$q"
done
step "fedq explain --agreement P20W-2026-01 --purpose \"program evaluation\" \"$q4\""
"$BUILD/fedq" explain "${terms[@]}" "$q4"

# Steward review: dss's agreement DSS-REVIEW-2026-02 says every query waits
# for a dss steward. alice's query is held (exit 4); sam lists, inspects
# and approves it on dss's agent; alice fetches the answer. A second query
# is denied, and alice gets the steward's reason.
review=(--agreement DSS-REVIEW-2026-02 --purpose "program evaluation")
steward=("$BUILD/fedq" --config "$FEDQ_HOME/steward-dss.yaml")
# held SQL: runs the query under the review agreement and prints what alice
# sees; sets held_id to the query's id, or stops unless it was held.
held() {
    local out rc=0
    step "fedq query --agreement DSS-REVIEW-2026-02 --purpose \"program evaluation\" \"$1\""
    out=$("$BUILD/fedq" query "${review[@]}" "$1") || rc=$?
    printf '%s\n' "$out"
    held_id=$(printf '%s\n' "$out" | grep -o 'q-[0-9a-f]\{16\}' | head -n 1)
    if [ $rc -ne 4 ] || [ -z "$held_id" ]; then
        fq_stop_all
        fq_die "the query was not held for review (exit $rc)"
    fi
}
held "SELECT program, COUNT(*) FROM dss.enrollment WHERE month = '2024-06' AND town = 'T169' GROUP BY program"
approved=$held_id
held "SELECT sex, COUNT(*) FROM dss.enrollment WHERE month = '2024-06' AND town = 'T002' GROUP BY sex"
denied=$held_id
step "fedq --config steward-dss.yaml review list   (sam, steward of dss, on dss's agent)"
"${steward[@]}" review list
step "fedq --config steward-dss.yaml review show $approved"
"${steward[@]}" review show "$approved"
step "fedq --config steward-dss.yaml review approve $approved"
"${steward[@]}" review approve "$approved" --reason "aggregate counts of a large town"
step "fedq --config steward-dss.yaml review deny $denied --reason ..."
"${steward[@]}" review deny "$denied" --reason "T002 is too small to publish by sex"
step "fedq result $approved   (alice)"
"$BUILD/fedq" result "$approved"
step "fedq result $denied   (alice)"
rc=0
"$BUILD/fedq" result "$denied" 2>&1 || rc=$?
[ $rc -eq 1 ] || { fq_stop_all; fq_die "a denied query answered (exit $rc)"; }

if [ $keep -eq 1 ]; then
    cat <<EOT

The federation is running (state in $FEDQ_HOME). Try:
  $BUILD/fedq datasets --columns
  $BUILD/fedq health --format json
  $BUILD/fedq datasets --agency dol --format csv
  $BUILD/fedq query --agreement P20W-2026-01 --purpose "program evaluation" "SELECT sex, COUNT(*) FROM dss.enrollment WHERE program = 'TANF' GROUP BY sex"
  $BUILD/fedq query --format json "SELECT town, COUNT(*) FROM hied.enrollment GROUP BY town"
  $BUILD/fedq --config $FEDQ_HOME/steward-dss.yaml review list --state all
Client config: $FEDQ_HOME/client.yaml (found automatically below $REPO; its
agreement: and purpose: stand in for --agreement and --purpose).
Steward config: $FEDQ_HOME/steward-dss.yaml (sam of dss, for fedq review).
Logs: $FEDQ_HOME/log/   Stop it with: deploy/quickstart.sh --stop
EOT
else
    step "stopping"
    fq_stop_all
    echo "stopped (use --keep to leave the federation running)"
fi
