"""Bounded, incremental decoders for the PDF stream filters a reader inflates whole.

Each decoder turns an iterator of byte chunks into an iterator of chunks of at most
`STEP` bytes, so a chain of them (Flate over LZW over ASCIIHex ...) never holds more
than a few steps of output in memory: the bomb check counts and drops what they yield.
"""

from __future__ import annotations

import base64
import re
import zlib
from collections.abc import Callable, Iterable, Iterator

STEP = 1 << 20  # bytes of output per yielded chunk

Chunks = Iterator[bytes]


class FilterError(ValueError):
    """The data is not valid for the filter: a damaged stream, judged later by the PDF readers."""


def _flate(chunks: Iterable[bytes], params: dict[str, int]) -> Chunks:
    inflater = zlib.decompressobj()
    try:
        for chunk in chunks:
            while chunk and not inflater.eof:
                out = inflater.decompress(chunk, STEP)
                if out:
                    yield out
                chunk = inflater.unconsumed_tail
            if inflater.eof:
                return
    except zlib.error as exc:
        raise FilterError(str(exc)) from exc


def _lzw(chunks: Iterable[bytes], params: dict[str, int]) -> Chunks:
    """PDF LZW: MSB-first codes of 9-12 bits, 256 = clear table, 257 = end of data."""
    early = 1 if params.get("EarlyChange", 1) else 0
    table: list[bytes] = [bytes([i]) for i in range(256)] + [b"", b""]
    width, bits, nbits, prev = 9, 0, 0, b""
    out = bytearray()
    for chunk in chunks:
        for byte in chunk:
            bits, nbits = (bits << 8) | byte, nbits + 8
            while nbits >= width:
                nbits -= width
                code = (bits >> nbits) & ((1 << width) - 1)
                bits &= (1 << nbits) - 1
                if code == 256:
                    del table[258:]
                    width, prev = 9, b""
                    continue
                if code == 257:
                    if out:
                        yield bytes(out)
                    return
                if code < len(table):
                    entry = table[code]
                elif code == len(table) and prev:
                    entry = prev + prev[:1]
                else:
                    raise FilterError("LZW code out of range")
                if prev and len(table) < 4096:
                    table.append(prev + entry[:1])
                prev = entry
                out += entry
                if len(table) + early >= 1 << width and width < 12:
                    width += 1
                if len(out) >= STEP:
                    yield bytes(out)
                    out.clear()
    if out:
        yield bytes(out)


_NOT_HEX = re.compile(rb"[^0-9A-Fa-f]")
_SPACE = re.compile(rb"[\x00\t\n\x0c\r ]+")


def _ascii_hex(chunks: Iterable[bytes], params: dict[str, int]) -> Chunks:
    held = b""
    for chunk in chunks:
        end = chunk.find(b">")
        digits = _SPACE.sub(b"", chunk if end < 0 else chunk[:end])
        if _NOT_HEX.search(digits):
            raise FilterError("not hexadecimal")
        text = held + digits
        even = len(text) - len(text) % 2
        held = text[even:]
        for i in range(0, even, 2 * STEP):
            yield bytes.fromhex(text[i:min(even, i + 2 * STEP)].decode("ascii"))
        if end >= 0:
            break
    if held:
        yield bytes.fromhex((held + b"0").decode("ascii"))


_NOT_85 = re.compile(rb"[^!-u]")


def _ascii85(chunks: Iterable[bytes], params: dict[str, int]) -> Chunks:
    held = b""
    try:
        for chunk in chunks:
            end = chunk.find(b"~")
            text = held + _NOT_85.sub(b"", (chunk if end < 0 else chunk[:end]).replace(b"z", b"!!!!!"))
            cut = len(text) - len(text) % 5  # whole 5-character groups only
            held = text[cut:]
            for i in range(0, cut, 5 * STEP // 4):
                yield base64.a85decode(text[i:min(cut, i + 5 * STEP // 4)])
            if end >= 0:
                break
        if held:
            yield base64.a85decode(held)
    except ValueError as exc:
        raise FilterError(str(exc)) from exc


def _run_length(chunks: Iterable[bytes], params: dict[str, int]) -> Chunks:
    """Length byte n: 0-127 copy the next n+1 bytes; 129-255 repeat the next byte 257-n times; 128 ends."""
    held = b""
    out = bytearray()
    for chunk in chunks:
        data, i = held + chunk, 0
        while i < len(data):
            n = data[i]
            if n == 128:
                if out:
                    yield bytes(out)
                return
            need = n + 2 if n < 128 else 2
            if i + need > len(data):
                break
            out += data[i + 1:i + need] if n < 128 else data[i + 1:i + 2] * (257 - n)
            i += need
            if len(out) >= STEP:
                yield bytes(out)
                out.clear()
        held = data[i:]
    if out:
        yield bytes(out)


Decoder = Callable[[Iterable[bytes], dict[str, int]], Chunks]

DECODERS: dict[bytes, Decoder] = {
    b"FlateDecode": _flate, b"Fl": _flate,
    b"LZWDecode": _lzw, b"LZW": _lzw,
    b"ASCIIHexDecode": _ascii_hex, b"AHx": _ascii_hex,
    b"ASCII85Decode": _ascii85, b"A85": _ascii85,
    b"RunLengthDecode": _run_length, b"RL": _run_length,
}


# Decoded byte by byte in Python, about 1-3 MB of input a second: the caller bounds their input.
SLOW_DECODERS = frozenset({b"LZWDecode", b"LZW", b"RunLengthDecode", b"RL"})


def decode_chain(chunks: Iterable[bytes], filters: list[tuple[bytes, dict[str, int]]]) -> Chunks:
    """The output of `filters` applied in order, lazily; stops before the first filter not in
    DECODERS (images: DCT, JPX, JBIG2, CCITT), whose input is then what is yielded."""
    for name, params in filters:
        decoder = DECODERS.get(name)
        if decoder is None:
            break
        chunks = decoder(chunks, params)
    return iter(chunks)
