"""Issue 16, answer-type evidence: does "the page holds the answer's form near the question's terms" generalise?

A question is classified by a small rule table (English and Chinese): `number` ("how many", "which version",
"多少") wants a number, `option` ("which option", "哪个参数") an option token (`-x`, `--long`, `\\cmd`, `key=`),
`command` ("which command / function / file", "哪个命令") a command, call, file name or path, `instruction`
("how do I", "如何") an imperative or code line after the terms. For the CANDIDATES best pages by page BM25
(as agent/search/definition.py reads them) the signal `at<W>` is 1 where a chunk holds a fired rule's form
within W index positions of a question term (after it, for `instruction`), else 0; `at<W>_s` (strict) needs the
W positions either side of the form to hold at least half of the question's idf. Each family is fitted on top of
the product's WEIGHTS and scored like bench/cv_sweep.py: leave one document out, in-sample and held-out side by
side, pooled (devset + tune split) and the tune split alone. The evalset's test split is never read here.

    python -m bench.cv_atype --data DIR   # DIR/data-<set>-<split>: collections kept between runs (cv_sweep's)
"""

from __future__ import annotations

import bisect
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Run, markdown_table, parser, set_blas_threads
from bench.cv_common import (
    PRODUCT,
    candidates,
    cross_validate,
    four_reports,
    hits,
    question_row,
    set_rows,
    study_sets,
    weight_vector,
)

NAME = "cv_atype"
CANDIDATES = 20
WINDOWS = (8, 16, 32)
AT_W = (0.0, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 2.0)
RULE_W = (0.0, 0.05, 0.2, 0.5)
RULE_WINDOW = 16  # the per-rule family's window: the middle one (no choice made on the scores)
_ZH = r"[\u4e00-\u9fff]"
_ASKS = r"(?:\bwhich|\bwhat)\b(?:\s+[\w-]+){0,2}?\s+"
#: rule -> (question pattern, answer-form pattern); patterns run on `normalise`d text (lower case, NFKC)
RULES: dict[str, tuple[re.Pattern[str], re.Pattern[str]]] = {
    "number": (re.compile(r"\bhow\s+(?:many|much|long|big|large|often|fast)\b|" + _ASKS
                          + r"(?:size|version|number|percentage|port|limit|length|default\s+value)s?\b"
                          r"|\bdefault\s+(?:value|size)\b|\b(?:maximum|minimum)\b|多少|几[个种次位项条]|多大|多长|多久"
                          r"|哪个版本|什么版本"),
               re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?![\w.]*\.\d)|[一二两三四五六七八九十百千万]+[个种次位项条倍]")),
    "option": (re.compile(_ASKS + r"(?:options?|flags?|switch(?:es)?|parameters?|arguments?|settings?|keys?"
                          r"|variables?|environment\s+variables?)\b|(?:哪个|哪些|什么)" + _ZH + r"{0,4}?(?:选项|参数|开关|变量)"),
               re.compile(r"(?<![\w-])--?[a-z][\w-]*|\\[a-z]+|\b[a-z_][\w.-]*\s*=")),
    "command": (re.compile(_ASKS + r"(?:commands?|functions?|files?|headers?|macros?|programs?|tools?|utilit(?:y|ies)"
                           r"|packages?|director(?:y|ies)|paths?|calls?|methods?|routines?|apis?|libraries|library)\b"
                           r"|(?:哪个|哪些|什么)" + _ZH + r"{0,4}?(?:命令|函数|文件|宏包|宏|程序|工具|目录|路径|包)"),
                re.compile(r"\b[a-z_]\w*\s?\(|\b[\w-]+\.(?:c|h|txt|conf|cfg|xml|sh|py|tex|sty|cls|json|ini|so|a|bz2"
                           r"|gz|tar|1|5|8)\b|(?:~|\.{1,2})?/[\w.-]+(?:/[\w.-]+)+|\\[a-z]+|^\s*[$#%>]\s", re.MULTILINE)),
    "instruction": (re.compile(r"^\s*how\s+(?:do|can|should|could|would|to|does)\b|如何|怎么|怎样"),
                    re.compile(r"^\s*(?:[$#%>]\s|\\[a-z]+|(?:run|type|use|add|set|install|open|click|select|create"
                               r"|edit|enter|put|write|call|change|copy|remove|specify|pass|choose|press|configure"
                               r"|load|include|insert|define|start|invoke|execute|compile|save|replace)\b"
                               r"|(?:使用|输入|运行|执行|添加|设置|安装|打开|点击|选择|修改|编辑|调用|加载|在))"
                               r"|\b(?:for\s+example|e\.g\.|example:)|例如|比如|如下", re.MULTILINE))}
SIGNALS_BASE = PRODUCT
SCALED = ("bm25_chunk", "bm25_page", "vector")
AT = tuple(f"at{w}{s}" for w in WINDOWS for s in ("", "_s"))
PER_RULE = tuple(f"at{RULE_WINDOW}_{r}" for r in RULES)
SIGNALS = (*SIGNALS_BASE, *AT, *PER_RULE)


def classify(question: str) -> list[str]:
    """The rules whose question pattern the question matches (none: the signal stays 0)."""
    from agent.search.tokens import normalise

    text = " ".join(normalise(question).split())
    return [name for name, (ask, _) in RULES.items() if ask.search(text)]


def positions(text: str) -> tuple[list[int], list[str]]:
    """Start offsets and terms of a normalised text's index positions: a word is one position, each character
    of a Chinese run one (its term the bigram starting there, as the index's bigrams)."""
    from agent.search.tokens import _CJK_RUN, _TOKEN, _word_terms

    starts, terms = [], []
    for m in _TOKEN.finditer(text):
        tok = m.group()
        if _CJK_RUN.fullmatch(tok):
            for i in range(len(tok)):
                starts.append(m.start() + i)
                terms.append(tok[i:i + 2])
        else:
            starts.append(m.start())
            terms.append((_word_terms(tok) or ("",))[0])
    return starts, terms


def chunk_evidence(text: str, forms: Sequence[tuple[re.Pattern[str], bool]], idf: dict[str, float],
                   total: float) -> dict[str, bool]:
    """Per AT name: whether `text` holds a form within W positions of a question term (strict: the 2W
    positions around it hold half the question's idf). `forms`: (pattern, after_only)."""
    starts, terms = positions(text)
    qpos = [i for i, t in enumerate(terms) if t in idf]
    out = dict.fromkeys(AT, False)
    if not qpos:
        return out
    for pattern, after in forms:
        for m in pattern.finditer(text):
            p = max(0, bisect.bisect_right(starts, m.start()) - 1)
            if terms[p] in idf:  # the question's own number or name is not its answer
                continue
            for w in WINDOWS:
                near = [q for q in qpos if (0 < p - q <= w if after else abs(p - q) <= w)]
                out[f"at{w}"] |= bool(near)
                if near and not out[f"at{w}_s"]:
                    held = sum(idf[t] for t in {terms[q] for q in qpos if abs(p - q) <= w})
                    out[f"at{w}_s"] = held >= total / 2
            if all(out.values()):
                return out
    return out


def answer_type(question: str, rules: Sequence[str], view: Any, indexes: Sequence[Any]) -> dict[str, np.ndarray]:
    """Per signal of AT and PER_RULE: per page 1/0 (the CANDIDATES best pages by page BM25, else 0)."""
    from agent.search.tokens import normalise, query_terms

    out = {s: np.zeros(view.pages) for s in (*AT, *PER_RULE)}
    terms = query_terms(question)
    if not rules or not terms:
        return out
    ix = indexes[0]
    ids = ix.page_bm25.vocabulary.ids
    idf = {t: float(ix.page_bm25.idf[ids[t]]) for t in set(terms) if t in ids}
    scores = np.concatenate([i.page_bm25.scores(terms) for i in indexes])
    best = [int(p) for p in np.argsort(-scores, kind="stable")[:CANDIDATES] if scores[p] > 0]
    total = sum(idf.values())
    for p in best:
        for c in view.page_chunks(p):
            text = normalise(view.document(c).page_content)
            for r in rules:
                ev = chunk_evidence(text, [(RULES[r][1], r == "instruction")], idf, total)
                for s in AT:
                    out[s][p] = max(out[s][p], float(ev[s]))
                out[f"at{RULE_WINDOW}_{r}"][p] = max(out[f"at{RULE_WINDOW}_{r}"][p], float(ev[f"at{RULE_WINDOW}"]))
    return out


def collect(questions: Sequence[Any], collection: Any, emb: Any, run: Run) -> list[dict[str, Any]]:
    """Per question: the product's signals and the answer-type ones over its candidate pages, gold mask."""
    from agent.search.keyword_index import collection_index
    from agent.search.retrieval import _zscore, page_signals

    ix = collection_index(collection)
    keys, rows = ix.pages.keys(), []
    for i, q in enumerate(questions):
        ps = page_signals(q.question, [collection], embeddings=emb, lexical=True, vector=True)
        assert ps is not None
        pages, rules = ps.view.pages, classify(q.question)
        z = {name: ps.pages.get(name, np.zeros(pages)) for name in SIGNALS_BASE}
        cand = candidates(ps, z)
        z.update({s: _zscore(z[s]) for s in SCALED})
        z.update(answer_type(q.question, rules, ps.view, ps.view.indexes))
        rows.append(question_row(q, z, cand, keys, SIGNALS, rules=rules))
        if i % 50 == 0:
            run.log(f"signals {i + 1}/{len(questions)}")
    return rows


def families() -> dict[str, np.ndarray]:
    """Family -> weight grid (rows over SIGNALS), each on top of the product's WEIGHTS."""
    from agent.search.retrieval import WEIGHTS

    base = dict(WEIGHTS)
    grids = {f"{s} (W={s[2:].split('_')[0]}{', strict' if s.endswith('_s') else ''})":
             [{**base, s: w} for w in AT_W] for s in AT}
    grids["at<W>, W chosen by the folds too"] = [{**base, f"at{w}": x} for w in WINDOWS for x in AT_W]
    grids["at<W>_s, W chosen by the folds too"] = [{**base, f"at{w}_s": x} for w in WINDOWS for x in AT_W]
    rule_grid = [dict(zip(PER_RULE, ws)) for ws in np.array(np.meshgrid(*[RULE_W] * len(PER_RULE))).reshape(
        len(PER_RULE), -1).T.tolist()]
    grids[f"per rule (W={RULE_WINDOW}), a weight each"] = [{**base, **r} for r in rule_grid]
    return {name: np.array([weight_vector(w, SIGNALS) for w in ws]) for name, ws in grids.items()}


def _w(vec: np.ndarray) -> str:
    return " ".join(f"{s}={v:g}" for s, v in zip(SIGNALS, vec) if v and s not in SIGNALS_BASE)


def _cell(h: np.ndarray, mask: np.ndarray) -> str:
    return f"{h[mask, 0].mean():.3f}/{h[mask, 1].mean():.3f}" if mask.any() else "-"


def report(rows: list[dict[str, Any]], run: Run, title: str, at1: float = 0.5) -> dict[str, Any]:
    """The product as it is, then every family cross-validated by document; per set and language; the
    questions won / lost at rank 1 (held-out) against the product."""
    from agent.search.retrieval import WEIGHTS

    sets, langs = np.array([r["set"] for r in rows]), np.array([r["lang"] for r in rows])
    groups = [(st, sets == st) for st in sorted(set(sets))] + [(lg, langs == lg) for lg in ("en", "zh")]
    if len(set(sets)) > 1:
        groups.insert(0, ("all", np.ones(len(rows), dtype=bool)))
    ids = np.array([r["id"] for r in rows])
    h0 = hits(rows, np.array([weight_vector(dict(WEIGHTS), SIGNALS)]))[:, 0]
    table = [["product WEIGHTS (fixed)", *(c for _, m in groups for c in ("-", _cell(h0, m))), "-", "-", "-"]]
    results: dict[str, Any] = {}
    for name, grid in families().items():
        cv = cross_validate(rows, grid, at1)
        won, lost = ids[cv["held"][:, 0] > h0[:, 0]].tolist(), ids[cv["held"][:, 0] < h0[:, 0]].tolist()
        folds = [_w(w) for w in cv["chosen"].values()]
        mode = max(set(folds), key=folds.count)
        table.append([name, *(c for _, m in groups for c in (_cell(cv["in"], m), _cell(cv["held"], m))),
                      f"+{len(won)} -{len(lost)}", f"{folds.count(mode)}/{len(folds)}: {mode or 'none'}",
                      _w(cv["in_weights"]) or "none"])
        results[name] = {"won": won, "lost": lost, "in": {g: _cell(cv["in"], m) for g, m in groups},
                         "held": {g: _cell(cv["held"], m) for g, m in groups}, "in_weights": _w(cv["in_weights"]),
                         "folds": {f: _w(w) for f, w in cv["chosen"].items()}}
        run.log(f"{title} / {name}: won {won} lost {lost}; folds chose " + "; ".join(
            f"{f}: {_w(w)}" for f, w in cv["chosen"].items()))
    head = ["family", *(f"{g} {kind}" for g, _ in groups for kind in ("in", "held")), "held @1 vs product",
            "folds' most common choice", "in-sample best"]
    run.table(f"{title}: hybrid hit@1/hit@5 in-sample (in) and held-out (held), leave one document out",
              markdown_table(head, table))
    return results


def firing(rows: list[dict[str, Any]], run: Run) -> dict[str, Any]:
    """Per rule and set: share of questions it fires on; among those, share whose gold page has the form
    (at RULE_WINDOW), share whose product-ranked best non-gold page has it (does it tell them apart?), and the
    questions the product misses at rank 1 where the gold page has the form and that rival lacks it."""
    from agent.search.retrieval import WEIGHTS

    table, out, w = [], {}, np.array(weight_vector(dict(WEIGHTS), SIGNALS))
    for st in sorted({r["set"] for r in rows}):
        sub = [r for r in rows if r["set"] == st]
        for rule in (*RULES, "any"):
            fired = [r for r in sub if r["gold"].any() and (rule in r["rules"] if rule != "any" else r["rules"])]
            col = SIGNALS.index(f"at{RULE_WINDOW}_{rule}" if rule != "any" else f"at{RULE_WINDOW}")
            gold, rival, room = [], [], 0
            for r in fired:
                scores = r["z"] @ w
                top = int(np.argmax(np.where(r["gold"], -np.inf, scores)))
                gold.append(r["z"][r["gold"], col].max())
                rival.append(r["z"][top, col])
                room += int(scores[top] > scores[r["gold"]].max() and gold[-1] > rival[-1])
            cells = [len(fired) / len(sub), float(np.mean(gold)) if gold else 0.0,
                     float(np.mean(rival)) if rival else 0.0, room]
            out[f"{st}/{rule}"] = cells
            table.append([st, rule, f"{len(fired)}/{len(sub)} ({cells[0]:.2f})", f"{cells[1]:.2f}", f"{cells[2]:.2f}",
                          str(room)])
    run.table(f"Rules: questions fired on; among them, share with the form (at{RULE_WINDOW}) on a gold page and on the "
              "product's best non-gold page; product misses @1 with the form on gold and not on that rival",
              markdown_table(["set", "rule", "fires on", "gold has form", "best rival has form", "room"], table))
    return out


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=None, help="keep the ingested collections in DIR (see cv_sweep)")
    args = p.parse_args(argv)
    run = Run(NAME, args, argv if argv is not None else sys.argv[1:])
    sets = study_sets("pooled")
    set_blas_threads(1)
    run.params = {"sets": sets, "candidates": CANDIDATES, "windows": WINDOWS, "at_w": AT_W, "rule_w": RULE_W,
                  "rules": {k: [a.pattern, f.pattern] for k, (a, f) in RULES.items()},
                  "objective": "(hit@1 + hit@5) / 2, and hit@1 alone; leave one document out"}
    rows = set_rows(sets, args.data, collect, run)
    run.results = {"firing": firing(rows, run),
                   **four_reports(rows, lambda r, title, at1=0.5: report(r, run, title, at1))}
    run.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
