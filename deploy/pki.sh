#!/usr/bin/env bash
# fedq PKI helper: a small private CA and the mutual-TLS certificates of a
# federation (gateway, agency agents, analysts, data stewards).
#
# Each certificate carries exactly one URI SAN, the SPIFFE-style identity the
# gateway and agents authorise on:
#   spiffe://FED/gateway
#   spiffe://FED/agency/AGENCY/agent
#   spiffe://FED/analyst/NAME
#   spiffe://FED/steward/AGENCY/NAME
# Servers (gateway, agents) also get DNS/IP SANs for hostname verification.
# See docs/pki.md.
#
# Keys are EC P-256 (mode 0600), signatures SHA-256. Existing key/cert pairs
# are kept unless --force is given. No prompts; works as root and non-root.
#
# policy-key makes the Ed25519 key pair an agency signs its release policy
# with (fedq policy sign); it needs no CA, since agents trust the public key
# itself, not a certificate. cell-key makes the secret an agent derives its
# record keys from (consistent perturbation); it never leaves the agency.
set -euo pipefail

PROG=${0##*/}
CA_DAYS=3650
LEAF_DAYS=${FEDQ_PKI_DAYS:-825}
FORCE=0
TMPDIR_PKI=

usage()
{
    cat <<EOF
usage: $PROG [--force] COMMAND ARGS...

  init DIR FEDERATION         create the CA: DIR/ca.crt, DIR/ca.key, DIR/federation
  gateway DIR [HOST...]       DIR/gateway.crt/.key (spiffe://FED/gateway)
  agent DIR AGENCY [HOST...]  DIR/agency-AGENCY.crt/.key
                              (spiffe://FED/agency/AGENCY/agent)
  analyst DIR NAME            DIR/analyst-NAME.crt/.key (spiffe://FED/analyst/NAME)
  steward DIR AGENCY NAME     DIR/steward-AGENCY-NAME.crt/.key
                              (spiffe://FED/steward/AGENCY/NAME)
  policy-key DIR AGENCY       DIR/policy-AGENCY.key (Ed25519, 0600) and
                              DIR/policy-AGENCY.pub: the key the agency signs
                              its release policy with (fedq policy sign)
  cell-key DIR AGENCY         DIR/cellkey-AGENCY.key (256 random bits, hex,
                              0600): the agent's cell-key secret
  show FILE.crt               print subject, URI SAN, other SANs and validity

Server certificates (gateway, agent) always carry DNS:localhost and
IP:127.0.0.1; each extra HOST is added as an IP SAN if it is an IP address,
otherwise as a DNS SAN.

options:
  --force     reissue even if the key/cert (or key/pub) pair already exists
  -h, --help  this text

environment:
  FEDQ_PKI_DAYS   validity of leaf certificates in days (default 825)
EOF
}

die()
{
    echo "$PROG: $*" >&2
    exit 1
}

cleanup()
{
    if [ -n "$TMPDIR_PKI" ] && [ -d "$TMPDIR_PKI" ]; then
        rm -rf -- "$TMPDIR_PKI"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need_openssl()
{
    command -v openssl >/dev/null 2>&1 || die "openssl not found in PATH"
    local v
    v=$(openssl version 2>/dev/null || true)
    case "$v" in
    "OpenSSL 3."*) ;;
    *) die "OpenSSL 3 required (found: ${v:-nothing})" ;;
    esac
}

# Names become path components and URI path segments: keep them boring.
check_name()
{
    local what=$1 v=$2
    [[ "$v" =~ ^[a-z0-9][a-z0-9_-]{0,31}$ ]] ||
        die "invalid $what name '$v': must match ^[a-z0-9][a-z0-9_-]{0,31}\$"
}

check_federation()
{
    local v=$1
    [[ "$v" =~ ^[a-z0-9][a-z0-9.-]{0,62}$ ]] ||
        die "invalid federation name '$v': must match ^[a-z0-9][a-z0-9.-]{0,62}\$"
}

check_days()
{
    [[ "$LEAF_DAYS" =~ ^[1-9][0-9]{0,4}$ ]] ||
        die "FEDQ_PKI_DAYS must be a whole number of days (1..99999), got '$LEAF_DAYS'"
}

is_ipv4()
{
    local ip=$1 o parts
    [[ "$ip" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || return 1
    IFS=. read -r -a parts <<<"$ip"
    for o in "${parts[@]}"; do
        [ $((10#$o)) -le 255 ] || return 1
    done
    return 0
}

is_ipv6()
{
    [[ "$1" =~ ^[0-9A-Fa-f:.]+$ && "$1" == *:* ]]
}

is_dns()
{
    local h=$1
    [ ${#h} -le 253 ] || return 1
    # All digits and dots is a mistyped IPv4 address, not a host name.
    [[ ! "$h" =~ ^[0-9.]+$ ]] || return 1
    [[ "$h" =~ ^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$ ]]
}

make_tmpdir()
{
    if [ -z "$TMPDIR_PKI" ]; then
        TMPDIR_PKI=$(mktemp -d "${TMPDIR:-/tmp}/fedq-pki.XXXXXXXX")
    fi
}

ensure_dir()
{
    local dir=$1
    if [ ! -d "$dir" ]; then
        mkdir -p -- "$dir" || die "cannot create directory $dir"
    fi
    [ -w "$dir" ] || die "directory $dir is not writable"
}

# Reads the federation name written by init; every leaf needs it.
load_ca()
{
    local dir=$1
    if [ ! -f "$dir/ca.crt" ] || [ ! -f "$dir/ca.key" ]; then
        die "no CA in $dir (missing ca.crt or ca.key); run '$PROG init $dir FEDERATION' first"
    fi
    [ -f "$dir/federation" ] ||
        die "$dir/federation missing; it names the federation (run init, or write the name into it)"
    [ -r "$dir/ca.key" ] || die "cannot read $dir/ca.key (permissions?)"
    FED=$(tr -d ' \t\r\n' <"$dir/federation")
    check_federation "$FED"
}

# Returns 0 if the pair should be (re)issued, 1 if an existing one is kept.
should_issue()
{
    local crt=$1 key=$2
    if [ -e "$crt" ] && [ -e "$key" ]; then
        if [ "$FORCE" -eq 1 ]; then
            echo "reissuing $crt (--force)"
            return 0
        fi
        echo "exists: $crt (kept; use --force to reissue)"
        return 1
    fi
    if [ -e "$crt" ] || [ -e "$key" ]; then
        [ "$FORCE" -eq 1 ] ||
            die "incomplete pair: only one of $crt and $key exists; remove it or use --force"
    fi
    return 0
}

# New EC P-256 private key, written 0600 from the start (umask) and only
# renamed into place once complete.
gen_key()
{
    local out=$1
    (
        umask 077
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
            -pkeyopt ec_param_enc:named_curve -out "$out" 2>/dev/null
    ) || die "key generation failed for $out"
    chmod 600 -- "$out"
}

rand_serial()
{
    # 16 random bytes; the leading nibble is cleared of its top bit so the
    # serial is positive and at most 16 octets when DER-encoded.
    local hex
    hex=$(openssl rand -hex 16)
    printf '0x%x%s' $((0x${hex:0:1} & 7)) "${hex:1}"
}

verify_cert()
{
    local dir=$1 crt=$2 out
    out=$(openssl verify -CAfile "$dir/ca.crt" "$crt" 2>&1) ||
        die "issued certificate does not verify against $dir/ca.crt: $out"
}

cmd_init()
{
    [ $# -eq 2 ] || die "usage: $PROG init DIR FEDERATION"
    local dir=$1 fed=$2
    check_federation "$fed"
    ensure_dir "$dir"

    if [ -f "$dir/federation" ] && [ "$FORCE" -eq 0 ]; then
        local old
        old=$(tr -d ' \t\r\n' <"$dir/federation")
        [ "$old" = "$fed" ] ||
            die "$dir already belongs to federation '$old', not '$fed' (use --force to replace the CA)"
    fi
    if ! should_issue "$dir/ca.crt" "$dir/ca.key"; then
        [ -f "$dir/federation" ] || printf '%s\n' "$fed" >"$dir/federation"
        return 0
    fi
    if [ "$FORCE" -eq 1 ] && [ -e "$dir/ca.crt" ]; then
        echo "warning: replacing the CA; every certificate issued from the old one stops verifying" >&2
    fi

    make_tmpdir
    local key=$TMPDIR_PKI/ca.key crt=$TMPDIR_PKI/ca.crt
    local cfg
    cfg=$(mktemp "$TMPDIR_PKI/ca.XXXXXX.cnf")
    # A private config so the system openssl.cnf adds nothing of its own.
    cat >"$cfg" <<EOF
[req]
prompt = no
distinguished_name = dn
x509_extensions = ext

[dn]
O = $fed
CN = fedq CA

[ext]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
    gen_key "$key"
    openssl req -x509 -new -batch -config "$cfg" -key "$key" -sha256 \
        -days "$CA_DAYS" -set_serial "$(rand_serial)" -out "$crt" 2>"$TMPDIR_PKI/err" ||
        die "CA certificate creation failed: $(cat "$TMPDIR_PKI/err")"
    rm -f -- "$cfg"

    mv -f -- "$key" "$dir/ca.key"
    mv -f -- "$crt" "$dir/ca.crt"
    chmod 644 -- "$dir/ca.crt"
    printf '%s\n' "$fed" >"$dir/federation"
    echo "created CA for federation '$fed': $dir/ca.crt $dir/ca.key"
}

# issue DIR BASENAME CN URI EKU [HOST...]: one leaf key/cert pair. HOSTs are
# given only for server certificates (EKU containing serverAuth).
issue()
{
    local dir=$1 base=$2 cn=$3 uri=$4 eku=$5
    shift 5
    local crt=$dir/$base.crt key=$dir/$base.key

    local san="URI:$uri"
    if [[ "$eku" == *serverAuth* ]]; then
        local -A seen=()
        local h
        for h in localhost 127.0.0.1 "$@"; do
            [ -z "${seen[$h]:-}" ] || continue
            seen[$h]=1
            if is_ipv4 "$h" || is_ipv6 "$h"; then
                san="$san, IP:$h"
            elif is_dns "$h"; then
                san="$san, DNS:$h"
            else
                die "invalid host '$h': not an IP address or DNS name"
            fi
        done
    fi

    # Hosts are checked first so a typo fails even when the pair exists.
    if ! should_issue "$crt" "$key"; then
        openssl verify -CAfile "$dir/ca.crt" "$crt" >/dev/null 2>&1 ||
            echo "$PROG: warning: existing $crt does not verify against $dir/ca.crt; reissue it with --force" >&2
        return 0
    fi
    make_tmpdir

    local ext csr tkey tcrt
    ext=$(mktemp "$TMPDIR_PKI/$base.XXXXXX.ext")
    csr=$TMPDIR_PKI/$base.csr
    tkey=$TMPDIR_PKI/$base.key
    tcrt=$TMPDIR_PKI/$base.crt
    cat >"$ext" <<EOF
[req]
prompt = no
distinguished_name = dn

[dn]
O = $FED
CN = $cn

[ext]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = $eku
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
EOF
    gen_key "$tkey"
    openssl req -new -batch -config "$ext" -key "$tkey" -sha256 \
        -out "$csr" 2>"$TMPDIR_PKI/err" ||
        die "CSR creation failed for $base: $(cat "$TMPDIR_PKI/err")"
    openssl x509 -req -in "$csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -set_serial "$(rand_serial)" -sha256 -days "$LEAF_DAYS" \
        -extfile "$ext" -extensions ext -out "$tcrt" 2>"$TMPDIR_PKI/err" ||
        die "signing failed for $base: $(cat "$TMPDIR_PKI/err")"
    verify_cert "$dir" "$tcrt"
    rm -f -- "$ext" "$csr"

    mv -f -- "$tkey" "$key"
    mv -f -- "$tcrt" "$crt"
    chmod 644 -- "$crt"
    echo "issued $crt ($uri, $LEAF_DAYS days)"
}

cmd_gateway()
{
    [ $# -ge 1 ] || die "usage: $PROG gateway DIR [HOST...]"
    local dir=$1
    shift
    load_ca "$dir"
    issue "$dir" gateway "gateway" "spiffe://$FED/gateway" \
        "serverAuth, clientAuth" "$@"
}

cmd_agent()
{
    [ $# -ge 2 ] || die "usage: $PROG agent DIR AGENCY [HOST...]"
    local dir=$1 agency=$2
    shift 2
    check_name agency "$agency"
    load_ca "$dir"
    issue "$dir" "agency-$agency" "agent $agency" \
        "spiffe://$FED/agency/$agency/agent" "serverAuth, clientAuth" "$@"
}

cmd_analyst()
{
    [ $# -eq 2 ] || die "usage: $PROG analyst DIR NAME"
    local dir=$1 name=$2
    check_name analyst "$name"
    load_ca "$dir"
    issue "$dir" "analyst-$name" "analyst $name" \
        "spiffe://$FED/analyst/$name" "clientAuth"
}

cmd_steward()
{
    [ $# -eq 3 ] || die "usage: $PROG steward DIR AGENCY NAME"
    local dir=$1 agency=$2 name=$3
    check_name agency "$agency"
    check_name steward "$name"
    load_ca "$dir"
    issue "$dir" "steward-$agency-$name" "steward $agency $name" \
        "spiffe://$FED/steward/$agency/$name" "clientAuth"
}

# The policy key is not a TLS key: Ed25519, no certificate, no CA. The
# public half is derived from the private one, so the pair always matches.
cmd_policy_key()
{
    [ $# -eq 2 ] || die "usage: $PROG policy-key DIR AGENCY"
    local dir=$1 agency=$2
    check_name agency "$agency"
    ensure_dir "$dir"
    local key=$dir/policy-$agency.key pub=$dir/policy-$agency.pub
    if ! should_issue "$pub" "$key"; then
        return 0
    fi
    [ "$FORCE" -eq 0 ] || [ ! -e "$pub" ] ||
        echo "warning: a new policy key; re-sign the policy and give every agent and the gateway the new $pub" >&2

    make_tmpdir
    local tkey=$TMPDIR_PKI/policy-$agency.key tpub=$TMPDIR_PKI/policy-$agency.pub
    (
        umask 077
        openssl genpkey -algorithm ed25519 -out "$tkey" 2>"$TMPDIR_PKI/err"
    ) || die "policy key generation failed: $(cat "$TMPDIR_PKI/err")"
    chmod 600 -- "$tkey"
    openssl pkey -in "$tkey" -pubout -out "$tpub" 2>"$TMPDIR_PKI/err" ||
        die "cannot derive the public key: $(cat "$TMPDIR_PKI/err")"

    mv -f -- "$tkey" "$key"
    mv -f -- "$tpub" "$pub"
    chmod 644 -- "$pub"
    echo "created policy key for $agency: $key (keep it offline) $pub"
}

# The cell-key secret: 256 random bits as 64 hex digits, kept by the agency
# alone (its agent keys record keys for consistent perturbation with it).
# Never reissued over an existing one without --force: a new secret changes
# every perturbed value the federation publishes.
cmd_cell_key()
{
    [ $# -eq 2 ] || die "usage: $PROG cell-key DIR AGENCY"
    local dir=$1 agency=$2
    check_name agency "$agency"
    ensure_dir "$dir"
    local key=$dir/cellkey-$agency.key
    if [ -e "$key" ] && [ "$FORCE" -eq 0 ]; then
        echo "exists: $key (kept; use --force to replace)"
        return 0
    fi
    [ ! -e "$key" ] ||
        echo "warning: a new cell-key secret changes every perturbed value; restart the agent" >&2
    make_tmpdir
    local tkey=$TMPDIR_PKI/cellkey-$agency.key
    (
        umask 077
        openssl rand -hex 32 >"$tkey" 2>"$TMPDIR_PKI/err"
    ) || die "cell-key secret generation failed: $(cat "$TMPDIR_PKI/err")"
    chmod 600 -- "$tkey"
    mv -f -- "$tkey" "$key"
    echo "created cell-key secret for $agency: $key (the agent's alone)"
}

cmd_show()
{
    [ $# -eq 1 ] || die "usage: $PROG show FILE.crt"
    local f=$1 text sans uri other eku
    [ -f "$f" ] || die "no such file: $f"
    text=$(openssl x509 -in "$f" -noout -text 2>/dev/null) ||
        die "$f is not a PEM certificate"
    sans=$(openssl x509 -in "$f" -noout -ext subjectAltName 2>/dev/null |
        sed -n '2,$p' | tr ',' '\n' | sed 's/^[[:space:]]*//;/^$/d')
    uri=$(printf '%s\n' "$sans" | sed -n 's/^URI://p' | paste -sd ' ' -)
    other=$(printf '%s\n' "$sans" | grep -v '^URI:' | paste -sd ' ' - || true)
    echo "file:       $f"
    echo "subject:    $(openssl x509 -in "$f" -noout -subject -nameopt RFC2253 | sed 's/^subject=//')"
    echo "issuer:     $(openssl x509 -in "$f" -noout -issuer -nameopt RFC2253 | sed 's/^issuer=//')"
    echo "uri:        ${uri:-(none)}"
    echo "other SANs: ${other:-(none)}"
    eku=$(printf '%s\n' "$text" |
        sed -n '/X509v3 Extended Key Usage/{n;s/^[[:space:]]*//;p}')
    if printf '%s\n' "$text" | grep -q 'CA:TRUE'; then
        eku="certificate authority${eku:+, $eku}"
    fi
    echo "usage:      ${eku:-(none)}"
    echo "not before: $(openssl x509 -in "$f" -noout -startdate | sed 's/^notBefore=//')"
    echo "not after:  $(openssl x509 -in "$f" -noout -enddate | sed 's/^notAfter=//')"
    echo "serial:     $(openssl x509 -in "$f" -noout -serial | sed 's/^serial=//')"
}

main()
{
    local args=() a
    for a in "$@"; do
        case "$a" in
        --force) FORCE=1 ;;
        -h | --help)
            usage
            exit 0
            ;;
        -*) die "unknown option '$a' (see --help)" ;;
        *) args+=("$a") ;;
        esac
    done
    [ ${#args[@]} -ge 1 ] || {
        usage >&2
        exit 2
    }
    need_openssl
    check_days

    local cmd=${args[0]}
    local rest=("${args[@]:1}")
    case "$cmd" in
    init) cmd_init "${rest[@]}" ;;
    gateway) cmd_gateway "${rest[@]}" ;;
    agent) cmd_agent "${rest[@]}" ;;
    analyst) cmd_analyst "${rest[@]}" ;;
    steward) cmd_steward "${rest[@]}" ;;
    policy-key) cmd_policy_key "${rest[@]}" ;;
    cell-key) cmd_cell_key "${rest[@]}" ;;
    show) cmd_show "${rest[@]}" ;;
    help) usage ;;
    *) die "unknown command '$cmd' (see --help)" ;;
    esac
}

main "$@"
