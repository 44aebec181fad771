"""UI text in English and Chinese: `t(key, lang, **values)`, `error_text`, `count`, `local_time`.

Every key has both languages (a test checks it). Values are `str.format` templates.
A missing key falls back to English, then to `default`, then to the key itself, so a
typo shows up as visible text instead of crashing the page. Errors from `agent/` are
worded by their code (agent/app/_wording.py); one without a known code shows its
library message. Text for Markdown elements goes through `md`, which escapes the
values (a file name such as `__init__.pdf` must not turn bold).
"""

from __future__ import annotations

import re
import string
from datetime import datetime, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.app._strings import STRINGS
from agent.app._wording import ERRORS, FIELD_HELP

_INLINE = re.compile(r"([\\`*_\[\]<>~$|])")  # what formats text anywhere in a line
_LINE_START = re.compile(r"^(\s*)(?:([#+-])(?=\s|$)|(>)|(\d+)([.)])(?=\s|$))")  # list, heading, quote markers


def md_literal(text: str) -> str:
    """`text` shown literally in Markdown: inline markers escaped, and a line-start marker
    (#, >, -, "1.") too; other punctuation is left alone so the Markdown source stays readable."""
    return _LINE_START.sub(_escape_marker, _INLINE.sub(r"\\\1", str(text)))


def _escape_marker(match: re.Match[str]) -> str:
    indent, bullet, quote, number, dot = match.groups()
    return f"{indent}{number}\\{dot}" if number else f"{indent}\\{bullet or quote}"

LANGUAGES: dict[str, str] = {"en": "English", "zh": "中文"}



def t(key: str, lang: str = "en", default: str | None = None, **values: Any) -> str:
    """The text for `key` in `lang` ("en" or "zh"), formatted with `values`."""
    entry = STRINGS.get(key)
    if entry is None:
        template = default if default is not None else key
    else:
        template = entry.get(lang) or entry["en"]
    if not values:
        return template
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError):
        return template


def md(template: str, **values: Any) -> str:
    """Fill a Markdown template: values are escaped, except inside `code spans` of the template
    (shown verbatim there; a backtick in a value becomes ')."""
    out = []
    in_code = False
    try:
        parsed = list(string.Formatter().parse(template))
        for literal, field, spec, conversion in parsed:
            out.append(literal)
            in_code ^= literal.count("`") % 2 == 1
            if field is None:
                continue
            value = format(values[field], spec or "")
            out.append(value.replace("`", "'") if in_code else md_literal(value))
    except (KeyError, IndexError, ValueError):
        return template
    return "".join(out)


def error_text(err: BaseException | None = None, lang: str = "en", *, code: str = "",
               params: dict[str, Any] | None = None, message: str = "") -> str:
    """An error as Markdown for an alert: the wording for its code in `lang`, else its message.

    Pass an exception (an AgentError carries code and params), or a stored error's
    `code`, `params` and `message` (a conversation turn)."""
    if err is not None:
        code = getattr(err, "code", "") or code
        params = getattr(err, "params", None) or params
        message = md_plain(str(err)) if not hasattr(err, "message") else _plain(err)
    params = dict(params or {})
    if code == "invalid_setting" and f"invalid_{params.get('field')}" in ERRORS:
        code = f"invalid_{params['field']}"
    if code == "invalid_setting":
        params["label"] = t(f"field_{params.get('field')}", lang, default=str(params.get("field", "")))
    entry = ERRORS.get(code, {}).get(lang) or ERRORS.get(code, {}).get("en")
    if entry is None:
        return message
    text, fix = (md(part, **params) for part in entry)
    return f"{text}  \n{fix}" if fix else text


def _plain(err: Any) -> str:
    """An AgentError without a wording of its own: message and fix as literal text."""
    text = md_plain(err.message)
    return f"{text}  \n{md_plain(err.fix)}" if err.fix else text


def md_plain(text: str) -> str:
    """Library text for Markdown: literal everywhere but its `code spans` (commands to run)."""
    parts = str(text).split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: no code spans at all
        return md_literal(str(text))
    return "`".join(part if i % 2 else md_literal(part) for i, part in enumerate(parts))


def count(key: str, n: int, lang: str = "en") -> str:
    """"1 page" / "2 pages": `key_one` for one (in the languages that have it), else `key`."""
    singular = f"{key}_one"
    return t(singular if n == 1 and singular in STRINGS else key, lang, n=n)


def field_help(field: str, lang: str = "en") -> str:
    entry = FIELD_HELP.get(field, {})
    return entry.get(lang) or entry.get("en", "")


def status_text(code: str, params: dict[str, Any], lang: str = "en", fallback: str = "") -> str:
    """An engine Status (rewrite, search, read) in `lang`."""
    if code == "read":
        return count("status_read", int(params.get("n", 0)), lang)
    return t(f"status_{code}", lang, default=fallback) if code else fallback


def timezone_of(name: str | None) -> tzinfo:
    """The browser's time zone by IANA name; the server's local zone if unknown."""
    try:
        return ZoneInfo(name) if name else _local_zone()
    except (ZoneInfoNotFoundError, ValueError):
        return _local_zone()


def _local_zone() -> tzinfo:
    return datetime.now().astimezone().tzinfo or timezone.utc


def local_time(iso: str, zone: tzinfo, *, seconds: bool = False) -> str:
    """An ISO timestamp (UTC, as stored) as local "2026-12-03 15:48"; the text itself if unparsable."""
    try:
        moment = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return str(iso)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def day_label(iso: str, zone: tzinfo, lang: str, now: datetime | None = None) -> str:
    """Today / Yesterday / the local date: the headings of the conversation list."""
    try:
        moment = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    day = moment.astimezone(zone).date()
    today = (now or datetime.now(timezone.utc)).astimezone(zone).date()
    if day == today:
        return t("today", lang)
    if (today - day).days == 1:
        return t("yesterday", lang)
    return day.isoformat()


def join_list(items: list[str], lang: str = "en") -> str:
    """"a, b, c" in English, "a、b、c" in Chinese."""
    return ("、" if lang == "zh" else ", ").join(items)
