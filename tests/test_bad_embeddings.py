"""Embeddings that are NaN, of the wrong length or the wrong count are refused with one message (issue 14.8)."""

from __future__ import annotations

import math

import pytest

from agent.config import Settings
from agent.errors import AgentError
from agent.ingest.pipeline import ingest_file
from agent.search.retrieval import search
from tests.support import GEOLOGY, TinyEmbeddings, add, open_collection


class Broken(TinyEmbeddings):
    def __init__(self, how: str) -> None:
        self.how = how

    def embed_documents(self, texts):
        vectors = super().embed_documents(texts)
        if self.how == "nan":
            vectors[0][0] = math.nan
        elif self.how == "ragged":
            vectors[-1] = vectors[-1][:5]
        elif self.how == "count":
            vectors = vectors[:-1]
        elif self.how == "inf":
            vectors[-1][2] = math.inf
        return vectors

    def embed_query(self, text):
        vector = super().embed_query(text)
        return vector[:5] if self.how == "short query" else [math.nan] * len(vector) if self.how == "nan query" else vector


@pytest.mark.parametrize("how", ["nan", "ragged", "count", "inf"])
def test_ingest_refuses_bad_vectors_and_keeps_what_was_indexed(tmp_path, how):
    collection = open_collection(tmp_path)
    add(collection, "kept", ["Rocks are made of minerals."])
    result = ingest_file(GEOLOGY, collection, Broken(how), Settings(data_dir=tmp_path))
    assert result.status == "failed" and result.code == "embedding_invalid", result
    assert "embedding model returned" in result.message and "Traceback" not in result.message
    assert [d.file for d in collection.document_infos()] == ["kept.pdf"]


@pytest.mark.parametrize("how", ["short query", "nan query"])
def test_a_bad_query_vector_is_refused_with_a_message(tmp_path, how):
    collection = open_collection(tmp_path)
    add(collection, "kept", ["Rocks are made of minerals.", "Magma cools into igneous rock."])
    with pytest.raises(AgentError) as caught:
        search("rocks", [collection], embeddings=Broken(how), k=2)
    assert caught.value.code == "embedding_invalid"
