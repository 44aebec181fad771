"""Issue 16, words written apart or joined: a question's "device link", "run time" or "command-line" against a page's
"DeviceLink", "runtime" or "commandline", cross-validated by document.

The tokenizer makes one index term of a word and cuts at hyphens, so such a pair shares no term with the page that
writes it the other way. `compound` = page BM25 of the question's variants only: two adjacent words of two letters or
more, each an index term of its own (no stop word), joined; a hyphenated word written without its hyphens; kept when the
variant is an index term of the collection and not already one of the question's. Z-scored, its weight refit on top of
the product's WEIGHTS (leave one document out, pooled devset + tune split and the tune split alone, as
bench/cv_xdict.py). The evalset's test split is never read here.

    python -m bench.cv_compound --set pooled --data DIR   # DIR/data-<set>-<split>: collections kept (cv_sweep's)
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from itertools import pairwise
from typing import Any

from bench.common import Run
from bench.cv_common import PRODUCT, candidates, family_main, product_signals, question_row
from bench.cv_sections import one_signal_report

NAME = "cv_compound"
OWN = ("compound",)
SIGNALS = (*PRODUCT, *OWN)
GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8)
IDEAS = {"compound": GRID}
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*")


def variants(question: str, known: Collection[str]) -> list[str]:
    """The index terms of the question's words joined or unhyphenated that the collection knows and the question
    does not hold already."""
    from agent.search.tokens import query_terms, tokenize

    words, own = _WORD.findall(question), set(query_terms(question))
    joined = [a + b for a, b in pairwise(words) if min(len(a), len(b)) > 1 and tokenize(a) and tokenize(b)]
    whole = [w.replace("-", "") for w in words if "-" in w]
    terms = (tokenize(text) for text in joined + whole)
    return sorted({t[0] for t in terms if len(t) == 1 and t[0] in known and t[0] not in own})


def collect(questions: Sequence[Any], collection: Any, emb: Any, run: Run) -> list[dict[str, Any]]:
    """Per question: the product's signals and `compound` over its candidate pages, and the gold mask."""
    from agent.search.keyword_index import collection_index
    from agent.search.retrieval import _zscore

    ix = collection_index(collection)
    keys, known = ix.pages.keys(), ix.page_bm25.vocabulary.ids
    rows, touched = [], 0
    for q in questions:
        ps, raw, z = product_signals(q.question, collection, emb)
        found = variants(q.question, known)
        touched += bool(found)
        own = ix.page_bm25.scores(found).astype(float)
        z["compound"] = _zscore(own)
        rows.append(question_row(q, z, candidates(ps, raw, own > 0), keys, SIGNALS))
    run.log(f"{touched} of {len(questions)} questions have a variant")
    return rows


report = one_signal_report("compound", GRID, SIGNALS, "Words joined or unhyphenated: hybrid hit@1/hit@5")


def main(argv: list[str] | None = None) -> int:
    return family_main(argv, __doc__, NAME, collect, report, ideas=IDEAS)


if __name__ == "__main__":
    raise SystemExit(main())
