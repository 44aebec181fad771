"""The Ollama pool: the same questions answered by one host and by two, and a host killed mid-run.

Two Ollama doubles (tests/ollama_double.py) run in this process, each answering one
question at a time (`num_parallel=1`, Ollama's OLLAMA_NUM_PARALLEL on a CPU box) with a
fixed first-token delay and a fixed delay per streamed token. A temp workspace holds a
small library embedded by the doubles (`ollama:nomic-embed-text`), so every question
also embeds its query through the pool. `USERS` threads ask the questions through
`ChatEngine.ask` (what the CLI and the UI call), always-retrieve mode with `gemma:2b`,
each question in a new conversation. Phases, same run:

- one host: AGENT_OLLAMA_HOSTS = the first double only;
- two hosts: both doubles;
- a host killed: both doubles; the first is stopped once a quarter of the questions are
  answered. Answers that host was streaming at that moment are cut (counted apart: a
  half answer is never silently restarted elsewhere); every other question must succeed.

    python -m bench.pool [--quick] [--questions N] [--token-delay S]
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import Goal, Run, markdown_table, parser, ratio

NAME = "pool"
USERS = 4
ANSWER = " ".join(["Igneous rocks form when magma cools [1]."] * 6)  # 36 words: 36 streamed tokens
TOPICS = ["igneous rocks", "sedimentary rocks", "plate tectonics", "earthquakes", "mountain building",
          "magma", "geology", "the solid Earth", "fossils", "erosion"]


@dataclass
class Phase:
    """What one phase measured."""

    name: str
    seconds: float
    answered: int
    failed: int  # an error other than a cut mid-answer
    cut: int  # the killed host was streaming this answer
    per_host: list[int]  # chat requests each host received (a failed-over one counts on both)
    errors: list[str]  # error codes of the answers that were not answered


def questions(n: int) -> list[str]:
    return [f"What does the library say about {TOPICS[i % len(TOPICS)]} (question {i + 1})?" for i in range(n)]


def ask_all(engine: Any, asked: list[str], on_answer: Any = None) -> tuple[float, list[Any]]:
    """Every question by USERS threads at once; the wall time and each Answer."""
    def one(question: str) -> Any:
        answer = engine.ask(question)
        if on_answer:
            on_answer()
        return answer

    started = time.perf_counter()
    with ThreadPoolExecutor(USERS) as users:
        answers = list(users.map(one, asked))
    return time.perf_counter() - started, answers


def phase(name: str, data: Path, doubles: list[Any], urls: list[str], asked: list[str],
          kill_after: int = 0) -> Phase:
    from agent.chat.engine import ChatEngine
    from agent.config import load_settings
    from agent.search import pool
    from agent.workspace import Workspace

    pool.POOL = pool.Pool()  # each phase starts with no health or load history
    for double in doubles:
        double.start()
        double.clear()
    env = {"OLLAMA_HOST": urls[0], "AGENT_OLLAMA_HOSTS": ",".join(urls), "AGENT_EMBEDDING": "ollama:nomic-embed-text",
           "AGENT_CHAT_MODEL": "gemma:2b", "AGENT_BACKEND": "ollama", "AGENT_REQUEST_TIMEOUT": "60"}
    engine = ChatEngine(Workspace(load_settings(data, environ=env)))
    engine.ask("warm-up")  # backend resolution and first connections are not part of the figure
    for double in doubles:
        double.clear()
    answered = [0]
    lock = threading.Lock()

    def count() -> None:
        with lock:
            answered[0] += 1
            if answered[0] == kill_after:
                doubles[0].stop()

    seconds, answers = ask_all(engine, asked, count if kill_after else None)
    cut = sum(1 for a in answers if a.error_code == "ollama_cut")
    failed = sum(1 for a in answers if a.error and a.error_code != "ollama_cut")
    served = [sum(1 for b in d.chat_requests() if b.get("messages")) for d in doubles]
    errors = [a.error_code or a.error for a in answers if a.error]
    return Phase(name, seconds, len(answers) - cut - failed, failed, cut, served, errors)


def build_library(data: Path, url: str) -> None:
    from agent.config import load_settings
    from agent.workspace import Workspace
    from tests.support import add_library

    env = {"OLLAMA_HOST": url, "AGENT_EMBEDDING": "ollama:nomic-embed-text"}
    add_library(Workspace(load_settings(data, environ=env)))


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--questions", type=int, default=None, help="questions per phase (default 20; 8 with --quick)")
    p.add_argument("--token-delay", type=float, default=0.03, help="seconds per streamed token")
    p.add_argument("--first-token-delay", type=float, default=0.2, help="seconds before the first token")
    args = p.parse_args(argv)
    run = Run(NAME, args, argv if argv is not None else sys.argv[1:])
    n = args.questions or (8 if args.quick else 20)
    run.params = {"questions": n, "users": USERS, "token_delay_s": args.token_delay,
                  "first_token_delay_s": args.first_token_delay, "answer_tokens": len(ANSWER.split()),
                  "num_parallel_per_host": 1, "mode": "always_retrieve (gemma:2b), new conversation per question"}
    phases = measure(run, n, args.token_delay, args.first_token_delay)
    report(run, phases)
    run.finish()
    return 0


def measure(run: Run, n: int, token_delay: float, first_token_delay: float) -> list[Phase]:
    from tests.ollama_double import OllamaDouble

    asked = questions(n)
    with tempfile.TemporaryDirectory(prefix="bench-pool-") as tmp, \
            OllamaDouble(default_text=ANSWER, chunk_delay=token_delay, first_token_delay=first_token_delay) as one, \
            OllamaDouble(default_text=ANSWER, chunk_delay=token_delay, first_token_delay=first_token_delay) as two:
        doubles = [one, two]
        for double in doubles:
            double.num_parallel = 1
        data = Path(tmp) / "data"
        build_library(data, one.url)
        phases = []
        for name, urls, kill in (("one host", [one.url], 0), ("two hosts", [one.url, two.url], 0),
                                 ("two hosts, first killed", [one.url, two.url], max(1, n // 4))):
            phases.append(phase(name, data, doubles, urls, asked, kill))
            run.log(f"{name}: {phases[-1]}")
    return phases


def report(run: Run, phases: list[Phase]) -> None:
    single, double, killed = phases
    run.results = {p.name: p.__dict__ for p in phases}
    run.results["speedup_two_hosts"] = ratio(single.seconds, double.seconds)
    rows = [[p.name, p.seconds, p.answered, p.failed, p.cut, " / ".join(map(str, p.per_host))] for p in phases]
    run.table(f"{len(phases)} phases, {run.params['questions']} questions each, {USERS} users at once",
              markdown_table(["phase", "wall s", "answered", "failed", "cut mid-answer", "chat requests per host"], rows))
    run.goals.append(Goal("two hosts vs one: speed-up", run.results["speedup_two_hosts"], ">=", 1.6, "x"))
    run.goals.append(Goal("host killed: failed questions", killed.failed, "<=", 0))
    run.goals.append(Goal("host killed: answered + cut = asked", killed.answered + killed.cut, ">=",
                          run.params["questions"]))


if __name__ == "__main__":
    raise SystemExit(main())
