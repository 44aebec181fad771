"""Numbered citations: excerpts are numbered [1]..[n] in the prompt, the answer cites them by
number, and afterwards each marker is checked against the excerpts the model was really given."""

from __future__ import annotations

import re
from collections.abc import Iterable

from agent.search.retrieval import Source

#: [1], [2, 3], [2，3], [2、3] and the fullwidth 【1】 that Chinese answers often use.
MARKER_RE = re.compile(r"[\[【]\s*(\d{1,3}(?:\s*[,，、]\s*\d{1,3})*)\s*[\]】]")


def source_key(source: Source) -> object:
    return source.get("chunk_id") or (source["file"], source["page"], source["text"])


def number_new(known: list[Source], found: Iterable[Source]) -> list[Source]:
    """`found` as numbered excerpts: one already known keeps its number, a new one gets the next."""
    numbers = {source_key(s): s["number"] for s in known if "number" in s}
    following = max(numbers.values(), default=0)
    out: list[Source] = []
    for source in found:
        key = source_key(source)
        if key not in numbers:
            following += 1
            numbers[key] = following
        out.append(Source(**{**source, "number": numbers[key]}))  # type: ignore[typeddict-item]
    return out


def cited_numbers(text: str) -> list[int]:
    """The numbers an answer cites, in order of first mention."""
    seen: dict[int, None] = {}
    for match in MARKER_RE.finditer(text):
        for part in re.split(r"\s*[,，、]\s*", match.group(1)):
            seen.setdefault(int(part), None)
    return list(seen)


def check_citations(text: str, sources: list[Source]) -> tuple[list[Source], list[int]]:
    """Each source marked `cited` or not, and the cited numbers that match no excerpt (invented)."""
    cited = cited_numbers(text)
    given = {s.get("number") for s in sources}
    marked = [Source(**{**s, "cited": s.get("number") in cited}) for s in sources]  # type: ignore[typeddict-item]
    return marked, [n for n in cited if n not in given]
