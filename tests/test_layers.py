"""The layers contract (.importlinter): a wrong-way import between sub-packages fails CI."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_layers_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_agent_never_imports_streamlit():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "agent").rglob("*.py")
                 if any(line.lstrip().startswith(("import streamlit", "from streamlit"))
                        for line in p.read_text(encoding="utf-8").splitlines())]
    assert offenders == []
