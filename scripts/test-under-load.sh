#!/usr/bin/env bash
# Runs `make test` while stress-ng keeps every core of this machine busy, to show that no test
# depends on an idle machine (CI runs on a 2-core runner that may be busy).
#
#   scripts/test-under-load.sh                  # make test under load on all cores
#   STRESS_CPUS=1 scripts/test-under-load.sh    # one busy core instead
#   TEST_TARGET=test-quick scripts/test-under-load.sh
#
# stress-ng (Debian package stress-ng) is installed when missing, as install-system-deps.sh
# installs the simulators. Prints the result and the duration; exits with make's status.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v stress-ng >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "test-under-load: stress-ng is missing; install it (Debian: apt-get install stress-ng)" >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "test-under-load: stress-ng is missing and apt-get is not available; install it with your package manager" >&2
        exit 1
    fi
    echo "test-under-load: installing stress-ng"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y -qq --no-install-recommends stress-ng >/dev/null 2>&1 || {
        $SUDO apt-get update -qq
        $SUDO apt-get install -y -qq --no-install-recommends stress-ng >/dev/null
    }
fi

cpus="${STRESS_CPUS:-$(nproc)}"
target="${TEST_TARGET:-test}"
# one CPU hog per core for as long as the tests run (the trap stops it whatever happens)
stress-ng --cpu "$cpus" --cpu-method matrixprod --timeout 0 --quiet &
stress_pid=$!
trap 'kill "$stress_pid" 2>/dev/null || true; wait "$stress_pid" 2>/dev/null || true' EXIT
echo "test-under-load: stress-ng --cpu $cpus (pid $stress_pid) keeps the cores busy during make $target"

start=$(date +%s)
status=0
make "$target" || status=$?
elapsed=$(( $(date +%s) - start ))
printf 'test-under-load: make %s %s under stress-ng --cpu %s in %dm%02ds\n' "$target" \
    "$([ "$status" -eq 0 ] && echo passed || echo "FAILED (exit $status)")" "$cpus" \
    $((elapsed / 60)) $((elapsed % 60))
exit "$status"
