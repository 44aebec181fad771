"""bench.cv_docs: per-document evidence given to every page of the document, gated as named."""

from __future__ import annotations

import numpy as np
import pytest
from langchain_core.documents import Document

from agent.search.keyword_index import CollectionIndex
from agent.search.tokens import query_terms
from bench.cv_docs import Files, doc_signals


def _chunk(file: str, page: int, text: str) -> Document:
    return Document(page_content=text, metadata={"file": file, "page": page})


@pytest.fixture()
def files() -> Files:
    docs = [_chunk("a.pdf", 1, "gzip compression levels and block size"),
            _chunk("a.pdf", 2, "the block sorting algorithm of gzip"),
            _chunk("b.pdf", 1, "fonts and their configuration files"),
            _chunk("b.pdf", 2, "a block of text about nothing")]
    return Files(CollectionIndex(docs))


def test_every_page_gets_its_files_value(files: Files) -> None:
    terms = query_terms("gzip block size")
    idf = dict.fromkeys(terms, 1.0)
    fused = np.array([2.0, 1.0, 0.5, 3.0])
    out = doc_signals(files, terms, idf, fused, np.array([0.1, 0.2, 0.9, 0.3]))
    assert list(files.of_page) == [0, 0, 1, 1]
    assert out["doc_bm25"][0] == out["doc_bm25"][1] > out["doc_bm25"][2] == out["doc_bm25"][3]
    assert out["doc_cover"][0] == 1.0 and out["doc_cover"][2] == pytest.approx(1 / 3)
    assert out["doc_top1"].tolist() == [2.0, 2.0, 3.0, 3.0]
    assert out["doc_top3"].tolist() == [1.5, 1.5, 1.75, 1.75]
    assert out["doc_vec"][2] > out["doc_vec"][0]


def test_gates(files: Files) -> None:
    terms = query_terms("gzip block size")
    idf = dict.fromkeys(terms, 1.0)
    same_file_top2 = doc_signals(files, terms, idf, np.array([3.0, 2.0, 0.5, 0.1]), np.zeros(4))
    assert not same_file_top2["doc_bm25_split"].any() and same_file_top2["doc_bm25_le4"].any()
    long_terms = query_terms("which gzip block size gives the best compression levels here")
    two_files_top2 = doc_signals(files, long_terms, dict.fromkeys(long_terms, 1.0), np.array([3.0, 0.0, 2.0, 0.1]),
                                 np.zeros(4))
    assert two_files_top2["doc_bm25_split"].any() and not two_files_top2["doc_bm25_le4"].any()
