"""PDFium is not thread-safe: parsing and "Show the page" in two threads must never crash (issue 14.5).

Run in a child process, so a segmentation fault fails this test instead of killing pytest.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.support import DEVSET_PDFS, ROOT

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent("""
    import sys, threading
    from agent.app.sources import render_page_png
    from agent.ingest.parse import parse_pdf
    pdf, rounds = sys.argv[1], int(sys.argv[2])
    errors = []
    def parse():
        for _ in range(rounds):
            parse_pdf(pdf, max_bytes=10**8, max_pages=1000, ocr=False)
    def render():
        for i in range(rounds * 3):
            render_page_png(pdf, 1 + i % 8, highlight="the Apollo program")
    def run(work):
        try:
            work()
        except Exception as exc:
            errors.append(repr(exc))
    threads = [threading.Thread(target=run, args=(w,)) for w in (parse, render, render)]
    [t.start() for t in threads]
    [t.join(300) for t in threads]
    print("ERRORS", errors)
    sys.exit(1 if errors or any(t.is_alive() for t in threads) else 0)
""")


def test_parsing_and_rendering_in_threads_never_crash():
    pdf = DEVSET_PDFS / "squad_Apollo_program.pdf"
    for attempt in range(3):
        done = subprocess.run([sys.executable, "-c", SCRIPT, str(pdf), "6"], cwd=ROOT, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, (attempt, done.returncode, done.stdout[-500:], done.stderr[-2000:])
