"""Ollama model management: pull with progress, delete, loaded models, context-window checks.

The web UI (Settings page, and the offer under a "model not found" answer) and the CLI
(`python -m agent models pull NAME`) use the same functions. A pull runs for minutes, so
the UI drives it through `PullJob`, a worker thread it can re-attach to after a rerun.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from agent.chat.llm import (
    ModelInfo,
    model_not_found,
    ollama_client,
    translate_error,
    with_retry,
)
from agent.config import Settings
from agent.errors import AgentError, ModelNotFoundError
from agent.search.ollama_lib import ollama

# Ollama cuts an over-long prompt to exactly the context window; a prompt this close to it
# was almost certainly cut (our own budget keeps prompts well below it).
TRUNCATION_SLACK = 16


@dataclass(frozen=True)
class PullProgress:
    """One step of a pull: Ollama's status line and the bytes of all layers seen so far."""

    status: str
    completed: int = 0
    total: int = 0

    @property
    def fraction(self) -> float:
        return min(self.completed / self.total, 1.0) if self.total else 0.0

    @property
    def stage(self) -> str:
        """manifest | download | verify | write | done: Ollama's status lines, as words the UI translates."""
        status = self.status.lower()
        if status == "success":
            return "done"
        for prefix, stage in (("queued", "manifest"), ("pulling manifest", "manifest"), ("pulling", "download"),
                              ("verifying", "verify"), ("writing", "write")):
            if status.startswith(prefix):
                return stage
        return "download"


@dataclass(frozen=True)
class LoadedModel:
    """A model Ollama holds in memory (`/api/ps`)."""

    name: str
    size_vram: int = 0
    context_length: int | None = None
    expires_at: datetime | None = None


class _Layers:
    """Sums the per-layer progress lines of a pull into one completed/total pair."""

    def __init__(self) -> None:
        self.totals: dict[str, int] = {}
        self.done: dict[str, int] = {}

    def add(self, part: ollama.ProgressResponse) -> PullProgress:
        if part.digest and part.total:
            self.totals[part.digest] = int(part.total)
            self.done[part.digest] = int(part.completed or 0)
        return PullProgress(part.status or "", sum(self.done.values()), sum(self.totals.values()))


def pull_model(settings: Settings, name: str, progress: Callable[[PullProgress], None] | None = None,
               stop: threading.Event | None = None) -> bool:
    """Download `name` into Ollama, reporting progress; False if `stop` was set first.

    Raises AgentError: Ollama unreachable, or no such model in the registry (code pull_unknown).
    """
    name = name.strip()
    if not name:
        raise AgentError("No model name was given.", "Type a name such as llama3.2 or qwen3:4b.", code="pull_no_name")
    client = ollama_client(settings, timeout=settings.request_timeout)
    layers = _Layers()
    try:
        for part in client.pull(name, stream=True):
            if stop is not None and stop.is_set():
                return False
            if progress is not None:
                progress(layers.add(part))
    except ollama.ResponseError as exc:
        raise _pull_error(exc, settings, name) from None
    except AgentError:
        raise
    except Exception as exc:  # noqa: BLE001 - httpx/connection errors become one clear message
        raise translate_error(exc, settings, name) from exc
    return True


def _pull_error(exc: ollama.ResponseError, settings: Settings, name: str) -> AgentError:
    text = str(exc.error)
    if "file does not exist" in text or "not found" in text.lower() or exc.status_code == 404:
        return ModelNotFoundError(f"Ollama's library has no model {name!r}.",
                                  "Check the name on ollama.com/library (e.g. llama3.2, qwen3:4b).",
                                  code="pull_unknown", params={"model": name})
    if "invalid model name" in text.lower() or exc.status_code == 400:
        return AgentError(f"{name!r} is not a valid model name.", "Use a name such as llama3.2 or qwen3:4b.",
                          code="pull_bad_name", params={"model": name})
    return translate_error(exc, settings, name)


def delete_model(settings: Settings, name: str) -> None:
    """Remove a model from Ollama (its files on the server's disk)."""
    client = ollama_client(settings)
    try:
        with_retry(lambda: client.delete(name), settings)
    except ModelNotFoundError:
        raise model_not_found(name, settings.ollama_host) from None


def loaded_models(settings: Settings) -> list[LoadedModel]:
    """The models Ollama has in memory now, with the context length each was loaded with."""
    client = ollama_client(settings)
    running = with_retry(client.ps, settings)
    return [LoadedModel(m.model or m.name or "?", int(m.size_vram or 0), m.context_length, m.expires_at)
            for m in running.models]


def context_exceeds(num_ctx: int, info: ModelInfo | None) -> bool:
    """num_ctx asks for more context than the model was trained with (Ollama caps it)."""
    return bool(info is not None and info.context_length and num_ctx > info.context_length)


def prompt_truncated(evaluated: int | None, window: int) -> bool:
    """Ollama's prompt_eval_count says it filled the window: it cut the start of the prompt."""
    return evaluated is not None and evaluated >= window - TRUNCATION_SLACK


@dataclass
class PullJob:
    """A pull in a worker thread: the UI reads `progress`, `done` and `error` on each rerun."""

    settings: Settings
    name: str
    progress: PullProgress = field(default_factory=lambda: PullProgress("queued"))
    error: AgentError | None = None
    finished: bool = False
    cancelled: bool = False

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pull-{self.name}", daemon=True)

    def start(self) -> PullJob:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            completed = pull_model(self.settings, self.name, self._report, self._stop)
            self.cancelled = not completed
        except AgentError as err:
            self.error = err
        except Exception as exc:  # noqa: BLE001 - a worker must report, never die silently
            self.error = AgentError(f"The download of {self.name} failed: {exc}", code="pull_failed",
                                    params={"model": self.name, "detail": str(exc)})
        finally:
            self.finished = True

    def _report(self, progress: PullProgress) -> None:
        self.progress = progress  # one reference swap: readers see a whole snapshot

    @property
    def ok(self) -> bool:
        return self.finished and self.error is None and not self.cancelled

    def cancel(self) -> None:
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return self.finished
