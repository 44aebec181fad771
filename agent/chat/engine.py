"""The conversational chain: one question in, a streamed answer with numbered citations out.

Every answer starts grounded: a follow-up is first rewritten into a standalone query, the
documents are searched, and the numbered excerpts are in the first model call's prompt. Then,
by model (settings.mode = auto) or forced:
- agent: `create_agent` also gives a tools-capable model `search_documents` for further
  searches (numbers continue); `WindowMiddleware` windows and budgets every model call;
- always_retrieve (models without tools, the embedded model): the model answers from them.
After the answer, its [n] markers are checked against the excerpts (`agent.chat.citations`).

`ChatEngine.stream` yields `Token`/`Status` events and ends with one `Done` carrying the
`Answer`. Errors never escape the stream: the partial answer is kept, marked incomplete,
stored, and the error is reported in `Done`, so the UI and CLI can show it.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Generator, Iterator, Sequence
from contextvars import ContextVar
from typing import Any, Protocol

from langchain.agents import create_agent
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.tools import BaseTool, tool

from agent import prompts
from agent.chat.answer import Answer, Done, Event, Run, Status, StopOnRequest, StopRequested, Token
from agent.chat.citations import number_new
from agent.chat.conversations import ConversationStore, Note, Turn
from agent.chat.extractive import best_sentences, condense, format_quotes
from agent.chat.limits import search_limits
from agent.chat.llm import (
    Backend,
    answer_deadline,
    answer_tokens,
    build_chat_model,
    context_window,
    empty_answer,
    resolve_backend,
    translate_error,
)
from agent.chat.memory import WindowMiddleware, approx_tokens, budget_for, fit_messages, message_tokens, window
from agent.chat.models import prompt_truncated
from agent.chat.pg_conversations import PgConversationStore
from agent.chat.rerank import rerank
from agent.chat.transport import watch_answer
from agent.config import Settings
from agent.errors import AgentError, ModelCapabilityError
from agent.search.retrieval import Source, search
from agent.search.store import Collection

TOOL_NAME = "search_documents"
TOOL_OVERHEAD_TOKENS = 200  # the tool's JSON schema, sent with every agent-mode request
REWRITE_MAX_TOKENS = 96
HISTORY_ANSWER_CHARS = 600  # of each past answer shown to the rewrite prompt
MAX_QUERY_CHARS = 500
CONDENSED_CHARS = (600, 350, 200)  # excerpt lengths tried, in turn, when two whole excerpts do not fit
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # C0 and C1 controls but tab and newlines


def clean_question(question: str) -> str:
    """Strip control characters; refuse an empty question before anything is sent."""
    question = _CONTROL_RE.sub("", question).strip()
    if not question:
        raise AgentError("The question is empty.", "Type a question about your documents.", code="empty_question")
    return question


class Library(Protocol):
    """What the engine reads from the workspace (the composition root that builds it)."""

    settings: Settings
    embeddings: Embeddings
    conversations: ConversationStore | PgConversationStore

    def chat_collections(self) -> list[Collection]: ...


class ChatEngine:
    """Answers questions over the workspace's documents, remembering each conversation."""

    def __init__(self, workspace: Library, backend: Backend | None = None,
                 model: BaseChatModel | None = None) -> None:
        self.workspace = workspace
        self._backend = backend
        self._model = model
        self._injected_model = model is not None
        self._agent: Any = None
        self._rewrite_model: BaseChatModel | None = None
        self._lock = threading.RLock()

    @property
    def settings(self) -> Settings:
        return self.workspace.settings

    def backend(self) -> Backend:
        """The backend, resolved on first use (asks Ollama which model and capabilities)."""
        with self._lock:
            if self._backend is None:
                self._backend = resolve_backend(self.settings)
            return self._backend

    def model(self) -> BaseChatModel:
        with self._lock:
            if self._model is None:
                self._model = build_chat_model(self.settings, self.backend())
            return self._model

    def mode(self) -> str:
        """agent when the model can call tools (or forced), always_retrieve otherwise."""
        backend = self.backend()
        wanted = self.settings.mode
        if wanted == "agent" and not backend.tools:
            raise ModelCapabilityError(
                f"The model {backend.model_name!r} does not support tool calling, which agent mode needs.",
                "Set mode to auto or always_retrieve in Settings, or use a tools model (`ollama pull llama3.2`).",
                code="agent_needs_tools", params={"model": backend.model_name})
        if wanted == "auto":
            return "agent" if backend.tools else "always_retrieve"
        return wanted

    # ---- public API ------------------------------------------------------------------------
    def ask(self, question: str, conversation_id: str | None = None) -> Answer:
        """Answer without streaming (consumes `stream`)."""
        for event in self.stream(question, conversation_id):
            if isinstance(event, Done):
                return event.answer
        raise AssertionError("stream ended without Done")

    def stream(self, question: str, conversation_id: str | None = None,
               stop: threading.Event | None = None) -> Iterator[Event]:
        """Stream one answer; always ends with exactly one Done event."""
        conversation_id = conversation_id or uuid.uuid4().hex[:12]
        run = Run(question=question, conversation=conversation_id, max_chars=self.settings.max_answer_chars)
        asked = False
        with watch_answer(stop, self.settings.answer_timeout_s) as watch:
            try:
                run.question = clean_question(question)
                asked = True  # from here on the turn is stored, failed or not (model missing, server down)
                run.mode = self.mode()
                run.model = self.backend().model_name
                run.notice = self.backend().notice
                history = self.workspace.conversations.history(conversation_id, turns=self.settings.memory_turns)
                if run.mode == "agent":
                    yield from self._agent_stream(run, history, stop)
                else:
                    yield from self._retrieve_stream(run, history, stop)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a message, never a traceback
                run.error = self._failure(exc, run, watch.reason)
        self._check_truncation(run)
        answer = run.finish()
        if asked and (answer.text or answer.error or answer.notes):  # a valid question: kept even if no model answered
            try:
                self._store(answer, run.question)
            except AgentError as err:  # a damaged or full conversation database must not end the
                # stream with a traceback and lose the answer just shown: report it in Done instead
                if str(err) not in answer.error:
                    answer.error = f"{answer.error} {err}".strip()
        yield Done(answer)

    def _failure(self, exc: Exception, run: Run, watched: str) -> AgentError | None:
        """What ended the answer early: Stop (not an error), the answer deadline, or the server."""
        if watched == "stopped":
            run.stopped()
            return None
        if watched == "deadline":
            return answer_deadline(self.settings.answer_timeout_s)
        return translate_error(exc, self.settings, run.model or None)

    # ---- agent mode ------------------------------------------------------------------------
    def agent(self) -> Any:
        """The compiled agent, built once per engine (settings are fixed per engine; building
        it took 15-30 ms, most of agent mode's added time to first token)."""
        with self._lock:
            if self._agent is None:
                self._agent = create_agent(
                    self.model(), tools=[self.search_tool()], system_prompt=self._system_text(),
                    middleware=[*search_limits(self.settings.max_searches),
                                WindowMiddleware(turns=self.settings.memory_turns,
                                                 budget=self._budget() - TOOL_OVERHEAD_TOKENS,
                                                 count=self._counter())])
            return self._agent

    def _agent_stream(self, run: Run, history: list[BaseMessage], stop: threading.Event | None) -> Iterator[Event]:
        """Search first (the excerpts are in the first model call), then let the model search more."""
        messages = yield from self._search_first(run, history, reserve=TOOL_OVERHEAD_TOKENS)
        if (yield from self._quotes(run)) == "extractive":
            return
        agent = self.agent()
        inputs = {"messages": messages[1:]}  # create_agent adds the system prompt itself
        config = {"callbacks": [StopOnRequest(stop)]} if stop is not None else {}
        token = _CURRENT_RUN.set(run)
        try:
            yield from self._agent_events(run, agent.stream(inputs, config, stream_mode="messages"), stop)
        except StopRequested:
            run.stopped()
        finally:
            _CURRENT_RUN.reset(token)
        _expect_text(run)

    def _agent_events(self, run: Run, stream: Iterator[Any], stop: threading.Event | None) -> Iterator[Event]:
        """Turn the agent's message stream into our events, collecting the tool's sources."""
        last_id = None
        announced = False
        for message, meta in stream:
            if stop is not None and stop.is_set():  # e.g. pressed while the tool was searching
                raise StopRequested()
            if isinstance(message, ToolMessage):
                if message.name != TOOL_NAME:
                    run.unknown_tool(str(message.name))
                run.add_found(message.artifact or [])
                announced = False
                yield _reading(len(message.artifact or []))
            elif isinstance(message, AIMessageChunk) and meta.get("langgraph_node") == "model":
                run.saw_usage(message)
                if message.tool_call_chunks and not announced:
                    announced = True
                    yield SEARCHING
                text = _text(message.content)
                if text:
                    if last_id is not None and message.id != last_id and run.parts:
                        text = "\n\n" + text
                    last_id = message.id
                    if not run.add_text(text):
                        return
                    yield Token(text)

    def search_tool(self) -> BaseTool:
        """The retriever tool; its artifact carries the chunks with file/page/score."""
        engine = self

        @tool(TOOL_NAME, response_format="content_and_artifact")
        def search_documents(query: str) -> tuple[str, list[Source]]:
            """Search the user's documents again (other wording, another document) and return more
            numbered excerpts with their file name and page; cite them by their numbers. Write the
            query in the language of the documents' likely wording."""
            run = _CURRENT_RUN.get(None)
            found = engine.retrieve(query)
            numbered = run.add_found(found) if run is not None else number_new([], found)
            return prompts.format_context(numbered), numbered

        return search_documents

    # ---- always-retrieve mode --------------------------------------------------------------
    def _retrieve_stream(self, run: Run, history: list[BaseMessage], stop: threading.Event | None) -> Iterator[Event]:
        messages = yield from self._search_first(run, history)
        if (yield from self._quotes(run)) == "extractive":
            return
        for chunk in self.model().stream(messages):
            if stop is not None and stop.is_set():
                run.stopped()
                return
            run.saw_usage(chunk)
            text = _text(chunk.content)
            if text:
                if not run.add_text(text):
                    return
                yield Token(text)
        _expect_text(run)

    def _quotes(self, run: Run) -> Generator[Event, None, str]:
        """The extractive part of the answer (answer style extractive or both): the excerpt
        sentences that best answer the question, quoted with their numbers, before any model call.
        Returns the answer style in effect."""
        style = self.answer_style()
        if style != "generative" and run.sources:
            quotes = best_sentences(run.query or run.question, run.sources, self.workspace.embeddings.embed_documents)
            text = format_quotes(quotes)
            if text:
                run.parts.append(text)
                yield Token(text)
        return style

    def answer_style(self) -> str:
        """auto: quotes then a short summary from the embedded model; the model's answer alone from Ollama."""
        if self.settings.answer_style != "auto":
            return self.settings.answer_style
        return "both" if self.backend().kind == "embedded" else "generative"

    def _search_first(self, run: Run, history: list[BaseMessage],
                      reserve: int = 0) -> Generator[Event, None, list[BaseMessage]]:
        """Rewrite a follow-up into a query, search, and return the first model call's messages
        with as many numbered excerpts as fit (every answer starts grounded, whatever the mode)."""
        if history:
            yield Status("Rewriting the question with the conversation", "rewrite")
            run.query = self.rewrite(history, run.question)
        else:
            run.query = run.question
        yield SEARCHING
        found = number_new([], self.retrieve(run.query))
        run.searched = True
        messages, used = self._answer_messages(history, run.question, found, reserve)
        run.add_found(used)
        yield _reading(len(used))  # the model reads its prompt now: seconds on a CPU, before any token
        return messages

    def rewrite(self, history: Sequence[BaseMessage], question: str) -> str:
        """A standalone search query for a follow-up question (one short model call).

        The prompt is budgeted like every other request (Ollama would silently cut its
        front, the instructions): the oldest history lines go first, and a question too long
        to fit even alone is used as its own query without a model call."""
        lines = []
        for message in window(history, self.settings.memory_turns):
            who = "User" if isinstance(message, HumanMessage) else "Assistant"
            lines.append(f"{who}: {_text(message.content)[:HISTORY_ANSWER_CHARS]}")
        budget = budget_for(context_window(self.settings, self.backend()), REWRITE_MAX_TOKENS)
        count = self._counter()
        while True:
            prompt = prompts.render(self.settings.rewrite_prompt, history="\n".join(lines), question=question,
                                    language=self._language())
            if message_tokens(HumanMessage(prompt), count) <= budget:
                break
            if not lines:
                return question
            lines.pop(0)
        text = _text(self._rewriter().invoke([HumanMessage(prompt)]).content)
        return _clean_query(text) or question

    def _rewriter(self) -> BaseChatModel:
        """A short, deterministic variant of the chat model, built once per engine (a new
        ChatOllama per follow-up cost 40-270 ms); an injected model is used as is."""
        if self._injected_model:
            return self.model()
        with self._lock:
            if self._rewrite_model is None:
                short = self.settings.model_copy(update={"num_predict": REWRITE_MAX_TOKENS, "temperature": 0.0})
                self._rewrite_model = build_chat_model(short, self.backend())
            return self._rewrite_model

    def _answer_messages(self, history: list[BaseMessage], question: str, sources: list[Source],
                         reserve: int = 0) -> tuple[list[BaseMessage], list[Source]]:
        """System + budgeted history + question with as many excerpts as fit the context.

        Excerpts outrank old history: history is dropped first, then the weakest excerpts. When
        fewer than two whole excerpts fit (a small window, Chinese text), the excerpts are cut to
        their best sentences, shorter each time, until two fit (the UI still shows them whole)."""
        system = SystemMessage(self._system_text())
        best: tuple[list[BaseMessage], int] | None = None
        for chars in (None, *CONDENSED_CHARS):
            shown = sources if chars is None else condense(question, sources, chars)
            messages, size = self._fit(system, history, question, shown, reserve)
            best = best if best is not None and best[1] >= size else (messages, size)
            if size >= min(2, len(sources)):
                break
        return best[0], sources[:best[1]]

    def _fit(self, system: SystemMessage, history: list[BaseMessage], question: str, sources: list[Source],
             reserve: int) -> tuple[list[BaseMessage], int]:
        """The messages with the most of `sources` (best first) that fit, and how many."""
        for size in range(len(sources), -1, -1):
            human = HumanMessage(prompts.render(self.settings.answer_prompt, context=prompts.format_context(sources[:size]),
                                                question=question, language=self._language()))
            try:
                messages = fit_messages(system, [*history, human], turns=self.settings.memory_turns,
                                        budget=self._budget() - reserve, count=self._counter())
            except AgentError:
                if size == 0:
                    raise
                continue
            return [system, *messages], size
        raise AssertionError("unreachable")

    # ---- shared ----------------------------------------------------------------------------
    def retrieve(self, query: str) -> list[Source]:
        """Search the chat's collections (hybrid or vector, k from settings), reordered by the model if
        `settings.rerank` (Ollama models only: the embedded demo model is too weak to judge)."""
        hits = search(query[:MAX_QUERY_CHARS], self.workspace.chat_collections(), embeddings=self.workspace.embeddings,
                      k=self.settings.retrieval_k, hybrid=self.settings.hybrid)
        sources = [hit.source() for hit in hits]
        if self.settings.rerank and self.backend().kind == "ollama":
            sources = rerank(query[:MAX_QUERY_CHARS], sources, lambda prompt: str(self.model().invoke(prompt).content))
        return sources

    def _system_text(self) -> str:
        return prompts.render(self.settings.system_prompt, language=self._language())

    def _language(self) -> str:
        return prompts.language_instruction(self.settings.answer_language)

    def _budget(self) -> int:
        return budget_for(context_window(self.settings, self.backend()), answer_tokens(self.settings, self.backend()))

    def _counter(self):
        counter = getattr(self.model(), "count_tokens", None)
        return counter if callable(counter) else approx_tokens

    def _check_truncation(self, run: Run) -> None:
        """Say so when Ollama's prompt_eval_count shows it cut the prompt to fit num_ctx."""
        if run.prompt_tokens is None or not run.model:
            return
        backend = self.backend()
        window = context_window(self.settings, backend)
        if backend.kind == "ollama" and prompt_truncated(run.prompt_tokens, window):
            run.notes.append(Note(code="prompt_truncated", params={"evaluated": run.prompt_tokens, "window": window}))

    def _store(self, answer: Answer, question: str) -> None:
        self.workspace.conversations.append_turn(answer.conversation, Turn(
            question, answer.text, answer.sources, answer.model, answer.incomplete, answer.error,
            error_code=answer.error_code, error_params=answer.error_params, notes=answer.notes))


SEARCHING = Status("Searching the documents", "search")
_CURRENT_RUN: ContextVar[Run] = ContextVar("current_run")  # the answer a search tool call belongs to


def _expect_text(run: Run) -> None:
    """A model that streamed only `done`, or only `thinking`, gave no answer: say so (the turn
    is stored). Quotes alone (extractive style) never call a model, so they never get here."""
    if not run.was_stopped and not "".join(run.parts).strip():
        run.error = empty_answer(run.model)


def _reading(n: int) -> Status:
    return Status(f"The model is reading {n} excerpts", "read", {"n": n})


def _text(content: Any) -> str:
    """Message content as plain text (content may be a list of blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return str(content or "")


def _clean_query(text: str) -> str:
    """The first non-empty line of the rewriter's output, without quotes or a label."""
    for line in text.strip().splitlines():
        line = re.sub(r"^(standalone query|query|查询)\s*[:：]\s*", "", line.strip(), flags=re.IGNORECASE)
        line = line.strip().strip('"“”\'「」')
        if line:
            return line[:MAX_QUERY_CHARS]
    return ""
