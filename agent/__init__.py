"""Chat with your documents, locally: the library behind the CLI and the Streamlit app.

The sub-packages follow the pipeline, and the layers contract in `.importlinter` keeps the
direction: `app` (what the web pages use) and `cli` on top; `workspace` composes `chat`
(question -> cited answer) and `ingest` (file -> chunks and vectors); both stand on `search`
(collections, vector and keyword indexes, fusion), which stands on the core (`config`,
`errors`, `prompts`, `_files`). No Streamlit import anywhere in this package.

The names below are the public API; they load lazily, so `import agent` stays cheap (the
chat engine pulls in LangChain, about a second).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "AgentError": "agent.errors",
    "Settings": "agent.config",
    "load_settings": "agent.config",
    "save_settings": "agent.config",
    "update_settings": "agent.config",
    "Workspace": "agent.workspace",
    "ChatEngine": "agent.chat.engine",
    "Answer": "agent.chat.engine",
    "Done": "agent.chat.engine",
    "Status": "agent.chat.engine",
    "Token": "agent.chat.engine",
    "list_models": "agent.chat.llm",
    "IngestResult": "agent.ingest.pipeline",
    "ingest_file": "agent.ingest.pipeline",
    "reindex": "agent.ingest.pipeline",
    "remove_document": "agent.ingest.pipeline",
    "Hit": "agent.search.retrieval",
    "search": "agent.search.retrieval",
    "Collection": "agent.search.store",
    "DocumentInfo": "agent.search.store",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'agent' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
