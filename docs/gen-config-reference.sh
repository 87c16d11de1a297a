#!/usr/bin/env bash
# Regenerates docs/configuration-reference.md from the programs' directive
# tables, the single source of every key, type, bound and default.
# Usage: docs/gen-config-reference.sh BUILD_DIR [OUT]
set -euo pipefail
build=${1:?usage: docs/gen-config-reference.sh BUILD_DIR [OUT]}
out=${2:-$(dirname "$0")/configuration-reference.md}
{
    echo "# Configuration reference"
    echo
    echo "Generated from the directive tables by \`docs/gen-config-reference.sh\`;"
    echo "do not edit by hand (\`tests/run.sh\` checks that it is current)."
    echo "Sizes take KiB, MiB or GiB; durations take ms, s, m or h; unknown"
    echo "keys are errors. See [configuration.md](configuration.md) for how"
    echo "the files fit together."
    echo
    "$build/fedq-agent" --config-reference
    echo
    "$build/fedq-gateway" --config-reference
    echo
    "$build/fedq" --config-reference
} >"$out"
