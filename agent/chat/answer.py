"""What one answer is while it streams (`_Run`) and what the stream yields (`Token`, `Status`, `Done`)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler

from agent.chat.citations import check_citations, number_new, source_key
from agent.chat.cleanup import loop_start, strip_markup
from agent.chat.conversations import Note
from agent.errors import AgentError
from agent.search.retrieval import LOCATION_KEYS, Source
from agent.search.tokens import shares_terms


@dataclass
class Answer:
    """A finished (or cut-short) answer with everything the UI and CLI show under it."""

    text: str
    sources: list[Source]
    model: str
    conversation: str
    mode: str
    query: str = ""
    incomplete: bool = False
    error: str = ""
    notice: str = ""
    error_code: str = ""  # AgentError.code of `error` ("stopped" for Stop), for the UI's own wording
    error_params: dict[str, Any] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)  # e.g. prompt_truncated: Ollama cut the prompt
    invalid_citations: list[int] = field(default_factory=list)  # [n] markers that match no excerpt

    def as_json(self) -> dict[str, Any]:
        """The documented `ask --json` shape."""
        keys = ("number", "cited", "file", "page", "page_label", *LOCATION_KEYS, "text", "score")
        return {"answer": self.text, "model": self.model, "conversation": self.conversation,
                "sources": [{k: s[k] for k in keys if k in s} for s in self.sources],
                "invalid_citations": self.invalid_citations,
                "nothing_found": any(n["code"] == "nothing_found" for n in self.notes)}


@dataclass
class Token:
    text: str


@dataclass
class Status:
    """What the engine is doing: `text` for the CLI, `code` and `params` for the UI to word
    (rewrite, search, read {n}). The text has no trailing ellipsis: whoever shows it adds one."""

    text: str
    code: str = ""
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Done:
    answer: Answer


Event = Token | Status | Done



class StopRequested(Exception):
    """Raised inside the model call when the user pressed stop."""


class StopOnRequest(BaseCallbackHandler):
    """Stops an agent-mode answer at the next token.

    Closing the agent's stream only takes effect after the running model call has
    finished (seconds of tokens on a CPU); raising from the token callback ends the
    call itself. `raise_error` makes LangChain propagate instead of logging it.
    """

    raise_error = True

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        if self.stop.is_set():
            raise StopRequested()


@dataclass
class Run:
    """Mutable state of one answer while it streams."""

    question: str
    conversation: str
    mode: str = ""
    model: str = ""
    query: str = ""
    notice: str = ""
    parts: list[str] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    error: AgentError | None = None
    was_stopped: bool = False
    prompt_tokens: int | None = None  # Ollama's prompt_eval_count of the last model call
    notes: list[Note] = field(default_factory=list)
    searched: bool = False
    max_chars: int = 0  # Settings.max_answer_chars (0: no cap)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def saw_usage(self, chunk: Any) -> None:
        usage = getattr(chunk, "usage_metadata", None)
        if usage and usage.get("input_tokens"):
            self.prompt_tokens = int(usage["input_tokens"])

    def add_found(self, found: list[Source]) -> list[Source]:
        """Number what a search found (continuing this answer's numbers) and keep the new ones."""
        with self.lock:  # the model may run two searches at once
            numbered = number_new(self.sources, found)
            known = {source_key(s) for s in self.sources}
            self.sources += [s for s in numbered if source_key(s) not in known]
            return numbered

    def add_text(self, text: str) -> bool:
        """Keep a piece of the answer; False (and the loop cut off) once the answer repeats itself
        or reaches `max_chars`."""
        self.parts.append(text)
        answer = "".join(self.parts)
        if self.max_chars and len(answer) > self.max_chars:
            self.parts = [answer[:self.max_chars]]
            self.notes.append(Note(code="answer_too_long", params={"chars": self.max_chars}))
            return False
        cut = loop_start(answer)
        if cut is None:
            return True
        self.parts = [answer[:cut].rstrip()]
        self.notes.append(Note(code="repetition_stopped", params={}))
        return False

    def unknown_tool(self, name: str) -> None:
        """The model called a tool the app does not have: say so once (it was told, and answers on)."""
        if not any(n["code"] == "unknown_tool" for n in self.notes):
            self.notes.append(Note(code="unknown_tool", params={"name": name}))

    def stopped(self) -> None:
        self.was_stopped = True

    def finish(self) -> Answer:
        error = str(self.error) if self.error else ("Stopped by the user." if self.was_stopped else "")
        code = self.error.code if self.error else ("stopped" if self.was_stopped else "")
        text = strip_markup("".join(self.parts), self.sources)
        sources, invented = check_citations(text, self.sources)
        if invented:
            self.notes.append(Note(code="invalid_citations", params={"markers": " ".join(f"[{n}]" for n in invented)}))
        self.notes += self._grounding_notes(sources)
        return Answer(text=text, sources=sources, model=self.model, invalid_citations=invented,
                      conversation=self.conversation, mode=self.mode, query=self.query,
                      incomplete=bool(error), error=error, notice=self.notice, error_code=code,
                      error_params=self.error.params if self.error else {}, notes=self.notes)

    def _grounding_notes(self, sources: list[Source]) -> list[Note]:
        """Said of an answer that searched and did not fail: nothing found, or only weak matches."""
        if self.error or not self.searched:
            return []
        if not sources:
            return [Note(code="nothing_found", params={})]
        if not shares_terms(self.query, (s["text"] for s in sources)):
            return [Note(code="weak_match", params={})]
        return []

