"""User-supplied names never escape the data directory."""

import pytest

from agent._files import MAX_FILE_NAME, check_collection_name, safe_file_name


@pytest.mark.parametrize("raw,expected", [
    ("../../etc/passwd.pdf", "passwd.pdf"),
    ("C:\\Users\\me\\report.pdf", "report.pdf"),
    ("con.pdf", "_con.pdf"),
    ("bad\nname\r.pdf", "badname.pdf"),
    ("   ", "document.pdf"),
    ("..", "document.pdf"),
    ("报告.pdf", "报告.pdf"),
])
def test_safe_file_name(raw, expected):
    assert safe_file_name(raw) == expected


def test_long_names_keep_their_extension():
    name = safe_file_name("x" * 300 + ".pdf")
    assert len(name) <= MAX_FILE_NAME and name.endswith(".pdf")


@pytest.mark.parametrize("bad", ["", "../x", ".hidden", "a/b", "x" * 65])
def test_bad_collection_names(bad):
    with pytest.raises(ValueError):
        check_collection_name(bad)


def test_good_collection_name():
    assert check_collection_name(" My docs-2 ") == "My docs-2"
