"""Background jobs that outlive a Streamlit run.

The script thread of a Streamlit run can be interrupted at any moment (a click anywhere
reruns the script), so long work must not live in it: the job keeps running, the page
re-attaches to it on the next run, and `stop()` ends it cleanly."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from agent.chat.engine import Answer, ChatEngine, Done, Status, Token


class AnswerJob:
    """One answer streaming in a worker thread; the UI follows it and may stop it."""

    def __init__(self, engine: ChatEngine, question: str, conversation_id: str, turns_before: int = 0) -> None:
        self.engine = engine
        self.question = question
        self.conversation_id = conversation_id
        self.turns_before = turns_before  # stored turns before this one: tells when it was stored
        self.stop_event = threading.Event()
        self.parts: list[str] = []
        self.status: Status | None = None
        self._status_at = 0  # len(parts) when `status` was set: text after it makes it stale
        self.answer: Answer | None = None
        self.started = time.monotonic()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"answer-{conversation_id}", daemon=True)

    def start(self) -> AnswerJob:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            for event in self.engine.stream(self.question, self.conversation_id, stop=self.stop_event):
                with self._cond:
                    if isinstance(event, Token):
                        self.parts.append(event.text)
                    elif isinstance(event, Status):
                        self.status, self._status_at = event, len(self.parts)
                    elif isinstance(event, Done):
                        self.answer = event.answer
                    self._cond.notify_all()
        except BaseException as exc:  # noqa: BLE001 - the stream promises not to raise; never lose the UI
            with self._cond:
                self.answer = Answer(text="".join(self.parts), sources=[], model="", conversation=self.conversation_id,
                                     mode="", incomplete=True, error=f"Unexpected error: {exc}",
                                     error_code="unexpected", error_params={"detail": str(exc)})
        finally:
            with self._cond:
                if self.answer is None:
                    self.answer = Answer(text="".join(self.parts), sources=[], model="",
                                         conversation=self.conversation_id, mode="", incomplete=True,
                                         error="The answer ended without a result.", error_code="no_result")
                self._cond.notify_all()

    @property
    def done(self) -> bool:
        return self.answer is not None

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
        return time.monotonic() - self.started

    @property
    def text(self) -> str:
        with self._cond:
            return "".join(self.parts)

    def stop(self) -> None:
        """Ask the engine to end the answer at its next chunk (the partial text is kept)."""
        self.stop_event.set()
        with self._cond:
            self._cond.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return self.done

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
