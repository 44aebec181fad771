"""Decompression bombs behind filter chains and repeated references are refused before any
PDF library inflates them, with bounded memory (issue 14.4). The files are generated here."""

from __future__ import annotations

import base64
import json
import os
import resource
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path
from signal import SIGABRT, SIGKILL, SIGSEGV, SIGSTOP

import pytest
from pypdf._codecs._codecs import LzwCodec

from agent.errors import DocumentError, EncryptedPDFError
from agent.ingest import _child as child_mod
from agent.ingest import _pdf_budget as budget_mod
from agent.ingest._child import parse_in_child
from agent.ingest._pdf_budget import check_inflation
from agent.ingest._pdf_filters import FilterError, decode_chain
from agent.ingest.parse import parse_pdf
from agent.ingest.pipeline import ingest_file
from tests.support import DEVSET_PDFS, ROOT, add_texts, build_pdf

MB = 1 << 20


def run_length(data: bytes) -> bytes:
    """RunLengthDecode's encoding: runs of 2..128 equal bytes, literals of up to 128 others."""
    out, i = bytearray(), 0
    while i < len(data):
        run = 1
        while i + run < len(data) and run < 128 and data[i + run] == data[i]:
            run += 1
        if run > 1:
            out += bytes([257 - run, data[i]])
        else:
            out += bytes([0, data[i]])
        i += run
    return bytes(out) + b"\x80"


SAMPLE = b"".join(b"line %d: %s\n" % (i, b"ab" * (i % 40)) for i in range(3000)) + bytes(range(256)) * 20
ENCODED = {
    b"FlateDecode": zlib.compress(SAMPLE),
    b"LZWDecode": LzwCodec().encode(SAMPLE),
    b"ASCIIHexDecode": SAMPLE.hex().encode() + b">",
    b"ASCII85Decode": base64.a85encode(SAMPLE, wrapcol=70) + b"~>",
    b"RunLengthDecode": run_length(SAMPLE),
}


def pieces(data: bytes, size: int):
    return (data[i:i + size] for i in range(0, len(data), size))


@pytest.mark.parametrize("name", list(ENCODED))
@pytest.mark.parametrize("size", [1, 7, 4096, 10 * MB])
def test_each_decoder_gives_the_data_back_from_pieces_of_any_size(name, size):
    assert b"".join(decode_chain(pieces(ENCODED[name], size), [(name, {})])) == SAMPLE


def test_a_chain_decodes_in_order_and_stops_at_an_image_filter():
    data = zlib.compress(SAMPLE).hex().encode() + b">"
    assert b"".join(decode_chain(pieces(data, 999), [(b"AHx", {}), (b"Fl", {})])) == SAMPLE
    assert b"".join(decode_chain(pieces(data, 999), [(b"AHx", {}), (b"DCTDecode", {})])) == zlib.compress(SAMPLE)


def test_damaged_data_raises_filter_error():
    with pytest.raises(FilterError):
        list(decode_chain(iter([b"not zlib at all"]), [(b"FlateDecode", {})]))
    with pytest.raises(FilterError):
        list(decode_chain(iter([b"12 zz >"]), [(b"ASCIIHexDecode", {})]))


# --------------------------------------------------------------------------- crafted bombs


def stream(data: bytes, extra: bytes) -> bytes:
    return b"<< /Length %d %s >>\nstream\n" % (len(data), extra) + data + b"\nendstream"


def page_pdf(content: bytes, filters: bytes, refs: int = 1) -> bytes:
    """One page whose /Contents names the stream object 5 `refs` times."""
    contents = b"[" + b" 5 0 R" * refs + b" ]" if refs > 1 else b"5 0 R"
    return build_pdf([b"<< /Type /Catalog /Pages 2 0 R >>",
                      b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
                      b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
                      b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents " + contents +
                      b" /Resources << /Font << /F1 3 0 R >> >> >>",
                      stream(content, b"/Filter " + filters)])


def spaces(megabytes: int) -> bytes:
    """Page content that decodes to `megabytes` MB of blanks around one line of text."""
    deflate = zlib.compressobj(9)
    block = b" " * MB
    out = deflate.compress(b"BT /F1 10 Tf 40 750 Td (boom) Tj ET")
    out += b"".join(deflate.compress(block) for _ in range(megabytes))
    return out + deflate.flush()


def lzw_bomb(codes: int) -> bytes:
    """An LZW stream of `codes` 12-bit codes that each decode to about 3.8 KB of blanks: every
    code names the newest table entry (the previous one plus a blank) until the table is full."""
    sequence = [32] + list(range(258, 4096)) + [4095] * codes + [257]
    out, bits, nbits, table, width = bytearray(), 0, 0, 258, 9
    for n, code in enumerate(sequence):
        bits, nbits = (bits << width) | code, nbits + width
        while nbits >= 8:
            nbits -= 8
            out.append((bits >> nbits) & 0xFF)
        bits &= (1 << nbits) - 1
        table += 1 if n and table < 4096 else 0
        width += 1 if table + 1 >= 1 << width and width < 12 else 0
    return bytes(out + (bytes([(bits << (8 - nbits)) & 0xFF]) if nbits else b""))


def test_the_crafted_lzw_stream_is_what_a_pdf_reader_decodes():
    small = lzw_bomb(10)
    assert LzwCodec().decode(small) == b"".join(decode_chain(iter([small]), [(b"LZWDecode", {})]))
    assert set(LzwCodec().decode(small)) == {32} and len(LzwCodec().decode(small)) > 7 * MB


@pytest.fixture(scope="module")
def bombs(tmp_path_factory) -> dict[str, Path]:
    inner = spaces(300)  # 300 MB: over the 256 MB one stream may expand to
    folder = tmp_path_factory.mktemp("bombs")
    files = {
        "flate3.pdf": page_pdf(zlib.compress(zlib.compress(inner, 9), 9),
                               b"[/FlateDecode /FlateDecode /FlateDecode]"),
        "repeated.pdf": page_pdf(zlib.compress(spaces(100), 9), b"[/Fl /Fl]", refs=4),  # 100 MB x 4
        "hexflate.pdf": page_pdf(inner.hex().encode() + b">", b"[/ASCIIHexDecode /FlateDecode]"),
        "lzw.pdf": page_pdf(lzw_bomb(80_000), b"/LZWDecode"),  # 300 MB
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in files}


PARSE_CHILD = textwrap.dedent("""
    import json, resource, sys, time
    sys.path.insert(0, {root!r})
    from agent.errors import AgentError
    from agent.ingest.parse import parse_pdf
    import pypdfium2  # noqa: F401 - loaded before the baseline, as in the running app

    def peak_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024

    for path in sys.argv[1:]:
        before, started = peak_mb(), time.perf_counter()
        try:
            parse_pdf(path, max_bytes=10**8, max_pages=100, ocr=False)
            report = {{"code": "", "message": "parsed"}}
        except AgentError as exc:
            report = {{"code": exc.code, "message": exc.message}}
        report.update(seconds=time.perf_counter() - started, growth_mb=peak_mb() - before)
        print(json.dumps(report), flush=True)
""").format(root=str(ROOT))


def test_bombs_behind_filter_chains_and_repeats_are_refused_with_bounded_memory(bombs):
    sizes = {name: path.stat().st_size for name, path in bombs.items()}
    assert sizes["flate3.pdf"] < 2000, sizes
    done = subprocess.run([sys.executable, "-c", PARSE_CHILD, *map(str, bombs.values())], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]  # alive: no SIGABRT, no kill
    reports = dict(zip(bombs, map(json.loads, done.stdout.strip().splitlines())))
    print(sizes, reports)
    for name, report in reports.items():
        assert report["code"] == "doc_bomb" and "decompression bomb" in report["message"], (name, report)
        assert name in report["message"] and "\n" not in report["message"]
        assert report["growth_mb"] < 100 and report["seconds"] < 30, (name, report)


def test_a_refused_bomb_leaves_what_is_indexed_alone(workspace, bombs):
    add_texts(workspace, "kept.pdf", ["Geology is the study of rocks."])
    result = ingest_file(bombs["repeated.pdf"], workspace.collection(), workspace.embeddings, workspace.settings)
    assert result.status == "failed" and "decompression bomb" in result.message
    assert [i.file for i in workspace.collection().document_infos()] == ["kept.pdf"]


def test_a_stream_named_once_per_page_is_not_a_bomb(tmp_path):
    """One 100 MB content stream shared by four pages is decoded one page at a time: it passes."""
    data = zlib.compress(spaces(100), 9)
    pages = b" ".join(b"%d 0 R" % n for n in range(4, 8))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [%s] /Count 4 >>" % pages,
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    page = (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 8 0 R "
            b"/Resources << /Font << /F1 3 0 R >> >> >>")
    objects += [page] * 4
    objects.append(stream(data, b"/Filter [/Fl /Fl]"))
    path = tmp_path / "shared.pdf"
    path.write_bytes(build_pdf(objects))
    check_inflation(path)  # no DocumentError


# --------------------------------------------------------------------------- the child process


def processes() -> dict[int, tuple[int, bytes]]:
    """pid -> (parent pid, command line) of every process."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            found[int(stat.parent.name)] = (int(stat.read_text().rsplit(")", 1)[1].split()[1]),
                                            (stat.parent / "cmdline").read_bytes())
        except (OSError, IndexError, ValueError):
            continue
    return found


def stopped_parsers() -> list[int]:
    """Parsing children in state T (stopped by SIGSTOP)."""
    found = []
    for pid, (_, command) in processes().items():
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if b"agent.ingest._child" in command and state == "T":
            found.append(pid)
    return found


def signal_the_parser(signal: int):
    """A progress callback that sends `signal` to the parsing child: the grandchild of our fork server."""

    def progress(stage: str, done: int, total: int) -> None:
        table = processes()
        for pid, (parent, command) in table.items():
            watcher = table.get(parent, (0, b""))[0]
            if b"agent.ingest._child" in command and table.get(watcher, (0, b""))[0] == os.getpid():
                os.kill(pid, signal)

    return progress


@pytest.mark.parametrize("signal, why", [(SIGSEGV, "crashed"), (SIGABRT, "aborted"), (SIGKILL, "was killed")])
def test_a_parser_that_dies_becomes_a_clear_refusal(signal, why):
    pdf = DEVSET_PDFS / "squad_Geology.pdf"
    with pytest.raises(DocumentError) as err:
        parse_in_child(pdf, max_bytes=10**8, max_pages=100, ocr=False, progress=signal_the_parser(signal))
    assert err.value.code == "doc_unsafe" and err.value.params == {"file": pdf.name}
    assert err.value.message == f"{pdf.name} could not be read safely: the PDF reader {why} on it."
    assert parse_in_child(pdf, max_bytes=10**8, max_pages=100, ocr=False).pages  # and the next file parses


def test_a_parser_that_stops_making_progress_is_ended_and_refused(monkeypatch):
    """A parser stuck in a native loop sends nothing: after SILENCE_LIMIT it is killed, and the next file parses."""
    pdf = DEVSET_PDFS / "squad_Geology.pdf"
    monkeypatch.setattr(child_mod, "SILENCE_LIMIT", 2.0)
    with pytest.raises(DocumentError) as err:
        parse_in_child(pdf, max_bytes=10**8, max_pages=100, ocr=False, progress=signal_the_parser(SIGSTOP))
    assert err.value.code == "doc_unsafe"
    assert err.value.message == f"{pdf.name} could not be read safely: the PDF reader made no progress for 2 s on it."
    deadline = time.monotonic() + 10
    while stopped_parsers() and time.monotonic() < deadline:  # SIGKILL ends a stopped process too
        time.sleep(0.1)
    assert not stopped_parsers()
    assert parse_in_child(pdf, max_bytes=10**8, max_pages=100, ocr=False).pages


def test_a_parser_over_its_memory_limit_is_refused_and_nothing_indexed_is_lost(workspace, tmp_path, monkeypatch):
    """A 200 MB content stream passes the bomb check; PDFium needs more than 400 MB for it."""
    path = tmp_path / "big.pdf"
    path.write_bytes(page_pdf(spaces(200), b"/FlateDecode"))
    add_texts(workspace, "kept.pdf", ["Geology is the study of rocks."])
    monkeypatch.setattr(child_mod, "CHILD_MEMORY", 400 * MB)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = ingest_file(path, workspace.collection(), workspace.embeddings, workspace.settings)
    assert result.status == "failed" and result.code == "doc_unsafe", result
    assert "could not be read safely" in result.message and "\n" not in result.message
    assert [i.file for i in workspace.collection().document_infos()] == ["kept.pdf"]
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024  # KB: the child took it


def test_the_child_gives_what_parse_pdf_gives():
    pdf = DEVSET_PDFS / "squad_Geology.pdf"
    events: list[tuple[str, int, int]] = []
    parsed = parse_in_child(pdf, max_bytes=10**8, max_pages=100, ocr=False, progress=lambda *e: events.append(e))
    assert parsed == parse_pdf(pdf, max_bytes=10**8, max_pages=100, ocr=False)
    assert events[0] == ("parse", 0, parsed.page_count) and events[-1] == ("parse", parsed.page_count,
                                                                             parsed.page_count)
    with pytest.raises(EncryptedPDFError) as err:
        parse_in_child(DEVSET_PDFS / "libreoffice-writer-password.pdf", max_bytes=10**8, max_pages=100)
    assert err.value.code == "doc_encrypted"


def test_the_check_decodes_a_bounded_amount_of_lzw_and_run_length_in_python(tmp_path, monkeypatch):
    """A file of many slow streams (LZW, RunLength: 1-3 MB/s in Python) is checked up to
    MAX_SLOW_INPUT bytes of them; past that, the parser's memory limit is the guard."""
    literal = run_length(bytes(range(256)) * 1024)  # 256 KB in, 256 KB out: the slowest kind
    monkeypatch.setattr(budget_mod, "MAX_SLOW_INPUT", 3 * MB)  # 16 MB takes 5-15 s
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"]
    objects += [stream(literal, b"/Filter /RunLengthDecode")] * 40
    path = tmp_path / "slow.pdf"
    path.write_bytes(build_pdf(objects))
    decoded: list[int] = []
    real_decode = budget_mod.decode_chain
    monkeypatch.setattr(budget_mod, "decode_chain", lambda chunks, filters: (
        decoded.append(1) or real_decode(chunks, filters)))
    check_inflation(path)
    assert len(decoded) == budget_mod.MAX_SLOW_INPUT // len(literal) < 40


def parsers() -> list[int]:
    """Pids of the parsers and watchers our fork server has forked."""
    table = processes()
    servers = {pid for pid, (parent, command) in table.items()
               if parent == os.getpid() and b"agent.ingest._child" in command}
    watchers = {pid for pid, (parent, _command) in table.items() if parent in servers}
    return sorted(watchers | {pid for pid, (parent, _command) in table.items() if parent in watchers})


def test_a_stopped_parse_ends_its_parser_and_a_dead_fork_server_is_replaced():
    pdf = DEVSET_PDFS / "squad_Geology.pdf"

    class Stop(Exception):
        pass

    running: list[list[int]] = []

    def stop(stage: str, done: int, total: int) -> None:
        running.append(parsers())
        raise Stop

    with pytest.raises(Stop):
        parse_in_child(pdf, max_bytes=10**8, max_pages=100, ocr=False, progress=stop)
    assert len(running[0]) == 2  # a watcher and its parser
    for _ in range(100):  # the watcher reports the killed parser, then both are gone
        if not parsers():
            break
        time.sleep(0.05)
    assert parsers() == []
    child_mod._SERVER._process.kill()
    child_mod._SERVER._process.wait()
    assert parse_in_child(pdf, max_bytes=10**8, max_pages=100, ocr=False).page_count > 0


@pytest.mark.parametrize("reply", [
    b"not json\n", b'{"result": {"pages": [{"number": "one", "text": 5, "ocr": false}], "page_count": 1}}\n',
    b'{"result": {"pages": [], "page_count": "many"}}\n', b'{"progress": [1]}\n', b'{"what": 1}\n',
    b'{"result": {"pages": []}}',  # no newline: a line longer than MAX_REPLY
])
def test_a_reply_a_parser_should_not_send_is_a_clear_refusal(reply):
    with pytest.raises(DocumentError) as err:
        child_mod._reply(reply, "x.pdf")
    assert err.value.code == "doc_unsafe" and "sent an unreadable reply" in err.value.message
