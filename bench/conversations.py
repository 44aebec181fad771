"""Long conversations: one run of the Chat page and one `ask` at 10 and at 10,000 stored turns.

A temp data directory holds conversations of each size (seeded in one transaction); the
Ollama double (in-process, no delays) answers in always-retrieve mode with `gemma:2b` (a
rewrite and an answer per turn) over an empty collection, so the time is ours. Measured,
interleaved round by round:

- page: a fresh `streamlit.testing.v1.AppTest` of streamlit_app.py opened on the
  conversation's URL (`?c=ID`), one `run()` (the page draws the last turns);
- ask: `ChatEngine.ask` in that conversation (the turn it stores is deleted again, so
  every round sees the same size);
- for scale, reading the whole conversation as before (`store.get` + every turn as history).

    python -m bench.conversations [--quick] [--repeats N]
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from bench.common import Goal, Run, markdown_table, parser, ratio, summarize

NAME = "conversations"
SIZES = (10, 10_000)
TARGET_RATIO = 1.5


def timed(action: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    action()
    return time.perf_counter() - t0


def page_run(conversation_id: str) -> None:
    from streamlit.testing.v1 import AppTest

    from tests.support import APP

    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params["c"] = conversation_id
    at.run()
    if at.exception or not at.chat_message:
        raise RuntimeError(f"the chat page failed: {[e.value for e in at.exception]}")


def ask_once(engine: Any, double: Any, store_path: Path, conversation_id: str) -> None:
    double.reply("rocks")  # the rewrite of the follow-up
    double.reply("An answer.")
    if engine.ask("And then?", conversation_id).text != "An answer.":
        raise RuntimeError("ask failed")
    with closing(sqlite3.connect(store_path)) as db, db:  # back to the same size for the next round
        db.execute("DELETE FROM turns WHERE id = (SELECT MAX(id) FROM turns WHERE conversation_id = ?)",
                   (conversation_id,))


def read_everything(store: Any, conversation_id: str) -> None:
    store.get(conversation_id)
    store.history(conversation_id)


def measure(run: Run, repeats: int, sizes: tuple[int, ...]) -> dict[str, dict[int, list[float]]]:
    from agent.chat.engine import ChatEngine
    from agent.config import load_settings
    from agent.workspace import Workspace
    from tests.ollama_double import OllamaDouble
    from tests.support import seed_turns

    samples: dict[str, dict[int, list[float]]] = {k: {n: [] for n in sizes} for k in ("page", "ask", "read_all")}
    with tempfile.TemporaryDirectory(prefix="bench-conversations-") as tmp, OllamaDouble() as double:
        os.environ.update(OLLAMA_HOST=double.url, AGENT_DATA_DIR=str(Path(tmp) / "data"),
                          AGENT_EMBEDDING="ollama:nomic-embed-text", AGENT_CHAT_MODEL="gemma:2b")
        workspace = Workspace(load_settings())
        store = workspace.conversations
        for n in sizes:
            seed_turns(store, f"c{n}", n)
        engine = ChatEngine(workspace)
        page_run(f"c{sizes[0]}")  # warm-up: imports and cached resources
        ask_once(engine, double, store.path, f"c{sizes[0]}")
        for round_ in range(repeats):
            for n in sizes:
                samples["page"][n].append(timed(lambda n=n: page_run(f"c{n}")))
                samples["ask"][n].append(timed(lambda n=n: ask_once(engine, double, store.path, f"c{n}")))
                samples["read_all"][n].append(timed(lambda n=n: read_everything(store, f"c{n}")))
            run.log(f"round {round_ + 1}/{repeats}")
    return samples


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__.split("\n\n")[0]).parse_args(argv)
    run = Run(NAME, args, argv if argv is not None else sys.argv[1:])
    repeats = args.repeats or (1 if args.quick else 5)
    sizes = (10, 1000) if args.quick else SIZES
    run.params = {"repeats": repeats, "sizes": sizes, "mode": "always_retrieve (gemma:2b on the double)"}
    samples = measure(run, repeats, sizes)
    small, large = sizes
    labels = {"page": "Chat page run (AppTest, ?c=ID)", "ask": "`ChatEngine.ask` (rewrite + answer)",
              "read_all": "read the whole conversation (`get` + full `history`), as before"}
    rows = []
    for key, label in labels.items():
        stats = {n: summarize(samples[key][n]) for n in sizes}
        run.results[key] = {str(n): stats[n] for n in sizes}
        share = ratio(stats[large]["median"], stats[small]["median"])
        run.results[key]["ratio"] = share
        rows.append([label, stats[small]["median"], stats[large]["median"], share])
        if key != "read_all":
            run.goals.append(Goal(f"{key} at {large:,} turns vs {small}", share, "<=", TARGET_RATIO, "x"))
    run.table(f"Seconds, median of {repeats}", markdown_table(
        ["what", f"{small} turns s", f"{large:,} turns s", "ratio"], rows))
    run.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
