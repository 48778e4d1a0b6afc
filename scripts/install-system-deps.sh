#!/usr/bin/env bash
# Installs the system tools kenning-hil's simulated targets need (QEMU for Arm, the Arm GNU
# toolchain, socat for pty tests, headless Chromium for the HTML report's test) from Debian
# packages, only when they are missing.
set -euo pipefail

need=()
command -v qemu-system-arm >/dev/null 2>&1 || need+=(qemu-system-arm)
command -v arm-none-eabi-gcc >/dev/null 2>&1 || need+=(gcc-arm-none-eabi)
[ -e /usr/lib/arm-none-eabi/newlib ] || [ -e /usr/lib/arm-none-eabi/lib ] || need+=(libnewlib-arm-none-eabi)
command -v socat >/dev/null 2>&1 || need+=(socat)
# headless Chromium opens the HTML report in tests/report (the test skips without it)
command -v chromium-headless-shell >/dev/null 2>&1 || command -v chromium >/dev/null 2>&1 \
    || need+=(chromium-headless-shell)

[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-system-deps: missing ${need[*]}; install them (Debian: apt-get install --no-install-recommends ${need[*]}) or run as root" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-system-deps: missing ${need[*]} and apt-get is not available; install them with your package manager" >&2
    exit 1
fi
echo "install-system-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
