"""Terminal output that cannot be steered by model or document text.

ANSI/OSC escape sequences in a model name, an answer or a document (a prompt-injected PDF)
would otherwise reach the terminal: recolour it, retitle the window, write OSC 52 to the
clipboard or hide text. The CLI writes through `SafeStream`, which drops them.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, TextIO

#: CSI, OSC (ended by BEL or ST), other ESC sequences, then every other C0/C1 control but tab and newline.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?|\x9b[0-?]*[ -/]*[@-~]"
                      r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain(text: str) -> str:
    """`text` without escape sequences or control characters (tab, newline and CR kept as newline)."""
    return _ESCAPES.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


class SafeStream:
    """A text stream wrapper whose `write` drops escape sequences (everything else is delegated)."""

    def __init__(self, inner: TextIO) -> None:
        self._inner = inner
        self.raw = inner

    def write(self, text: str) -> int:
        self._inner.write(plain(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def raw(stream: Any) -> Any:
    """The stream under a `SafeStream`: for the CLI's own progress bars, which draw with \\r and ESC[K."""
    return getattr(stream, "raw", stream)


def print_json(data: Any, out: TextIO | None = None) -> None:
    """`data` as indented JSON (control characters escaped by json itself)."""
    (out or sys.stdout).write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
