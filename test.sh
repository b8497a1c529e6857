#!/usr/bin/env bash
# Set up and run the whole test suite (unit, engine API, app, browser end-to-end): bash test.sh
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh --browser
export INTERPSCOPE_REQUIRE_BROWSER=1
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
