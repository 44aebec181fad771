"""bench.cv_sections: sections as units of text, flat or with their subsections, across pages."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from langchain_core.documents import Document

from agent.search.page_table import PageTable
from bench.cv_sections import Structure


def test_a_section_runs_over_pages_and_holds_its_subsections_only_as_a_tree(tmp_path: Path) -> None:
    pages = [(1, "Preface text\n5.8. Simulation Details\nshort intro", ["5.8. Simulation Details"]),
             (2, "5.8.1. Cache Simulation\ncaches here\n5.9. Other Part\nother text", ["5.8.1. Cache Simulation",
                                                                                     "5.9. Other Part"])]
    docs = [Document(text, metadata={"file": "m.pdf", "page": n, "start": 0, "outline": titles})
            for n, text, titles in pages]
    s = Structure(SimpleNamespace(documents=docs, pages=PageTable.build(docs)), tmp_path)  # no PDF: numbering
    flat, starts, _ = s.units(tree=False)
    tree, _, members = s.units(tree=True)
    assert starts == [0, 1, 1]
    assert flat[0] == "5.8. simulation details short intro\n"  # up to the next title, on the next page
    assert tree[0].startswith("5.8. simulation details short intro\n5.8.1. cache simulation caches here")
    assert "other" not in tree[0] and members[0] == [0, 1]  # 5.9 ends it; 5.8.1 is inside
    assert s.continued_share()[1] == 0.0  # the second page starts with a title
