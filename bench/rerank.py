"""What reranking costs (`Settings.rerank`): one more model call per search, timed with the
reranking prompt of 5 pages (excerpts of 400 characters, agent.chat.rerank).

Two models: the Ollama test double (tests/ollama_double.py, over real HTTP: the app's own cost, the
client, the prompt and the reply's parsing; a real model adds its prompt evaluation on top) and the
embedded SmolLM2-135M (llama.cpp on this CPU: a real, if very small, model reading the same prompt;
an Ollama 3-8B model reads it many times slower). Quality is not measured: no real chat model offline.

    python -m bench.rerank [--repeats N]
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.common import Run, markdown_table, parser, summarize
from bench.quality import EVALSET

NAME = "rerank"


def _sources() -> tuple[str, list[dict[str, Any]]]:
    """A question of the evalset and 5 pages' worth of text: evidence strings of that split, padded to 400 chars."""
    rows = [json.loads(line) for line in (EVALSET / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    tune = [r for r in rows if r["split"] == "tune" and r["lang"] == "en"][:5]
    texts = [" ".join([r["evidence"]] * (400 // max(1, len(r["evidence"])) + 1))[:400] for r in tune]
    return tune[0]["question"], [{"file": r["file"], "page": r["page"], "text": t, "score": 1.0, "chunk_id": "",
                                  "doc_id": "", "ocr": False} for r, t in zip(tune, texts)]


def _time(call: Callable[[], Any], repeats: int) -> dict[str, float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1000)
    return summarize(times)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.split("\n\n")[0])
    args = p.parse_args(argv)
    from langchain_ollama import ChatOllama

    from agent.chat.embedded import EmbeddedChatModel, find_gguf
    from agent.chat.rerank import rerank
    from tests.ollama_double import OllamaDouble

    run = Run(NAME, args, argv if argv is not None else sys.argv[1:])
    repeats = 3 if args.quick else (args.repeats or 10)
    question, sources = _sources()
    results = {}
    with OllamaDouble() as double:
        for _ in range(repeats):
            double.reply("2, 1, 3")  # one queued answer per call
        model = ChatOllama(base_url=double.url, model="llama3.2", num_predict=16)
        results["ollama double"] = _time(lambda: rerank(question, sources, lambda q: str(model.invoke(q).content)),
                                         repeats)
    embedded = EmbeddedChatModel(model_path=str(find_gguf()), max_tokens=16, temperature=0.0, n_threads=1)
    embedded.invoke("warm up")  # loading the weights is a one-off cost, not per search
    results["embedded SmolLM2-135M, 1 thread"] = _time(
        lambda: rerank(question, sources, lambda q: str(embedded.invoke(q).content)), repeats)
    run.params = {"pages": len(sources), "excerpt_chars": 400, "repeats": repeats, "question": question}
    run.results = results
    run.table("Reranking: time per search (ms)", markdown_table(
        ["model", "p50 ms", "p95 ms", "max ms"],
        [[k, f"{v['median']:.0f}", f"{v['p95']:.0f}", f"{v['max']:.0f}"] for k, v in results.items()]))
    run.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
