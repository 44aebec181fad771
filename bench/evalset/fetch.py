"""Fetch the evalset PDFs from Debian packages (too large to commit); usage: python -m bench.evalset.fetch [DEST].

Each file is checked against its SHA-256: gold pages were resolved on these exact bytes, so a
different package version must fail loudly rather than shift every figure."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

DEFAULT_DEST = Path(__file__).parent / "pdfs"

# name -> (Debian package, path the package installs, SHA-256 of the decompressed PDF)
SOURCES: dict[str, tuple[str, str, str]] = {
    "bzip2.pdf": ("bzip2", "/usr/share/doc/bzip2/manual.pdf.gz",
                  "1dd1f12b3dcb0894481708881ed8d052c769f3820c06839c702c8cfad973d7d3"),
    "crc-doc.pdf": ("zlib1g-dev", "/usr/share/doc/zlib1g-dev/crc-doc.1.0.pdf.gz",
                    "064f9252d6e2e15ea56c2bd18e160e5c9c84bcd137c11a7af497aaa511ace998"),
    "nettle.pdf": ("nettle-dev", "/usr/share/doc/nettle-dev/nettle.pdf.gz",
                   "fa0c6394acde69113eb33202a4c9ba33a4858429f2d735bc2707d41112da98f5"),
    "fontconfig-user.pdf": ("fontconfig", "/usr/share/doc/fontconfig/fontconfig-user.pdf.gz",
                            "8851a84c668b22261828d36a10f9c46dac3faadf78122995dd92842f9f51747f"),
    "valgrind_manual.pdf": ("valgrind", "/usr/share/doc/valgrind/valgrind_manual.pdf.gz",
                            "63d1bf4d27c78a5dd6a142d5e7311138b15e8cffc3e9f8839a27eede28b1984e"),
    "libtasn1.pdf": ("libtasn1-doc", "/usr/share/doc/libtasn1-doc/libtasn1.pdf",
                     "3917eb460d87e275f9792b3597029873fd77890ed3ccebe40bbc5a3a7ee516d3"),
    "shared-mime-info-spec.pdf": ("shared-mime-info", "/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf",
                                  "4d9666c46b4d367a12e2922f4f3b114396c377106c57bbc934d03320e6888002"),
    "ctex-faq.pdf": ("texlive-lang-chinese", "/usr/share/doc/texlive-doc/latex/ctex-faq/ctex-faq.pdf",
                     "99a72a3158ced551d516d926fa27c69606a1b02366aeaa79d376a8d60fae3fb2"),
    "install-latex-guide-zh-cn.pdf": (
        "texlive-lang-chinese",
        "/usr/share/doc/texlive-doc/latex/install-latex-guide-zh-cn/install-latex-guide-zh-cn.pdf",
        "a841ed237fb074f65b1eb3c1e71dc6243deb133931f997ea8bf2c21e97b506a3"),
    "zhnumber.pdf": ("texlive-lang-chinese", "/usr/share/doc/texlive-doc/latex/zhnumber/zhnumber.pdf",
                     "fbe0c7dbc7c6a1e6e58b8de1fdf68b1a0c2327d9470654ee670aef5771280809"),
    "lcms2-tutorial.pdf": ("liblcms2-dev", "/usr/share/doc/liblcms2-dev/LittleCMS2.14 tutorial.pdf.gz",
                           "50e8ad5292ee7712341de81a51e8628cfde17ca02e91df18ee17eaf37e42caf6"),
    "groff-pdfmark.pdf": ("groff", "/usr/share/doc/groff-base/pdf/pdfmark.pdf.gz",
                          "71321248980549345b78e5afa16798d0c266634984bc3130d62b07601ea36c60"),
    "asymptote-faq-zh-cn.pdf": (
        "texlive-lang-chinese",
        "/usr/share/doc/texlive-doc/support/asymptote-faq-zh-cn/asymptote-faq-zh-cn.pdf",
        "4e73c77b7d298930de121ce9e7dabcc2fc07d7140fac7d4d98e620f1d80920e2"),
    "fduthesis-en.pdf": ("texlive-lang-chinese", "/usr/share/doc/texlive-doc/latex/fduthesis/fduthesis-en.pdf",
                         "d97d5be4149275ec823b17a3887dd3f53dfaab3c316483103b48beffcad640e2"),
    "nanicolle-doc-en.pdf": ("texlive-lang-chinese", "/usr/share/doc/texlive-doc/xelatex/nanicolle/nanicolle-doc-en.pdf",
                             "63768f9ca3f13255b63ffc06c85d98767a01188b33013ffbdb7a06227077baa6"),
    "tlmgr-intro-zh-cn.pdf": (
        "texlive-lang-chinese", "/usr/share/doc/texlive-doc/support/tlmgr-intro-zh-cn/tlmgr-intro-zh-cn.pdf",
        "93e839c880059150bbc09717ed2f1126b7d4721c3b99f0bf8b68bff0afb39b84"),
    "texlive-zh-cn.pdf": ("texlive-lang-chinese", "/usr/share/doc/texlive-doc/texlive/texlive-zh-cn/texlive-zh-cn.pdf",
                          "1bee53943ad19bfc5889dcc19f29db1f502172129f79d7be24e0cd7a55a32f26"),
    "debian-faq.pdf": ("debian-faq", "/usr/share/doc/debian/FAQ/debian-faq.en.pdf.gz",
                       "ea67ca925863324d97a30b5c926aed95efc687c689aa16788c9bed54525c0b47"),
    "R-FAQ.pdf": ("r-doc-pdf", "/usr/share/R/doc/manual/R-FAQ.pdf",
                  "de8768520d4fb90dad64c28483ffb92dca7dd9d8dc8556905b35c2e62a939255"),
    "R-intro.pdf": ("r-doc-pdf", "/usr/share/R/doc/manual/R-intro.pdf",
                    "337ccd0b490b1e66f7e783b45f4588d0599730b4206c0c051edfe1419c568c51"),
    "maint-guide-zh-cn.pdf": ("maint-guide-zh-cn", "/usr/share/doc/maint-guide-zh-cn/maint-guide.zh-cn.pdf",
                              "6e3d3247fc675e6678d59663f886472ef7369c82c69036eb631d3651a4913709"),
    "lppl.pdf": ("texlive-latex-base-doc", "/usr/share/doc/texlive-doc/latex/base/lppl.pdf",
                 "5836a11253ba59b79c0b52cf010c0d280eaa6bda709f8d6824f2a3924207fef6"),
    "latex-usrguide.pdf": ("texlive-latex-base-doc", "/usr/share/doc/texlive-doc/latex/base/usrguide.pdf",
                           "f4dceb77c9c9257e1dc7d4d6af541c5a13b49bff94d95b9d85f46be252c41591"),
    "R-data.pdf": ("r-doc-pdf", "/usr/share/R/doc/manual/R-data.pdf",
                   "9381a39ffeb8545a745c2618ba955b4ae4e10b9c8373cd5bc1984fff8318f8ca"),
    "latex-notes-zh-cn.pdf": (
        "texlive-lang-chinese", "/usr/share/doc/texlive-doc/generic/latex-notes-zh-cn/latex-notes-zh-cn.pdf",
        "b8c93f6793f972a36321065e9fbec4dbda2073d725dd1cb6349855a5e7395cfb"),
    "exam-zh-doc.pdf": ("texlive-lang-chinese", "/usr/share/doc/texlive-doc/xelatex/exam-zh/doc/exam-zh-doc.pdf",
                        "c870f7f89b59f7a432bedfe80100c8ebfc390967fd279ff625b81d8e6fca076b"),
}

# name -> (the text PDF in SOURCES it is scanned from, seed, SHA-256 of the scan): image-only copies, so that
# questions reach the OCR path; gold pages come from the text PDF, which is never ingested itself.
SCANS: dict[str, tuple[str, int, str]] = {
    "lppl-scan.pdf": ("lppl.pdf", 16, "782e851a0d3b07e6df92f2e4b2bccfe3baa85db3a70678a661c33bff34daec47"),
}


def text_pdf(name: str) -> str:
    """The file whose text layer holds `name`'s evidence: itself, or the PDF a scan was made from."""
    return SCANS[name][0] if name in SCANS else name


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _from_deb(package: str, path: str, work: Path) -> Path:
    """Extract one file from the package's .deb without installing it (texlive-lang-chinese is 98 MB installed)."""
    debs = list(work.glob(f"{package}_*.deb"))
    if not debs:
        subprocess.run(["apt-get", "download", package], cwd=work, check=True)
        debs = list(work.glob(f"{package}_*.deb"))
    tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(debs[0])], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(work), "." + path], stdin=tar.stdout, check=True)
    tar.wait()
    return work / path.lstrip("/")


def ensure(names: Iterable[str] | None = None, dest: Path = DEFAULT_DEST) -> list[Path]:
    """The named PDFs (default: all) in dest, fetching only those missing or with other bytes.

    Raises RuntimeError when a file cannot be fetched or differs from the one the questions were
    written on: a quality figure must never come from a silently missing or changed document."""
    names = list([*SOURCES, *SCANS] if names is None else names)
    dest.mkdir(parents=True, exist_ok=True)
    texts = dict.fromkeys(text_pdf(n) for n in names)  # a scan needs its text PDF, fetched with the others
    wanted = [n for n in texts if not (dest / n).is_file() or _sha256(dest / n) != SOURCES[n][2]]
    with tempfile.TemporaryDirectory() as tmp:
        for name in wanted:
            package, path, sha = SOURCES[name]
            src = Path(path) if Path(path).exists() else _from_deb(package, path, Path(tmp))
            opener = gzip.open if src.suffix == ".gz" else open
            with opener(src, "rb") as fin, open(dest / f".{name}.part", "wb") as fout:
                shutil.copyfileobj(fin, fout)
            _publish(dest / f".{name}.part", sha, f"{name} from {package}")
    _ensure_scans([n for n in names if n in SCANS], dest)
    return [dest / n for n in names]


def _ensure_scans(names: list[str], dest: Path) -> None:
    """Scan each named copy from its text PDF, already in dest (bench.ocr.scanned_copy), unless it is there with the
    pinned bytes."""
    from bench.ocr import scanned_copy

    for name in names:
        origin, seed, sha = SCANS[name]
        if (dest / name).is_file() and _sha256(dest / name) == sha:
            continue
        scanned_copy(dest / origin, dest / f".{name}.part", seed)
        _publish(dest / f".{name}.part", sha, f"{name} scanned from {origin}")


def _publish(part: Path, sha: str, what: str) -> None:
    """Rename the finished part file into place, or delete it and fail when its bytes are not the pinned ones."""
    got = _sha256(part)
    if got != sha:
        part.unlink()
        raise RuntimeError(f"{what} has SHA-256 {got}, not {sha}: the package or the scan changed; "
                           "rebuild bench/evalset (build.py) and the committed figures")
    part.replace(part.with_name(part.name[1:-len(".part")]))


if __name__ == "__main__":
    try:
        ensure(dest=Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DEST)
    except (RuntimeError, subprocess.CalledProcessError, OSError) as exc:
        raise SystemExit(f"bench.evalset.fetch: {exc}") from None
