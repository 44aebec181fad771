"""Settings: one typed object, read from defaults, `data/settings.json` and the environment.

Precedence is defaults < settings file < environment variables, so an operator can pin
a value (e.g. `OLLAMA_HOST` for a shared GPU server) that the UI cannot silently change;
the UI shows such fields as locked. Every default works offline on a laptop.

The settings file only stores values that differ from the defaults, so improved default
prompts reach users who never edited theirs. It is written atomically (temp + rename).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from agent import prompts
from agent._files import atomic_write_text, check_collection_name, remove_stale_temps
from agent.errors import SettingsError

SETTINGS_FILE = "settings.json"
DEFAULT_HOST = "http://127.0.0.1:11434"
STALE_TEMP_SECONDS = 60.0  # a settings save takes milliseconds: an older temp file is a killed save's


class Settings(BaseModel):
    """Everything the user or operator can tune. Field docs double as the README's table."""

    model_config = ConfigDict(validate_assignment=True, extra="ignore")

    data_dir: Path = Field(Path("data"), description="Where every file the app writes goes (AGENT_DATA_DIR).")
    ollama_host: str = Field(DEFAULT_HOST, description="Ollama server URL (OLLAMA_HOST).")
    ollama_hosts: list[str] = Field(
        default_factory=list, description="A pool of Ollama URLs, comma-separated (AGENT_OLLAMA_HOSTS); "
        "empty: ollama_host alone.")
    backend: Literal["auto", "ollama", "embedded"] = Field(
        "auto", description="auto: Ollama when it answers, else the embedded offline model.")
    chat_model: str = Field("llama3.2", min_length=1, description="Ollama chat model name.")
    mode: Literal["auto", "agent", "always_retrieve"] = Field(
        "auto", description="agent: the model calls the search tool; always_retrieve: search every turn.")
    temperature: float = Field(0.2, ge=0.0, le=2.0, description="Sampling temperature.")
    num_ctx: int = Field(8192, ge=512, le=1_048_576, description="Context window sent to Ollama (tokens).")
    num_predict: int = Field(1024, ge=16, le=131_072, description="Maximum tokens in one answer.")
    max_answer_chars: int = Field(64_000, ge=1000, le=10_000_000,
                                  description="Longest answer kept (characters); a longer one is cut with a note.")
    repeat_penalty: float = Field(1.1, ge=0.5, le=2.5, description="Penalty for repeated tokens.")
    keep_alive: str = Field("5m", description="How long Ollama keeps the model loaded (e.g. 5m, 1h, -1).")
    request_timeout: float = Field(300.0, gt=0, le=3600, description="Seconds to wait for Ollama (first token on CPU can be slow).")
    answer_timeout_s: float = Field(600.0, ge=5, le=86_400,
                                    description="Longest time one answer may take (seconds); it is cut there with a note.")
    connect_retries: int = Field(3, ge=1, le=10, description="Connection attempts, with exponential backoff.")
    memory_turns: int = Field(5, ge=1, le=100, description="Conversation turns kept in the model's memory.")
    max_searches: int = Field(4, ge=1, le=20, description="Most searches the model may run for one answer (agent mode).")
    retrieval_k: int = Field(5, ge=1, le=50, description="Chunks retrieved per question.")
    hybrid: bool = Field(True, description="Fuse BM25 keyword search with vector search.")
    rerank: bool = Field(False, description="Let the chat model reorder the pages a search found (one more model "
                         "call per search; Ollama models only; not scored offline).")
    chunk_size: int = Field(800, ge=100, le=8000, description="Characters per chunk.")
    chunk_overlap: int = Field(120, ge=0, le=2000, description="Characters shared by neighbouring chunks.")
    embedding: str = Field("local", description="local (offline USE multilingual) or ollama:<model>.")
    ocr: bool = Field(True, description="OCR pages without a usable text layer.")
    max_ocr_pages: int = Field(100, ge=0, le=100_000, description="Most pages OCR'd per PDF (OCR takes seconds a page).")
    max_upload_mb: int = Field(200, ge=1, le=4096, description="Largest file accepted (MB).")
    max_pages: int = Field(3000, ge=1, le=100_000, description="Most pages accepted in one PDF.")
    answer_style: Literal["auto", "generative", "extractive", "both"] = Field(
        "auto", description="extractive: quotes from the excerpts only; both: quotes, then the model's answer; "
                            "auto: both with the embedded model, generative with Ollama.")
    answer_language: Literal["auto", "zh", "en"] = Field("auto", description="auto answers in the question's language.")
    ui_language: Literal["auto", "zh", "en"] = Field("auto", description="Language of the web UI.")
    store: Literal["local", "postgres"] = Field(
        "local", description="local: FAISS + SQLite in the data directory; postgres: shared PostgreSQL + pgvector.")
    database_url: str = Field("", description="libpq URI of the PostgreSQL database when store is postgres "
                                              "(e.g. postgresql://user@/db?host=/run/dir).")
    collections: list[str] = Field(default_factory=lambda: ["default"], min_length=1,
                                   description="Collections the chat searches.")
    system_prompt: str = Field(prompts.SYSTEM_PROMPT, description="System prompt.")
    answer_prompt: str = Field(prompts.ANSWER_PROMPT, description="Answer-with-context prompt.")
    rewrite_prompt: str = Field(prompts.REWRITE_PROMPT, description="Follow-up question rewrite prompt.")

    @field_validator("ollama_host", mode="before")
    @classmethod
    def _normalise_host(cls, value: Any) -> str:
        return normalise_host(str(value))

    @field_validator("ollama_hosts", mode="before")
    @classmethod
    def _normalise_hosts(cls, value: Any) -> list[str]:
        parts = value.split(",") if isinstance(value, str) else list(value or [])
        hosts = [normalise_host(str(part)) for part in parts if str(part).strip()]
        return list(dict.fromkeys(hosts))

    @field_validator("keep_alive")
    @classmethod
    def _check_keep_alive(cls, value: str) -> str:
        value = value.strip()
        if not value or not (value.lstrip("-").isdigit() or value[-1] in "smh" and value[:-1].lstrip("-").replace(".", "", 1).isdigit()):
            raise ValueError("keep_alive must be seconds or a duration such as 30s, 5m, 1h, -1")
        return value

    @field_validator("embedding")
    @classmethod
    def _check_embedding(cls, value: str) -> str:
        return check_embedding_spec(value)

    @model_validator(mode="after")
    def _check_store(self) -> Settings:
        if self.store == "postgres" and not self.database_url.strip():
            raise ValueError("store postgres needs database_url (AGENT_DATABASE_URL), e.g. postgresql://user@/db?host=/run/dir")
        return self

    @field_validator("collections")
    @classmethod
    def _check_collections(cls, value: list[str]) -> list[str]:
        return [check_collection_name(name) for name in value]

    @field_validator("system_prompt", "answer_prompt", "rewrite_prompt")
    @classmethod
    def _check_prompt(cls, value: str, info: Any) -> str:
        prompts.validate(info.field_name, value)
        return value

    @model_validator(mode="after")
    def _check_overlap(self) -> Settings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("chunk_overlap must be smaller than chunk_size")
        return self

    @property
    def settings_path(self) -> Path:
        return self.data_dir / SETTINGS_FILE

    def hosts(self) -> list[str]:
        """The Ollama servers to use: the pool when set, else the single host."""
        return self.ollama_hosts or [self.ollama_host]

    def chat_options(self) -> dict[str, Any]:
        """Generation options in Ollama's names, shared by every backend."""
        return {"temperature": self.temperature, "num_ctx": self.num_ctx,
                "num_predict": self.num_predict, "repeat_penalty": self.repeat_penalty}


#: Environment variable for each settings field. OLLAMA_HOST is Ollama's own name.
ENV_VARS: dict[str, str] = {name: f"AGENT_{name.upper()}" for name in Settings.model_fields}
ENV_VARS["ollama_host"] = "OLLAMA_HOST"


def check_embedding_spec(value: str) -> str:
    """`local` or `ollama:<model>`, stripped; anything else raises ValueError."""
    value = value.strip()
    if value != "local" and not (value.startswith("ollama:") and len(value) > len("ollama:")):
        raise ValueError(f"unknown embedding {value!r}: use 'local' or 'ollama:<model>'")
    return value


def normalise_host(value: str) -> str:
    """Accept what Ollama accepts for OLLAMA_HOST (`host`, `host:port`, a URL) and return a URL."""
    value = value.strip().rstrip("/")
    if not value:
        return DEFAULT_HOST
    if "://" not in value:
        value = "http://" + value
    try:
        parsed = urlparse(value)
        port = parsed.port
    except ValueError as exc:
        raise ValueError(f"malformed Ollama host {value!r}: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.path not in ("", "/"):
        raise ValueError(f"malformed Ollama host {value!r}: expected http://HOST:PORT")
    host = parsed.hostname
    if host == "0.0.0.0":  # the server's bind-all address: connect locally
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{parsed.scheme}://{host}:{port or (443 if parsed.scheme == 'https' else 11434)}"


def env_overrides(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Field -> raw value of every setting pinned by an environment variable."""
    environ = os.environ if environ is None else environ
    return {field: environ[var] for field, var in ENV_VARS.items() if environ.get(var, "").strip()}


def _parse_env_value(field: str, raw: str) -> Any:
    """Lists come as comma-separated text; pydantic parses the rest from strings."""
    if field in ("collections", "ollama_hosts"):
        return [part.strip() for part in raw.split(",") if part.strip()]
    return raw


@dataclass(frozen=True)
class SettingsProblem:
    """Something in settings.json that was ignored while loading: one value, or the whole file
    (`field` empty). The UI shows it; the next save rewrites the file without it."""

    field: str
    error: str

    def __str__(self) -> str:
        if not self.field:
            return f"{SETTINGS_FILE} is unreadable ({self.error}); using defaults until you save settings again."
        return f"{SETTINGS_FILE}: {self.field}: {self.error} (using the default)"


def _read_file(path: Path) -> tuple[dict[str, Any], list[SettingsProblem]]:
    """The stored values, and a problem when the file is unreadable (never raises)."""
    if not path.exists():
        return {}, []
    if not path.is_file():  # a FIFO or device would block start-up on open
        return {}, [SettingsProblem("", "it is not a regular file")]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        return {}, [SettingsProblem("", "it is nested too deeply")]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return {}, [SettingsProblem("", str(exc))]
    if not isinstance(data, dict):
        return {}, [SettingsProblem("", "it does not hold a JSON object")]
    return data, []


def read_settings(data_dir: Path | str | None = None,
                  environ: dict[str, str] | None = None) -> tuple[Settings, list[SettingsProblem]]:
    """The settings, and what was wrong with the settings file (those values fell back to defaults).

    A settings file the app cannot use must not stop the app from starting (the user
    would have no UI to fix it), so each stored value is kept only if the settings stay
    valid with it, checked one by one on top of the environment's values: a value that
    is bad alone or contradicts another (`chunk_overlap` >= `chunk_size`) falls back.
    Bad environment values are the operator's explicit choice and raise SettingsError.
    """
    environ = os.environ if environ is None else environ
    data_dir = Path(data_dir or environ.get("AGENT_DATA_DIR") or "data")
    stored, problems = _read_file(data_dir / SETTINGS_FILE)
    pinned: dict[str, Any] = {field: _parse_env_value(field, raw) for field, raw in env_overrides(environ).items()}
    pinned["data_dir"] = data_dir
    try:
        settings = Settings(**pinned)
    except ValidationError as exc:
        raise SettingsError(f"Invalid setting from the environment: {_first_error(exc)}",
                            "Fix the environment variable (see README, Settings).") from None
    values: dict[str, Any] = {}
    for field, raw in stored.items():
        if field not in Settings.model_fields or field == "data_dir" or field in pinned:
            continue
        try:
            settings = Settings(**{**values, field: raw, **pinned})
            values[field] = raw
        except ValidationError as exc:
            problems.append(SettingsProblem(field, _first_error(exc)))
    return settings, problems


def load_settings(data_dir: Path | str | None = None, environ: dict[str, str] | None = None) -> Settings:
    """The settings (see `read_settings`), for callers that do not report the file's problems."""
    return read_settings(data_dir, environ)[0]


def update_settings(settings: Settings, **changes: Any) -> Settings:
    """Validated copy with `changes` applied; raises SettingsError naming the bad field
    (without a fix: what to do depends on where the value came from)."""
    try:
        return Settings(**{**settings.model_dump(), **changes})
    except ValidationError as exc:
        raise SettingsError(f"Invalid setting: {_first_error(exc)}",
                            code="invalid_setting", params=_error_params(exc, changes)) from None


def save_settings(settings: Settings) -> Path:
    """Write the values that differ from the defaults, atomically."""
    defaults = Settings().model_dump(mode="json")
    current = settings.model_dump(mode="json", exclude={"data_dir"})
    changed = {k: v for k, v in current.items() if v != defaults.get(k)}
    path = settings.settings_path
    atomic_write_text(path, json.dumps(changed, ensure_ascii=False, indent=2, sort_keys=True) + "\n")
    remove_stale_temps(path, older_than=STALE_TEMP_SECONDS)
    return path


def reset_settings(settings: Settings, fields: list[str] | None = None) -> Settings:
    """Settings with `fields` (all when None) back at their defaults; data_dir is kept."""
    defaults = Settings(data_dir=settings.data_dir)
    if fields is None:
        return defaults
    return update_settings(settings, **{f: getattr(defaults, f) for f in fields})


def _error_params(exc: ValidationError, changes: dict[str, Any]) -> dict[str, Any]:
    """The field (and the value given) of the first error, for the UI's wording of it."""
    err = exc.errors()[0]
    loc = [str(p) for p in err.get("loc", ())]
    message = str(err.get("msg", ""))
    named = [f for f in Settings.model_fields if f in message]  # a model validator names its field
    field = loc[0] if loc else min(named, key=message.find, default="")
    return {"field": field, "value": str(changes.get(field, "")), "reason": message.removeprefix("Value error, ")}


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "value"
    return f"{where}: {err.get('msg', 'invalid')}"
