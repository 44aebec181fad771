from dataclasses import dataclass

import pytest

from agent.ingest.chunking import chunk_pages, embedding_text, normalise_page_text


@dataclass
class Page:
    number: int
    text: str
    ocr: bool = False


EN = ("Gnuplot is a portable command-line driven graphing utility. It was originally created to allow "
      "scientists and students to visualize mathematical functions and data interactively. "
      "It has grown to support many non-interactive uses such as web scripting. ") * 4
ZH = ("标签默认将位于路径的中点。另一种标签位置可以在构造标签时用一个实数值设定。"
      "位置确定一个相对于路径总弧长的位置！如果需要高精度，可以用模块中定义的过程来产生真圆？"
      "数组切片由指标从开始直到但不包括结束的元素构成；这是一个很长的句子，用来测试分块。") * 3


def test_chunks_stay_on_their_page_and_carry_metadata():
    pages = [Page(1, EN), Page(2, ZH, ocr=True), Page(3, "   \n "), Page(4, "Short last page.")]
    docs = chunk_pages(pages, file="m.pdf", doc_id="abc", chunk_size=200, chunk_overlap=40)
    assert {d.metadata["page"] for d in docs} == {1, 2, 4}  # the blank page yields nothing
    ids = [d.metadata["chunk_id"] for d in docs]
    assert len(ids) == len(set(ids))
    for d in docs:
        meta = d.metadata
        page_text = normalise_page_text(pages[meta["page"] - 1].text)
        assert d.page_content in page_text  # the page's own text, never text of another page
        assert len(d.page_content) <= 200
        assert meta["file"] == "m.pdf" and meta["doc_id"] == "abc"
        assert meta["chunk_id"].startswith(f"abc:{meta['page']}:")
        assert meta["ocr"] is (meta["page"] == 2)
        assert page_text[meta["start"]:meta["start"] + len(d.page_content)] == d.page_content
    # the end of page 1 and the start of page 2 are never in one chunk
    assert not any("web scripting" in d.page_content and "标签" in d.page_content for d in docs)


def test_chunk_ids_are_stable():
    pages = [Page(1, EN), Page(2, ZH)]
    a = chunk_pages(pages, file="m.pdf", doc_id="d", chunk_size=150, chunk_overlap=20)
    b = chunk_pages(pages, file="m.pdf", doc_id="d", chunk_size=150, chunk_overlap=20)
    assert [(d.metadata["chunk_id"], d.page_content) for d in a] == [
        (d.metadata["chunk_id"], d.page_content) for d in b]
    assert a[0].metadata["chunk_id"] == "d:1:0"


def test_chinese_splits_at_sentence_ends():
    docs = chunk_pages([Page(1, ZH)], file="zh.pdf", doc_id="z", chunk_size=60, chunk_overlap=0)
    assert len(docs) > 3
    # every chunk but possibly the last ends with a sentence mark, not mid-sentence
    assert all(d.page_content[-1] in "。！？；" for d in docs[:-1]), [d.page_content for d in docs]
    assert "".join(d.page_content for d in docs) == ZH.strip()


def test_english_prefers_sentence_ends():
    docs = chunk_pages([Page(1, EN)], file="en.pdf", doc_id="e", chunk_size=120, chunk_overlap=0)
    ends = [d.page_content.rstrip()[-1] for d in docs[:-1]]
    assert ends.count(".") >= len(ends) - 1


def test_line_breaks_inside_chinese_are_kept_but_normalised():
    text = "第一行文字\r\n第二行文字。\r\n\r\n\r\n\r\n新段落。"
    assert normalise_page_text(text) == "第一行文字\n第二行文字。\n\n新段落。"


def test_invalid_sizes_raise():
    with pytest.raises(ValueError):
        chunk_pages([Page(1, EN)], file="a", doc_id="a", chunk_size=100, chunk_overlap=100)
    with pytest.raises(ValueError):
        chunk_pages([Page(1, EN)], file="a", doc_id="a", chunk_size=0, chunk_overlap=0)


def test_embedding_text_adds_context_but_page_content_is_untouched():
    page = "4.4 标注（LABEL） 13\n标签默认将位于路径的中点。"
    [doc] = chunk_pages([Page(13, page)], file="asymptote-manual_zh.pdf", doc_id="x", chunk_size=800,
                        chunk_overlap=0)
    assert doc.page_content == page
    assert doc.metadata["heading"] == "4.4 标注（LABEL） 13"
    text = embedding_text(doc)
    assert text.startswith("asymptote manual zh")
    assert text.endswith(page)
