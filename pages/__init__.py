"""Streamlit glue shared by the pages: cached heavy objects, the per-run context, errors.

All logic lives in `agent/`; this module only decides what is cached and how things
are shown. Settings are re-read from disk on every run (cheap), and the engine is
cached per settings value, so a saved change takes effect on the next question.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

import streamlit as st

from agent.app import i18n
from agent.app.i18n import LANGUAGES, t
from agent.app.jobs import JobRegistry
from agent.app.settings_edit import pinned_fields, resolve_language, save_changes
from agent.app.status import HostHealth, OllamaStatus, ollama_status, pool_health
from agent.chat.engine import ChatEngine
from agent.chat.llm import Backend, ModelInfo, list_models
from agent.chat.models import PullJob
from agent.config import Settings, SettingsProblem, load_settings, read_settings
from agent.errors import AgentError
from agent.search.vector_index import use_one_thread
from agent.workspace import Workspace

LANG_KEY = "ui_lang"  # the language chosen in the sidebar: a plain key, so it survives page changes
LANG_WIDGET = "_ui_lang_switch"  # the switch itself: Streamlit drops a widget's state on a page change
ENTRY_KEY = "_entry_point_ran"
SESSION_KEY = "_session_id"
OFFER_KEY = "offer_collection"  # a collection just filled with documents that the chat does not search
REPROBE_SECONDS = 3  # while Ollama is down, its status is re-checked this often (no click needed)


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
    embed_host = ",".join(settings.hosts()) if settings.embedding != "local" else ""
    base = _base_workspace(str(settings.data_dir), settings.embedding, embed_host, settings)
    return ChatEngine(base.with_settings(settings))


@st.cache_data(show_spinner=False, ttl=5, hash_funcs={Settings: _settings_key})
def _status(settings: Settings) -> OllamaStatus:
    return ollama_status(settings)


@st.cache_data(show_spinner=False, ttl=5, hash_funcs={Settings: _settings_key})
def _pool(settings: Settings) -> list[HostHealth]:
    return pool_health(settings)


@st.cache_data(show_spinner=False, ttl=30)
def _models(host: str, settings_json: str) -> list[Any]:
    return list_models(Settings.model_validate_json(settings_json))


@st.cache_resource(show_spinner=False)
def pull_jobs() -> dict[tuple[str, str], PullJob]:
    """Model downloads by (host, name), shared by every session: a pull outlives the page
    that started it, and a second tab sees the same progress instead of starting another."""
    return {}


def running_pulls(ctx: AppContext) -> list[PullJob]:
    return [job for (host, _), job in pull_jobs().items() if host == ctx.settings.ollama_host]


@st.cache_resource(show_spinner=False)
def job_registry(data_dir: str) -> JobRegistry:
    """The background jobs (uploads, re-index) of one data directory: they outlive every run
    and page change, and any session can follow their progress."""
    return JobRegistry()


def session_id() -> str:
    """This browser session's id: the owner of the jobs it starts (their results are its to report)."""
    return st.session_state.setdefault(SESSION_KEY, uuid.uuid4().hex)


@dataclass
class AppContext:
    """What every page needs for one script run."""

    settings: Settings
    lang: str
    status: OllamaStatus
    engine: ChatEngine
    pinned: dict[str, str] = field(default_factory=dict)
    finished_pulls: frozenset[str] = frozenset()  # downloads already finished when this run started
    problems: list[SettingsProblem] = field(default_factory=list)  # in settings.json, ignored on loading

    @property
    def workspace(self) -> Workspace:
        return self.engine.workspace

    def t(self, key: str, default: str | None = None, **values: Any) -> str:
        return t(key, self.lang, default, **values)

    def md(self, key: str, **values: Any) -> str:
        """`t` for Markdown elements: the values are shown literally."""
        return i18n.md(t(key, self.lang), **values)

    def count(self, key: str, n: int) -> str:
        return i18n.count(key, n, self.lang)

    def error(self, err: BaseException | None = None, **stored: Any) -> str:
        return i18n.error_text(err, self.lang, **stored)

    @property
    def zone(self) -> tzinfo:
        """The browser's time zone: dates are shown in local time, not as stored (UTC)."""
        return i18n.timezone_of(_context_value("timezone"))

    def backend(self) -> Backend:
        """The resolved chat backend (raises AgentError, e.g. model not pulled)."""
        return self.engine.backend()

    def models(self) -> list[ModelInfo]:
        """Installed Ollama models (raises AgentError when Ollama is unreachable)."""
        return _models(self.settings.ollama_host, self.settings.model_dump_json())

    @property
    def jobs(self) -> JobRegistry:
        return job_registry(str(self.settings.data_dir))


def ui_language(settings: Settings | None = None) -> str:
    """The UI language for this run: the sidebar switch, else settings.ui_language / browser."""
    chosen = st.session_state.get(LANG_KEY)
    if chosen in LANGUAGES:
        return chosen
    if settings is None:
        try:
            settings = load_settings()
        except AgentError:
            return resolve_language("auto", _context_value("locale"))
    return resolve_language(settings.ui_language, _context_value("locale"))


def forget_language_choice() -> None:
    """After the language setting was saved: it decides again, not the sidebar's last click."""
    st.session_state.pop(LANG_KEY, None)
    st.session_state.pop(LANG_WIDGET, None)


def navigation_pages(lang: str) -> list[Any]:
    return [
        st.Page("pages/chat.py", title=t("page_chat", lang), icon=":material/chat:", url_path="chat", default=True),
        st.Page("pages/documents.py", title=t("page_documents", lang), icon=":material/library_books:",
                url_path="documents"),
        st.Page("pages/settings.py", title=t("page_settings", lang), icon=":material/settings:", url_path="settings"),
    ]


def set_page_config() -> None:
    # The favicon stays an emoji: a Material icon as favicon is fetched from fonts.gstatic.com,
    # and this app must not contact the internet. (Nav icons use the bundled icon font; a page's
    # icon only becomes the favicon if no page_icon was set first, so call this before navigation.)
    st.set_page_config(page_title="PDF Chat", page_icon="📄", layout="wide")


def entry_point() -> None:
    """streamlit_app.py: page config and navigation, then the selected page."""
    set_page_config()
    use_one_thread()
    st.session_state[ENTRY_KEY] = True
    st.navigation(navigation_pages(ui_language())).run()


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
    return AppContext(settings, lang, status, engine, pinned_fields(), problems=problems)


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
            set_page_config()  # before the navigation, or the page's Material icon becomes the favicon
            st.navigation(navigation_pages(ui_language()))
            st.rerun()
    ctx = build_context()
    ctx.finished_pulls = frozenset(job.name for job in running_pulls(ctx) if job.finished)
    if ctx.finished_pulls:
        refresh_models()  # a download ended since the last run: every model list must include it
    language_switch(ctx.lang)
    sidebar_status(ctx)
    return ctx


def language_switch(lang: str) -> None:
    """The sidebar's English / 中文 switch; the choice is kept under LANG_KEY across pages."""
    state = st.session_state
    if state.get(LANG_WIDGET) not in LANGUAGES:
        state[LANG_WIDGET] = lang

    def chosen() -> None:
        state[LANG_KEY] = state[LANG_WIDGET]

    with st.sidebar:
        st.segmented_control(t("language", lang), options=list(LANGUAGES), format_func=LANGUAGES.get,
                             key=LANG_WIDGET, on_change=chosen, required=True, label_visibility="collapsed")


def refresh_models() -> None:
    _models.clear()
    _status.clear()
    _pool.clear()


def _context_value(name: str) -> str | None:
    """st.context.locale / .timezone: the browser's, None outside a browser session."""
    try:
        return getattr(st.context, name)
    except Exception:  # noqa: BLE001 - no browser context (e.g. a bare script run)
        return None


def show_error(err: BaseException | str, *, where: Any = None, lang: str | None = None) -> None:
    """An error box with the message and the fix in the UI language, never a traceback."""
    text = err if isinstance(err, str) else i18n.error_text(err, lang or ui_language())
    (where or st).error(text, icon=":material/error:")


# ---- sidebar -----------------------------------------------------------------------------------
def sidebar_status(ctx: AppContext) -> None:
    """Ollama reachable or not, chat model and mode in effect, embeddings, collections."""
    s = ctx.settings
    with st.sidebar:
        backend = None
        try:
            backend = ctx.backend()
        except AgentError as err:
            backend_error: AgentError | None = err
        else:
            backend_error = None
        ollama_line(ctx, answering=backend is not None)
        if s.backend != "embedded":
            pool_lines(ctx)
        if backend_error is not None and backend_error.code != "ollama_unreachable":  # said just above
            show_error(backend_error, lang=ctx.lang)
        if backend is not None:
            model_line(ctx, backend)
        st.caption(ctx.md("status_embedding", model=ctx.workspace.embedding_model))
        st.caption(ctx.md("status_collections", names=", ".join(s.collections)))
        for problem in ctx.problems:
            st.warning(settings_problem_text(ctx, problem), icon=":material/warning:")
        if s.backend != "embedded" and not ctx.status.reachable:
            _watch_ollama()


def settings_problem_text(ctx: AppContext, problem: SettingsProblem) -> str:
    """A settings-file problem in the UI language (the error itself comes from validation)."""
    if not problem.field:
        return ctx.md("settings_file_unreadable", path=str(ctx.settings.settings_path), error=problem.error)
    return ctx.md("settings_value_dropped", field=problem.field, error=problem.error)


def ollama_line(ctx: AppContext, answering: bool) -> None:
    """Ollama's state. Down while the offline model answers is a calm notice, not an error:
    the app works (a first launch without Ollama looks like this)."""
    s, T = ctx.settings, ctx.t
    if s.backend == "embedded":
        st.caption(T("status_ollama_off_forced"))
    elif ctx.status.reachable:
        st.caption(ctx.md("status_ollama_ok", host=ctx.status.host, version=ctx.status.version))
    elif answering:
        st.info(ctx.md("status_ollama_absent", host=ctx.status.host), icon=":material/cloud_off:")
    else:
        reason = ctx.status.error or AgentError("", code="ollama_unreachable", params={"host": ctx.status.host})
        st.error(ctx.error(reason), icon=":material/power_off:")


def pool_lines(ctx: AppContext) -> None:
    """With several Ollama hosts: each one's health and models."""
    for host in _pool(ctx.settings):
        if host.healthy:
            st.caption(ctx.md("status_pool_host_ok", host=host.url, version=host.version,
                              models=", ".join(host.models) or "-"))
        else:
            st.caption(ctx.md("status_pool_host_down", host=host.url, error=host.error))


def model_line(ctx: AppContext, backend: Backend) -> None:
    """The model that answers and the mode actually in effect (auto resolves per model)."""
    T = ctx.t
    try:
        mode = ctx.engine.mode()
    except AgentError as err:  # agent mode forced on a model without tools
        show_error(err, lang=ctx.lang)
        return
    st.caption(ctx.md("status_model", model=backend.model_name, mode=T(f"mode_{mode}")))
    if backend.kind == "embedded" and ctx.settings.backend == "embedded":  # else the Ollama notice said it
        st.warning(T("demo_notice"), icon=":material/science:")


@st.fragment(run_every=REPROBE_SECONDS)
def _watch_ollama() -> None:
    """Re-probe Ollama while it is down; when it is back, rerun the page so the status,
    the model list and the backend all follow (no click needed)."""
    try:
        back = ollama_status(load_settings()).reachable
    except AgentError:  # settings broken meanwhile: the next full run says so
        return
    if back:
        refresh_models()
        st.rerun()


# ---- a new collection for the chat ---------------------------------------------------------------
def offer_collection(ctx: AppContext) -> None:
    """After an upload into a collection the chat does not search: offer to search it too."""
    state = st.session_state
    name = state.get(OFFER_KEY)
    if not name or name in ctx.settings.collections or "collections" in ctx.pinned:
        return
    with st.container(border=True):
        st.info(ctx.md("offer_collection", name=name), icon=":material/library_add:")
        left, right = st.columns(2)
        if left.button(ctx.t("offer_collection_yes"), type="primary", key="offer-yes"):
            state.pop(OFFER_KEY, None)
            try:
                save_changes(ctx.settings, collections=[*ctx.settings.collections, name])
            except AgentError as err:
                show_error(err, lang=ctx.lang)
                return
            st.rerun()
        if right.button(ctx.t("offer_collection_no"), key="offer-no"):
            state.pop(OFFER_KEY, None)
            st.rerun()
