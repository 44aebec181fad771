"""Real embeddings of real text, to measure approximate-index recall where it matters.

Random or clustered synthetic vectors say little about how an IVF index behaves on what
the product stores, so the ANN recall figures also use this corpus: chunks of real text,
embedded with the product's local embedder (USE multilingual), cached on disk because
100k chunks take ~15 min to embed on one core.

Texts (all offline, all real prose or documentation): the devset PDFs through our own
parser and chunker (English and Chinese), then the docstrings of the Python standard
library and of the installed packages (English), chunked the same way (800/120).
Queries: the devset questions (English and Chinese).

    python -m bench.real_vectors --n 100000      # writes the cache, prints what it holds
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bench.common import page_texts
from tests.support import DEVSET, DEVSET_PDFS, ROOT

CACHE_DIR = ROOT / "bench" / "results" / "cache"  # git-ignored
CHUNK_SIZE, CHUNK_OVERLAP = 800, 120
MIN_CHARS = 80


def _devset_chunks() -> Iterator[str]:
    from agent.ingest.chunking import make_splitter

    splitter = make_splitter(CHUNK_SIZE, CHUNK_OVERLAP)
    for pdf in sorted(DEVSET_PDFS.glob("*.pdf")):
        try:
            pages = page_texts(pdf)
        except Exception:  # noqa: BLE001, S112 - broken/encrypted devset files are not text sources
            continue
        for page in pages:
            yield from splitter.split_text(page)


def _docstring_chunks() -> Iterator[str]:
    from agent.ingest.chunking import make_splitter

    splitter = make_splitter(CHUNK_SIZE, CHUNK_OVERLAP)
    roots = [Path(sysconfig.get_paths()["stdlib"]), Path(sysconfig.get_paths()["purelib"])]
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    doc = ast.get_docstring(node)
                    if doc:
                        yield from splitter.split_text(doc)


def real_texts(n: int) -> list[str]:
    """Up to n distinct chunks of real text (devset first, then docstrings)."""
    seen: set[str] = set()
    out: list[str] = []
    for source in (_devset_chunks(), _docstring_chunks()):
        for text in source:
            text = text.strip()
            if len(text) >= MIN_CHARS and text not in seen:
                seen.add(text)
                out.append(text)
                if len(out) >= n:
                    return out
    return out


def queries() -> list[str]:
    rows = [json.loads(line) for line in (DEVSET / "questions.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]
    return [r["question"] for r in rows]


def real_vectors(n: int, *, log=print) -> tuple[np.ndarray, np.ndarray, dict]:
    """(corpus vectors, query vectors, info), from the cache when it holds n vectors."""
    from agent.search.embeddings import LocalEmbeddings

    texts = real_texts(n)
    key = hashlib.sha256("\n\0".join(texts).encode()).hexdigest()[:16]
    path = CACHE_DIR / f"real-{len(texts)}-{key}.npy"
    emb = LocalEmbeddings(batch_size=64)
    qs = queries()
    if path.exists():
        xb = np.load(path, allow_pickle=False)
    else:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        parts = []
        for start in range(0, len(texts), 2048):
            parts.append(emb.embed_array(texts[start:start + 2048]))
            log(f"embedded {start + len(parts[-1]):,}/{len(texts):,} in {time.perf_counter() - t0:.0f} s")
        xb = np.vstack(parts)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, xb, allow_pickle=False)
        tmp.replace(path)
    xq = emb.embed_array(qs)
    info = {"texts": len(texts), "queries": len(qs), "cache": path.name,
            "sources": "devset PDFs (our parser + 800/120 chunks), then docstrings of the stdlib and "
                       "installed packages, same chunking; queries: devset questions"}
    return xb, xq, info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=100_000)
    args = p.parse_args(argv)
    xb, xq, info = real_vectors(args.n)
    print(json.dumps({**info, "shape": list(xb.shape), "query_shape": list(xq.shape)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
