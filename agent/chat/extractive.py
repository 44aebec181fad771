"""Extractive answers: the excerpt sentences that best answer the question, quoted with their numbers.

Why: a quote is exact, checkable and instant (no model call), where a small offline model is
slow and often wrong; people who want quotes only choose the `extractive` answer style. The
same selection condenses excerpts for a small context window (`condense`).

A sentence scores by the question terms it holds (idf-weighted over the excerpts' sentences,
`agent.search.tokens` terms, so Chinese and English both work) and, when embeddings are
given, by its vector similarity to the question (multilingual: a Chinese question finds
English sentences); `SIMILARITY_SHARE` weighs the two (bench/extractive.py, by document).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from agent._cjk import IDEOGRAPHS
from agent.chat.citations import MARKER_RE
from agent.search.embeddings import checked_vectors
from agent.search.retrieval import Source
from agent.search.tokens import tokenize

MAX_QUOTES = 3
MIN_SENTENCE_CHARS = 12
MAX_SENTENCE_CHARS = 400  # a "sentence" longer than this is a run-on extraction: cut at a word
SIMILARITY_SHARE = 0.5  # of a sentence's score from vector similarity, the rest from shared terms
Embed = Callable[[list[str]], list[list[float]]]  # texts -> vectors (Embeddings.embed_documents)

_IDEOGRAPH = re.compile(f"[{IDEOGRAPHS}]")
_BREAK = re.compile(f"(?<=[。！？!?；;])\\s*|(?<=[.])\\s+(?=[A-Z0-9\"'“({IDEOGRAPHS}])|\\n\\s*\\n")


@dataclass(frozen=True)
class Quote:
    number: int  # the excerpt's citation number
    text: str
    score: float


def split_sentences(text: str) -> list[str]:
    """Sentences of an excerpt, Chinese or English, each on one line."""
    out = []
    for part in _BREAK.split(text):
        sentence = " ".join(part.split())
        if len(sentence) > MAX_SENTENCE_CHARS:
            sentence = sentence[:MAX_SENTENCE_CHARS].rsplit(" ", 1)[0] + " …"
        if len(sentence) + 2 * len(_IDEOGRAPH.findall(sentence)) >= MIN_SENTENCE_CHARS:  # a Chinese
            out.append(sentence)  # character says about as much as three Latin letters
    return out


def best_sentences(question: str, sources: Sequence[Source], embed: Embed | None = None,
                   limit: int = MAX_QUOTES, similarity_share: float = SIMILARITY_SHARE) -> list[Quote]:
    """The `limit` best-scoring sentences of the numbered `sources`, best first."""
    candidates = [(int(s["number"]), sentence) for s in sources for sentence in split_sentences(s["text"])]
    if not candidates:  # excerpts of fragments only (a table, a list of names): quote them whole
        candidates = [(int(s["number"]), " ".join(s["text"].split())) for s in sources if s["text"].strip()]
    if not candidates:
        return []
    scores = _lexical(question, [text for _, text in candidates])
    similarity = _similarity(question, [text for _, text in candidates], embed) if similarity_share else None
    if similarity is not None:
        scores = (1 - similarity_share) * scores + similarity_share * similarity
    ranked = sorted(range(len(candidates)), key=lambda i: (-scores[i], i))  # ties: the better excerpt first
    quotes: list[Quote] = []
    seen: set[str] = set()
    for i in ranked:
        number, text = candidates[i]
        if text not in seen:
            seen.add(text)
            quotes.append(Quote(number, text, float(scores[i])))
        if len(quotes) == limit:
            break
    return quotes


def format_quotes(quotes: Sequence[Quote]) -> str:
    """Markdown block quotes, each ending with its citation marker; the document's own bracketed
    numbers are turned into full-width brackets so that they never count as our citations."""
    lines = [f"> {MARKER_RE.sub(lambda m: f'［{m.group(1)}］', q.text)} [{q.number}]" for q in quotes]
    return "\n\n".join(lines) + ("\n\n" if lines else "")


def condense(question: str, sources: Sequence[Source], chars: int) -> list[Source]:
    """Each source with its text cut to its best sentences (kept in reading order) within
    `chars`: more excerpts fit a small context window this way than whole chunks."""
    out = []
    for source in sources:
        sentences = split_sentences(source["text"])
        if sum(len(s) + 1 for s in sentences) <= chars:
            out.append(source)
            continue
        order = np.argsort(-_lexical(question, sentences), kind="stable")
        kept: list[int] = []
        used = 0
        for i in order:
            if used + len(sentences[i]) + 1 > chars and kept:
                break
            kept.append(int(i))
            used += len(sentences[i]) + 1
        out.append({**source, "text": " ".join(sentences[i] for i in sorted(kept))[:chars]})
    return out


def _lexical(question: str, sentences: Sequence[str]) -> np.ndarray:
    """Share of the question's idf mass each sentence holds (0..1)."""
    wanted = set(tokenize(question))
    terms = [wanted.intersection(tokenize(s)) for s in sentences]
    df = Counter(t for found in terms for t in found)
    idf = {t: math.log(1 + len(sentences) / n) for t, n in df.items()}
    total = sum(idf.values())
    if not total:
        return np.zeros(len(sentences))
    return np.array([sum(idf[t] for t in found) / total for found in terms])


def _similarity(question: str, sentences: Sequence[str], embed: Embed | None) -> np.ndarray | None:
    """Cosine similarity of each sentence to the question, clipped at 0; None without embeddings
    or when they fail (the lexical score alone still ranks)."""
    if embed is None:
        return None
    try:
        vectors = checked_vectors(embed([question, *sentences]), len(sentences) + 1)
    except Exception:  # noqa: BLE001 - a failed or unusable embedding must not cost the quotes
        return None
    norms = np.linalg.norm(vectors, axis=1)
    norms[norms == 0] = 1
    unit = vectors / norms[:, None]
    return np.clip(unit[1:] @ unit[0], 0, 1)
