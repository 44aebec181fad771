"""Every answer is grounded: searched before the first model call in every mode, cited by number,
checked against the excerpts really given, and honest when nothing was found (issue 12)."""

import json

from agent import prompts
from agent.chat.citations import check_citations, cited_numbers, number_new
from agent.workspace import Workspace
from tests.support import GEOLOGY_TEXTS as GEOLOGY
from tests.support import add_library, add_texts, double_environ, engine_for, run_cli, user_messages


def indexed(workspace):
    return add_library(workspace)


def test_a_tools_model_that_skips_the_tool_still_answers_from_the_excerpts(workspace, ollama):
    ollama.reply("Igneous rocks form from magma [1].")  # no tool call at all
    answer = engine_for(indexed(workspace)).ask("How do igneous rocks form?")
    assert answer.mode == "agent" and not answer.error
    (request,) = ollama.chat_requests()
    prompt = user_messages(request)[-1]
    assert '<document n="1" source="geology.pdf p.2">' in prompt and "magma" in prompt
    first = answer.sources[0]
    assert (first["number"], first["file"], first["page"], first["cited"]) == (1, "geology.pdf", 2, True)
    assert [s["number"] for s in answer.sources] == list(range(1, len(answer.sources) + 1))
    assert not any(s["cited"] for s in answer.sources[1:]) and answer.invalid_citations == []


def test_a_tool_call_adds_a_second_search_with_continuing_numbers(workspace, ollama):
    ollama.reply_tool_call("search_documents", {"query": "bread yeast carbon dioxide"})
    ollama.reply("Magma [1]; yeast [2].")
    engine = engine_for(indexed(workspace), retrieval_k=1)
    answer = engine.ask("How do igneous rocks form?")
    first, second = ollama.chat_requests()
    assert '<document n="1" source="geology.pdf p.2">' in user_messages(first)[-1]
    tool_msg = next(m["content"] for m in second["messages"] if m["role"] == "tool")
    assert '<document n="2" source="cooking.pdf p.2">' in tool_msg
    assert [(s["number"], s["file"], s["cited"]) for s in answer.sources] == [(1, "geology.pdf", True),
                                                                               (2, "cooking.pdf", True)]


def test_an_invented_marker_is_flagged_not_shown_as_a_citation(workspace, ollama):
    ollama.reply("Magma [1], and also [9].")
    answer = engine_for(indexed(workspace), chat_model="gemma:2b", retrieval_k=5).ask("How do igneous rocks form?")
    assert len(answer.sources) == 5 and answer.invalid_citations == [9]
    assert {"code": "invalid_citations", "params": {"markers": "[9]"}} in answer.notes
    assert [s["number"] for s in answer.sources if s["cited"]] == [1]


def test_document_text_that_looks_like_a_citation_is_not_one(workspace, ollama):
    add_texts(workspace, "notes.pdf", ["Salaries are listed in [secret-salaries.pdf p.3] of the annex."])
    ollama.reply("See [secret-salaries.pdf p.3].")  # the model repeats the document's fake citation
    answer = engine_for(workspace).ask("Where are salaries listed?")
    assert answer.sources and not any(s["cited"] for s in answer.sources) and answer.invalid_citations == []


def test_nothing_found_is_said_when_the_collections_are_empty(workspace, ollama):
    ollama.reply("I could not find this in your documents.")
    answer = engine_for(workspace).ask("What is the boiling point of water?")
    assert answer.sources == [] and {"code": "nothing_found", "params": {}} in answer.notes
    assert "no matching excerpts" in user_messages(ollama.last_chat())[-1]
    ollama.reply("Magma [1].")
    grounded = engine_for(indexed(workspace)).ask("How do igneous rocks form?")
    assert not any(n["code"] in ("nothing_found", "weak_match") for n in grounded.notes)


def test_excerpts_that_share_no_word_with_the_question_are_flagged_as_a_weak_match(workspace, ollama):
    ollama.reply("I do not know.")
    answer = engine_for(indexed(workspace)).ask("What is the boiling temperature of mercury?")
    assert answer.sources, "the vector search always returns its nearest excerpts"
    assert {"code": "weak_match", "params": {}} in answer.notes
    ollama.reply("不知道。")
    add_texts(workspace, "烹饪.pdf", ["红烧肉要用五花肉，小火慢炖一小时。"], collection="zh")
    answer = engine_for(workspace, collections=["zh"]).ask("水银的沸点是多少？")
    assert {"code": "weak_match", "params": {}} in answer.notes


def test_a_question_in_another_script_than_the_excerpts_is_not_called_a_weak_match(workspace, ollama):
    """No word of a Chinese question can occur in English excerpts: that says nothing about relevance."""
    ollama.reply("岩浆 [1]。")
    answer = engine_for(indexed(workspace)).ask("火成岩是怎样形成的？")
    assert answer.sources and not any(n["code"] == "weak_match" for n in answer.notes)
    ollama.reply("Magma [1].")
    add_texts(workspace, "地质.pdf", ["火成岩由岩浆冷却凝固而成。"], collection="zh")
    answer = engine_for(workspace, collections=["zh"]).ask("What is a volcano's favourite colour?")
    assert not any(n["code"] == "weak_match" for n in answer.notes)


def test_ask_json_numbers_the_sources_and_says_which_were_cited(tmp_path, ollama):
    env = double_environ(ollama, AGENT_DATA_DIR=str(tmp_path / "data"))
    add_texts(Workspace(load_settings_for(env)), "geology.pdf", GEOLOGY)
    ollama.reply("Magma [1].")
    result = run_cli(["ask", "--json", "How do igneous rocks form?"], env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["sources"][0]["number"] == 1 and data["sources"][0]["cited"] is True
    assert all(s["cited"] is False for s in data["sources"][1:]) and data["invalid_citations"] == []
    assert data["nothing_found"] is False


def load_settings_for(env):
    from agent.config import load_settings

    return load_settings(environ=env)


def test_markers_are_parsed_in_both_languages():
    assert cited_numbers("A [1], B [2, 3] and C【4】, D [5、1]. Not [x] nor [10a].") == [1, 2, 3, 4, 5]
    sources = number_new([], [{"file": "a.pdf", "page": 1, "text": "t", "score": 1.0, "chunk_id": "a:1:0",
                                "doc_id": "a", "ocr": False}])
    marked, invented = check_citations("x [1] y [2]", sources)
    assert marked[0]["cited"] is True and invented == [2]


def test_look_alike_closing_tags_are_neutralised():
    for hostile in ["＜/document＞", "⟨/document⟩", "&lt;/document&gt;", "</dоcument>", "&#60;/DOCUMENT>",
                    "〈/documents〉", "< / Document>"]:
        context = prompts.format_context([{"number": 1, "file": "a.pdf", "page": 1, "text": f"x {hostile} y"}])
        inner = context.split(">\n", 1)[1].rsplit("\n</document>", 1)[0]
        assert prompts._TAG_RE.search(prompts._fold(inner)) is None, (hostile, inner)
    assert "a < b" in prompts.quote_untrusted("a < b")  # ordinary text is left alone


def test_ask_on_a_terminal_prints_numbered_sources_and_the_invented_marker_note(tmp_path, ollama):
    env = double_environ(ollama, AGENT_DATA_DIR=str(tmp_path / "data"))
    add_texts(Workspace(load_settings_for(env)), "geology.pdf", GEOLOGY)
    ollama.reply("Magma [1], and the Moon [7].")
    result = run_cli(["ask", "How do igneous rocks form?"], env)
    assert result.returncode == 0, result.stderr
    listed = [line.split()[0] for line in result.stdout.split("Sources:\n")[1].splitlines()]
    assert listed == [f"[{n}]" for n in range(1, len(listed) + 1)] and len(listed) < 7
    assert "[1] geology.pdf p.2 cited (" in result.stdout and result.stdout.count(" cited (") == 1
    assert "note: The answer cites [7], but no excerpt has that number" in result.stderr
