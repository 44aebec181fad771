"""Keyword counts: computed once per chunk, persisted with the index, reused, never trusted blindly."""

import math

import numpy as np
import pytest
from langchain_core.documents import Document

from agent.search import keyword_index, lexical, retrieval, title_vectors, tokens, translation
from agent.search.lexical import BM25Index, Lexicon, Vocabulary
from agent.search.tokens import tokenize
from tests.support import add, open_collection

PAGES_A = ["The fit command appends to the log file.", "Contours are drawn with set contour.",
           "统计 命令 计算 平均值"]
PAGES_B = ["Histograms use the boxes style.", "The log file of fit can be renamed."]


def chunks(doc_id: str, pages: list[str], per_page: int = 2) -> list[Document]:
    """`per_page` overlapping chunks per page, with the metadata the chunker writes."""
    out = []
    for p, text in enumerate(pages, 1):
        half = len(text) // 2
        for i, (start, piece) in enumerate([(0, text[:half + 5]), (half, text[half:])][:per_page]):
            cid = f"{doc_id}:{p}:{i}"
            out.append(Document(piece, id=cid, metadata={"file": f"{doc_id}.pdf", "page": p, "doc_id": doc_id,
                                                          "chunk_id": cid, "start": start}))
    return out


def as_terms(lexicon: Lexicon, which: str) -> list[dict[str, int]]:
    """Counts as {term: tf} per row: comparable across vocabularies with different ids."""
    counts = getattr(lexicon, which)
    rows = []
    for i in range(counts.rows):
        ids, tfs = counts.row(i)
        rows.append({lexicon.vocabulary.terms[t]: int(f) for t, f in zip(ids, tfs)})
    return rows


def test_bm25_scores_follow_the_okapi_formula():
    texts = ["apple apple banana", "banana cherry", "cherry cherry cherry durian"]
    scores = BM25Index(texts).scores("apple cherry")
    lengths = [3, 2, 4]
    avg = sum(lengths) / 3

    def term(tf, df, length):
        idf = math.log(1 + (3 - df + 0.5) / (df + 0.5))
        return idf * tf * 2.2 / (tf + 1.2 * (1 - 0.75 + 0.75 * length / avg))

    expected = [term(2, 1, 3), term(1, 2, 2), term(3, 2, 4)]
    assert np.allclose(scores, expected, rtol=1e-5)


def test_weighted_scores_are_the_weighted_sum_of_each_terms_scores():
    index = BM25Index(["apple apple banana", "banana cherry", "cherry cherry cherry durian", "durian"])
    weights = {"apple": 0.5, "cherry": 2.0, "unknown": 9.0, "durian": 0.25}
    expected = sum(w * index.scores([t]).astype(np.float64) for t, w in weights.items())
    got = index.weighted_scores(weights)
    assert got.dtype == np.float64 and np.allclose(got, expected, rtol=1e-6)
    assert got[0] == pytest.approx(0.5 * index.scores(["apple"])[0])
    assert not index.weighted_scores({"unknown": 1.0}).any()


def test_counts_carried_over_equal_counts_made_from_scratch(monkeypatch):
    a, b = chunks("a", PAGES_A), chunks("b", PAGES_B)
    first = Lexicon.build(a)
    counted = []
    monkeypatch.setattr(lexical, "tokenize", lambda text: counted.append(text) or tokenize(text))
    grown = Lexicon.build(a + b, first, a)
    # only the new document's chunks and pages were tokenised
    assert len(counted) == len(b) + len(PAGES_B)
    assert all(text in {c.page_content for c in b} or "\n" in text or text in PAGES_B for text in counted)
    fresh = Lexicon.build(a + b)
    assert as_terms(grown, "chunks") == as_terms(fresh, "chunks")
    assert as_terms(grown, "pages") == as_terms(fresh, "pages")
    counted.clear()
    shrunk = Lexicon.build(b, grown, a + b)  # removing a document tokenises nothing
    assert counted == []
    assert as_terms(shrunk, "chunks") == as_terms(Lexicon.build(b), "chunks")
    assert as_terms(shrunk, "pages") == as_terms(Lexicon.build(b), "pages")


def test_a_changed_chunk_under_the_same_id_is_recounted():
    a = chunks("a", PAGES_A)
    first = Lexicon.build(a)
    edited = [Document("completely different words", id=a[0].id, metadata=dict(a[0].metadata)), *a[1:]]
    again = Lexicon.build(edited, first, a)
    assert as_terms(again, "chunks")[0] == {"complet": 1, "differ": 1, "word": 1}
    assert as_terms(again, "pages") == as_terms(Lexicon.build(edited), "pages")


def test_counts_survive_a_round_trip_through_bytes(tmp_path):
    lex = Lexicon.build(chunks("a", PAGES_A) + chunks("b", PAGES_B))
    path = tmp_path / "lexicon.npz"
    path.write_bytes(lex.to_bytes())
    loaded = Lexicon.load(path)
    assert loaded is not None
    assert loaded.vocabulary.terms == lex.vocabulary.terms
    assert as_terms(loaded, "chunks") == as_terms(lex, "chunks")
    assert as_terms(loaded, "pages") == as_terms(lex, "pages")


def _store_with_two_documents(tmp_path):
    c = open_collection(tmp_path)
    add(c, "aaa", PAGES_A)
    add(c, "bbb", PAGES_B)
    return c


def test_a_reopened_collection_searches_without_tokenising_its_chunks(tmp_path, monkeypatch):
    _store_with_two_documents(tmp_path)
    reopened = open_collection(tmp_path)
    assert reopened.lexicon is not None and reopened.lexicon.fits(reopened.documents)
    counted = []
    for module in (tokens, lexical, keyword_index):  # every module that tokenises, by the name it imported
        monkeypatch.setattr(module, "tokenize", lambda text: counted.append(text) or tokenize(text))
    keyword_index.clear_cache()
    hits = retrieval.search("log file of fit", [reopened], embeddings=None, k=3, mode="bm25")
    assert [t for t in counted if t not in {"aaa", "bbb"}] == ["log file of fit"]  # the query (and file names)
    assert [h.document.metadata["doc_id"] for h in hits][:2] == ["bbb", "aaa"]


@pytest.mark.parametrize("damage", ["garbage", "missing", "old-tokenizer", "ids-out-of-range", "other-documents"])
def test_damaged_or_stale_counts_are_recounted_with_the_same_results(tmp_path, damage):
    c = _store_with_two_documents(tmp_path)
    keyword_index.clear_cache()
    expected = [(h.document.id, round(h.score, 5))
                for h in retrieval.search("log file of fit", [c], embeddings=None, k=4, mode="bm25")]
    path = c.path / f"lexicon-{c.version}.npz"
    good = Lexicon.load(path)
    if damage == "garbage":
        path.write_bytes(b"PK\x03\x04 not really a zip")
    elif damage == "missing":
        path.unlink()
    elif damage == "old-tokenizer":
        data = dict(np.load(path, allow_pickle=False))
        data["version"] = np.array([tokens.TOKENIZER_VERSION + 1])
        with path.open("wb") as handle:
            np.savez(handle, **data)
    elif damage == "ids-out-of-range":
        good.chunks.term[0] = len(good.vocabulary) + 7
        path.write_bytes(good.to_bytes())
    else:  # counts of a different chunk list (e.g. left from an older save)
        path.write_bytes(Lexicon.build(chunks("zzz", ["other text"])).to_bytes())
    reopened = open_collection(tmp_path)
    assert reopened.lexicon is None
    keyword_index.clear_cache()
    again = [(h.document.id, round(h.score, 5))
             for h in retrieval.search("log file of fit", [reopened], embeddings=None, k=4, mode="bm25")]
    assert again == expected
    add(reopened, "ccc", ["A third document about fit."])  # the next save writes good counts again
    assert Lexicon.load(reopened.path / f"lexicon-{reopened.version}.npz").fits(reopened.documents)


def test_removal_keeps_counts_in_step(tmp_path):
    c = _store_with_two_documents(tmp_path)
    with c.writing():
        c.remove("aaa")
    reopened = open_collection(tmp_path)
    assert reopened.lexicon is not None
    assert as_terms(reopened.lexicon, "chunks") == as_terms(Lexicon.build(reopened.documents), "chunks")
    hits = retrieval.search("contour", [reopened], embeddings=None, k=3, mode="bm25")
    assert hits == []  # the removed document's words are gone from the keyword index


def test_vocabulary_counts_and_caps():
    vocab = Vocabulary()
    ids, tfs = vocab.count("fit fit fit log")
    assert {vocab.terms[i]: int(f) for i, f in zip(ids, tfs)} == {"fit": 3, "log": 1}
    ids, tfs = vocab.count("x " * 70_000)
    assert int(tfs[0]) == 65_535  # capped, not wrapped around
    assert vocab.lookup(["log", "unknown", "log"]) == [vocab.ids["log"]]


def test_warm_up_builds_the_keyword_index_before_the_first_question(settings, monkeypatch):
    from agent.workspace import Workspace
    from tests.support import add_texts

    add_texts(Workspace(settings), "manual.pdf", ["The fit command appends to the log file.", "Contours."])
    keyword_index.clear_cache()
    monkeypatch.setattr(translation, "_LOADED", [])
    fresh = Workspace(settings)  # a new process's view: nothing loaded yet
    model = str(fresh.chat_collections()[0].embedding_model)
    monkeypatch.setitem(title_vectors.FLOORS, model, 0.5)  # a model whose titles count
    fresh.warm_up().join(timeout=60)
    assert translation._LOADED and translation._LOADED[0] is not None  # the bilingual dictionary is read too
    index = keyword_index.collection_index(fresh.chat_collections()[0])
    assert {"chinese_pages", "title_index"} <= set(vars(index))  # the parts made on first use are made already
    built = []
    monkeypatch.setattr(keyword_index, "CollectionIndex", lambda *a, **k: built.append(a) or pytest.fail("rebuilt"))
    hits = retrieval.search("log file", fresh.chat_collections(), embeddings=None, k=1, mode="bm25")
    assert hits[0].document.metadata["page"] == 1 and built == []


def test_warm_up_of_a_damaged_collection_leaves_the_error_to_the_chat(settings):
    from agent.errors import StoreError
    from agent.workspace import Workspace
    from tests.support import add_texts

    add_texts(Workspace(settings), "manual.pdf", ["Some text."])
    manifest = settings.data_dir / "collections" / "default" / "manifest.json"
    manifest.write_text("{not json")
    fresh = Workspace(settings)
    thread = fresh.warm_up()
    thread.join(timeout=60)
    assert not thread.is_alive()
    with pytest.raises(StoreError, match="reindex"):
        fresh.chat_collections()


def test_threads_stem_at_once_without_errors_or_wrong_stems(monkeypatch):
    """An ingest job tokenises while the warm-up thread reads the dictionary: a stemmer shared by both raised
    "string index out of range" and cached wrong stems."""
    import random
    import string
    import threading

    import snowballstemmer

    monkeypatch.setattr(tokens, "_WORD_TERMS", {})
    rng = random.Random(7)
    words = list({"".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(5, 14))) for _ in range(60_000)})
    errors: list[BaseException] = []

    def stem(part: list[str]) -> None:
        try:
            for word in part:
                tokens._word_terms(word)
        except Exception as exc:  # noqa: BLE001 - the failure under test
            errors.append(exc)

    threads = [threading.Thread(target=stem, args=(words[i::3],)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    reference = snowballstemmer.stemmer("english")
    assert errors == []
    assert all(terms == (reference.stemWord(w),) for w, terms in tokens._WORD_TERMS.items())
