"""`python -m agent models`: list, pull, delete and show the loaded Ollama models, and the pool's hosts."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from agent._terminal import plain, print_json, raw
from agent.config import load_settings
from agent.errors import AgentError


def cmd_models(args: argparse.Namespace) -> int:
    from agent.chat.llm import list_models
    from agent.chat.models import delete_model

    settings = load_settings()
    if args.action in ("pull", "rm") and not args.name:
        raise AgentError(f"`models {args.action}` needs a model name.", f"For example: models {args.action} llama3.2")
    if args.action == "pull":
        return _pull(settings, args.name)
    if args.action == "rm":
        delete_model(settings, args.name)
        print(f"Deleted {args.name}.")
        return 0
    if args.action == "ps":
        return _loaded(settings, args.json)
    if len(settings.hosts()) > 1 and not args.json:
        _print_hosts(settings)
    models = list_models(settings)
    if args.json:
        print_json([m.as_dict() for m in models])
        return 0
    if not models:
        print(f"No models installed at {settings.ollama_host}. Try `ollama pull llama3.2`.")
    for m in models:
        ctx = f"ctx {m.context_length}" if m.context_length else ""
        print(f"{m.name:32} {m.parameter_size:>8} {','.join(m.capabilities):32} {ctx}")
    return 0


def _print_hosts(settings: Any) -> None:
    """One line per pool host: health, version, models."""
    from agent.search.pool import host_states

    for host in host_states(settings):
        health = f"ok {host.version}" if host.healthy else f"down ({host.error})"
        print(f"{host.url:32} {health:16} {', '.join(host.models)}")


def _pull(settings: Any, name: str) -> int:
    from agent.chat.models import pull_model

    bar = _PullBar(name)
    try:
        pull_model(settings, name, bar)
    finally:
        bar.close()
    print(f"Pulled {name}.")
    return 0


class _PullBar:
    """A download bar (tqdm) on a terminal; elsewhere one line per stage, so logs stay short."""

    def __init__(self, name: str, out: TextIO | None = None) -> None:
        from tqdm import tqdm

        self.out = out or sys.stderr
        self.name = plain(name)
        self.stage = ""
        self.bar = tqdm(desc=name, total=0, unit="B", unit_scale=True, unit_divisor=1024, file=raw(self.out),
                        leave=False) if self.out.isatty() else None  # tqdm draws with \r: its own stream

    def __call__(self, progress: Any) -> None:
        if self.bar is not None:
            self.bar.total = max(progress.total, 1)
            self.bar.n = progress.completed
            self.bar.set_postfix_str(plain(progress.stage), refresh=False)
            self.bar.refresh()
        elif progress.stage != self.stage:
            self.out.write(f"{self.name}: {progress.stage}\n")
            self.out.flush()
        self.stage = progress.stage

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _loaded(settings: Any, as_json: bool) -> int:
    from agent.chat.models import loaded_models

    loaded = loaded_models(settings)
    if as_json:
        print_json([{"name": m.name, "size_vram": m.size_vram, "context_length": m.context_length,
                      "expires_at": m.expires_at.isoformat() if m.expires_at else None} for m in loaded])
        return 0
    if not loaded:
        print("No model is loaded.")
    for m in loaded:
        until = m.expires_at.astimezone().strftime("%Y-%m-%d %H:%M") if m.expires_at else ""
        print(f"{m.name:32} ctx {m.context_length or '?':>7} {m.size_vram / 1e9:6.1f} GB  until {until}")
    return 0
