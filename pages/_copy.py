"""The "Copy" button under an answer."""

from __future__ import annotations

import streamlit as st

from pages import AppContext

# ---- copy button ----------------------------------------------------------------------------------
# A components.v2 element (mounted in the page, no iframe): a button that puts the answer's
# Markdown on the clipboard. The text arrives as data and is only ever written to the
# clipboard, never into the DOM, so an answer cannot inject anything here.
_COPY_JS = """
const ICON = '<svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true" fill="none" ' +
  'stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">' +
  '<rect x="9" y="9" width="13" height="13" rx="2"></rect>' +
  '<path d="M5 15H4a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2h9a2 2 0 0 1 2 2v1"></path></svg>';

export default function(component) {
  const { data, parentElement } = component;
  let button = parentElement.querySelector("button");
  if (!button) {
    button = document.createElement("button");
    button.type = "button";
    button.innerHTML = ICON + "<span></span>";  // a constant: the answer text never goes into the DOM
    parentElement.appendChild(button);
  }
  const show = (label) => { button.querySelector("span").textContent = label; };
  show(data.label);
  button.onclick = async () => {
    try {
      await navigator.clipboard.writeText(data.text);
    } catch (err) {
      const area = document.createElement("textarea");
      area.value = data.text;
      document.body.appendChild(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    show(data.done);
    setTimeout(() => show(data.label), 1500);
  };
}
"""
_COPY_CSS = """
button { display: inline-flex; align-items: center; gap: 0.35rem; font: inherit; font-size: 0.85rem; color: var(--st-text-color, inherit); opacity: 0.75;
         background: transparent; border: 1px solid transparent; border-radius: 0.5rem;
         padding: 0.1rem 0.5rem; cursor: pointer; }
button:hover { opacity: 1; border-color: var(--st-border-color, rgba(128, 128, 128, 0.4)); }
"""
_copy_component = st.components.v2.component("pdfchat_copy_button", js=_COPY_JS, css=_COPY_CSS)


def copy_button(ctx: AppContext, text: str, key: str) -> None:
    """A "Copy" button for an answer (its Markdown source)."""
    _copy_component(data={"text": text, "label": ctx.t("copy"), "done": ctx.t("copied")}, key=f"copy-{key}",
                    width="content")
