#!/usr/bin/env bash
# Refresh the README's screenshots, English and Chinese (docs/*.png and docs/*-zh.png).
#
# They are taken by the browser tests (tests/test_browser_e2e.py: Playwright with Debian's
# chromium, against the Ollama test double), which otherwise write them to a temp dir, so a
# normal test run never rewrites tracked files. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
SCREENSHOT_DIR="$PWD/docs" "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_browser_e2e.py -k walk "$@"
ls -l docs/*.png
