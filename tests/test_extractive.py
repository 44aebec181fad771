"""Extractive answers, condensed excerpts and output clean-up (agent/chat/extractive.py, cleanup.py)."""

from __future__ import annotations

import pytest

from agent.chat.citations import check_citations
from agent.chat.cleanup import loop_start, strip_markup
from agent.chat.extractive import best_sentences, condense, format_quotes, split_sentences
from tests.support import add_library, add_texts, engine_for

ROCKS = ("Geology is the study of the Earth. Igneous rocks form when magma cools and hardens. "
         "Sedimentary rocks form from deposited sediment.")
ZH = "地质学研究地球。火成岩由岩浆冷却凝固而成。沉积岩由沉积物堆积形成！变质岩呢？"


def numbered(*texts: str) -> list[dict]:
    return [{"number": n, "file": f"f{n}.pdf", "page": n, "text": t, "score": 1.0} for n, t in enumerate(texts, 1)]


def test_sentences_are_split_in_english_and_chinese():
    assert split_sentences(ROCKS) == ["Geology is the study of the Earth.", "Igneous rocks form when magma cools and hardens.",
                                      "Sedimentary rocks form from deposited sediment."]
    assert split_sentences(ZH)[:3] == ["地质学研究地球。", "火成岩由岩浆冷却凝固而成。", "沉积岩由沉积物堆积形成！"]
    assert split_sentences("e.g. version 1.2 of the tool.") == ["e.g. version 1.2 of the tool."]


def test_the_sentence_holding_the_question_terms_is_quoted_first_with_its_number():
    sources = numbered("Bread rises because yeast makes gas. Risotto needs stock.", ROCKS)
    quotes = best_sentences("How do igneous rocks form?", sources)
    assert quotes[0].number == 2 and quotes[0].text == "Igneous rocks form when magma cools and hardens."
    assert best_sentences("火成岩是怎样形成的？", numbered(ZH))[0].text == "火成岩由岩浆冷却凝固而成。"
    assert best_sentences("anything", []) == []


def test_embeddings_let_a_chinese_question_find_an_english_sentence():
    from agent.search.embeddings import make_embeddings

    emb = make_embeddings("local", ollama_host="http://127.0.0.1:1", timeout=1)
    quotes = best_sentences("火成岩是怎样形成的？", numbered(ROCKS), emb.embed_documents, limit=1)
    assert quotes[0].text == "Igneous rocks form when magma cools and hardens."


def test_quotes_cite_their_excerpts_and_a_documents_own_brackets_are_not_citations():
    sources = numbered("See the table [3] for the figures of igneous rocks.", "Magma forms igneous rocks.")
    text = format_quotes(best_sentences("igneous rocks", sources))
    assert text.startswith("> ") and "[3]" not in text and "［3］" in text
    cited, invented = check_citations(text, sources)
    assert invented == [] and all(s["cited"] for s in cited)


def test_condensed_excerpts_keep_the_best_sentences_in_reading_order_within_the_limit():
    long = " ".join(f"Filler sentence number {i} about nothing." for i in range(30)) + " Igneous rocks form from magma."
    (short,) = condense("igneous rocks", numbered(long), 120)
    assert len(short["text"]) <= 120 and short["text"].endswith("Igneous rocks form from magma.")
    assert condense("x", numbered(ROCKS), 1000)[0]["text"] == ROCKS  # already short: unchanged


def test_a_loop_is_cut_after_its_first_copy_and_a_table_rule_is_not_a_loop():
    answer = "The answer is simple. " + "Rocks form from magma when it cools down. " * 3
    cut = loop_start(answer)
    assert cut is not None and answer[:cut].count("Rocks form from magma") == 1
    assert loop_start("| a | b |\n|" + "-" * 200 + "|") is None
    assert loop_start("Short and fine.") is None


def test_prompt_markup_is_stripped_and_file_page_citations_become_numbers():
    sources = numbered("x", "y")
    text = strip_markup('</document>\nQuestion / 问题: what?\nMagma [f2.pdf p.2] and [other.pdf p.9].', sources)
    assert text == "Magma [2] and [other.pdf p.9]."


@pytest.fixture
def library(workspace):
    return add_library(workspace)


def test_answer_style_extractive_quotes_without_any_model_call(library, ollama):
    answer = engine_for(library, answer_style="extractive").ask("How do igneous rocks form?")
    assert ollama.chat_requests() == [] and answer.text.startswith("> Igneous rocks form from magma.")
    assert {s["file"] for s in answer.sources if s.get("cited")} == {"geology.pdf"}


def test_extractive_with_nothing_found_says_so_without_an_error_and_keeps_the_turn(workspace, ollama):
    answer = engine_for(workspace, answer_style="extractive").ask("How do igneous rocks form?", "e1")
    assert ollama.chat_requests() == [] and answer.text == "" and not answer.error
    assert [n["code"] for n in answer.notes] == ["nothing_found"] and answer.as_json()["nothing_found"]
    stored = workspace.conversations.history("e1", turns=1)
    assert stored[0].content == "How do igneous rocks form?"


def test_excerpts_of_fragments_only_are_quoted_whole():
    quotes = best_sentences("Which ports?", numbered("Port 80", "Port 443"))
    assert sorted(q.text for q in quotes) == ["Port 443", "Port 80"]


def test_answer_style_both_quotes_first_then_the_models_answer(library, ollama):
    ollama.reply("Magma [1].")
    answer = engine_for(library, answer_style="both").ask("How do igneous rocks form?")
    quotes, summary = answer.text.rsplit("\n\n", 1)
    assert quotes.startswith("> ") and summary == "Magma [1]."
    assert engine_for(library).answer_style() == "generative"  # auto, with an Ollama model


def test_a_looping_answer_is_cut_and_said_so(library, ollama):
    ollama.reply("Magma [1]. " + "Rocks form from magma when it cools down. " * 20)
    answer = engine_for(library).ask("How do igneous rocks form?")
    assert answer.text.count("Rocks form from magma when it cools down.") == 1
    assert {"code": "repetition_stopped", "params": {}} in answer.notes


def test_echoed_prompt_markup_never_reaches_the_stored_answer(library, ollama):
    ollama.reply("</document>\nQuestion / 问题: How do igneous rocks form?\nFrom magma [geology.pdf p.2].")
    engine = engine_for(library)
    answer = engine.ask("How do igneous rocks form?", "m1")
    assert answer.text.startswith("From magma [") and "document" not in answer.text and "问题" not in answer.text
    stored = library.conversations.history("m1", turns=1)[-1].content
    assert stored == answer.text


def test_chinese_excerpts_are_condensed_so_two_fit_a_small_window(workspace, ollama):
    page = "。".join(f"第{i}段讲的是别的事情，和问题没有关系" for i in range(60)) + "。火成岩由岩浆冷却凝固而成。"
    add_texts(workspace, "长文.pdf", [page, page.replace("火成岩", "玄武岩")])
    ollama.reply("岩浆 [1][2]。")
    answer = engine_for(workspace, num_ctx=1200, num_predict=128).ask("火成岩是怎样形成的？")
    assert len(answer.sources) >= 2
    prompt = ollama.last_chat()["messages"][-1]["content"]
    assert prompt.count("<document") >= 2 and "火成岩由岩浆冷却凝固而成" in prompt
