"""The embedded offline model end to end: time to the first words, total time, answer length,
and whether the answer loops or leaks prompt markup, over devset questions in English and Chinese.

Runs the product's ChatEngine with no Ollama (the embedded SmolLM2 answers), product settings
(temperature 0 for repeatability). To compare with an older commit, run this same file with that
commit's tree first on PYTHONPATH (`git worktree add /tmp/old <commit>`; `PYTHONPATH=/tmp/old:.`).

    python -m bench.offline               # 4 questions (2 en, 2 zh): ~1-2 min now, far longer before
"""

from __future__ import annotations

import json
import socket
import tempfile
import time
from typing import Any

from bench.common import Run, markdown_table, parser
from tests.support import DEVSET, DEVSET_PDFS, PROMPT_MARKUP, repeated_run

NAME = "offline"
QUESTIONS = ("q014", "q010", "q341", "q342")  # squad_Geology (en), cmrc2018_DEV_573 (zh)


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def ask(engine: Any, question: str) -> dict[str, Any]:
    from agent.chat.engine import Done, Token

    t0 = time.perf_counter()
    first = None
    answer = None
    for event in engine.stream(question):
        if isinstance(event, Token) and first is None:
            first = time.perf_counter() - t0
        if isinstance(event, Done):
            answer = event.answer
    assert answer is not None
    return {"first_s": first, "total_s": time.perf_counter() - t0, "chars": len(answer.text),
            "sources": len(answer.sources), "loops": repeated_run(answer.text) is not None,
            "markup": bool(PROMPT_MARKUP.search(answer.text)),
            "error": answer.error}


def main(argv: list[str] | None = None) -> int:
    from agent.chat.engine import ChatEngine
    from agent.config import load_settings
    from agent.ingest.pipeline import ingest_file
    from agent.workspace import Workspace

    args = parser(__doc__.split("\n\n")[0]).parse_args(argv)
    run = Run(NAME, args)
    rows = {json.loads(line)["id"]: json.loads(line) for line in (DEVSET / "questions.jsonl").read_text().splitlines()}
    picked = [rows[q] for q in QUESTIONS]
    with tempfile.TemporaryDirectory() as tmp:
        env = {"OLLAMA_HOST": _closed_port(), "AGENT_DATA_DIR": tmp, "AGENT_CONNECT_RETRIES": "1",
               "AGENT_TEMPERATURE": "0"}
        workspace = Workspace(load_settings(environ=env))
        for pdf in sorted({q["file"] for q in picked}):
            ingest_file(DEVSET_PDFS / pdf, workspace.collection(), workspace.embeddings, workspace.settings)
        engine = ChatEngine(workspace)
        results = []
        for q in picked:
            result = {"id": q["id"], "lang": q["lang"], **ask(engine, q["question"])}
            run.log(str(result))
            results.append(result)
    run.results["questions"] = results
    run.table("Embedded model, per question", markdown_table(
        ["question", "lang", "first words (s)", "total (s)", "chars", "sources", "loops", "markup"],
        [[r["id"], r["lang"], f"{r['first_s']:.1f}" if r["first_s"] is not None else "-", f"{r['total_s']:.1f}",
          r["chars"], r["sources"], r["loops"], r["markup"]] for r in results]))
    run.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
