#!/usr/bin/env bash
# One-shot set-up for a fresh machine: Debian toolchain for Cortex-M, a .venv with tvc and its
# verification deps. Idempotent: a second run only checks.
# Usage: ./setup.sh [--no-apt] [--browser]
#   --browser  also Debian's chromium, for the test tier that renders the HTML report (./test.sh
#              asks for it; ./demo.sh does not, so the first command never pulls a browser)
set -euo pipefail
cd "$(dirname "$0")"

want_apt=1
want_browser=0
for arg in "$@"; do
    case "$arg" in
        --no-apt) want_apt=0 ;;
        --browser) want_browser=1 ;;
        *) echo "usage: ./setup.sh [--no-apt] [--browser]" >&2; exit 2 ;;
    esac
done

say() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

if [ "$want_apt" = 1 ]; then
    missing=()
    command -v arm-none-eabi-gcc >/dev/null || missing+=(gcc-arm-none-eabi)
    [ -e /usr/lib/arm-none-eabi/newlib/libc.a ] || [ -e /usr/lib/arm-none-eabi/lib/libc.a ] \
        || missing+=(libnewlib-arm-none-eabi)
    command -v qemu-system-arm >/dev/null || missing+=(qemu-system-arm)
    if [ "$want_browser" = 1 ] && ! command -v chromium >/dev/null; then
        missing+=(chromium)
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        say "installing Debian packages: ${missing[*]}"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    fi
fi

py="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    say "creating .venv with $($py --version)"
    "$py" -m venv .venv
fi

# torch 2.13.0 is a CPU build that this machine image keeps on disk; point pip at it explicitly
# so a CI shell without PIP_FIND_LINKS does not fetch a multi-GB CUDA build.
links=()
[ -d /opt/wheels ] && links=(--find-links /opt/wheels)

stamp=.venv/.tvc-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    say "installing tvc and its test dependencies into .venv (first time: a few minutes)"
    log=.venv/setup.log
    if ! { .venv/bin/pip install -q "${links[@]}" --upgrade pip &&
           .venv/bin/pip install -q "${links[@]}" -e ".[test]"; } >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        say "pip failed; the full log is $log"
        exit 1
    fi
    touch "$stamp"
fi
say "ready: $(.venv/bin/tvc --version)"
