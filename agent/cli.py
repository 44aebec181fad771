"""Command line: `python -m agent COMMAND ...`, on the same functions as the web UI.

Every command honours OLLAMA_HOST and AGENT_DATA_DIR (and the other AGENT_* settings),
prints results on stdout, and on failure prints one clear line on stderr and exits 1.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from agent._files import check_collection_name
from agent._terminal import SafeStream, plain, print_json, raw
from agent.app.sources import is_image_source, page_label
from agent.cli_models import cmd_models
from agent.config import Settings, load_settings, update_settings
from agent.errors import AgentError, SettingsError
from agent.ingest.formats import type_label
from agent.ingest.pipeline import IngestResult, ingest_file, remove_document
from agent.search.retrieval import LOCATION_KEYS, Source
from agent.search.vector_index import use_one_thread
from agent.workspace import Workspace

if TYPE_CHECKING:  # the chat engine imports LangChain's agent stack (~1 s): only chat commands load it
    from agent.chat.engine import Answer, ChatEngine, Event

REPL_HELP = """Commands:
  /reset      start a new conversation
  /sources    show the sources of the last answer
  /help       this help
  exit, quit, /bye or Ctrl-D to leave"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    use_one_thread()
    sys.stdout, sys.stderr = SafeStream(sys.stdout), SafeStream(sys.stderr)  # type: ignore[assignment]
    try:
        return args.func(args)
    except AgentError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as exc:  # a path the user named cannot be read or written
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors on one line, like every other error of the CLI."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m agent", description="Chat with your PDFs, locally.")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, func: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    p = command("chat", cmd_chat, "Interactive chat in the terminal (like `ollama run`).")
    p.add_argument("--conversation", help="continue this conversation id")
    p = command("ask", cmd_ask, "Answer one question.")
    p.add_argument("question")
    p.add_argument("--conversation", help="continue this conversation id")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p = command("models", cmd_models, "List the installed Ollama models (list), download one (pull NAME), "
                                      "delete one (rm NAME) or show the loaded ones (ps).")
    p.add_argument("action", nargs="?", default="list", choices=["list", "pull", "rm", "ps"])
    p.add_argument("name", nargs="?", help="model name for pull and rm, e.g. llama3.2 or qwen3:4b")
    p.add_argument("--json", action="store_true")
    p = command("ingest", cmd_ingest, "Add PDF files to a collection.")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--collection", help="collection name (default: the first chat collection)")
    p.add_argument("--password", help="password for encrypted PDFs")
    p.add_argument("--json", action="store_true")
    p = command("retrieve", cmd_retrieve, "Show the chunks retrieved for a question.")
    p.add_argument("question")
    p.add_argument("--k", type=int, help="number of chunks (default: settings)")
    p.add_argument("--collection", action="append", help="collection(s) to search (repeatable)")
    p.add_argument("--json", action="store_true")
    p = command("docs", cmd_docs, "List the documents of a collection.")
    p.add_argument("--collection")
    p.add_argument("--json", action="store_true")
    p = command("remove", cmd_remove, "Remove a document (by file name or hash) from a collection.")
    p.add_argument("document")
    p.add_argument("--collection")
    p = command("reindex", cmd_reindex, "Rebuild a collection from its stored PDFs with the current settings.")
    p.add_argument("--collection")
    p.add_argument("--password", help="password for the encrypted PDFs of the collection")
    p.add_argument("--drop-failed", action="store_true",
                   help="leave out the documents that fail when their old index cannot be kept")
    p = command("conversations", cmd_conversations, "List, rename, delete or export conversations.")
    p.add_argument("action", nargs="?", default="list", choices=["list", "rename", "delete", "export"])
    p.add_argument("id", nargs="?")
    p.add_argument("title", nargs="?")
    p.add_argument("--json", action="store_true")
    p = command("migrate", cmd_migrate, "Copy collections and conversations between this data directory "
                                        "and PostgreSQL "
                                        "(AGENT_DATABASE_URL); safe to run again.")
    p.add_argument("--to", required=True, choices=["postgres", "local"])
    p = command("eval", cmd_eval, "Measure retrieval quality (hit@k, MRR) on a question file.")
    p.add_argument("questions", type=Path, help="JSONL with question, file, page, lang")
    p.add_argument("--pdfs", type=Path, required=True, help="folder with the PDFs the questions refer to")
    p.add_argument("--json", action="store_true")
    return parser


def _workspace() -> Workspace:
    settings = load_settings()
    return Workspace(settings)


def _collection_name(workspace: Workspace, option: str | None) -> str:
    """`--collection`, checked (an explicit empty name is an error), else the first chat collection."""
    return workspace.settings.collections[0] if option is None else check_collection_name(option)


def _with_options(settings: Settings, options: dict[str, tuple[str, Any]]) -> Settings:
    """Settings with command-line overrides ({option: (field, value)}); a bad value names its option."""
    changes = {field: value for field, value in options.values() if value is not None}
    try:
        return update_settings(settings, **changes)
    except SettingsError as err:
        named = " / ".join(option for option, (field, value) in options.items()
                           if value is not None and field in err.message) or "option"
        why = err.message.removeprefix("Invalid setting: ").rstrip(".")
        raise AgentError(f"Invalid {named}: {why}.", "See `--help`.") from None


# ---- chat ----------------------------------------------------------------------------------
def cmd_ask(args: argparse.Namespace) -> int:
    from agent.chat.engine import ChatEngine, Done, Token

    engine = ChatEngine(_workspace())
    answer = None
    for event in engine.stream(args.question, args.conversation):
        if isinstance(event, Token) and not args.json:
            sys.stdout.write(event.text)
            sys.stdout.flush()
        elif isinstance(event, Done):
            answer = event.answer
    assert answer is not None
    if args.json:
        print_json(answer.as_json())
    else:
        sys.stdout.write("\n")
        _print_sources(answer.sources)
    sys.stdout.flush()  # keep the answer and the notes below it in order on a terminal
    for note in ([answer.notice] if answer.notice else []) + _notes(answer):
        print(f"note: {note}", file=sys.stderr)
    if answer.error:
        print(f"error: {answer.error}", file=sys.stderr)
        return 1
    return 0


def _notes(answer: Answer) -> list[str]:
    """The answer's notes (invented citations, nothing found, a cut prompt) worded for a terminal."""
    from agent.app.i18n import t

    return [t(f"note_{note['code']}", "en", **note["params"]) for note in answer.notes]


def _where(s: Source) -> str:
    """A source's location for the terminal: "p.22 (PDF page 26)", "slide 3", "Install, ¶ 2", "image"."""
    if s.get("loc_kind", "page") != "page" or is_image_source(s):
        return page_label(s)
    return f"p.{s['page_label']} (PDF page {s['page']})" if s.get("page_label") else f"p.{s['page']}"


def _print_sources(sources: list[Source], out: TextIO | None = None) -> None:
    if not sources:
        return
    out = out or sys.stdout
    out.write("\nSources:\n")
    for i, s in enumerate(sources, 1):
        excerpt = " ".join(s["text"].split())[:160]
        cited = " cited" if s.get("cited") else ""
        out.write(f"  [{s.get('number', i)}] {s['file']} {_where(s)}{cited} ({s['score']:.3f}) {excerpt}\n")


def cmd_chat(args: argparse.Namespace, stdin: TextIO | None = None, out: TextIO | None = None) -> int:
    """A REPL like `ollama run`: streamed answers, /reset, /sources, exit."""
    from agent.chat.engine import ChatEngine

    stdin, out = stdin or sys.stdin, out or sys.stdout  # read now: main() wraps stdout

    workspace = _workspace()
    warm_up = workspace.warm_up()  # loads the indexes while the user types the first question
    try:
        return _repl(workspace, ChatEngine(workspace), args.conversation, stdin, out)
    finally:
        warm_up.join()  # a daemon thread killed mid-import at exit aborts the process ("FATAL: exception not rethrown")


def _repl(workspace: Workspace, engine: ChatEngine, conversation: str | None, stdin: TextIO, out: TextIO) -> int:
    """The chat loop: one question a line until exit or end of input."""
    backend = engine.backend()
    conversation = conversation or workspace.conversations.create()
    if backend.notice:
        out.write(f"note: {backend.notice}\n")
    out.write(f"Chatting with {backend.model_name} over {', '.join(workspace.settings.collections)} "
              f"(conversation {conversation}). /help for commands.\n")
    last_sources: list[Source] = []
    interrupted = False
    while True:
        try:
            out.write(">>> ")
            out.flush()
            line = stdin.readline()
        except KeyboardInterrupt:  # like `ollama run`: one Ctrl-C at the prompt hints, a second leaves
            if interrupted:
                out.write("\n")
                return 130
            interrupted = True
            out.write("\n(Ctrl-C again, Ctrl-D or /bye to leave)\n")
            continue
        interrupted = False
        if not line:
            out.write("\n")
            return 0
        question = line.strip()
        if question in ("exit", "quit", "/bye", "/exit"):
            return 0
        if question in ("/help", "/?"):
            out.write(REPL_HELP + "\n")
        elif question == "/reset":
            conversation = workspace.conversations.create()
            last_sources = []
            out.write(f"New conversation {conversation}.\n")
        elif question == "/sources":
            _print_sources(last_sources, out) if last_sources else out.write("No sources yet.\n")
        elif question:
            last_sources = _stream_answer(engine, question, conversation, out)


@contextmanager
def _ctrl_c_stops(stop: threading.Event) -> Iterator[None]:
    """While an answer streams, Ctrl-C stops it (the partial answer is kept) instead of leaving."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _stream_answer(engine: ChatEngine, question: str, conversation: str, out: TextIO) -> list[Source]:
    stop = threading.Event()
    with _ctrl_c_stops(stop):
        return _show_answer(engine.stream(question, conversation, stop), out)


def _show_answer(events: Iterator[Event], out: TextIO) -> list[Source]:
    from agent.chat.engine import Done, Status, Token

    for event in events:
        if isinstance(event, Token):
            out.write(event.text)
            out.flush()
        elif isinstance(event, Status) and out.isatty():
            out.write(f"\x1b[2m{event.text}…\x1b[0m\r\x1b[K")
        elif isinstance(event, Done):
            out.write("\n")
            if event.answer.error:
                out.write(f"[answer incomplete] {event.answer.error}\n" if event.answer.text
                          else f"error: {event.answer.error}\n")
            out.writelines(f"note: {note}\n" for note in _notes(event.answer))
            if event.answer.sources:
                out.write(f"({len(event.answer.sources)} sources: /sources)\n")
            return event.answer.sources
    return []


# ---- documents -----------------------------------------------------------------------------
class _ProgressLine:
    """A one-line progress bar on stderr for long files (only on a terminal)."""

    def __init__(self, name: str) -> None:
        self.name = plain(name)
        self.enabled = sys.stderr.isatty()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.enabled and total > 1:
            width = 30
            filled = int(width * done / total)
            raw(sys.stderr).write(f"\r{self.name[:30]:30} {stage:6} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            raw(sys.stderr).write("\r\x1b[K")


def cmd_ingest(args: argparse.Namespace) -> int:
    workspace = _workspace()
    collection = workspace.collection(_collection_name(workspace, args.collection))
    results = []
    for path in args.files:
        bar = _ProgressLine(path.name)
        result = ingest_file(path, collection, workspace.embeddings, workspace.settings,
                             password=args.password, progress=bar)
        bar.close()
        results.append(result)
        if not args.json:
            print(_result_line(result))
    if args.json:
        print_json([r.as_dict() for r in results])
    return 0 if all(r.ok for r in results) else 1


def _result_line(result: IngestResult) -> str:
    if result.status in ("failed", "kept", "dropped"):
        after = {"kept": " (its previous index is kept)", "dropped": " (left out of the index)"}.get(result.status, "")
        return f"{result.status.upper():10}{result.file}: {result.message}{after}"
    ocr = f", OCR on {len(result.ocr_pages)} pages" if result.ocr_pages else ""
    note = f" ({result.message})" if result.message and result.status != "unchanged" else ""
    return f"{result.status.upper():10}{result.file}: {result.pages} pages, {result.chunks} chunks{ocr}, {result.seconds:.2f} s{note}"


def cmd_retrieve(args: argparse.Namespace) -> int:
    from agent.chat.engine import ChatEngine, clean_question

    question = clean_question(args.question)
    settings = _with_options(load_settings(), {"--k": ("retrieval_k", args.k),
                                               "--collection": ("collections", args.collection)})
    sources = ChatEngine(Workspace(settings)).retrieve(question)
    if args.json:
        print_json([{k: s[k] for k in ("file", "page", *LOCATION_KEYS, "text", "score") if k in s} for s in sources])
    else:
        for i, s in enumerate(sources, 1):
            print(f"{i}. [{s['file']} {_where(s)}] score {s['score']:.4f}\n   {' '.join(s['text'].split())[:300]}")
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    workspace = _workspace()
    infos = workspace.collection(_collection_name(workspace, args.collection)).document_infos()
    if args.json:
        print_json([info.__dict__ for info in infos])
        return 0
    if not infos:
        print("No documents. Add some with `python -m agent ingest FILE.pdf`.")
    for info in infos:
        ocr = f" OCR:{len(info.ocr_pages)}" if info.ocr_pages else ""
        print(f"{info.doc_id[:12]}  {info.file:40} {type_label(info.file, info.kind):9} {info.pages:5} p "
              f"{info.chunks:6} chunks {info.size / 1e6:7.2f} MB{ocr}  {info.added}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    workspace = _workspace()
    info = remove_document(workspace.collection(_collection_name(workspace, args.collection)), args.document)
    print(f"Removed {info.file} ({info.chunks} chunks).")
    return 0


def cmd_reindex(args: argparse.Namespace) -> int:
    workspace = _workspace()
    name = _collection_name(workspace, args.collection)
    passwords = {doc_id: args.password for doc_id, _ in workspace.rebuildable(name).stored_documents()} \
        if args.password else None
    results = workspace.reindex(name, passwords=passwords, drop_failed=args.drop_failed)
    for result in results:
        print(_result_line(result))
    if not results.committed:
        raise AgentError(f"Nothing was changed in {name!r}: {sum(r.status == 'failed' for r in results)} document(s) "
                         "cannot be re-indexed and their old index cannot be kept.",
                         "Fix them (--password, or the settings that refuse them), or leave them out with "
                         "--drop-failed.")
    print(f"Re-indexed {sum(r.ok for r in results)} of {len(results)} documents in {name!r}.")
    return 0 if all(r.ok for r in results) else 1


def cmd_conversations(args: argparse.Namespace) -> int:
    store = _workspace().conversations
    if args.action == "list":
        items = store.list()
        if args.json:
            print_json([{"id": c.id, "title": c.title, "created": c.created, "updated": c.updated} for c in items])
        for c in [] if args.json else items:
            print(f"{c.id}  {c.updated}  {c.title}")
        return 0
    if not args.id:
        raise AgentError(f"`conversations {args.action}` needs a conversation id.", "See `conversations list`.")
    if args.action == "rename":
        store.rename(args.id, args.title or "")
    elif args.action == "delete":
        store.delete(args.id)
    else:
        sys.stdout.write(store.export_markdown(args.id, where=_where))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from agent.chat.pg_conversations import copy_conversations
    from agent.search.pg_store import copy_documents

    settings = load_settings()
    if not settings.database_url:
        raise AgentError("migrate needs the PostgreSQL database.", "Set AGENT_DATABASE_URL (see README, Running for a team).")
    local, shared = (Workspace(settings.model_copy(update={"store": store})) for store in ("local", "postgres"))
    source, target = (local, shared) if args.to == "postgres" else (shared, local)
    for name in source.collection_names():
        print(f"collection {name}: {copy_documents(source.collection(name), target.collection(name))} documents copied")
    print(f"conversations: {copy_conversations(source.conversations, target.conversations)} turns copied")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from agent.evaluate import load_questions, run_eval_command

    if not args.pdfs.is_dir():
        raise AgentError(f"--pdfs {args.pdfs} is not a folder.", "Give the folder that holds the PDFs.")
    try:
        load_questions(args.questions)  # checked first: a bad line must not surface as a traceback mid-run
    except (ValueError, KeyError, TypeError) as exc:
        raise AgentError(f"Cannot read the questions in {args.questions}: {exc!r}.",
                         "Each line must be a JSON object with question, file and page.") from None
    return run_eval_command(args.questions, args.pdfs, load_settings(), as_json=args.json)
