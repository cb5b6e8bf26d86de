#!/usr/bin/env bash
# The whole test suite (README, second command): set-up if needed, lint, then pytest.
# Extra arguments go to pytest (e.g. ./test.sh -m "not slow" -k layout).
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh --browser  # the browser tier renders the HTML report in headless chromium
.venv/bin/ruff check compiler tests tools benchmarks docs
exec .venv/bin/python -m pytest "$@"
