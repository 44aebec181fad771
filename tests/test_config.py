"""Settings: precedence, validation, atomic persistence, and corrupt-file tolerance."""

import json

import pytest

from agent import prompts
from agent.config import (
    ENV_VARS,
    Settings,
    load_settings,
    normalise_host,
    read_settings,
    reset_settings,
    save_settings,
    update_settings,
)
from agent.errors import SettingsError


def test_defaults_work_offline(tmp_path):
    s, problems = read_settings(tmp_path, environ={})
    assert s.ollama_host == "http://127.0.0.1:11434"
    assert s.data_dir == tmp_path
    assert s.memory_turns == 5 and s.backend == "auto" and s.embedding == "local"
    assert problems == []


def test_environment_overrides_file(tmp_path):
    (tmp_path / "settings.json").write_text(json.dumps({"temperature": 0.7, "chat_model": "qwen3"}))
    s = load_settings(tmp_path, environ={"AGENT_CHAT_MODEL": "mistral", "OLLAMA_HOST": "gpu-box:11500",
                                         "AGENT_COLLECTIONS": "a, b"})
    assert s.temperature == 0.7  # from the file
    assert s.chat_model == "mistral"  # the environment wins
    assert s.ollama_host == "http://gpu-box:11500"
    assert s.collections == ["a", "b"]


def test_data_dir_from_environment(tmp_path):
    assert load_settings(environ={"AGENT_DATA_DIR": str(tmp_path)}).data_dir == tmp_path


def test_save_writes_only_changes_atomically(tmp_path):
    s = update_settings(load_settings(tmp_path, environ={}), retrieval_k=8)
    path = save_settings(s)
    assert json.loads(path.read_text()) == {"retrieval_k": 8}
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]  # no temp file left behind
    assert load_settings(tmp_path, environ={}).retrieval_k == 8


@pytest.mark.parametrize("field,value", [("retrieval_k", -1), ("num_ctx", 0), ("temperature", 5),
                                         ("ollama_host", "http://a b:x"), ("ollama_host", "ftp://host"),
                                         ("keep_alive", "soon"), ("embedding", "openai"),
                                         ("collections", ["../x"]), ("chunk_overlap", 5000)])
def test_out_of_range_values_are_refused(tmp_path, field, value):
    s = load_settings(tmp_path, environ={})
    with pytest.raises(SettingsError) as err:
        update_settings(s, **{field: value})
    assert field in str(err.value)


def test_bad_environment_value_is_a_clear_error(tmp_path):
    with pytest.raises(SettingsError, match="AGENT_RETRIEVAL_K|retrieval_k"):
        load_settings(tmp_path, environ={"AGENT_RETRIEVAL_K": "-3"})


def test_corrupt_settings_file_falls_back_to_defaults_and_says_so(tmp_path):
    (tmp_path / "settings.json").write_text("{not json")
    s, problems = read_settings(tmp_path, environ={})
    assert s.retrieval_k == Settings().retrieval_k
    assert "unreadable" in str(problems[0]) and problems[0].field == ""
    assert (tmp_path / "settings.json").read_text() == "{not json"  # nothing overwritten behind the user's back


def test_invalid_stored_value_only_resets_that_field(tmp_path):
    (tmp_path / "settings.json").write_text(json.dumps({"retrieval_k": -5, "temperature": 0.9}))
    s, problems = read_settings(tmp_path, environ={})
    assert s.retrieval_k == 5 and s.temperature == 0.9
    assert [p.field for p in problems] == ["retrieval_k"]


def test_prompt_edits_are_validated_and_resettable(tmp_path):
    s = load_settings(tmp_path, environ={})
    with pytest.raises(SettingsError, match="missing \\{context\\}"):
        update_settings(s, answer_prompt="Answer {question}")
    with pytest.raises(SettingsError, match="unknown \\{foo\\}"):
        update_settings(s, rewrite_prompt="{history} {question} {foo}")
    edited = update_settings(s, system_prompt="Be brief. {language}")
    assert reset_settings(edited, ["system_prompt"]).system_prompt == prompts.SYSTEM_PROMPT


def test_host_normalisation():
    assert normalise_host("0.0.0.0") == "http://127.0.0.1:11434"
    assert normalise_host("https://example.test") == "https://example.test:443"
    assert normalise_host("[::1]:8080") == "http://[::1]:8080"


def test_every_field_has_an_environment_variable():
    assert ENV_VARS["ollama_host"] == "OLLAMA_HOST"
    assert ENV_VARS["data_dir"] == "AGENT_DATA_DIR"
    assert set(ENV_VARS) == set(Settings.model_fields)


def test_every_field_is_documented_in_the_readme_settings_table():
    from pathlib import Path

    table = Path(__file__).resolve().parents[1].joinpath("README.md").read_text(encoding="utf-8")
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert [f for f in Settings.model_fields if not any(f"`{f}`" in row.split(" | ")[0] for row in rows)] == []


def test_contradicting_stored_values_fall_back_instead_of_locking_the_app(tmp_path):
    # A hand edit: each value is valid alone, together they are not (issue 13, item 4).
    (tmp_path / "settings.json").write_text(json.dumps({"chunk_size": 200, "chunk_overlap": 300, "temperature": 0.4}))
    s, problems = read_settings(tmp_path, environ={})  # no SettingsError blaming the environment
    assert (s.chunk_size, s.chunk_overlap, s.temperature) == (200, 120, 0.4)  # only the offending value dropped
    assert [p.field for p in problems] == ["chunk_overlap"]
    assert "chunk_overlap must be smaller than chunk_size" in str(problems[0]) and "default" in str(problems[0])


def test_a_stored_value_that_contradicts_the_environment_is_the_one_dropped(tmp_path):
    (tmp_path / "settings.json").write_text(json.dumps({"chunk_size": 200}))
    s, problems = read_settings(tmp_path, environ={"AGENT_CHUNK_OVERLAP": "300"})
    assert (s.chunk_size, s.chunk_overlap) == (800, 300)  # the operator's value stands
    assert [p.field for p in problems] == ["chunk_size"]
    with pytest.raises(SettingsError, match="environment"):  # inconsistent environment values are its own fault
        read_settings(tmp_path, environ={"AGENT_CHUNK_SIZE": "200", "AGENT_CHUNK_OVERLAP": "300"})


def test_load_problems_are_returned_not_stuck_on_the_model(tmp_path):
    (tmp_path / "settings.json").write_text(json.dumps({"retrieval_k": -5}))
    s, problems = read_settings(tmp_path, environ={})
    assert problems and not hasattr(s, "_problems") and s.__pydantic_private__ in (None, {})
    assert "problems" not in s.model_dump()


def test_temp_files_of_killed_settings_saves_are_cleaned(tmp_path):
    import os
    import time

    stale = tmp_path / ".settings.json.abc123.tmp"
    live = tmp_path / ".settings.json.def456.tmp"  # another process may be writing this one right now
    other = tmp_path / ".other.json.abc123.tmp"
    for path in (stale, live, other):
        path.write_text("{")
    os.utime(stale, (time.time() - 3600,) * 2)
    os.utime(other, (time.time() - 3600,) * 2)
    save_settings(update_settings(load_settings(tmp_path, environ={}), retrieval_k=7))
    assert not stale.exists() and live.exists() and other.exists()
    assert json.loads((tmp_path / "settings.json").read_text()) == {"retrieval_k": 7}
