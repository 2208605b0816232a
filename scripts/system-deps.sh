#!/usr/bin/env bash
# Debian packages the test suite needs, installed only when missing:
#   dataset-fashion-mnist  IDX files in /usr/share/datasets/fashion-mnist (real-data tests)
#   chromium               /usr/bin/chromium, the browser the `antlers serve` tests drive
set -euo pipefail
missing=()
[ -d /usr/share/datasets/fashion-mnist ] || missing+=(dataset-fashion-mnist)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
echo "installing Debian packages: ${missing[*]}"
$sudo apt-get install -y --no-install-recommends "${missing[@]}" \
    || { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends "${missing[@]}"; }
