"""User-facing errors.

Every failure a user can cause or meet (a bad PDF, Ollama not running, a model not
pulled, ...) is raised as an `AgentError` whose message is one clear sentence and
whose `fix` says what to do. The CLI prints `message` and `fix` on one line and
exits non-zero; the UI shows them in an error box. Nothing else should reach a
user as a stack trace.

An error may also carry a `code` and its `params` (plain values: names, numbers):
the web UI shows its own wording for a code in the user's language
(agent/app/i18n.py) and falls back to `message`/`fix` for an error without one.
"""

from __future__ import annotations

from typing import Any


class AgentError(Exception):
    """Base class: a problem the user can understand and usually fix."""

    def __init__(self, message: str, fix: str = "", *, code: str = "", params: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.code = code
        self.params = dict(params or {})

    def __str__(self) -> str:
        return f"{self.message} {self.fix}".strip()


class SettingsError(AgentError):
    """A settings value is invalid (out of range, malformed URL, bad prompt)."""


class InvalidNameError(AgentError, ValueError):
    """A name that becomes a path (a collection) is not allowed. Also a ValueError, so
    pydantic validators that check names report it as a validation error."""
class PromptError(SettingsError, ValueError):
    """An edited prompt is not a valid template (a ValueError too, for the settings validators)."""


class OllamaError(AgentError):
    """Base for problems talking to the Ollama server."""


class OllamaUnreachableError(OllamaError):
    """No server answers at OLLAMA_HOST."""


class OllamaTimeoutError(OllamaError):
    """The server did not answer within the request timeout."""


class ModelNotFoundError(OllamaError):
    """The chat or embedding model is not pulled on the server."""


class ModelCapabilityError(OllamaError):
    """The model lacks a capability the request needs (e.g. tools)."""


class OllamaBusyError(OllamaError):
    """The server answered 503: its queue is full."""


class OllamaResponseError(OllamaError):
    """The server answered with another error, possibly mid-stream."""


class DocumentError(AgentError):
    """A document could not be ingested; nothing already indexed is touched."""


class EncryptedPDFError(DocumentError):
    """The PDF needs a password (none given, or the given one is wrong)."""


class StoreError(AgentError):
    """A stored index cannot be read or written (corrupt file, read-only disk, lock held)."""


class EmbeddingMismatchError(StoreError):
    """The collection was built with another embedding model than the one configured."""


class ConversationNotFoundError(AgentError):
    """No conversation has the given id."""
