"""The `ollama` package, imported with OLLAMA_HOST hidden from it.

Its import builds a default client from OLLAMA_HOST and crashes on a malformed value (port
99999, `http://[::1`) before the app can say which setting is wrong. The app validates the
variable itself (agent.config) and passes the host to every client it makes. Import this
module before `langchain_ollama` (which imports ollama).
"""

from __future__ import annotations

import os

_saved = os.environ.pop("OLLAMA_HOST", None)
try:
    import ollama
finally:
    if _saved is not None:
        os.environ["OLLAMA_HOST"] = _saved

__all__ = ["ollama"]
