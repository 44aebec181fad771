"""Refusing a decompression bomb before any PDF library inflates it.

PDFium inflates a stream whole, through its whole filter chain, with no limit, and
concatenates a page's content streams: a 1 KB file can ask for gigabytes. Every stream
in the raw file is decoded here through its filter chain in 1 MB steps that are counted
and dropped, against two running budgets: one stream times the most references to it
from one array or dictionary (a page's /Contents array may name one stream many times),
and the whole file (the time this check may take).
"""

from __future__ import annotations

import mmap
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from agent.errors import DocumentError
from agent.ingest._pdf_filters import SLOW_DECODERS, STEP, FilterError, decode_chain

# Largest decoded size of one stream (times its repeats in one /Contents array): far beyond
# real streams (a 600 dpi A4 colour scan is 100 MB).
MAX_INFLATED_STREAM = 256 * 1024 * 1024
# Largest decoded size of all streams of a file, each once: bounds this check to a few seconds.
MAX_INFLATED_TOTAL = 4 * 1024 * 1024 * 1024
# Raw bytes of streams decoded in Python (LZW, RunLength: 1-3 MB/s) per file; a bomb needs far less
# (LZW: 0.2 MB for 256 MB), and a stream past this is left to the parser's memory limit (`_child`).
MAX_SLOW_INPUT = 16 * 1024 * 1024

_OBJECT = re.compile(rb"(\d+)\s+(\d+)\s+obj\b")
_STREAM_OR_END = re.compile(rb"endobj|stream(?:\r\n|\n|\r)")
_FILTER = re.compile(rb"/Filter\s*(\[[^\]]*\]|/[^\s/\[\]<>()%]+)")
_NAME = re.compile(rb"/([^\s/\[\]<>()%]+)")
_LENGTH = re.compile(rb"/Length\s+(\d+)(?!\s+\d+\s+R)")
_EARLY_CHANGE = re.compile(rb"/EarlyChange\s+0\b")
_OBJSTM = re.compile(rb"/Type\s*/ObjStm\b")
_CONTAINER = re.compile(rb"\[[^\[\]]*\]|<<[^<>]*>>")  # innermost arrays and dictionaries
_REFERENCE = re.compile(rb"(\d+)\s+(\d+)\s+R\b")
_DICT_MAX = 1 << 16  # a stream dictionary longer than this is not looked at
_OBJSTM_KEEP = 32 * 1024 * 1024  # decoded object streams kept to count the references inside


@dataclass
class _Stream:
    ref: tuple[int, int]
    start: int
    end: int
    filters: list[tuple[bytes, dict[str, int]]]
    objstm: bool


def _filters(head: bytes, data: mmap.mmap, start: int) -> list[tuple[bytes, dict[str, int]]]:
    """The stream's filter chain; a Flate guess for zlib-looking data whose /Filter is indirect."""
    params = {"EarlyChange": 0} if _EARLY_CHANGE.search(head) else {}
    found = _FILTER.search(head)
    if found:
        return [(name, params) for name in _NAME.findall(found.group(1))]
    if b"/Filter" in head:
        first = data[start:start + 2]
        if len(first) == 2 and first[0] & 0x0F == 8 and not (first[0] << 8 | first[1]) % 31:
            return [(b"FlateDecode", params)]
    return []


def _stream_end(data: mmap.mmap, head: bytes, start: int) -> int:
    length = _LENGTH.search(head)
    if length:
        end = start + int(length.group(1))
        if data[end:end + 32].lstrip(b"\r\n \t").startswith(b"endstream"):
            return end
    end = data.find(b"endstream", start)
    return len(data) if end < 0 else end


def _streams(data: mmap.mmap) -> tuple[list[_Stream], list[tuple[int, int]]]:
    """Every stream object, and the (start, end) spans of the file outside stream data."""
    streams: list[_Stream] = []
    spans: list[tuple[int, int]] = []
    pos = span_start = 0
    while (obj := _OBJECT.search(data, pos)) is not None:
        keyword = _STREAM_OR_END.search(data, obj.end(), min(len(data), obj.end() + _DICT_MAX))
        if keyword is None or keyword.group() == b"endobj":
            pos = obj.end() if keyword is None else keyword.end()
            continue
        head, start = data[obj.end():keyword.start()], keyword.end()
        end = _stream_end(data, head, start)
        ref = (int(obj.group(1)), int(obj.group(2)))
        streams.append(_Stream(ref, start, end, _filters(head, data, start), bool(_OBJSTM.search(head))))
        spans.append((span_start, start))
        pos = span_start = max(end, start)
    spans.append((span_start, len(data)))
    return streams, spans


def _count_references(text: bytes, most: Counter) -> None:
    """`most[ref]`: the most times one array or dictionary names `ref`, where more than once."""
    for container in _CONTAINER.finditer(text):
        refs = _REFERENCE.findall(container.group())
        if len(refs) > 1 and len(set(refs)) < len(refs):
            for (n, g), count in Counter(refs).items():
                most[int(n), int(g)] = max(most[int(n), int(g)], count)


def _raw(data: mmap.mmap, stream: _Stream) -> Iterator[bytes]:
    for pos in range(stream.start, stream.end, STEP):
        yield data[pos:min(stream.end, pos + STEP)]


@dataclass
class _Budget:
    name: str
    stream_limit: int
    total_limit: int
    total: int = 0
    slow_input: int = 0

    def spend(self, data: mmap.mmap, stream: _Stream, repeats: int, keep: bytearray | None = None) -> None:
        """Decode one stream, counting its output `repeats` times against the stream limit."""
        if any(name in SLOW_DECODERS for name, _params in stream.filters):
            self.slow_input += stream.end - stream.start
            if self.slow_input > MAX_SLOW_INPUT:
                return
        size = 0
        try:
            for chunk in decode_chain(_raw(data, stream), stream.filters):
                size += len(chunk)
                self.total += len(chunk)
                if size * repeats > self.stream_limit or self.total > self.total_limit:
                    raise _bomb(self.name, self.stream_limit if size * repeats > self.stream_limit
                                else self.total_limit)
                if keep is not None and len(keep) < _OBJSTM_KEEP:
                    keep += chunk
        except FilterError:
            return  # damaged or encrypted data: the PDF readers judge it


def _bomb(name: str, limit: int) -> DocumentError:
    mb = f"{limit / (1024 * 1024):.0f} MB"
    return DocumentError(
        f"{name} holds compressed streams that expand to more than {mb} "
        "(a decompression bomb?), so it was not opened.",
        "If the file is genuine, re-export it (e.g. print it to PDF) and add it again.",
        code="doc_bomb", params={"file": name, "limit": mb})


def check_inflation(path: Path, stream_limit: int = MAX_INFLATED_STREAM,
                    total_limit: int = MAX_INFLATED_TOTAL) -> None:
    """Raise DocumentError (code doc_bomb) if the file's streams decode past a budget."""
    budget = _Budget(path.name, stream_limit, total_limit)
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        streams, spans = _streams(data)
        most: Counter = Counter()
        for start, end in spans:
            _count_references(data[start:end], most)
        for stream in (s for s in streams if s.objstm and s.filters):
            kept = bytearray()
            budget.spend(data, stream, 1, kept)
            _count_references(bytes(kept), most)
        for stream in (s for s in streams if not s.objstm and s.filters):
            budget.spend(data, stream, max(1, most[stream.ref]))
