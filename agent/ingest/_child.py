"""Parsing an untrusted PDF in a memory-limited child process.

PDFium is native code: a hostile file can make it abort (an LZW stream: SIGABRT), crash or
allocate gigabytes, and in the web app that would kill the server for every session. So
`parse_in_child` runs `parse_pdf` in a child process under RLIMIT_AS. The children are forked
by a fork server, `python -m agent.ingest._child`: a clean single-threaded process started once
that has imported the parser, so a file costs a fork rather than an interpreter start, and the
threaded app itself is never forked. The server forks a watcher per file, which forks the
parser and reports how it ended. They answer in JSON lines over a socket of the caller's: the
app never unpickles what a process that read a hostile file sends.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from agent.errors import DocumentError, EncryptedPDFError
from agent.ingest.parse import ParsedPDF, Progress, parse_pdf

# Address space a child may map: Python, PDFium and two OCR engines reading a long scan map most of
# 4 GB (the OCR runtime's arenas and thread stacks are mostly reserved, not used; bench/README 11c);
# a 256 MB stream decoded, a page rendered for OCR and headroom fit in the rest.
CHILD_MEMORY = 6 * 1024 * 1024 * 1024
# glibc's malloc arenas per process (default 8 per core, 64 MB of address space each): fewer arenas
# leave more of the limit above to the OCR engines, at no cost in speed (bench/README 11c).
_CHILD_ENV = {"MALLOC_ARENA_MAX": "2"}
SILENCE_LIMIT = 300.0  # seconds without a word from the parser: a page takes seconds, so it is stuck
MAX_REPLY = 512 * 1024 * 1024  # bytes of one reply line: the text of the largest accepted PDF fits
_OUT_OF_MEMORY = 3  # the parser's exit status after a MemoryError
_ERRORS = {"DocumentError": DocumentError, "EncryptedPDFError": EncryptedPDFError}
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_RESULT = TypeAdapter(ParsedPDF)


def _unsafe(name: str, why: str) -> DocumentError:
    return DocumentError(f"{name} could not be read safely: the PDF reader {why} on it.",
                         "Open it in a PDF viewer and re-save or print it to PDF, then add it again.",
                         code="doc_unsafe", params={"file": name})


def _exit_reason(returncode: int) -> str:
    if returncode < 0:
        return {6: "aborted", 9: "was killed", 11: "crashed"}.get(-returncode, f"stopped (signal {-returncode})")
    return "ran out of memory" if returncode == _OUT_OF_MEMORY else f"failed (exit {returncode})"


class _ForkServer:
    """The app's one fork server, started on first use and again if it died."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._control: socket.socket | None = None

    def _start(self) -> None:
        """(Re)start the server in a session of its own: a Ctrl-C in the terminal is the app's to handle."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._control.close()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        path = os.environ.get("PYTHONPATH", "")
        env = {**os.environ, **_CHILD_ENV, "PYTHONPATH": _PACKAGE_ROOT + (os.pathsep + path if path else "")}
        with theirs:
            self._process = subprocess.Popen([sys.executable, "-m", "agent.ingest._child", str(theirs.fileno())],
                                             pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                                             stdout=subprocess.DEVNULL, env=env, start_new_session=True)
        self._control = ours

    def submit(self, request: dict[str, Any]) -> socket.socket:
        """A socket on which a freshly forked parser answers `request`."""
        ours, theirs = socket.socketpair()
        with theirs, self._lock:
            for attempt in range(2):
                try:
                    if self._process is None or self._process.poll() is not None or attempt:
                        self._start()
                    socket.send_fds(self._control, [json.dumps(request).encode()], [theirs.fileno()])
                    return ours
                except OSError:
                    continue
        ours.close()
        raise DocumentError("The PDF reader could not be started.", "Check the app's log, then try again.")


_SERVER = _ForkServer()


def parse_in_child(path: str | os.PathLike, *, progress: Progress | None = None,
                   memory: int | None = None, **options: Any) -> ParsedPDF:
    """`parse_pdf(path, **options)` in a child process limited to `memory` (default CHILD_MEMORY)
    bytes of address space.

    Same result and DocumentErrors as `parse_pdf`; a child that crashes, aborts or runs out
    of memory raises DocumentError code doc_unsafe. An exception from `progress` ends the child.
    """
    name = Path(path).name
    request = {"path": str(Path(path).resolve()), "memory": memory or CHILD_MEMORY, "options": options}
    parser = 0
    with _SERVER.submit(request) as channel, channel.makefile("rb") as replies:
        channel.settimeout(SILENCE_LIMIT)
        try:
            while message := replies.readline(MAX_REPLY):
                reply = _reply(message, name)
                if isinstance(reply, ParsedPDF):
                    return reply
                if isinstance(reply, int):
                    parser = reply
                elif progress:
                    progress(*reply)
        except BaseException as exc:  # a stop, Ctrl-C, silence: end the parser; a DocumentError: it has ended
            if parser and not isinstance(exc, DocumentError):
                _kill(parser)
            if isinstance(exc, TimeoutError):
                raise _unsafe(name, f"made no progress for {SILENCE_LIMIT:g} s") from None
            raise
    raise _unsafe(name, "was killed")


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass  # it has ended


def _reply(message: bytes, name: str) -> ParsedPDF | int | tuple[str, int, int]:
    """What one line from the child means: the result, the parser's pid, or a progress event;
    raises the error it reports, or doc_unsafe when the parser ended without a result."""
    try:
        if not message.endswith(b"\n"):
            raise ValueError("a reply line over MAX_REPLY")
        reply = json.loads(message)
        if "result" in reply:
            return _RESULT.validate_python(reply["result"])  # types checked: the child read a hostile file
        if "pid" in reply:
            return int(reply["pid"])
        if "progress" in reply:
            stage, done, total = reply["progress"]
            return str(stage), int(done), int(total)
        if "exit" in reply:
            failure = _unsafe(name, _exit_reason(int(reply["exit"])))
        else:
            error = reply["error"]
            failure = _ERRORS.get(error.pop("type"), DocumentError)(**error)
    except (ValueError, TypeError, KeyError, AttributeError):
        raise _unsafe(name, "sent an unreadable reply") from None
    raise failure


def _send(channel: socket.socket, message: dict[str, Any]) -> None:
    channel.sendall(json.dumps(message).encode() + b"\n")


def _parse(channel: socket.socket, request: dict[str, Any]) -> int:
    """In the parser: its pid, progress, then a result or an error, as JSON lines on `channel`;
    returns its exit status."""
    _send(channel, {"pid": os.getpid()})
    resource.setrlimit(resource.RLIMIT_AS, (request["memory"], request["memory"]))
    try:
        parsed = parse_pdf(request["path"], progress=lambda *event: _send(channel, {"progress": event}),
                           **request["options"])
        _send(channel, {"result": asdict(parsed)})
    except DocumentError as exc:
        _send(channel, {"error": {"type": type(exc).__name__, "message": exc.message, "fix": exc.fix,
                                  "code": exc.code, "params": exc.params}})
    except MemoryError:
        return _OUT_OF_MEMORY
    except Exception:  # noqa: BLE001 - the exit status says it failed; the traceback goes to the log
        traceback.print_exc()
        return 1
    return 0


def _watch(channel: socket.socket, request: dict[str, Any]) -> None:
    """In the watcher: fork the parser, wait for it, and report how it ended."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    pid = os.fork()
    if pid == 0:
        os._exit(_parse(channel, request))
    _send(channel, {"exit": os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])})


def _serve(control: socket.socket) -> None:
    """The fork server: for each request (JSON and a socket), fork a watcher; ends with the app."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # watchers are reaped by the system
    while True:
        message, fds, _flags, _address = socket.recv_fds(control, 1 << 20, 1)
        if not message:
            return
        channel = socket.socket(fileno=fds[0])
        if os.fork() == 0:
            control.close()
            try:
                _watch(channel, json.loads(message))
            finally:
                os._exit(0)
        channel.close()


if __name__ == "__main__":
    import pypdfium2  # noqa: F401 - loaded once here, not in every parser

    _serve(socket.socket(fileno=int(sys.argv[1])))
