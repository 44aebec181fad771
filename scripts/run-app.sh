#!/usr/bin/env bash
# Set up, then start the web app on http://localhost:8501 (extra args go to streamlit).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/streamlit run streamlit_app.py "$@"
