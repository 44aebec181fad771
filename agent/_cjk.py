"""The one table of CJK code-point ranges, as regex character-class bodies, named by role."""

from __future__ import annotations

import re

RADICALS = "\u2e80-\u2fdf"  # CJK and Kangxi radicals
PUNCTUATION = "\u3001-\u303f"  # CJK punctuation (not U+3000 ideographic space)
KANA = "\u3040-\u30ff"
BOPOMOFO = "\u3100-\u312f\u31a0-\u31ff"
IDEOGRAPHS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
COMPAT_FORMS = "\ufe30-\ufe4f"
FULLWIDTH = "\uff01-\uff60\uff61-\uff9f"  # fullwidth / halfwidth forms
HANGUL = "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af"

#: Characters of CJK text that are written without spaces between them.
CJK_TEXT = RADICALS + PUNCTUATION + KANA + BOPOMOFO + IDEOGRAPHS + COMPAT_FORMS + FULLWIDTH
#: Scripts that cost about one model token per character (CJK text and Hangul).
DENSE_SCRIPTS = CJK_TEXT + HANGUL

_CJK_TEXT_CHAR = re.compile(f"[{CJK_TEXT}]")


def is_cjk(ch: str) -> bool:
    """True for one character of CJK text (no spaces are put around it when joining)."""
    return _CJK_TEXT_CHAR.match(ch) is not None
