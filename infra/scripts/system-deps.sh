#!/usr/bin/env bash
# Installs the Debian packages the test suite needs: promtool (prometheus) and headless Chromium.
# Tests that need them fail (never skip) when they are missing, so this says clearly why.
set -euo pipefail
need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
    echo "ticktape: missing Debian packages: ${need[*]}. Install them as root:" >&2
    echo "  apt-get update && apt-get install -y ${need[*]}" >&2
    echo "(the tests that need promtool or chromium will fail without them)" >&2
    exit 0
fi
echo "ticktape: installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
