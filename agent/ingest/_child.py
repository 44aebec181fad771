"""Parsing an untrusted PDF in a memory-limited child process.

PDFium is native code: a hostile file can make it abort (an LZW stream: SIGABRT), crash or
allocate gigabytes, and in the web app that would kill the server for every session. So
`parse_in_child` runs `parse_pdf` in `python -m agent.ingest._child` under RLIMIT_AS; the
two sides speak JSON lines over stdin/stdout (the parent never unpickles what a child that
read a hostile file sends), and a child that dies becomes a DocumentError.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from agent.errors import DocumentError, EncryptedPDFError
from agent.ingest.parse import ParsedPage, ParsedPDF, Progress, parse_pdf

# Address space a child may map: Python, PDFium and the OCR engine map about 1.5 GB of it
# (onnxruntime's arenas and thread stacks are mostly reserved, not used); a 256 MB stream
# decoded, a page rendered for OCR and headroom fit in the rest.
CHILD_MEMORY = 4 * 1024 * 1024 * 1024
_ERRORS = {"DocumentError": DocumentError, "EncryptedPDFError": EncryptedPDFError}
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def _unsafe(name: str, why: str) -> DocumentError:
    return DocumentError(f"{name} could not be read safely: the PDF reader {why} on it.",
                         "Open it in a PDF viewer and re-save or print it to PDF, then add it again.",
                         code="doc_unsafe", params={"file": name})


def _exit_reason(returncode: int) -> str:
    if returncode < 0:
        return {6: "aborted", 9: "was killed", 11: "crashed"}.get(-returncode, f"stopped (signal {-returncode})")
    return "ran out of memory" if returncode == 3 else f"failed (exit {returncode})"


def _parsed(result: dict[str, Any]) -> ParsedPDF:
    pages = [ParsedPage(**{**page, "outline": tuple(page["outline"])}) for page in result.pop("pages")]
    return ParsedPDF(pages=pages, **result)


def _child_env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": _PACKAGE_ROOT + (os.pathsep + path if path else "")}


def parse_in_child(path: str | os.PathLike, *, progress: Progress | None = None,
                   memory: int | None = None, **options: Any) -> ParsedPDF:
    """`parse_pdf(path, **options)` in a child process limited to `memory` (default CHILD_MEMORY)
    bytes of address space.

    Same result and DocumentErrors as `parse_pdf`; a child that crashes, aborts or runs out
    of memory raises DocumentError code doc_unsafe. An exception from `progress` ends the child.
    """
    name = Path(path).name
    request = json.dumps({"path": str(path), "memory": memory or CHILD_MEMORY, "options": options})
    with subprocess.Popen([sys.executable, "-m", "agent.ingest._child"], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=_child_env()) as child:
        try:
            child.stdin.write(request.encode())
            child.stdin.close()
            for line in child.stdout:
                if (parsed := _reply(line, name, progress)) is not None:
                    return parsed
            child.wait()
        finally:
            if child.poll() is None:
                child.kill()
    raise _unsafe(name, _exit_reason(child.returncode))


def _reply(line: bytes, name: str, progress: Progress | None) -> ParsedPDF | None:
    """The result in one line from the child; None for progress; raises the error it reports."""
    try:
        reply = json.loads(line)
        if "progress" in reply:
            stage, done, total = reply["progress"]
        elif "result" in reply:
            return _parsed(reply["result"])
        else:
            error = reply["error"]
            failure = _ERRORS.get(error.pop("type"), DocumentError)(**error)
    except (ValueError, TypeError, KeyError, AttributeError):
        raise _unsafe(name, "sent an unreadable reply") from None
    if "progress" not in reply:
        raise failure
    if progress:
        progress(str(stage), int(done), int(total))
    return None


def main() -> None:
    """The child: one request on stdin; progress, then a result or an error, as JSON lines on the
    original stdout (anything a library prints goes to stderr instead)."""
    channel = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)

    def send(message: dict[str, Any]) -> None:
        channel.write(json.dumps(message) + "\n")
        channel.flush()

    request = json.loads(sys.stdin.read())
    resource.setrlimit(resource.RLIMIT_AS, (request["memory"], request["memory"]))
    try:
        parsed = parse_pdf(request["path"], progress=lambda *event: send({"progress": event}), **request["options"])
    except DocumentError as exc:
        send({"error": {"type": type(exc).__name__, "message": exc.message, "fix": exc.fix,
                        "code": exc.code, "params": exc.params}})
        return
    except MemoryError:
        sys.exit(3)
    send({"result": asdict(parsed)})


if __name__ == "__main__":
    main()
