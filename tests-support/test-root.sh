#!/usr/bin/env bash
# Makes (once) and prints the path of a real Debian bookworm minbase root for
# the tests: the statelite tests use it as an image, the VM tests as the
# standard root. INIT_AGENT_TEST_ROOT names another place.
set -euo pipefail
TEST_ROOT=${INIT_AGENT_TEST_ROOT:-/var/cache/init-agent-tests/bookworm-minbase}
if [ ! -f "$TEST_ROOT/.complete" ]; then
    if ! command -v debootstrap >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
    fi
    mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    echo "==> debootstrap bookworm minbase into $TEST_ROOT (once)" >&2
    rm -rf "$TEST_ROOT.partial"
    mkdir -p "$(dirname "$TEST_ROOT")"
    debootstrap --variant=minbase bookworm "$TEST_ROOT.partial" "${mirror:-http://deb.debian.org/debian}" >/dev/null
    rm -rf "$TEST_ROOT"
    mv "$TEST_ROOT.partial" "$TEST_ROOT"
    touch "$TEST_ROOT/.complete"
fi
echo "$TEST_ROOT"
