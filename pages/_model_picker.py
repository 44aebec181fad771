"""The chat-model picker and model downloads, shared by the sidebar, Chat and Settings pages."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from agent.app.status import chat_model_names
from agent.chat.llm import ModelInfo, find_model
from agent.chat.models import PullJob
from pages import AppContext, pull_jobs, refresh_models, running_pulls, show_error


@dataclass(frozen=True)
class ModelChoices:
    """The chat-model dropdown: options (the configured one first if not installed), index, labels."""

    options: list[str]
    index: int
    labels: dict[str, str]
    missing: bool  # the configured model is not installed


def model_choices(ctx: AppContext, models: list[ModelInfo]) -> ModelChoices:
    """The one definition of the chat-model picker, used by the sidebar and the Settings page."""
    T = ctx.t
    names = chat_model_names(models)
    current = find_model(models, ctx.settings.chat_model)
    options = names if current is not None else [ctx.settings.chat_model, *names]
    by_name = {m.name: m for m in models}
    labels = {}
    for name in options:
        info = by_name.get(name)
        if info is None:
            labels[name] = T("model_not_installed", model=name)
        else:
            labels[name] = f"{name} · {T('tools_short') if info.tools else T('no_tools_short')}"
    index = options.index(current.name) if current is not None else 0
    return ModelChoices(options, index, labels, current is None)


def start_pull(ctx: AppContext, name: str) -> PullJob:
    """Start downloading `name` (or return the download already running for it)."""
    jobs = pull_jobs()
    key = (ctx.settings.ollama_host, name.strip())
    job = jobs.get(key)
    if job is None or (job.finished and not job.ok):
        job = jobs[key] = PullJob(ctx.settings, name.strip()).start()
    return job


def pull_progress(ctx: AppContext, job: PullJob) -> None:
    """One download: a progress bar while it runs, then success or the error in plain words."""
    T = ctx.t
    if job.error is not None:
        show_error(job.error, lang=ctx.lang)
    elif job.cancelled:
        st.caption(ctx.md("pull_cancelled", model=job.name))
    elif job.finished:
        st.success(ctx.md("pull_done", model=job.name), icon=":material/download_done:")
    else:
        step = job.progress
        text = ctx.md("pull_progress", model=job.name, stage=T(f"pull_stage_{step.stage}"),
                      done=_size(step.completed), total=_size(step.total))
        st.progress(step.fraction, text=text)


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def pulls_section(ctx: AppContext) -> None:
    """The downloads of this Ollama host: live while one runs, then each outcome shown once."""
    jobs = running_pulls(ctx)
    if any(job.name not in ctx.finished_pulls for job in jobs):  # running, or ended during this run
        _pulls_live(ctx)
        return
    for job in jobs:
        pull_progress(ctx, job)
    registry = pull_jobs()
    for job in jobs:
        registry.pop((ctx.settings.ollama_host, job.name), None)


@st.fragment(run_every=0.5)
def _pulls_live(ctx: AppContext) -> None:
    jobs = running_pulls(ctx)
    for job in jobs:
        pull_progress(ctx, job)
        if not job.finished:
            st.button(ctx.t("cancel"), key=f"cancel-pull-{job.name}", on_click=job.cancel, type="tertiary",
                      icon=":material/close:")
    if all(job.finished for job in jobs):
        refresh_models()
        st.rerun()  # the model lists (sidebar picker, Settings table) now include the new model
