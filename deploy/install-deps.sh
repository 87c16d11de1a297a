#!/usr/bin/env bash
# Installs every Debian package fedq needs to build, test and fuzz, when it is
# missing, then checks that each required tool and pkg-config module is there.
# Idempotent; safe to run on every build. Needs root (or sudo) only when
# something is missing.
set -euo pipefail

PKGS=(
    build-essential cmake ninja-build pkg-config git
    clang libclang-rt-14-dev clang-format
    libgrpc-dev protobuf-c-compiler libprotobuf-c-dev protobuf-compiler
    libssl-dev openssl libyaml-dev libsqlite3-dev sqlite3 libcmocka-dev
    libsodium-dev libpq-dev postgresql libglpk-dev glpk-utils
    python3 python3-grpcio python3-grpc-tools python3-protobuf python3-yaml
    procps psmisc iproute2
)

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    SUDO=
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Check what the build and tests call, so a broken machine is named clearly.
fail=0
for bin in cmake ninja pkg-config cc clang protoc-c openssl sqlite3 /usr/bin/python3; do
    command -v "$bin" >/dev/null 2>&1 || { echo "install-deps: missing command '$bin'" >&2; fail=1; }
done
for mod in grpc gpr libprotobuf-c cmocka yaml-0.1 sqlite3 openssl libsodium libpq; do
    pkg-config --exists "$mod" || { echo "install-deps: missing pkg-config module '$mod'" >&2; fail=1; }
done
# Debian's own interpreter: a python3 earlier on PATH (pyenv) does not see
# Debian's modules.
/usr/bin/python3 -c 'import grpc, grpc_tools.protoc, google.protobuf, yaml' 2>/dev/null ||
    { echo "install-deps: /usr/bin/python3 cannot import grpc, grpc_tools, protobuf or yaml" >&2; fail=1; }
[ -e "$(clang -print-file-name=libclang_rt.fuzzer-x86_64.a)" ] ||
    { echo "install-deps: libFuzzer runtime missing (libclang-rt-14-dev)" >&2; fail=1; }
[ $fail -eq 0 ] || exit 1
echo "install-deps: all dependencies present"
