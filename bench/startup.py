"""Start-up: how long until the app answers, from a cold process.

- `streamlit run streamlit_app.py` (subprocess, headless, free port, temp data dir, the
  Ollama double as OLLAMA_HOST): seconds until `/_stcore/health` answers 200, and until a
  first page render in a real browser (Playwright + Debian's chromium, launched before
  the app starts, so only the page load counts): the chat input is on screen. The first
  render runs our script, so it includes importing `agent` and LangChain, settings and
  the Ollama status check.
- `python -m agent ask QUESTION` (subprocess, stdout read unbuffered) against the double
  (first-token delay 0, so the figure is ours): seconds to the first byte of the answer
  and to exit, over a collection with one ingested PDF; plus the bare interpreter and
  `import agent.cli` for scale.

    python -m bench.startup [--quick] [--no-browser]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Run, clean_env, markdown_table, parser, summarize
from tests.support import (
    CHROMIUM_ARGS,
    DEVSET_PDFS,
    ROOT,
    free_port,
    streamlit_server,
    wait_for_http,
)

NAME = "startup"
PDF = "squad_Geology.pdf"
QUESTION = "What do petrologists use electron microprobes in the laboratory for?"
ANSWER = "Petrologists use electron microprobes to identify rocks [squad_Geology.pdf p.3]."
RENDERED = "[data-testid=stChatInput] textarea"  # the chat page's input box: the page has rendered


def health_time(base: str, proc: subprocess.Popen) -> float | None:
    """When (perf_counter) the server first answered its health check, or None if it never did."""
    try:
        return wait_for_http(f"{base}/_stcore/health", 120, proc, poll=0.02)
    except (TimeoutError, RuntimeError):
        return None


def streamlit_once(env: dict[str, str], browser: Any, log_path: Path) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    page = None
    if browser is not None:
        context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
        page = context.new_page()
        page.set_default_timeout(120_000)
    t0 = time.perf_counter()
    try:
        with open(log_path, "ab") as log, streamlit_server(env, port, log) as proc:
            health_at = health_time(base, proc)
            out: dict[str, Any] = {"health_s": None if health_at is None else health_at - t0}
            if page is not None and health_at is not None:
                out.update(render_times(page, base, t0))
            return out
    finally:
        if page is not None:
            page.context.close()


def render_times(page: Any, base: str, t0: float) -> dict[str, float]:
    """First render after start and after health, then a warm reload."""
    g0 = time.perf_counter()
    page.goto(base)
    page.locator(RENDERED).first.wait_for(state="visible")
    done = time.perf_counter()
    g1 = time.perf_counter()  # a second visit: the script is imported and cached resources warm
    page.reload()
    page.locator(RENDERED).first.wait_for(state="visible")
    return {"render_s": done - t0, "render_after_health_s": done - g0, "second_render_s": time.perf_counter() - g1}


def ask_once(env: dict[str, str]) -> dict[str, Any]:
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-u", "-m", "agent", "ask", QUESTION], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    assert proc.stdout is not None
    first = proc.stdout.read(1)
    first_at = time.perf_counter() - t0
    rest = proc.stdout.read()
    err = proc.stderr.read() if proc.stderr else b""
    code = proc.wait(60)
    text = (first + rest).decode("utf-8", "replace")
    if code != 0 or "Petrologists" not in text:
        raise RuntimeError(f"ask failed (exit {code}): {text[:300]} {err.decode(errors='replace')[-800:]}")
    return {"first_token_s": first_at, "exit_s": time.perf_counter() - t0}


def python_s(env: dict[str, str], code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--no-browser", action="store_true", help="only the health check, no page render")
    args = p.parse_args(argv)
    from agent.config import Settings
    from agent.ingest.pipeline import ingest_file
    from agent.search.embeddings import LOCAL_MODEL_ID, LocalEmbeddings
    from agent.search.store import Collection
    from tests.ollama_double import OllamaDouble

    run = Run(NAME, args, argv if argv is not None else sys.argv[1:])
    repeats = args.repeats or (1 if args.quick else 5)
    chromium = shutil.which("chromium")
    use_browser = not args.no_browser and not args.quick and chromium is not None
    try:
        import playwright  # noqa: F401
    except ImportError:
        use_browser = False
    run.params = {"repeats": repeats, "browser": f"playwright + {chromium}" if use_browser else "none",
                  "double": "in-process thread, first-token delay 0", "pdf": PDF}
    rows: list[list[Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp, \
            OllamaDouble(default_text=ANSWER) as double:
        data = Path(tmp) / "data"
        emb = LocalEmbeddings()
        ingest_file(DEVSET_PDFS / PDF, Collection(data, "default", emb, LOCAL_MODEL_ID), emb, Settings(data_dir=data))
        env = clean_env(OLLAMA_HOST=double.url, AGENT_DATA_DIR=str(data), AGENT_EMBEDDING="local",
                        STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
        # the interpreter and our imports, for scale (each once warm-up, then timed)
        python_s(env, "pass")
        bare = [python_s(env, "pass") for _ in range(repeats)]
        imports = [python_s(env, "import agent.cli") for _ in range(repeats)]
        asks = [ask_once(env) for _ in range(repeats + 1)][1:]  # the first one warms the OS file cache
        run.results["python_bare_s"] = summarize(bare)
        run.results["import_agent_cli_s"] = summarize(imports)
        run.results["ask"] = {k: summarize([a[k] for a in asks]) for k in ("first_token_s", "exit_s")}
        rows += [["`python -c pass`", run.results["python_bare_s"]["median"], run.results["python_bare_s"]["max"], ""],
                 ["`python -c 'import agent.cli'`", run.results["import_agent_cli_s"]["median"],
                  run.results["import_agent_cli_s"]["max"], ""],
                 ["`python -m agent ask`: first answer byte", run.results["ask"]["first_token_s"]["median"],
                  run.results["ask"]["first_token_s"]["max"], "agent mode, llama3.2 on the double (tool call + answer)"],
                 ["`python -m agent ask`: exit", run.results["ask"]["exit_s"]["median"],
                  run.results["ask"]["exit_s"]["max"], ""]]
        run.log("ask done; streamlit")
        pw = browser = None
        if use_browser:
            from playwright.sync_api import sync_playwright

            pw = sync_playwright().start()
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            runs = [streamlit_once(env, browser, Path(tmp) / "streamlit.log") for _ in range(repeats)]
        finally:
            if browser is not None:
                browser.close()
            if pw is not None:
                pw.stop()
        if any(r["health_s"] is None for r in runs):
            log = (Path(tmp) / "streamlit.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"streamlit did not answer /_stcore/health: {log}")
        for key, label in (("health_s", "`streamlit run`: /_stcore/health answers 200"),
                           ("render_s", "`streamlit run`: first page render (chat input visible)"),
                           ("render_after_health_s", "  of which: page load after health"),
                           ("second_render_s", "  a reload of the rendered page")):
            values = [r[key] for r in runs if r.get(key) is not None]
            if values:
                run.results[key] = summarize(values)
                rows.append([label, run.results[key]["median"], run.results[key]["max"], ""])
    run.table(f"Start-up, seconds (median and max of {repeats})", markdown_table(
        ["what", "median s", "max s", "note"], rows, align="lrrl"))
    run.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
