"""The workspace's shared objects: which settings changes give a new embedder or new collections."""

from __future__ import annotations

import pytest

from agent.config import update_settings
from agent.workspace import shared_embeddings


def test_a_changed_request_timeout_reaches_ollama_embeddings(workspace, ollama):
    ollama.embed_delay = 1.0
    patient = update_settings(workspace.settings, request_timeout=30)
    assert len(shared_embeddings(patient).embed_query("rocks")) == 768
    hasty = update_settings(patient, request_timeout=0.3)
    with pytest.raises(Exception, match="(?i)time"):  # the new timeout is used, not the cached embedder's
        shared_embeddings(hasty).embed_query("rocks")
    assert shared_embeddings(patient) is not shared_embeddings(hasty)


def test_a_timeout_change_keeps_the_loaded_collections(workspace):
    loaded = workspace.collection("default")
    faster = workspace.with_settings(update_settings(workspace.settings, request_timeout=12))
    assert faster.collection("default") is loaded  # same vectors, no reload of the index
    other_model = workspace.with_settings(update_settings(workspace.settings, embedding="ollama:other-embed"))
    assert other_model.collection("default") is not loaded  # other vectors: its own collections
