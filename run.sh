#!/usr/bin/env bash
# Set up and run Interpscope on the embedded demo model: bash run.sh
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh --browser
exec .venv/bin/streamlit run app.py "$@"
