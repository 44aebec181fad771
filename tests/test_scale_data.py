"""bench.scale builds big collections from synthetic files whose keyword counts are counted from
the drawn word and character ids instead of tokenising each chunk: they must be what the store's
own tokenizer, term counts and page table make of the same chunks."""

from __future__ import annotations

from collections import Counter

import numpy as np

from agent.search.chunk_table import ChunkTable
from agent.search.lexical import Lexicon
from agent.search.page_table import PageTable
from bench._scale_data import Counted, Synthetic, entry


def _as_terms(lexicon: Lexicon, kind: str) -> list[Counter]:
    counts = getattr(lexicon, kind)
    return [Counter({lexicon.vocabulary.terms[t]: int(n) for t, n in zip(*counts.row(i))}) for i in range(counts.rows)]


def test_counted_draws_equal_the_stores_own_counts_and_page_table():
    synthetic, files = Synthetic(), []
    counted = Counted(synthetic)
    for f, chunks in enumerate((31, 45)):  # a last page of one chunk, and a Chinese chunk or more
        draw = synthetic.file(f, chunks)
        files.append(entry(draw))
        counted.add(draw, check=True)
    lexicon, pages = counted.result()
    documents = [c for _, chunks, _ in files for c in chunks]
    assert any("。" in d.page_content for d in documents) and any(" " in d.page_content for d in documents)
    built = Lexicon.build(ChunkTable.from_documents(documents))
    assert _as_terms(lexicon, "chunks") == _as_terms(built, "chunks")
    assert _as_terms(lexicon, "pages") == _as_terms(built, "pages")
    assert np.array_equal(lexicon.chunk_page, built.chunk_page)
    table = PageTable.build(documents)
    assert pages.keys() == table.keys() and np.array_equal(pages.contents, table.contents)
    assert table.titles == pages.titles == [] and counted.checked == 2 * (10 + 10)


def test_a_drawn_file_is_the_same_every_time_and_differs_from_the_next():
    a, b = Synthetic().file(3, 20), Synthetic().file(3, 20)
    assert a.texts == b.texts and np.array_equal(a.vectors, b.vectors)
    assert Synthetic().file(4, 20).texts != a.texts
    assert np.allclose(np.linalg.norm(a.vectors, axis=1), 1, atol=1e-5)
