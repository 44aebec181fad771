#!/usr/bin/env bash
# Set up with the test tools, then run the whole test suite (extra args go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
# The quality floor's documents come from Debian packages (apt-get download; ~50 MB, cached in bench/evalset/pdfs).
.venv/bin/python -m bench.evalset.fetch
exec .venv/bin/python -m pytest "$@"
