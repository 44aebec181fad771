import hashlib
from dataclasses import dataclass, field

import numpy as np
import pytest
from langchain_community.vectorstores import FAISS
from langchain_community.vectorstores.utils import DistanceStrategy
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from agent.search import keyword_index, lexical, retrieval
from agent.search.embeddings import (
    LOCAL_MODEL_ID,
    LocalEmbeddings,
    embedding_model_id,
    make_embeddings,
)
from agent.search.keyword_index import SearchableCollection
from agent.search.lexical import BM25Index
from agent.search.retrieval import Hit, HybridRetriever, search
from agent.search.store import Snapshot
from agent.search.tokens import query_terms, tokenize


class ConstantEmbeddings(Embeddings):
    """Every text gets the same vector: vector similarity cannot tell documents apart."""

    def embed_documents(self, texts):
        return [self.embed_query(t) for t in texts]

    def embed_query(self, text):
        v = np.ones(8, dtype=np.float32)
        return (v / np.linalg.norm(v)).tolist()


class HashEmbeddings(Embeddings):
    """Bag of hashed tokens: texts sharing words are similar (a stand-in for a real model)."""

    def embed_documents(self, texts):
        return [self.embed_query(t) for t in texts]

    def embed_query(self, text):
        v = np.zeros(64, dtype=np.float32)
        for tok in tokenize(text):
            v[int(hashlib.md5(tok.encode()).hexdigest(), 16) % 64] += 1
        n = np.linalg.norm(v)
        return (v / n if n else v + 1 / 8).tolist()


@dataclass
class Collection:
    docs: list[Document]
    embeddings: Embeddings
    version: int = 1
    store: FAISS | None = field(default=None, repr=False)
    _snap: Snapshot | None = field(default=None, repr=False)

    def __post_init__(self):
        self.rebuild()

    def rebuild(self):
        vectors = self.embeddings.embed_documents([d.page_content for d in self.docs])
        self.store = FAISS.from_embeddings(
            [(d.page_content, v) for d, v in zip(self.docs, vectors)], self.embeddings,
            metadatas=[d.metadata for d in self.docs], ids=[d.metadata["chunk_id"] for d in self.docs],
            distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT)

    def snapshot(self) -> Snapshot:
        """A store snapshot of the current docs, one per version (as agent.search.store publishes)."""
        if self._snap is None or self._snap.version != self.version:
            self._snap = Snapshot(self.version, None, {}, self.docs, None, self.store)
        return self._snap

    @property
    def documents(self):
        return self.docs


def doc(text, file="a.pdf", page=1, i=0):
    return Document(page_content=text, metadata={"file": file, "page": page, "doc_id": file,
                                                 "chunk_id": f"{file}:{page}:{i}", "ocr": False})


def test_tokenizer_english_and_chinese():
    toks = tokenize("How are the Plots DRAWN? 数组切片")
    assert "plot" in toks and "drawn" in toks and "how" not in toks and "the" not in toks
    assert {"数组", "切片", "组切", "数"} <= set(toks)
    # line breaks inside Chinese text do not break a word
    assert "切片" in tokenize("数组切\n片")
    # code-ish tokens survive
    assert {"i++", "++"} <= set(tokenize("能写 i++ 吗"))


def test_names_marked_by_a_symbol_are_not_merged_with_plain_words():
    assert {"c#", "f#", ".net", "net", "i/o"} <= set(tokenize("C#, F#, .NET and I/O"))
    assert "c#" not in tokenize("the C language") and ".net" not in tokenize("ASP.NET and the net")
    docs = [doc("C is a small language; a C program is compiled.", page=1),
            doc("C# runs on .NET; a C# program is compiled to IL.", page=2),
            doc("The net income of the company grew.", page=3)]
    coll = Collection(docs, ConstantEmbeddings())
    assert search("What is C#?", [coll], embeddings=coll.embeddings, k=3)[0].document.metadata["page"] == 2
    assert search("Does it run on .NET?", [coll], embeddings=coll.embeddings, k=3)[0].document.metadata["page"] == 2


def test_chinese_question_words_do_not_rank_pages():
    assert query_terms("新手怎样入门 LaTeX？") == ["新", "手", "新手", "入", "门", "入门", "latex"]
    assert query_terms("What is C#?") == tokenize("What is C#?")
    docs = [doc("为什么要编译两次？怎样安装宏包？怎样设置页边距？什么是导言区？", page=1),
            doc("入门：新手先安装一个发行版，再读一份简短的入门文档。", page=2),
            doc("页码和页眉的设置方法见下一节。", page=3)]
    coll = Collection(docs, ConstantEmbeddings())
    hits = search("新手应该怎样入门？为什么？", [coll], embeddings=coll.embeddings, k=3)
    assert hits[0].document.metadata["page"] == 2


def test_bm25_finds_chinese_term_inside_unsegmented_text():
    texts = ["今天天气很好我们一起去公园散步然后回家吃饭",
             "数组切片由指标从开始直到但不包括结束的元素构成",
             "标签默认将位于路径的中点另一种位置可以设定"]
    index = BM25Index(texts)
    assert int(np.argmax(index.scores("切片"))) == 1
    assert int(np.argmax(index.scores("路径中点在哪里"))) == 2
    assert index.scores("火箭").max() == 0


def test_hybrid_ranks_exact_keyword_first_when_vectors_are_ambiguous():
    docs = [doc("Colours of the surface can be changed with a palette.", page=1),
            doc("The pm3d style draws a colour map on the surface.", page=2),
            doc("Surfaces are drawn as wire meshes by default.", page=3)]
    coll = Collection(docs, ConstantEmbeddings())
    hits = search("pm3d", [coll], embeddings=coll.embeddings, k=3)
    assert hits[0].document.metadata["page"] == 2
    assert all(isinstance(h, Hit) for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert search("pm3d", [coll], embeddings=coll.embeddings, k=3, mode="bm25")[0].document.metadata["page"] == 2


def test_vector_mode_uses_vectors_only():
    docs = [doc("alpha beta gamma", page=1), doc("delta epsilon zeta", page=2)]
    coll = Collection(docs, HashEmbeddings())
    hits = search("epsilon zeta delta", [coll], embeddings=coll.embeddings, k=2, mode="vector")
    assert [h.document.metadata["page"] for h in hits] == [2, 1]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert search("epsilon", [coll], embeddings=coll.embeddings, k=1, hybrid=False)[0].document.metadata["page"] == 2


def test_one_chunk_per_page_first():
    docs = [doc("walls opacity walls opacity default", page=1, i=0),
            doc("walls opacity walls transparent", page=1, i=1),
            doc("walls opacity again walls", page=1, i=2),
            doc("the walls are semi-transparent by default", page=2, i=0),
            doc("unrelated text about fonts", page=3, i=0)]
    coll = Collection(docs, HashEmbeddings())
    hits = search("walls opacity default", [coll], embeddings=coll.embeddings, k=2)
    assert sorted(h.document.metadata["page"] for h in hits) == [1, 2]
    # with k larger than the number of matching pages, more chunks of the same pages follow
    hits = search("walls opacity default", [coll], embeddings=coll.embeddings, k=4, mode="bm25")
    assert len(hits) == 4
    assert len({h.document.metadata["chunk_id"] for h in hits}) == 4


def test_title_names_the_document():
    text = "The default length unit is the PostScript big point, 1/72 inch."
    docs = [doc(text, file="lshort.pdf", page=7), doc(text, file="asymptote-manual.pdf", page=5)]
    coll = Collection(docs, ConstantEmbeddings())
    hits = search("In Asymptote, what is the default length unit?", [coll], embeddings=coll.embeddings, k=2)
    assert hits[0].document.metadata["file"] == "asymptote-manual.pdf"


def test_search_over_several_collections():
    a = Collection([doc("gnuplot fit log file is appended", file="g.pdf")], HashEmbeddings())
    b = Collection([doc("asymptote arrays delete all elements", file="y.pdf")], HashEmbeddings())
    hits = search("delete all array elements", [a, b], embeddings=a.embeddings, k=2)
    assert hits[0].document.metadata["file"] == "y.pdf"
    assert search("", [a, b], embeddings=a.embeddings, k=2) == []
    assert search("gnuplot", [], embeddings=a.embeddings, k=2) == []


def test_hybrid_retriever_returns_documents_with_scores():
    docs = [doc("The fit log file is always appended to.", page=93),
            doc("Binary files may need the swap option.", page=105)]
    coll = Collection(docs, HashEmbeddings())
    retriever = HybridRetriever(collections=[coll], embeddings=coll.embeddings, k=2)
    out = retriever.invoke("Is the fit log file appended?")
    assert out and out[0].metadata["page"] == 93
    assert all(isinstance(d.metadata["score"], float) for d in out)
    assert "score" not in docs[0].metadata  # the stored documents are not modified
    assert isinstance(coll, SearchableCollection)


def test_index_cache_follows_version():
    coll = Collection([doc("first text about contours")], HashEmbeddings())
    ix1 = keyword_index.collection_index(coll)
    assert keyword_index.collection_index(coll) is ix1
    assert not search("histogram", [coll], embeddings=None, k=1, mode="bm25")
    coll.docs = [doc("a histogram of values", page=2)]  # same size: only .version tells
    coll.version += 1
    coll.rebuild()
    ix2 = keyword_index.collection_index(coll)
    assert ix2 is not ix1
    assert search("histogram", [coll], embeddings=None, k=1, mode="bm25")[0].document.metadata["page"] == 2


def test_embedding_model_ids():
    assert embedding_model_id("local") == LOCAL_MODEL_ID == LocalEmbeddings.model_id
    assert embedding_model_id("ollama:nomic-embed-text") == "ollama:nomic-embed-text"
    with pytest.raises(ValueError):
        embedding_model_id("openai:foo")
    emb = make_embeddings("ollama:nomic-embed-text", ollama_host="http://127.0.0.1:9", timeout=1.0)
    assert type(emb.inner).__name__ == "OllamaEmbeddings" and emb.model == "nomic-embed-text"  # wrapped: errors name it
    assert isinstance(make_embeddings("local", ollama_host="http://x:1", timeout=1), LocalEmbeddings)


def test_local_embeddings_multilingual():
    emb = LocalEmbeddings()
    vecs = np.array(emb.embed_documents(["The cat sleeps on the sofa.", "猫在沙发上睡觉。",
                                         "Stock markets fell sharply today.", ""]))
    assert vecs.shape == (4, LocalEmbeddings.dimension)
    assert np.allclose(np.linalg.norm(vecs[:3], axis=1), 1, atol=1e-4)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2]  # a translation is closer than another topic
    q = np.array(emb.embed_query("The cat sleeps on the sofa."))
    assert q @ vecs[0] == pytest.approx(1, abs=1e-4)


def test_pages_whose_chunks_are_not_adjacent_across_collections():
    """Per-page maxima must follow pages, not positions: chunks of one page may be apart."""
    a_docs = [doc("fonts and colours", file="a.pdf", page=1, i=0), doc("histogram boxes", file="a.pdf", page=2, i=0),
              doc("pm3d surface colour map", file="a.pdf", page=1, i=1)]
    b_docs = [doc("arrays and loops", file="b.pdf", page=4, i=0), doc("pm3d palettes", file="b.pdf", page=9, i=0),
              doc("delete array elements", file="b.pdf", page=4, i=1)]
    a, b = Collection(a_docs, HashEmbeddings()), Collection(b_docs, HashEmbeddings())
    hits = search("pm3d surface colour map", [a, b], embeddings=None, k=3, mode="bm25")
    assert [(h.document.metadata["file"], h.document.metadata["page"]) for h in hits] == [
        ("a.pdf", 1), ("b.pdf", 9), ("a.pdf", 1)]  # two pages match; k=3 adds page 1's other chunk
    assert hits[0].document.page_content == "pm3d surface colour map"  # the page's best chunk, not its first
    assert hits[2].document.page_content == "fonts and colours"
    hits = search("delete array elements", [a, b], embeddings=None, k=1, mode="bm25")
    assert hits[0].document.page_content == "delete array elements"
    # vector similarity is per chunk: two collections rank exactly like one holding both
    one = Collection(a_docs + b_docs, HashEmbeddings())
    for query in ("pm3d surface colour map", "array elements", "fonts"):
        split = search(query, [a, b], embeddings=a.embeddings, k=4, mode="vector")
        joined = search(query, [one], embeddings=one.embeddings, k=4, mode="vector")
        assert [(h.document.id, round(h.score, 6)) for h in split] == [(h.document.id, round(h.score, 6)) for h in joined]


def test_contents_page_ranks_below_the_page_it_points_to():
    contents = "\n".join(f"{n}.{i} {title} ... {10 + i}" for n, (i, title) in enumerate(
        [(1, "Illegal read and write errors"), (2, "Use of uninitialised values"), (3, "Illegal frees")], start=4))
    body = ("When a program releases a block of memory twice, or a block it never allocated, Memcheck prints an "
            "error report with the stack of both calls; the report names the free and the allocation sites.")
    docs = [doc(contents, page=3), doc(body, page=12)]
    coll = Collection(docs, ConstantEmbeddings())
    assert lexical.contents_share(docs, [[0], [1]]).tolist() == [1.0, 0.0]
    without = search("illegal frees", [coll], embeddings=coll.embeddings, k=2,
                     weights={**retrieval.WEIGHTS, "contents": 0.0})
    assert without[0].document.metadata["page"] == 3  # the heading list matches the query words best
    hits = search("illegal frees", [coll], embeddings=coll.embeddings, k=2)
    assert [h.document.metadata["page"] for h in hits] == [12, 3]  # still found, below the body page


def test_a_short_question_goes_to_the_section_its_title_names_exactly():
    docs = [doc("Galois counter mode builds on counter mode; counter mode encryption with a hash.", page=52),
            doc("Counter mode turns a block cipher into a stream cipher.", page=43)]
    docs[0].metadata["outline"] = ["Galois counter mode"]
    docs[1].metadata["outline"] = ["7.3.2 Counter mode"]
    coll = Collection(docs, ConstantEmbeddings())

    def ranked(question, **weights):
        hits = search(question, [coll], embeddings=coll.embeddings, k=2, weights={**retrieval.WEIGHTS, **weights})
        return [(h.document.metadata["page"], h.score) for h in hits]

    assert ranked("What is counter mode?", title_match=0.0)[0][0] == 52  # more mentions, a title holding the words
    assert ranked("What is counter mode?")[0][0] == 43  # the title that is just "counter mode"
    long = "What is counter mode encryption with a hash and a block cipher in this library?"
    assert ranked(long) == ranked(long, title_match=0.0)  # longer questions: titles name only a part of them


def test_page_where_the_named_section_starts_ranks_first():
    text = "Memcheck reports errors with a stack trace; the options below change what it reports and how."
    docs = [doc(text + " Memcheck error reports list each error.", page=4), doc(text, page=9)]
    docs[1].metadata["outline"] = ["4.2 Memcheck error reports"]
    coll = Collection(docs, ConstantEmbeddings())
    assert search("memcheck error reports", [coll], embeddings=coll.embeddings, k=2,
                  weights={**retrieval.WEIGHTS, "heading": 0.0, "title_match": 0.0})[0].document.metadata["page"] == 4
    hits = search("memcheck error reports", [coll], embeddings=coll.embeddings, k=2)
    assert [h.document.metadata["page"] for h in hits] == [9, 4]


def test_an_acronym_finds_the_section_titled_by_its_long_form():
    from agent.ingest.acronyms import with_acronyms
    from agent.ingest.chunking import chunk_pages
    from agent.ingest.parse import ParsedPage

    pages = [ParsedPage(30, "The AEAD constructions are Galois/Counter mode (GCM), EAX, and Counter with CBC-MAC "
                            "(CCM). GCM is the fastest of them on most machines.", False, ("AEAD modes",)),
             ParsedPage(52, "Galois counter mode is an AEAD construction combining counter mode with a hash "
                            "over a binary field; it authenticates the message and its associated data.", False,
                        ("Galois counter mode",)),
             ParsedPage(53, "The general interface: GCM functions take a GCM context; GCM keys are set once.", False,
                        ("General GCM interface",))]

    def first(parsed):
        coll = Collection(chunk_pages(parsed, file="nettle.pdf", doc_id="n", chunk_size=800, chunk_overlap=0),
                          ConstantEmbeddings())
        return search("What is GCM?", [coll], embeddings=coll.embeddings, k=3)[0].document.metadata["page"]

    assert with_acronyms(pages)[1].outline == ("Galois counter mode", "GCM")
    assert first(pages) != 52  # the acronym is not on the page that defines what it names
    assert first(with_acronyms(pages)) == 52
    coll = Collection(chunk_pages(with_acronyms(pages), file="nettle.pdf", doc_id="n", chunk_size=800,
                                  chunk_overlap=0), ConstantEmbeddings())
    keyword = search("What is GCM?", [coll], embeddings=None, k=3, mode="bm25")  # no vector: every page "found"
    assert keyword[0].document.metadata["page"] == 52  # its title is its only evidence, and enough


def test_a_section_that_goes_on_over_the_next_page_is_found_where_it_starts():
    start = ("Cachegrind writes its profile to a file that the tools below read. The counts are per function and "
             "per line of source code, and each tool prints them in its own way.\n"
             "5.4. cg_annotate Command-line Options\nIt reads the profile file.")
    cont = ("The command-line options of cg_annotate: --show=A,B,C: the events to show. --sort=A,B,C: the order of "
            "the functions. --threshold=X: drop functions below X percent. --auto=yes: annotate every source file. "
            "--context=N: lines around each. These options of cg_annotate may be given in any order; cg_annotate "
            "options also come from a file.\n5.5. cg_merge Command-line Options\ncg_merge takes the files to merge.")
    other = "5.6. cg_diff Command-line Options\ncg_diff compares two profiles; its options are few."
    docs = [doc(text, file="v.pdf", page=n) for n, text in ((111, start), (112, cont), (113, other))]
    docs += [doc(f"Chapter {n} is about memory errors and leak reports.", file="v.pdf", page=n) for n in range(1, 11)]
    for d, title in zip(docs, ("5.4. cg_annotate Command-line Options", "5.5. cg_merge Command-line Options",
                               "5.6. cg_diff Command-line Options")):
        d.metadata.update(outline=[title], start=0)
    coll = Collection(docs, ConstantEmbeddings())

    def first(**weights):
        hits = search("What command-line options does cg_annotate take?", [coll], embeddings=coll.embeddings, k=3,
                      weights={**retrieval.WEIGHTS, **weights})
        return hits[0].document.metadata["page"]

    assert first(next_section=0.0) == 112  # more of the question's words, on the page the section goes on over
    assert first() == 111  # where the section starts


def test_how_much_of_the_next_page_a_section_covers():
    from agent.search.section_titles import continuation, title_level

    assert [title_level(t) for t in ("5.8. Simulation", "5.8.1.\xa0Cache", "A.2 Notes", "A Simple Race", "GCM")] \
        == [2, 3, 2, None, None]
    keys = [("v.pdf", 4), ("v.pdf", 5), ("v.pdf", 6), ("w.pdf", 7)]
    texts = ["intro text\n5.8. Simulation Details\nshort", "5.8.1. Cache Simulation\nbody " + "x" * 40
             + "\n5.9. Next Part\nend", "plain text of a page", "Galois counter mode\nbody"]
    titles = {0: ["5.8. Simulation Details"], 1: ["5.8.1. Cache Simulation", "5.9. Next Part"],
              3: ["Galois counter mode", "GCM"]}
    last, share = continuation(keys, texts, titles)
    assert last.tolist() == [0, 1, -1, 1]  # an acronym title stands where its long form does, and comes after it
    flat = " ".join(texts[1].split()).lower()
    assert share[0] == pytest.approx(flat.index("5.9.") / len(flat))  # through its subsection, up to 5.9
    assert share[1] == 1.0 and share[2] == 0.0 and share[3] == 0.0  # a page without titles; no next page
    last, share = continuation(keys, texts, {0: ["Simulation Details"], 1: ["Cache Simulation", "Next Part"]})
    assert share[0] == pytest.approx(flat.index("cache simulation") / len(flat))  # unnumbered: the next page's
    # first title ends the section
