"""Web UI entry point: `streamlit run streamlit_app.py` (or scripts/run-app.sh).

Sets the page config and the navigation (Chat, Documents, Settings), then runs the
selected page. Each page starts with `pages.page_setup()` (settings re-read from disk,
language switch, sidebar status); all logic is in `agent/`.
"""

from pages import entry_point

entry_point()
