"""Chat overhead: what our ChatEngine adds to the model's own time, against the Ollama double.

The double (tests/ollama_double.py) runs in this process, in a thread, so its request log
can be read; every /api/chat answer waits a fixed first-token delay, then streams a fixed
answer chunk by chunk. A temp workspace holds a few real devset PDFs ingested with the
local embedder, so retrieval is the product's.

For each mode (agent with `llama3.2`, always-retrieve with `gemma:2b`; chosen by `auto`
from the models' capabilities) and each turn type (a first question; a follow-up in the
same conversation), repeated:

- ours: `ChatEngine.stream(question, conversation)`: time to the first Token event (TTFT)
  and to Done;
- direct, same requests: the /api/chat requests our engine just made, replayed with
  `ollama.Client(host).chat(..., stream=True)` in order (same messages, tools, options):
  TTFT of the last one (the answer), counted from the start of the first;
- direct, answer only: one `ollama.Client.chat` call with the final answer request's
  messages (a plain chat client with the same prompt: no search, no tool round trip).

Added TTFT = ours - direct-same-requests: the time our code spends around the model calls
(agent graph, retrieval with query embedding, prompt building, history). Requests and
retrievals per turn are counted from the double's log and a counting ChatEngine.

    python -m bench.chat_overhead [--quick] [--first-token-delay 0.2] [--chunk-delay 0.02]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    Goal,
    Run,
    blas_threads,
    markdown_table,
    median,
    parser,
    set_blas_threads,
    summarize,
)
from tests.support import DEVSET_PDFS

NAME = "chat_overhead"
FILES = ["squad_Geology.pdf", "squad_Harvard_University.pdf", "cmrc2018_DEV_1011.pdf"]
ANSWER = ("Igneous rocks form when magma or lava cools and solidifies, either below the surface as intrusive "
          "rocks or on the surface as extrusive rocks [squad_Geology.pdf p.1]. Sedimentary rocks form from "
          "deposited sediment, and metamorphic rocks from existing rocks changed by heat and pressure.")
TURNS = [  # (first question, follow-up)
    ("What do petrologists use electron microprobes in the laboratory for?", "And what else do they study?"),
    ("Sedimentary rock can be turned into which of the three types of rock?", "How does that happen?"),
    ("What type of correlation was used previously to help date rock formations?", "Who used it first?"),
    ("When was Harvard founded?", "And who was it named after?"),
]
MODES = {"agent": "llama3.2", "always_retrieve": "gemma:2b"}
REWRITE_REPLY = "petrologists electron microprobes laboratory"


def short_rewrites(double: Any) -> None:
    """Make the double answer the always-retrieve rewrite call (recognised by its num_predict)
    with a short query, as a model would, instead of the long default answer."""
    from agent.chat.engine import REWRITE_MAX_TOKENS
    from tests.ollama_double import Reply

    default = double._default_reply

    def reply(body: dict[str, Any]) -> Any:
        if (body.get("options") or {}).get("num_predict") == REWRITE_MAX_TOKENS and not body.get("tools"):
            return Reply(REWRITE_REPLY)
        return default(body)

    double._default_reply = reply


def counting_engine_class():
    from agent.chat.engine import ChatEngine

    class CountingEngine(ChatEngine):
        """ChatEngine that counts and times its retrievals."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.retrieval_ms: list[float] = []

        def retrieve(self, query: str) -> list[dict[str, Any]]:
            t0 = time.perf_counter()
            try:
                return super().retrieve(query)
            finally:
                self.retrieval_ms.append((time.perf_counter() - t0) * 1000)

    return CountingEngine


def run_ours(engine: Any, question: str, conversation: str) -> dict[str, Any]:
    from agent.chat.engine import Done, Status, Token

    first = status = None
    answer = None
    n_retrievals = len(engine.retrieval_ms)
    t0 = time.perf_counter()
    for event in engine.stream(question, conversation):
        now = time.perf_counter() - t0
        if isinstance(event, Token) and first is None:
            first = now
        elif isinstance(event, Status) and status is None:
            status = now
        elif isinstance(event, Done):
            answer = event.answer
    total = time.perf_counter() - t0
    assert answer is not None
    return {"ttft": first, "total": total, "first_status": status, "error": answer.error, "mode": answer.mode,
            "sources": len(answer.sources), "retrievals": len(engine.retrieval_ms) - n_retrievals,
            "retrieval_ms": engine.retrieval_ms[n_retrievals:]}


def replay(host: str, bodies: list[dict[str, Any]]) -> dict[str, float]:
    """Send the same /api/chat requests directly, in order; TTFT of the last one's first content."""
    import ollama

    client = ollama.Client(host=host)
    t0 = time.perf_counter()
    first = None
    for i, body in enumerate(bodies):
        parts = client.chat(model=body["model"], messages=body["messages"], tools=body.get("tools"), stream=True,
                            think=body.get("think"), format=body.get("format") or None,
                            options=body.get("options"), keep_alive=body.get("keep_alive"))
        for part in parts:
            if i == len(bodies) - 1 and first is None and part.message.content:
                first = time.perf_counter() - t0
    return {"ttft": first, "total": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--first-token-delay", type=float, default=0.2)
    p.add_argument("--chunk-delay", type=float, default=None, help="seconds between chunks (default 0.02; quick 0.005)")
    p.add_argument("--blas", default=None,
                   help="OpenBLAS thread settings to compare, e.g. 'default,1' (default: 'default,1'; quick: 'default')")
    args = p.parse_args(argv)
    from agent.chat.engine import REWRITE_MAX_TOKENS
    from agent.config import load_settings, update_settings
    from agent.ingest.pipeline import ingest_file
    from agent.workspace import Workspace
    from tests.ollama_double import OllamaDouble

    run = Run(NAME, args, argv if argv is not None else sys.argv[1:])
    repeats = args.repeats or (1 if args.quick else 12)
    files = FILES[:1] if args.quick else FILES
    if args.chunk_delay is None:
        args.chunk_delay = 0.005 if args.quick else 0.02
    blas = [b.strip() for b in (args.blas or ("default" if args.quick else "default,1")).split(",") if b.strip()]
    run.params = {"first_token_delay_s": args.first_token_delay, "chunk_delay_s": args.chunk_delay,
                  "answer_chunks": len(ANSWER.split()), "rewrite_reply": REWRITE_REPLY, "repeats": repeats,
                  "files": files, "modes": MODES, "double": "in-process thread (its request log is read)",
                  "blas_threads": blas, "retrieval": "hybrid, k=5, local embeddings"}
    engine_cls = counting_engine_class()
    rows, count_rows = [], []
    with tempfile.TemporaryDirectory(prefix="bench-chat-") as tmp, \
            OllamaDouble(first_token_delay=args.first_token_delay, chunk_delay=args.chunk_delay,
                         default_text=ANSWER) as double:
        env = {"OLLAMA_HOST": double.url, "AGENT_BACKEND": "ollama", "AGENT_EMBEDDING": "local"}
        base = load_settings(Path(tmp) / "data", environ=env)
        workspace = Workspace(base)
        for name in files:
            result = ingest_file(DEVSET_PDFS / name, workspace.collection(), workspace.embeddings, base)
            run.log(f"ingested {name}: {result.status}, {result.chunks} chunks")
        workspace.embeddings.embed_query("warm-up")
        short_rewrites(double)
        default_threads = blas_threads()
        for threads, (mode, model) in [(t, m) for t in blas for m in MODES.items()]:
            set_blas_threads(default_threads[0] if threads == "default" else int(threads))
            key = mode if threads == "default" else f"{mode}, BLAS {threads} thread"
            label = f"{mode} ({model})" + ("" if threads == "default" else f", BLAS {threads} thread")
            engine = engine_cls(workspace.with_settings(update_settings(base, chat_model=model)))
            # cold: the engine's first question (resolves the backend: /api/show)
            double.clear()
            cold = run_ours(engine, "What is geology?", f"cold-{key}")
            cold_requests = [r.path for r in double.requests]
            samples: dict[str, list[dict[str, Any]]] = {"first": [], "follow-up": []}
            counts: dict[str, list[dict[str, Any]]] = {"first": [], "follow-up": []}
            for rep in range(repeats):
                first_q, follow_q = TURNS[rep % len(TURNS)]
                conversation = f"{key}-{rep}"
                for turn, question in (("first", first_q), ("follow-up", follow_q)):
                    double.clear()
                    ours = run_ours(engine, question, conversation)
                    log = double.requests
                    bodies = [r.body for r in log if r.path == "/api/chat"]
                    paths = [r.path for r in log]
                    double.clear()
                    direct = replay(double.url, bodies)
                    double.clear()
                    single = replay(double.url, bodies[-1:])
                    samples[turn].append({"ours": ours, "direct": direct, "single": single})
                    counts[turn].append({"chat_requests": len(bodies), "all_requests": len(paths),
                                         "paths": sorted(set(paths)), "retrievals": ours["retrievals"],
                                         "rewrites": sum(1 for b in bodies if (b.get("options") or {}).get(
                                             "num_predict") == REWRITE_MAX_TOKENS)})
                    if ours["error"]:
                        raise RuntimeError(f"{mode}: {ours['error']}")
            result: dict[str, Any] = {"model": model, "cold": {**cold, "requests": cold_requests}}
            for turn, ss in samples.items():
                ours_ttft = summarize([s["ours"]["ttft"] * 1000 for s in ss])
                direct_ttft = summarize([s["direct"]["ttft"] * 1000 for s in ss])
                single_ttft = summarize([s["single"]["ttft"] * 1000 for s in ss])
                added = summarize([(s["ours"]["ttft"] - s["direct"]["ttft"]) * 1000 for s in ss])
                added_total = summarize([(s["ours"]["total"] - s["direct"]["total"]) * 1000 for s in ss])
                retr = median(ms for s in ss for ms in s["ours"]["retrieval_ms"])
                result[turn] = {
                    "mode_used": ss[0]["ours"]["mode"], "ours_ttft_ms": ours_ttft, "direct_ttft_ms": direct_ttft,
                    "single_call_ttft_ms": single_ttft, "added_ttft_ms": added,
                    "ours_total_ms": summarize([s["ours"]["total"] * 1000 for s in ss]),
                    "direct_total_ms": summarize([s["direct"]["total"] * 1000 for s in ss]),
                    "single_call_total_ms": summarize([s["single"]["total"] * 1000 for s in ss]),
                    "added_total_ms": added_total, "retrieval_ms_median": retr,
                    "counts": counts[turn],
                    "max_chat_requests": max(c["chat_requests"] for c in counts[turn]),
                    "max_retrievals": max(c["retrievals"] for c in counts[turn]),
                }
                r = result[turn]
                rows.append([label, turn, r["ours_ttft_ms"]["median"], r["direct_ttft_ms"]["median"],
                             r["added_ttft_ms"]["median"], r["added_ttft_ms"]["p95"], r["single_call_ttft_ms"]["median"],
                             r["ours_total_ms"]["median"], r["direct_total_ms"]["median"], retr])
                c = counts[turn]
                requests = f"{min(x['chat_requests'] for x in c)}–{r['max_chat_requests']}"
                count_rows.append([label, turn, requests, r["max_retrievals"],
                                   max(x["all_requests"] for x in c), ", ".join(sorted({p for x in c for p in x["paths"]}))])
            run.results[key] = result
            run.log(f"{key}: done")

    run.table(f"Time to first token and total, ms (medians of {repeats}; double: first token after "
              f"{args.first_token_delay * 1000:.0f} ms per request, {args.chunk_delay * 1000:.0f} ms per chunk)",
              markdown_table(["mode (model)", "turn", "ours TTFT", "direct, same requests TTFT", "added TTFT",
                              "added TTFT p95", "direct, answer call only TTFT", "ours total",
                              "direct, same requests total", "of which retrieval (search())"], rows, align="llrrrrrrrr"))
    run.table("Requests per turn (from the double's log) and retrievals (counted in ChatEngine.retrieve)",
              markdown_table(["mode (model)", "turn", "/api/chat requests", "max retrievals", "max HTTP requests",
                              "paths"], count_rows, align="llrrrl"))
    cold_rows = [[k, v["cold"]["ttft"] * 1000 if v["cold"]["ttft"] else None, v["cold"]["total"] * 1000,
                  ", ".join(v["cold"]["requests"])] for k, v in run.results.items()]
    run.table("A new engine's first question (cold: resolves the backend)", markdown_table(
        ["mode", "TTFT ms", "total ms", "requests"], cold_rows, align="lrrl"))
    agent = run.results.get("agent") or next(v for k, v in run.results.items() if k.startswith("agent"))
    retrieve = run.results.get("always_retrieve") or next(v for k, v in run.results.items()
                                                          if k.startswith("always_retrieve"))
    run.goals += [
        Goal("agent mode: added TTFT, first question (median)", agent["first"]["added_ttft_ms"]["median"], "<", 50.0,
             " ms", f"p95 {agent['first']['added_ttft_ms']['p95']:.0f} ms"),
        Goal("agent mode: added TTFT, follow-up (median)", agent["follow-up"]["added_ttft_ms"]["median"], "<", 50.0,
             " ms", f"p95 {agent['follow-up']['added_ttft_ms']['p95']:.0f} ms"),
        Goal("always-retrieve follow-up: retrievals per turn (max)", float(retrieve["follow-up"]["max_retrievals"]),
             "<=", 1.0),
        Goal("always-retrieve follow-up: /api/chat requests per turn (max; rewrite + answer)",
             float(retrieve["follow-up"]["max_chat_requests"]), "<=", 2.0),
    ]
    run.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
