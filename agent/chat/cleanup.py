"""Model output made fit to keep: loops cut, prompt markup removed, `[file p.N]` citations numbered.

Small models (the embedded SmolLM2 above all) repeat themselves until the token limit and
echo the prompt's own markup (`</document>`, `Question / 问题:`); larger ones sometimes cite
the excerpt's source label instead of its number. None of that may reach the stored answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from agent.search.retrieval import Source

#: Text that only the prompt contains: a model that starts writing it has lost the thread.
PROMPT_STOPS = ("<document", "</document", "Question / 问题", "Document excerpts / 文档摘录")
REPEAT_RUN = 40  # characters: a run this long seen REPEAT_TIMES times is a loop, not emphasis
REPEAT_TIMES = 3
_MIN_DISTINCT = 8  # a run of dashes or spaces (a Markdown table rule) is not a loop

_TAG = re.compile(r"</?\s*document\b[^>\n]*>?", re.IGNORECASE)
_LABEL = re.compile(r"^[ \t]*(?:Question / 问题|Document excerpts / 文档摘录)[ \t]*[:：].*\n?", re.MULTILINE)
_LABEL_CITE = re.compile(r"\[([^\[\]\n]{1,200}?)\s+p\.\s*(\d{1,6})\]")


def loop_start(text: str) -> int | None:
    """Where to cut `text` when it ends in a loop (its last REPEAT_RUN characters occur
    REPEAT_TIMES times): at the second occurrence, so one copy is kept. None: no loop."""
    tail = text[-REPEAT_RUN:]
    if len(tail) < REPEAT_RUN or len(set(tail)) < _MIN_DISTINCT or text.count(tail) < REPEAT_TIMES:
        return None
    return text.find(tail, text.find(tail) + 1)


def strip_markup(text: str, sources: Sequence[Source]) -> str:
    """`text` without prompt tags and labels, its `[file p.N]` citations turned into the
    number of that excerpt (left as written when no excerpt has that file and page)."""
    numbers = {(s["file"], int(s["page"])): int(s["number"]) for s in sources if "number" in s}

    def number(match: re.Match[str]) -> str:
        found = numbers.get((match.group(1).strip(), int(match.group(2))))
        return f"[{found}]" if found is not None else match.group(0)

    cleaned = _LABEL.sub("", _TAG.sub("", _LABEL_CITE.sub(number, text)))
    return cleaned if cleaned == text else cleaned.strip()  # a cut-off answer keeps its exact text
