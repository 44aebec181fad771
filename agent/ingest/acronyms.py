"""Section titles also under the acronym the document defines for them, so a question that uses it finds them.

A manual defines "Galois/Counter mode (GCM)" once and then titles the section "Galois counter mode"; the
question "What is GCM?" shares no word with that title, while the subsections' titles ("General GCM interface")
hold the acronym and win. Definitions are found with the Schwartz-Hearst rule (the letters of the acronym in
parentheses match, in order, the preceding words, the first at a word start); a title whose words hold a defined
long form gets one more title on its page: the acronym in place of those words ("GCM"). A rule, no constant.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import TypeVar

from agent.search.tokens import tokenize

Page = TypeVar("Page")

#: "... long form (ACR)": 2-10 characters, at least two capitals, no spaces
_DEFINITION = re.compile(r"([^()\n.;:!?]{1,200}?)\s*\(([A-Z][A-Za-z0-9\-/]{0,8}[A-Z0-9])\)")
_CLAUSE_END = re.compile(r"[,)]")


def definitions(text: str) -> dict[str, frozenset[str]]:
    """Acronym -> the index terms of its long form, for the acronyms `text` defines (the first definition
    of each; long forms of fewer than two terms are left out: they say too little to match a title)."""
    out: dict[str, frozenset[str]] = {}
    for m in _DEFINITION.finditer(" ".join(text.split())):
        before, acronym = _CLAUSE_END.split(m.group(1))[-1], m.group(2)
        if acronym in out or sum(c.isupper() for c in acronym) < 2:
            continue
        words = before.split()[-min(len(acronym) + 5, 2 * len(acronym)):]
        long_form = _long_form(acronym, " ".join(words))
        terms = frozenset(t for t in tokenize(long_form or "") if not t.isdigit())
        if len(terms) >= 2 and acronym.lower() not in terms:
            out[acronym] = terms
    return out


def _long_form(short: str, text: str) -> str | None:
    """The shortest end of `text` whose characters hold the letters of `short` in order, its first letter at
    the start of a word (Schwartz & Hearst 2003); None when there is none."""
    s, i = len(short) - 1, len(text) - 1
    while s >= 0:
        c = short[s].lower()
        if not c.isalnum():
            s -= 1
            continue
        while i >= 0 and (text[i].lower() != c or (s == 0 and i > 0 and text[i - 1].isalnum())):
            i -= 1
        if i < 0:
            return None
        i -= 1
        s -= 1
    return text[text.rfind(" ", 0, i + 1) + 1:]


def acronym_title(title: str, defined: dict[str, frozenset[str]]) -> str | None:
    """`title` with the words of a long form it holds (as one run of its terms) replaced by the acronym (the
    longest such form), or None when it holds none or already names the acronym."""
    words = title.split()
    known = {t for long in defined.values() for t in long}
    seq = [(w, t) for w, word in enumerate(words) for t in _word_terms(word, known)
           if not t.replace(".", "").isdigit()]
    held = {t for _, t in seq}
    best: tuple[int, str, int, int] | None = None
    for acronym, long in defined.items():
        for start in range(len(seq) - len(long) + 1):
            if {t for _, t in seq[start:start + len(long)]} == long and (best is None or len(long) > best[0]):
                best = (len(long), acronym, seq[start][0], seq[start + len(long) - 1][0])
    if best is None or best[1].lower() in held:
        return None
    _, acronym, first, last = best
    return " ".join([*words[:first], acronym, *words[last + 1:]])


def _word_terms(word: str, known: set[str]) -> list[str]:
    """A title word's terms; a hyphenated one as one term when a long form holds it so: text cleaning joins
    words hyphenated at a line break ("tweaked-codebook" in a title, "tweakedcodebook" in the text)."""
    joined = tokenize(word.replace("-", "")) if "-" in word else []
    return joined if joined and set(joined) <= known else tokenize(word)


def with_acronyms(pages: Sequence[Page]) -> list[Page]:
    """The pages, each page's `outline` extended by its titles under their acronyms (pages without an
    outline, or formats without one, as they are)."""
    pages = list(pages)
    if not any(getattr(p, "outline", ()) for p in pages):
        return pages
    defined = definitions("\n".join(getattr(p, "text", "") or "" for p in pages))
    if not defined:
        return pages
    out = []
    for page in pages:
        titles = tuple(getattr(page, "outline", ()))
        extra = [a for a in (acronym_title(t, defined) for t in titles) if a and a not in titles]
        out.append(replace(page, outline=titles + tuple(dict.fromkeys(extra))) if extra else page)  # type: ignore[type-var]
    return out
