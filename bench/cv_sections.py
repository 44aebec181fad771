"""Document-side sweep of issue 16 (seventh round): the page next to the gold one, cross-validated by document.

A section often starts low on the gold page and goes on over the next page, which holds more of the question's
words and the titles of its subsections, so the next page wins. The signals here read the collection's section
structure (the titles of `outline`, where each starts in its page's text, and its level in the PDF outline, else
its numbering "5.8.1") and are fitted one family at a time on top of the product's fixed weights, leave one
document out, as in bench/cv_sweep.py (whose `hits` and `cross_validate` they reuse):

- sec_flat / sec_tree: BM25 of whole sections (title + body, across pages) given to the page where the section
  starts; flat: up to the next title; tree: up to the next title of the same or a higher level (subsections in);
- heading_tree / title_match_tree: `heading` / `title_match` over a section's own title and its subsections'
  titles, credited to the page where the section starts (the subsection titles on the next page count there too);
- heading_split: `heading` with each title's share weighted by the share of the page's text under it (a title
  at the foot of a page brings less), next to or instead of `heading`;
- heading_top: `heading` for the titles in the top half of the page only (a title near the top vs low);
- next_cont: the next page's lexical z-score, times the share of that page's text that continues this page's last
  section (neighbour smoothing only between pages that share a section).

    python -m bench.cv_sections --set pooled --data DIR   # devset + tune split, 29 folds; also the tune split alone
"""

from __future__ import annotations

import re
import sys
import tempfile
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Run, markdown_table, parser, set_blas_threads
from bench.cv_common import (
    PRODUCT,
    cached_collection,
    candidates,
    cross_validate,
    hits,
    product_signals,
    question_row,
    weight_vector,
)
from bench.quality import PASSWORDS, _question_set

NAME = "cv_sections"
OWN = ("sec_flat", "sec_tree", "heading_tree", "title_match_tree", "heading_split", "heading_top", "next_cont",
       "next_titled", "next_match", "next_tree_match")
SIGNALS = PRODUCT + OWN
Z_GRID = (0.0, 0.1, 0.2, 0.4, 0.8, 1.6)
RAW_GRID = (0.0, 0.5, 1.0, 2.0, 4.0)
IDEAS: dict[str, dict[str, tuple[float, ...]]] = {
    "section BM25, flat units, at the start page": {"sec_flat": Z_GRID},
    "section BM25, units with subsections, at the start page": {"sec_tree": Z_GRID},
    "heading over the section's and its subsections' titles": {"heading_tree": RAW_GRID},
    "title match over the section's and its subsections' titles": {"title_match_tree": RAW_GRID},
    "heading split by the page's text under each title (next to heading)": {"heading_split": RAW_GRID},
    "heading split by the page's text under each title (instead)": {"heading": (0.0, 2.0),
                                                                     "heading_split": RAW_GRID},
    "heading of the top-half titles only (instead)": {"heading": (0.0, 2.0), "heading_top": RAW_GRID},
    "heading over the section's and its subsections' titles (instead)": {"heading": (0.0, 2.0),
                                                                          "heading_tree": RAW_GRID},
    "title match over the section's and its subsections' titles (instead)": {"title_match": (0.0, 4.0),
                                                                              "title_match_tree": RAW_GRID},
    "next page's lexical score when it continues the section": {"next_cont": Z_GRID},
    "same, only for a page that starts a section": {"next_titled": Z_GRID},
    "same, times the query's share in the continued section's title": {"next_match": Z_GRID + (3.2,)},
    "same, the section with its subsections (outline levels)": {"next_tree_match": Z_GRID + (3.2,)},
    "next_section, the product's (numbered titles' levels)": {"next_section": (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8)},
}
OUTLINE_LEVELS = True  # False: levels from the titles' numbering only (--levels numbering), as the product
_NUMBER = re.compile(r"^\s*((?:\d+|[A-Z])(?:\.\d+)*)\.?\s")


@dataclass
class Title:
    row: int  # page row in the collection
    pos: int  # character offset in the page's text
    level: int | None
    text: str


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).split()).lower()


def _levels(pdf: Path) -> dict[tuple[int, str], int]:
    """(1-based page, normalised title) -> depth in the PDF outline (empty without an outline)."""
    import pypdfium2 as pdfium

    out: dict[tuple[int, str], int] = {}
    try:
        doc = pdfium.PdfDocument(str(pdf), password=PASSWORDS.get(pdf.name))
    except pdfium.PdfiumError:  # the devset's damaged PDF: no outline
        return out
    try:
        for mark in doc.get_toc():
            dest = mark.get_dest()
            if dest is not None and dest.get_index() is not None:
                out.setdefault((dest.get_index() + 1, _norm(mark.get_title())), int(mark.level))
    finally:
        doc.close()
    return out


def _level(title: str, outline: dict[tuple[int, str], int], page: int) -> int | None:
    if (page, _norm(title)) in outline:
        return outline[(page, _norm(title))]
    number = _NUMBER.match(title)
    return number.group(1).count(".") + 1 if number else None


class Structure:
    """One collection's sections: every title with its page row, offset and level; each page's text."""

    def __init__(self, ix: Any, pdf_dir: Path) -> None:
        from agent.search.lexical import page_groups, page_text

        _, members = page_groups(ix.documents)
        keys = ix.pages.keys()
        self.rows = ix.pages.rows
        self.texts = [page_text([ix.documents[i] for i in rows]) for rows in members]
        titles = ix.pages.titles_by_page()
        outlines = {f: _levels(pdf_dir / f) for f in ix.pages.files if (pdf_dir / f).exists() and OUTLINE_LEVELS}
        self.order = sorted(range(self.rows), key=lambda p: keys[p])  # file, then page number
        self.next = np.full(self.rows, -1, dtype=np.int64)  # the row of the following page of the same file
        for a, b in zip(self.order, self.order[1:]):
            if keys[a][0] == keys[b][0] and keys[b][1] == keys[a][1] + 1:
                self.next[a] = b
        self.titles: list[Title] = []
        for p in self.order:
            low, last = _norm(self.texts[p]), 0
            for t in titles.get(p, []):
                at = low.find(_norm(t))
                last = at if at >= 0 else last  # a title the text does not hold (an acronym title): beside the last
                self.titles.append(Title(p, last, _level(t, outlines.get(keys[p][0], {}), keys[p][1]), t))
        self.rank = {p: i for i, p in enumerate(self.order)}
        self.titles.sort(key=lambda t: (self.rank[t.row], t.pos))
        self.file_of = {p: keys[p][0] for p in range(self.rows)}
        self.page_len = np.array([max(len(_norm(t)), 1) for t in self.texts], dtype=np.float64)

    def _end(self, i: int, tree: bool) -> tuple[int, int]:
        """Where section i ends: (page row, offset) of the next title (of the same or a higher level if `tree`)."""
        me = self.titles[i]
        for t in self.titles[i + 1:]:
            if self.file_of[t.row] != self.file_of[me.row]:
                break
            if t.pos == me.pos and t.row == me.row:
                continue
            if not tree or me.level is None or t.level is None or t.level <= me.level:
                return t.row, t.pos
        return -1, 0

    def units(self, tree: bool) -> tuple[list[str], list[int], list[list[int]]]:
        """Each section's text (title + body across pages), its start page, and the title indexes it holds."""
        texts, starts, members = [], [], []
        for i, me in enumerate(self.titles):
            end_row, end_pos = self._end(i, tree)
            parts, p, pos = [], me.row, me.pos
            while p >= 0:
                low = _norm(self.texts[p])
                if p == end_row:
                    parts.append(low[pos:end_pos])
                    break
                parts.append(low[pos:])
                p, pos = int(self.next[p]), 0
            texts.append("\n".join(parts))
            starts.append(me.row)
            inside = [i]
            for j in range(i + 1, len(self.titles)):
                if self.file_of[self.titles[j].row] != self.file_of[me.row] or not self._before(j, end_row, end_pos):
                    break
                inside.append(j)
            members.append(inside)
        return texts, starts, members

    def _before(self, j: int, end_row: int, end_pos: int) -> bool:
        """Whether title j lies before a section's end (end_row -1: the end of the file)."""
        t = self.titles[j]
        return end_row < 0 or (self.rank[t.row], t.pos) < (self.rank[end_row], end_pos)

    def continued_share(self) -> np.ndarray:
        """Per page: the share of its text before its first title (what continues the previous page's section)."""
        first = np.full(self.rows, np.inf)
        for t in self.titles:
            first[t.row] = min(first[t.row], t.pos)
        return np.minimum(first / self.page_len, 1.0)

    def last_titles(self) -> tuple[np.ndarray, np.ndarray]:
        """Per page: the index of the last title starting on it (-1: none), and the share of the next page's
        text that the last title's section (with its subsections) covers."""
        last = np.full(self.rows, -1, dtype=np.int64)
        for i, t in enumerate(self.titles):
            last[t.row] = i
        tree = np.zeros(self.rows)
        for p in np.flatnonzero((last >= 0) & (self.next >= 0)).tolist():
            end_row, end_pos = self._end(int(last[p]), True)
            q = int(self.next[p])
            tree[p] = 1.0 if end_row != q else min(end_pos / self.page_len[q], 1.0)
        return last, tree

    def under(self) -> list[list[tuple[int, float]]]:
        """Per page: (title index, share of the page's text under that title) of the titles starting on it."""
        out: list[list[tuple[int, float]]] = [[] for _ in range(self.rows)]
        for i, t in enumerate(self.titles):
            later = [u.pos for u in self.titles[i + 1:i + 50] if u.row == t.row and u.pos > t.pos]
            end = min(later) if later else self.page_len[t.row]
            out[t.row].append((i, max(end - t.pos, 0) / self.page_len[t.row]))
        return out


class SectionSignals:
    """The signals of OWN for one collection (built once), per question from the product's raw signals."""

    def __init__(self, ix: Any, pdf_dir: Path) -> None:
        from agent.search.lexical import BM25Index
        from agent.search.tokens import tokenize

        self.ix, self.s = ix, Structure(ix, pdf_dir)
        self.units: dict[str, tuple[Any, np.ndarray]] = {}
        for name, tree in (("sec_flat", False), ("sec_tree", True)):
            texts, starts, members = self.s.units(tree)
            self.units[name] = (BM25Index(texts) if texts else None, np.array(starts, dtype=np.int64))
            if tree:
                self.tree_members = members
        self.title_terms = [frozenset(t for t in tokenize(x.text) if not t.replace(".", "").isdigit())
                            for x in self.s.titles]
        self.continued = self.s.continued_share()
        self.last, self.tree_cont = self.s.last_titles()
        self.under = self.s.under()

    def signals(self, terms: Sequence[str], raw: dict[str, np.ndarray], zscore: Any) -> dict[str, np.ndarray]:
        n = self.s.rows
        out = {}
        for name, (bm, starts) in self.units.items():
            page = np.zeros(n)
            if bm is not None and len(starts):
                np.maximum.at(page, starts, bm.scores(terms).astype(np.float64))
            out[name] = zscore(page)
        idf = self._idf(terms)
        total = sum(idf.values()) or 1.0
        out["heading_tree"], out["title_match_tree"] = np.zeros(n), np.zeros(n)
        for i, t in enumerate(self.s.titles):
            held = set().union(*(self.title_terms[j] for j in self.tree_members[i]))
            share = sum(v for q, v in idf.items() if q in held) / total
            out["heading_tree"][t.row] = max(out["heading_tree"][t.row], share)
            if len(terms) <= 4:
                best = max((self._f1(idf, total, self.title_terms[j]) for j in self.tree_members[i]), default=0.0)
                out["title_match_tree"][t.row] = max(out["title_match_tree"][t.row], best)
        out["heading_split"], out["heading_top"] = np.zeros(n), np.zeros(n)
        for p, titles in enumerate(self.under):
            seen_split: set[str] = set()
            seen_top: set[str] = set()
            for i, frac in titles:
                found = {q for q in idf if q in self.title_terms[i]}
                out["heading_split"][p] += sum(idf[q] for q in found - seen_split) * frac / total
                seen_split |= found
                if self.s.titles[i].pos / self.s.page_len[p] < 0.5:
                    out["heading_top"][p] += sum(idf[q] for q in found - seen_top) / total
                    seen_top |= found
        lexical = (zscore(raw["bm25_page"]) + zscore(raw["bm25_chunk"])) / 2
        nxt = self.s.next
        out["next_cont"] = np.where(nxt >= 0, lexical[np.maximum(nxt, 0)] * self.continued[np.maximum(nxt, 0)], 0.0)
        out["next_titled"] = np.where(self.last >= 0, out["next_cont"], 0.0)
        share = np.array([sum(v for q, v in idf.items() if q in self.title_terms[i]) / total if i >= 0 else 0.0
                          for i in self.last.tolist()])
        out["next_match"] = out["next_cont"] * share
        out["next_tree_match"] = np.where(nxt >= 0, lexical[np.maximum(nxt, 0)] * self.tree_cont * share, 0.0)
        return out

    def _idf(self, terms: Sequence[str]) -> dict[str, float]:
        bm = self.ix.page_bm25
        return {t: float(bm.idf[bm.vocabulary.ids[t]]) for t in set(terms) if t in bm.vocabulary.ids}

    def _f1(self, idf: dict[str, float], total: float, title: frozenset[str]) -> float:
        common = sum(v for q, v in idf.items() if q in title)
        size = sum(float(self.ix.page_bm25.idf[self.ix.page_bm25.vocabulary.ids[t]])
                   for t in title if t in self.ix.page_bm25.vocabulary.ids)
        if not common or not size:
            return 0.0
        precision, recall = common / size, common / total
        return 2 * precision * recall / (precision + recall)


def collect(questions: Sequence[Any], collection: Any, pdf_dir: Path, emb: Any, run: Run) -> list[dict[str, Any]]:
    """Per question: the product's and this module's signals over the candidate pages, and the gold mask."""
    from agent.search.keyword_index import collection_index
    from agent.search.retrieval import _zscore
    from agent.search.tokens import query_terms

    ix = collection_index(collection)
    own = SectionSignals(ix, pdf_dir)
    run.log(f"sections: {len(own.s.titles)} titles, {sum(t.level is not None for t in own.s.titles)} with a level")
    keys = ix.pages.keys()
    rows = []
    for q in questions:
        ps, raw, z = product_signals(q.question, collection, emb)
        terms = query_terms(q.question)
        z.update(own.signals(terms, raw, _zscore))
        rows.append(question_row(q, z, candidates(ps, raw), keys, SIGNALS))
    return rows


def grid(idea: str) -> np.ndarray:
    """Weight vectors (rows, SIGNALS order): the product's weights fixed, the idea's own axes."""
    import itertools

    from agent.search.retrieval import WEIGHTS

    axes = {**{k: (v,) for k, v in WEIGHTS.items()}, **IDEAS[idea]}
    names = list(axes)
    return np.array([[dict(zip(names, combo)).get(s, 0.0) for s in SIGNALS]
                     for combo in itertools.product(*(axes[n] for n in names))])


FAMILY_COLUMNS = ["family", "devset in-sample", "devset held-out (pooled)", "tune in-sample", "tune held-out (pooled)",
                  "tune-only in-sample", "tune-only held-out", "pooled folds chose"]


def _w(vec: np.ndarray, signals: Sequence[str] = SIGNALS) -> str:
    """The weights that differ from the product's, by name ("product" when none does)."""
    from agent.search.retrieval import WEIGHTS

    return " ".join(f"{s}={v:g}" for s, v in zip(signals, vec) if v != WEIGHTS.get(s, 0.0)) or "product"


def _fig(a: np.ndarray) -> str:
    return f"{a[:, 0].mean():.3f}/{a[:, 1].mean():.3f}" if len(a) else "-"


def family_row(idea: str, weights: np.ndarray, rows: list[dict[str, Any]], tune: list[dict[str, Any]],
               signals: Sequence[str] = SIGNALS) -> tuple[list[str], dict[str, Any]]:
    """A family's table row (pooled CV, devset and tune rows apart; the tune split's own CV) and fold choices."""
    sets = np.array([r["set"] for r in rows])
    cv = cross_validate(rows, weights)
    cvt = cross_validate(tune, weights) if tune else None
    folds: dict[str, int] = {}
    for w in cv["chosen"].values():
        folds[_w(w, signals)] = folds.get(_w(w, signals), 0) + 1
    chose = ", ".join(f"{k} ({v})" for k, v in sorted(folds.items(), key=lambda kv: -kv[1]))
    row = [idea, _fig(cv["in"][sets == "devset:all"]), _fig(cv["held"][sets == "devset:all"]),
           _fig(cv["in"][sets == "evalset:tune"]), _fig(cv["held"][sets == "evalset:tune"]),
           _fig(cvt["in"]) if cvt else "-", _fig(cvt["held"]) if cvt else "-", chose]
    return row, {"row": row, "folds": {f: _w(w, signals) for f, w in cv["chosen"].items()},
                 "tune_folds": {f: _w(w, signals) for f, w in cvt["chosen"].items()} if cvt else {}}


def family_table(run: Run, title: str, table: list[list[str]], rows: list[dict[str, Any]],
                 grids: dict[str, np.ndarray], signals: Sequence[str] = SIGNALS) -> dict[str, Any]:
    """`table` (its product rows) and a row per family, printed under `title`; each family's fold choices."""
    tune, results = [r for r in rows if r["set"] == "evalset:tune"], {}
    for idea, weights in grids.items():
        row, results[idea] = family_row(idea, weights, rows, tune, signals)
        table.append(row)
        run.log(f"{idea}: {row}; tune folds {results[idea]['tune_folds']}")
    run.table(title, markdown_table(FAMILY_COLUMNS, table))
    return results


def product_grid(name: str, values: Sequence[float], signals: Sequence[str]) -> np.ndarray:
    """Weight rows over `signals`: the product's WEIGHTS with `name` at each of `values`."""
    from agent.search.retrieval import WEIGHTS

    return np.array([[{**WEIGHTS, name: v}.get(s, 0.0) for s in signals] for v in values])


def beside_and_instead(name: str, replaced: str, values: Sequence[float],
                       signals: Sequence[str]) -> dict[str, np.ndarray]:
    """Two families: `name` at each of `values` on top of the product, and the same with the product's `replaced`
    signal off (`<name>_instead`)."""
    beside = product_grid(name, values, signals)
    instead = beside.copy()
    instead[:, list(signals).index(replaced)] = 0.0
    return {name: beside, f"{name}_instead": instead}


def one_signal_report(name: str, grid: Sequence[float], signals: Sequence[str],
                      title: str) -> Callable[[list[dict[str, Any]], Run], dict[str, Any]]:
    """A bench's `report` for one signal refit on top of the product: pooled CV (devset and tune rows apart) and the
    tune split's own CV, in-sample and held out."""
    return lambda rows, run: product_report(rows, run, title, {name: product_grid(name, grid, signals)}, signals)


def product_report(rows: list[dict[str, Any]], run: Run, title: str, grids: dict[str, np.ndarray],
                   signals: Sequence[str]) -> dict[str, Any]:
    """The product's row, then a row per family of `grids` (each on top of the product), under `title`."""
    from agent.search.retrieval import WEIGHTS

    sets = np.array([r["set"] for r in rows])
    tune = [r for r in rows if r["set"] == "evalset:tune"]
    product = np.array([weight_vector(dict(WEIGHTS), signals)])
    base, base_t = hits(rows, product)[:, 0], hits(tune, product)[:, 0] if tune else np.zeros((0, 2))
    table = [["product (fixed)", _fig(base[sets == "devset:all"]), "", _fig(base[sets == "evalset:tune"]), "",
              _fig(base_t), "", "product"]]
    return family_table(run, title, table, rows, grids, signals)


def report(rows: list[dict[str, Any]], run: Run) -> dict[str, Any]:
    """Per family: pooled CV (devset and tune rows apart) and the tune split's own CV, in-sample and held out."""
    sets = np.array([r["set"] for r in rows])
    tune = [r for r in rows if r["set"] == "evalset:tune"]
    table: list[list[str]] = []
    product = grid(next(iter(IDEAS)))[:1]
    before = product.copy()
    before[0, SIGNALS.index("next_section")] = 0.0
    for label, vec in (("product before next_section (fixed)", before), ("product (fixed)", product)):
        base, base_t = hits(rows, vec)[:, 0], hits(tune, vec)[:, 0] if tune else np.zeros((0, 2))
        table.append([label, _fig(base[sets == "devset:all"]), "", _fig(base[sets == "evalset:tune"]), "",
                      _fig(base_t), "", _w(vec[0])])
    return family_table(run, "Document side, on top of the product weights: hybrid hit@1/hit@5 in-sample and held out",
                        table, rows, {idea: grid(idea) for idea in IDEAS})


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--set", dest="qset", choices=("devset", "evalset", "pooled"), default="pooled")
    p.add_argument("--data", type=Path, default=None, help="the collections of bench.cv_sweep --data (reused)")
    p.add_argument("--levels", choices=("outline", "numbering"), default="outline",
                   help="section levels of this module's signals: the PDF outline's depth (else the numbering), "
                        "or the numbering only")
    args = p.parse_args(argv)
    global OUTLINE_LEVELS
    OUTLINE_LEVELS = args.levels == "outline"
    from agent.evaluate import load_questions
    from agent.search.embeddings import LocalEmbeddings

    run = Run(f"{NAME}-{args.qset}", args, argv if argv is not None else sys.argv[1:])
    sets = [("devset", "all"), ("evalset", "tune")] if args.qset == "pooled" else \
        [(args.qset, "all" if args.qset == "devset" else "tune")]
    set_blas_threads(1)
    emb = LocalEmbeddings()
    run.params = {"sets": sets, "ideas": IDEAS, "objective": "(hit@1 + hit@5) / 2, leave one document out",
                  "base": "product WEIGHTS fixed"}
    rows = []
    for qset, split in sets:
        pdfs, questions = _question_set(qset, split, None, load_questions)
        assert split != "test"
        with tempfile.TemporaryDirectory(prefix="bench-cvsec-") as tmp:
            collection = cached_collection(pdfs, (args.data or Path(tmp)) / f"data-{qset}-{split}", emb, run)
            rows += [{**r, "set": f"{qset}:{split}"}
                     for r in collect(questions, collection, pdfs[0].parent, emb, run)]
    run.results = report(rows, run)
    run.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
