# Shell helpers shared by deploy/quickstart.sh and tests: start, wait for
# and stop a local federation under $FEDQ_HOME. Sourced, not executed.
# Readiness is always a bounded poll on a file or a health check; never a
# fixed sleep.

FQ_AGENCIES=${FQ_AGENCIES:-"dol dss doe uhs csu ccs"}
FQ_FEDERATION=${FQ_FEDERATION:-fedq.local}
FQ_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

fq_die() { echo "quickstart: $*" >&2; exit 1; }

# fq_wait_file FILE SECONDS: waits until FILE exists and is not empty.
fq_wait_file() {
    local file=$1 deadline=$((SECONDS + $2))
    while [ ! -s "$file" ]; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.05
    done
}

# fq_start NAME CMD...: starts a server in the background, logging to
# $FEDQ_HOME/log/NAME.log, and waits for its run/NAME.addr file.
fq_start() {
    local name=$1; shift
    rm -f "$FEDQ_HOME/run/$name.addr"
    "$@" >>"$FEDQ_HOME/log/$name.log" 2>&1 </dev/null &
    local pid=$!
    if ! fq_wait_file "$FEDQ_HOME/run/$name.addr" 30; then
        kill "$pid" 2>/dev/null
        tail -n 5 "$FEDQ_HOME/log/$name.log" >&2
        fq_die "$name did not start (log: $FEDQ_HOME/log/$name.log)"
    fi
}

# fq_stop_all: SIGTERM to every server with a pid file; waits for each.
fq_stop_all() {
    local f pid n
    for f in "$FEDQ_HOME"/run/*.pid; do
        [ -e "$f" ] || continue
        pid=$(cat "$f")
        kill -TERM "$pid" 2>/dev/null || { rm -f "$f"; continue; }
        for n in $(seq 1 200); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "quickstart: $(basename "$f" .pid) did not stop; killing" >&2
            kill -KILL "$pid" 2>/dev/null
        fi
        rm -f "$f" "${f%.pid}.addr"
    done
}

# fq_running: true if any server of this FEDQ_HOME is alive.
fq_running() {
    local f
    for f in "$FEDQ_HOME"/run/*.pid; do
        [ -e "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && return 0
    done
    return 1
}

# fq_sign_policy FEDQ AGENCY [SRC]: the agency's Ed25519 policy key pair in
# $FEDQ_HOME/pki (made once, kept by later runs) and its release policy SRC
# (default: the example in deploy/examples/etc) installed as
# $FEDQ_HOME/etc/policy-AGENCY.yaml and signed with that key by FEDQ (the
# fedq binary): what the agent's policy: section and the gateway's
# policy_key name. Agents serve nothing without it.
# fq_cell_key AGENCY: the agency's cell-key secret in $FEDQ_HOME/pki (made
# once, kept by later runs: a new one changes every perturbed value), which
# its agent configuration's cell_key_secret names.
fq_cell_key() {
    "$FQ_REPO/deploy/pki.sh" cell-key "$FEDQ_HOME/pki" "$1" >/dev/null ||
        fq_die "cannot make the cell-key secret of $1"
}

fq_sign_policy() {
    local fedq=$1 agency=$2
    local src=${3:-$FQ_REPO/deploy/examples/etc/policy-$agency.yaml}
    local dst=$FEDQ_HOME/etc/policy-$agency.yaml
    "$FQ_REPO/deploy/pki.sh" policy-key "$FEDQ_HOME/pki" "$agency" >/dev/null ||
        fq_die "cannot make the policy key of $agency"
    [ "$src" -ef "$dst" ] || cp "$src" "$dst"
    "$fedq" policy sign --key "$FEDQ_HOME/pki/policy-$agency.key" "$dst" >/dev/null ||
        fq_die "cannot sign $dst"
}

# fq_write_gateway_config ALIAS MEMBERS...: writes $FEDQ_HOME/etc/gateway.yaml
# for the agents of $FQ_AGENCIES at the addresses they bound, each with its
# agency's policy public key (fq_sign_policy), with one alias pooling
# MEMBERS.
fq_write_gateway_config() {
    local alias=$1; shift
    local members="$*"
    {
        echo "# Written by $(basename "$0"): the agents' addresses of this run."
        echo "federation: $FQ_FEDERATION"
        echo "listen: 127.0.0.1:0"
        echo "run_dir: ../run"
        echo "tls:"
        echo "  ca: ../pki/ca.crt"
        echo "  cert: ../pki/gateway.crt"
        echo "  key: ../pki/gateway.key"
        echo "agents:"
        for a in $FQ_AGENCIES; do
            echo "  - agency: $a"
            echo "    address: ipv4:$(cat "$FEDQ_HOME/run/agent-$a.addr")"
            echo "    policy_key: ../pki/policy-$a.pub"
        done
        echo "aliases:"
        echo "  - name: $alias"
        echo "    agencies: [${members// /, }]"
    } >"$FEDQ_HOME/etc/gateway.yaml"
}
