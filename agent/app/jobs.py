"""Background jobs that outlive a Streamlit run.

The script thread of a Streamlit run can be interrupted at any moment (a click anywhere
reruns the script), so long work must not live in it: a job runs in a worker thread,
publishes its progress, can be stopped, and keeps its result until one reader claims
it. A `JobRegistry` keeps the jobs of a process, so a page finds them again on any
later run, after a page change, or (for progress) from another browser tab.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from agent.chat.engine import Answer, ChatEngine, Done, Status, Token
from agent.errors import AgentError

logger = logging.getLogger(__name__)
R = TypeVar("R")

#: share of one file's progress bar for each ingestion stage (parse, OCR, embed, index).
STAGE_SPANS: dict[str, tuple[float, float]] = {
    "parse": (0.0, 0.3), "ocr": (0.3, 0.6), "embed": (0.6, 0.95), "index": (0.95, 1.0)}
#: the stage in which a document is committed: a stop request is not honoured inside it.
COMMIT_STAGE = "index"


def stage_fraction(stage: str, done: int, total: int) -> float:
    """Progress (0..1) of one file from the ingest progress callback."""
    start, end = STAGE_SPANS.get(stage, (0.0, 0.95))
    part = min(max(done / total, 0.0), 1.0) if total > 0 else 0.0
    return round(start + (end - start) * part, 4)


class JobStopped(BaseException):
    """Raised in a job's thread at its next progress report after `stop()`.

    A BaseException, like asyncio's CancelledError, so that no `except Exception` in the
    parsing or embedding code on the way up can mistake it for a failed page."""


@dataclass(frozen=True)
class JobProgress:
    """A job's progress, replaced whole on every report (readers never see half an update)."""

    fraction: float = 0.0
    stage: str = ""
    done: int = 0
    total: int = 0
    item: str = ""  # the file being worked on
    item_index: int = 0  # 0-based position of `item` among `items`
    items: int = 0


class Job(Generic[R]):
    """`work(job)` in a daemon thread; `result` or `error` when done, claimed once."""

    def __init__(self, work: Callable[[Job[R]], R], *, kind: str, label: str = "", scope: str = "",
                 owner: str = "") -> None:
        self.id = uuid.uuid4().hex[:12]
        self.kind, self.label, self.scope, self.owner = kind, label, scope, owner
        self.stop_event = threading.Event()
        self.started = time.monotonic()
        self.finished_at: float | None = None
        self.progress = JobProgress()
        self.result: R | None = None
        self.error: AgentError | None = None
        self.stopped = False
        self._work = work
        self._done = False
        self._claimed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._main, name=f"{kind}-{self.id}", daemon=True)

    def start(self) -> Job[R]:
        self._thread.start()
        return self

    def _main(self) -> None:
        result: R | None = None
        error: AgentError | None = None
        try:
            result = self._work(self)
        except JobStopped:
            self.stopped = True
        except AgentError as err:
            error = err
        except BaseException as exc:  # a worker must always end with a result or an error
            logger.exception("job %s (%s) failed", self.id, self.kind)
            error = AgentError(f"Unexpected error: {exc}", "Try again; if it persists, report it with the server log.",
                               code="unexpected", params={"detail": str(exc)})
        with self._cond:
            self.result = result if result is not None else self._fallback(error)
            self.error = error
            self.finished_at = time.monotonic()
            self._done = True
            self._cond.notify_all()

    def _fallback(self, error: AgentError | None) -> R | None:
        """The result recorded when the work raised (None: the job has only its `error`)."""
        return None

    # ---- for the worker ---------------------------------------------------------------------
    def report(self, stage: str, done: int, total: int) -> None:
        """Progress callback for ingestion (`(stage, done, total)`); raises JobStopped after
        `stop()`, except while a document is being committed."""
        if self.stop_event.is_set() and stage != COMMIT_STAGE:
            raise JobStopped()
        current = self.progress
        fraction = stage_fraction(stage, done, total)
        if current.items:
            fraction = (current.item_index + fraction) / current.items
        self.progress = replace(current, fraction=max(current.fraction, fraction), stage=stage, done=done, total=total)

    def begin_item(self, item: str, index: int, items: int) -> None:
        """Start the next file of a multi-file job (its share of the bar follows)."""
        if self.stop_event.is_set():
            raise JobStopped()
        self.progress = JobProgress(fraction=max(self.progress.fraction, index / max(items, 1)),
                                    item=item, item_index=index, items=items)

    # ---- for the UI ---------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self._done

    @property
    def stopping(self) -> bool:
        return self.stop_event.is_set() and not self.done

    @property
    def current_status(self) -> Status | None:
        """The engine's last status, or None once answer text has arrived after it (then the
        text itself shows what is happening, and a status line would be stale)."""
        with self._cond:
            return self.status if self.status is not None and self._status_at == len(self.parts) else None

    @property
    def elapsed(self) -> float:
        return (self.finished_at or time.monotonic()) - self.started

    def stop(self) -> None:
        """Ask the work to end at its next progress report (nothing half-done is committed)."""
        self.stop_event.set()
        with self._cond:
            self._cond.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return self.done

    def claim(self) -> bool:
        """True exactly once, for the first caller after the job is done: who reports the result."""
        with self._cond:
            if not self._done or self._claimed:
                return False
            self._claimed = True
            return True

    @property
    def claimed(self) -> bool:
        return self._claimed


class JobRegistry:
    """The jobs of one data directory in this process, found again by owner, kind or scope."""

    def __init__(self, keep_unclaimed: float = 3600.0) -> None:
        self.keep_unclaimed = keep_unclaimed
        self._jobs: dict[str, Job[object]] = {}
        self._lock = threading.Lock()

    def start(self, job: Job[R]) -> Job[R]:
        """Register and start `job`, dropping finished jobs nobody needs any more."""
        with self._lock:
            self._prune()
            self._jobs[job.id] = job  # type: ignore[assignment]
        return job.start()

    def jobs(self, *, owner: str | None = None, kind: str | None = None, scope: str | None = None,
             running: bool | None = None) -> list[Job[object]]:
        """Matching jobs, oldest first."""
        with self._lock:
            found = list(self._jobs.values())
        return [j for j in found if (owner is None or j.owner == owner) and (kind is None or j.kind == kind)
                and (scope is None or j.scope == scope) and (running is None or running != j.done)]

    def _prune(self) -> None:
        now = time.monotonic()
        for job_id, job in list(self._jobs.items()):
            if job.done and (job.claimed or now - (job.finished_at or now) > self.keep_unclaimed):
                del self._jobs[job_id]


class AnswerJob(Job[Answer]):
    """One answer streaming in a worker thread; the UI follows it and may stop it."""

    def __init__(self, engine: ChatEngine, question: str, conversation_id: str, turns_before: int = 0) -> None:
        super().__init__(AnswerJob._stream, kind="answer", label=question, scope=conversation_id)
        self.engine = engine
        self.question = question
        self.conversation_id = conversation_id
        self.turns_before = turns_before  # stored turns before this one: tells when it was stored
        self.parts: list[str] = []
        self.status: Status | None = None
        self._status_at = 0  # len(parts) when `status` was set: text after it makes it stale

    def _stream(self) -> Answer | None:
        answer = None
        for event in self.engine.stream(self.question, self.conversation_id, stop=self.stop_event):
            with self._cond:
                if isinstance(event, Token):
                    self.parts.append(event.text)
                elif isinstance(event, Status):
                    self.status, self._status_at = event, len(self.parts)
                elif isinstance(event, Done):
                    answer = event.answer
                self._cond.notify_all()
        return answer

    def _fallback(self, error: AgentError | None) -> Answer:
        """The stream promises to end with Done; if it did not, the partial text is still an answer."""
        failure = error or AgentError("The answer ended without a result.", code="no_result")
        return Answer(text="".join(self.parts), sources=[], model="", conversation=self.conversation_id,
                      mode="", incomplete=True, error=failure.message, error_code=failure.code,
                      error_params=failure.params)

    @property
    def answer(self) -> Answer | None:
        return self.result

    @property
    def text(self) -> str:
        with self._cond:
            return "".join(self.parts)

    def follow(self, idle: Callable[[AnswerJob], None] | None = None, poll: float = 0.25,
               grace: float = 2.0) -> Iterator[str]:
        """The answer's text pieces from the first one, live, until it is done or stopped.

        `idle(job)` is called about every `poll` seconds while no text arrives, so a UI can
        refresh a status line (which also lets Streamlit notice a click such as Stop).
        After `stop()` it waits at most `grace` seconds for the engine to finish.
        """
        index = 0
        last_idle = 0.0
        stop_seen: float | None = None
        while True:
            with self._cond:
                if index >= len(self.parts) and not self.done:
                    self._cond.wait(poll)
                new = self.parts[index:]
                finished = self.done
            index += len(new)
            yield from new
            if finished:  # read with `new` under the lock, and nothing is added after Done
                return
            if self.stop_event.is_set():
                stop_seen = stop_seen or time.monotonic()
                if time.monotonic() - stop_seen > grace:
                    return
            now = time.monotonic()
            if idle is not None and not new and now - last_idle >= poll:
                last_idle = now
                idle(self)
