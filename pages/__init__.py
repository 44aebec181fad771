"""Streamlit glue shared by the pages: cached heavy objects, the per-run context, errors.

All logic lives in `agent/`; this module only decides what is cached and how things
are shown. Settings are re-read from disk on every run (cheap), and the engine is
cached per settings value, so a saved change takes effect on the next question.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from agent.app.i18n import LANGUAGES, t
from agent.app.jobs import JobRegistry
from agent.app.settings_edit import pinned_fields, resolve_language
from agent.app.status import OllamaStatus, ollama_status
from agent.chat.engine import ChatEngine
from agent.chat.llm import Backend, list_models
from agent.config import Settings, SettingsProblem, load_settings, read_settings
from agent.errors import AgentError, OllamaUnreachableError
from agent.workspace import Workspace

LANG_KEY = "ui_lang"  # the language this browser session chose (sidebar switch or a saved setting)
ENTRY_KEY = "_entry_point_ran"
SESSION_KEY = "_session_id"


def _settings_key(settings: Settings) -> str:
    return settings.model_dump_json()


@st.cache_resource(show_spinner=False, max_entries=4)
def _base_workspace(data_dir: str, embedding: str, embed_host: str, _settings: Settings) -> Workspace:
    """One workspace per data dir and embedder (and Ollama host for Ollama embeddings): it
    holds the loaded collections, the slow part. `_settings` is not part of the key."""
    workspace = Workspace(_settings)
    workspace.warm_up()
    return workspace


@st.cache_resource(show_spinner=False, max_entries=8, hash_funcs={Settings: _settings_key})
def _engine(settings: Settings, ollama_up: bool) -> ChatEngine:
    """A chat engine per settings value (and per Ollama reachability, so the backend is
    re-resolved when the server comes or goes); collections are shared via with_settings."""
    embed_host = settings.ollama_host if settings.embedding != "local" else ""
    base = _base_workspace(str(settings.data_dir), settings.embedding, embed_host, settings)
    return ChatEngine(base.with_settings(settings))


@st.cache_resource(show_spinner=False)
def job_registry(data_dir: str) -> JobRegistry:
    """The background jobs (uploads, re-index) of one data directory: they outlive every run
    and page change, and any session can follow their progress."""
    return JobRegistry()


def session_id() -> str:
    """This browser session's id: the owner of the jobs it starts (their results are its to report)."""
    return st.session_state.setdefault(SESSION_KEY, uuid.uuid4().hex)


@st.cache_data(show_spinner=False, ttl=5, hash_funcs={Settings: _settings_key})
def _status(settings: Settings) -> OllamaStatus:
    return ollama_status(settings)


@st.cache_data(show_spinner=False, ttl=30)
def _models(host: str, settings_json: str) -> list[Any]:
    return list_models(Settings.model_validate_json(settings_json))


@dataclass
class AppContext:
    """What every page needs for one script run."""

    settings: Settings
    lang: str
    status: OllamaStatus
    engine: ChatEngine
    pinned: dict[str, str] = field(default_factory=dict)
    problems: list[SettingsProblem] = field(default_factory=list)

    @property
    def workspace(self) -> Workspace:
        return self.engine.workspace

    def t(self, key: str, default: str | None = None, **values: Any) -> str:
        return t(key, self.lang, default, **values)

    def backend(self) -> Backend:
        """The resolved chat backend (raises AgentError, e.g. model not pulled)."""
        return self.engine.backend()

    def models(self) -> list[Any]:
        """Installed Ollama models (raises AgentError when Ollama is unreachable)."""
        return _models(self.settings.ollama_host, self.settings.model_dump_json())

    @property
    def jobs(self) -> JobRegistry:
        return job_registry(str(self.settings.data_dir))


def ui_language(settings: Settings | None = None) -> str:
    """The UI language for this run: the session's choice, else settings.ui_language / browser."""
    chosen = st.session_state.get(LANG_KEY)
    if chosen in LANGUAGES:
        return chosen
    if settings is None:
        try:
            settings = load_settings()
        except AgentError:
            return resolve_language("auto", browser_locale())
    return resolve_language(settings.ui_language, browser_locale())


def navigation_pages(lang: str) -> list[Any]:
    # Page icons are emoji on purpose: a Material icon as page (favicon) icon makes the
    # browser fetch it from fonts.gstatic.com, and this app must not contact the internet.
    return [
        st.Page("pages/chat.py", title=t("page_chat", lang), icon="💬", url_path="chat", default=True),
        st.Page("pages/documents.py", title=t("page_documents", lang), icon="📚", url_path="documents"),
        st.Page("pages/settings.py", title=t("page_settings", lang), icon="⚙️", url_path="settings"),
    ]


def set_page_config() -> None:
    # emoji, not a Material icon: see navigation_pages
    st.set_page_config(page_title="PDF Chat", page_icon="📄", layout="wide")


def entry_point() -> None:
    """streamlit_app.py: page config and navigation, then the selected page."""
    set_page_config()
    st.session_state[ENTRY_KEY] = True
    st.navigation(navigation_pages(ui_language())).run()


def set_language(lang: str) -> None:
    """Make `lang` this session's UI language (the sidebar switch follows on the next run)."""
    st.session_state[LANG_KEY] = lang


def build_context() -> AppContext:
    """Read the settings from disk and get the cached engine; stop the page on a fatal error."""
    try:
        settings, problems = read_settings()
    except AgentError as err:
        show_error(err)
        st.stop()
    lang = ui_language(settings)
    status = _status(settings) if settings.backend != "embedded" else OllamaStatus(False, settings.ollama_host)
    engine = _engine(settings, status.reachable)
    return AppContext(settings, lang, status, engine, pinned_fields(), problems)


def _language_switch(lang: str) -> None:
    """The sidebar's language switch. Its key names the current language, so a new language
    draws a new widget: the browser keeps the value it last saw for a widget it is shown
    again, and sent that stale value back after a saved language change (the page flipped
    back and the Settings form's next save was lost)."""
    key = f"{LANG_KEY}-switch-{lang}"
    st.segmented_control(t("language", lang), options=list(LANGUAGES), format_func=LANGUAGES.get, default=lang,
                         key=key, required=True, label_visibility="collapsed",
                         on_change=lambda: set_language(st.session_state[key]))


def _app_test() -> bool:
    """True under streamlit.testing's AppTest, which runs every page file directly (legacy
    `pages/` mode, with the same page ids as ours); st.rerun there would drop the test's input."""
    from streamlit import config  # AppTest patches config.get_option, not st.get_option

    try:
        return bool(config.get_option("global.appTest"))
    except Exception:  # noqa: BLE001 - option unknown to this Streamlit version
        return False


def page_setup() -> AppContext:
    """Start of every page: fresh context (settings re-read), language switch, sidebar status.

    Everything is rebuilt here on every run, never carried over in session state, because
    Streamlit may run a page file without running streamlit_app.py first (see below).
    """
    if not st.session_state.pop(ENTRY_KEY, False):
        # Streamlit ran this page file directly, as a legacy `pages/` directory app (the first
        # run of a new server opened at /documents, say). Register our navigation, which ends
        # legacy mode for the whole server process, and start over through streamlit_app.py.
        # Nothing is lost: this only happens on a page load, before any widget was drawn.
        if not _app_test():
            st.navigation(navigation_pages(ui_language()))
            st.rerun()
    ctx = build_context()
    with st.sidebar:
        _language_switch(ctx.lang)
    sidebar_status(ctx)
    return ctx


def refresh_models() -> None:
    _models.clear()
    _status.clear()


def browser_locale() -> str | None:
    try:
        return st.context.locale
    except Exception:  # noqa: BLE001 - older Streamlit or no browser context
        return None


def error_text(err: BaseException | str) -> str:
    if isinstance(err, AgentError):
        return f"{err.message}  \n{err.fix}" if err.fix else err.message
    return str(err)


def show_error(err: BaseException | str, *, where: Any = None) -> None:
    """An error box with the message and the fix, never a traceback."""
    (where or st).error(error_text(err), icon=":material/error:")


def sidebar_status(ctx: AppContext) -> None:
    """Ollama reachable or not, chat model and tools, embeddings, collections, embedded notice."""
    s, T = ctx.settings, ctx.t
    with st.sidebar:
        if s.backend == "embedded":
            st.caption(T("status_ollama_off_forced"))
        elif ctx.status.reachable:
            st.caption(T("status_ollama_ok", host=s.ollama_host, version=ctx.status.version))
        else:
            st.error(error_text(AgentError(ctx.status.message or T("status_ollama_down", host=s.ollama_host),
                                           ctx.status.fix)), icon=":material/power_off:")
        try:
            backend = ctx.backend()
        except AgentError as err:
            backend = None
            said_above = isinstance(err, OllamaUnreachableError) and s.backend != "embedded" and not ctx.status.reachable
            if not said_above:
                show_error(err)
        if backend is not None:
            tools = T("tools_yes") if backend.tools else T("tools_no")
            st.caption(T("status_model", model=backend.model_name, tools=tools))
            if backend.notice:
                st.warning(T("embedded_notice", notice=backend.notice), icon=":material/science:")
        st.caption(T("status_embedding", model=ctx.workspace.embedding_model))
        st.caption(T("status_collections", names=", ".join(s.collections)))
        for problem in ctx.problems:
            st.warning(settings_problem_text(ctx, problem), icon=":material/warning:")


def settings_problem_text(ctx: AppContext, problem: SettingsProblem) -> str:
    """A settings-file problem in the UI language (the error itself comes from validation)."""
    if not problem.field:
        return ctx.t("settings_file_unreadable", path=str(ctx.settings.settings_path), error=problem.error)
    return ctx.t("settings_value_dropped", field=problem.field, error=problem.error)

