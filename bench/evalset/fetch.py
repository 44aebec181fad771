"""Fetch the evalset PDFs from Debian packages (too large to commit); usage: python -m bench.evalset.fetch DEST."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# name -> (Debian package, path the package installs)
SOURCES: dict[str, tuple[str, str]] = {
    "bzip2.pdf": ("bzip2", "/usr/share/doc/bzip2/manual.pdf.gz"),
    "crc-doc.pdf": ("zlib1g-dev", "/usr/share/doc/zlib1g-dev/crc-doc.1.0.pdf.gz"),
    "nettle.pdf": ("nettle-dev", "/usr/share/doc/nettle-dev/nettle.pdf.gz"),
    "fontconfig-user.pdf": ("fontconfig", "/usr/share/doc/fontconfig/fontconfig-user.pdf.gz"),
    "valgrind_manual.pdf": ("valgrind", "/usr/share/doc/valgrind/valgrind_manual.pdf.gz"),
    "libtasn1.pdf": ("libtasn1-doc", "/usr/share/doc/libtasn1-doc/libtasn1.pdf"),
    "shared-mime-info-spec.pdf": ("shared-mime-info", "/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf"),
    "ctex-faq.pdf": ("texlive-lang-chinese", "/usr/share/doc/texlive-doc/latex/ctex-faq/ctex-faq.pdf"),
    "install-latex-guide-zh-cn.pdf": (
        "texlive-lang-chinese",
        "/usr/share/doc/texlive-doc/latex/install-latex-guide-zh-cn/install-latex-guide-zh-cn.pdf",
    ),
    "zhnumber.pdf": ("texlive-lang-chinese", "/usr/share/doc/texlive-doc/latex/zhnumber/zhnumber.pdf"),
}


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


def fetch(dest: Path) -> None:
    """Write every evalset PDF into dest (decompressed), taking installed files first."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, (package, path) in SOURCES.items():
            src = Path(path) if Path(path).exists() else _from_deb(package, path, Path(tmp))
            opener = gzip.open if src.suffix == ".gz" else open
            with opener(src, "rb") as fin, open(dest / name, "wb") as fout:
                shutil.copyfileobj(fin, fout)


if __name__ == "__main__":
    fetch(Path(sys.argv[1] if len(sys.argv) > 1 else "bench/evalset/pdfs"))
