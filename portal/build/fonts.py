"""The fonts the PDFs embed: found once per process, subset into each document (docs/documents.md).

Where they come from, first found wins, per role:
- `font_dir` (setting): a folder holding the same file names as below (e.g. copied from a Debian machine);
- Debian's packages: `fonts-noto-core` (Noto Sans: Latin, Greek, Cyrillic) and `fonts-droid-fallback` (Droid
  Sans Fallback: Chinese, Japanese, Korean), which `make system-deps`, the Dockerfile and the Lambda layer install;
- for the text font only, DejaVu Sans (`fonts-dejavu-core`, on most Debian and Ubuntu machines): Latin, Greek
  and Cyrillic, so that a machine that never ran `make system-deps` (`make demo`) still makes correct PDFs for
  those scripts. Without any CJK font, CJK characters print as empty boxes (and a warning is logged once).

Droid Sans Fallback, not Noto Sans CJK, for CJK: a TrueType font of 4 MB instead of OpenType collections of
19-27 MB (CFF outlines), which subsets several times faster (docs/documents.md has the figures) and keeps the
Lambda package small.

fpdf2 parses a font file in about 0.3 s, and its subsetter then rewrites the parsed font in place, so a parsed
font cannot serve two documents. `FontBook` therefore parses each font once per process to learn its metrics (the
part fpdf2 needs while laying out), keeps its bytes with the layout tables removed (fpdf2 drops them from every
subset anyway), and gives each document a copy of the metrics with its own lazily parsed font to subset.
"""

from __future__ import annotations

import copy
import io
import logging
from dataclasses import dataclass
from pathlib import Path

from fontTools import ttLib
from fpdf import FPDF
from fpdf.fonts import SubsetMap

log = logging.getLogger(__name__)

# role -> candidate files (a name in `font_dir`, then the Debian paths)
CANDIDATES: dict[str, tuple[str, ...]] = {
    "regular": ("/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
                "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    "bold": ("/usr/share/fonts/truetype/noto/NotoSans-Bold.ttf",
             "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
    "cjk": ("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",),
}
# Tables fpdf2 drops from every subset (and its subsetter would otherwise parse first, at a cost).
_UNUSED_TABLES = ("GSUB", "GPOS", "GDEF", "BASE", "JSTF", "MATH", "hdmx", "FFTM", "meta", "DSIG", "kern",
                  "morx", "vhea", "vmtx", "VORG")


class FontsMissing(Exception):
    """No Unicode text font at all: neither `font_dir` nor the system has one."""


def find_fonts(font_dir: str = "") -> dict[str, Path]:
    """role -> font file, for the roles found (`regular` and `bold` always come as a pair)."""
    found: dict[str, Path] = {}
    for role, paths in CANDIDATES.items():
        names = [Path(font_dir) / Path(p).name for p in paths] if font_dir else []
        for candidate in [*names, *map(Path, paths)]:
            if candidate.is_file():
                found[role] = candidate
                break
    if "regular" not in found:
        raise FontsMissing("no font for PDFs: install fonts-noto-core (make system-deps) or set font_dir")
    found.setdefault("bold", found["regular"])
    return found


def _lean(path: Path) -> bytes:
    with ttLib.TTFont(path, recalcTimestamp=False) as font:
        for tag in _UNUSED_TABLES:
            if tag in font:
                del font[tag]
        out = io.BytesIO()
        font.save(out)
    return out.getvalue()


@dataclass
class _Loaded:
    family: str
    style: str
    template: object  # fpdf.fonts.TTFFont, parsed once: metrics and character map
    data: bytes  # the lean font file, parsed again (lazily) by each document that uses it


class FontBook:
    """The fonts of this process. `install(pdf, needs_cjk)` registers them in one document."""

    def __init__(self, font_dir: str = ""):
        self.files = find_fonts(font_dir)
        scratch = FPDF()
        self.loaded: dict[str, _Loaded] = {}
        for role, family, style in (("regular", "Text", ""), ("bold", "Text", "B"), ("cjk", "CJK", "")):
            if role not in self.files:
                continue
            data = _lean(self.files[role])
            scratch.add_font(family, style, str(self.files[role]))
            template = scratch.fonts[f"{family.lower()}{style}"]
            template.ttfont.close()  # its metrics are read; each document parses its own copy (install)
            self.loaded[role] = _Loaded(family, style, template, data)
        if "cjk" not in self.loaded:
            log.warning("no CJK font found (install fonts-droid-fallback or set font_dir): Chinese, Japanese and "
                        "Korean text in PDFs prints as empty boxes")
        self.fingerprint = "|".join(f"{role}:{path.name}:{path.stat().st_size}" for role, path in
                                    sorted(self.files.items()))

    def covers(self, text: str) -> bool:
        """Whether the text font alone has every character of `text`."""
        cmap = self.loaded["regular"].template.cmap
        return all(ord(ch) in cmap or ch in "\n\r\t" for ch in text)

    def install(self, pdf: FPDF, needs_cjk: bool) -> None:
        """Give `pdf` its own copies of the fonts (the CJK one only when the text needs it: every font a document
        holds is subset, used or not)."""
        roles = ["regular", "bold"] + (["cjk"] if needs_cjk and "cjk" in self.loaded else [])
        for role in roles:
            loaded = self.loaded[role]
            font = copy.copy(loaded.template)
            font.i = len(pdf.fonts) + 1
            font.ttfont = ttLib.TTFont(io.BytesIO(loaded.data), recalcTimestamp=False, lazy=True)
            font.subset = SubsetMap(font)
            font.missing_glyphs = []
            font.biggest_size_pt = 0
            font._hbfont = None
            pdf.fonts[f"{loaded.family.lower()}{loaded.style}"] = font
        if len(roles) == 3:
            pdf.set_fallback_fonts(["CJK"], exact_match=False)  # bold text too


_books: dict[str, FontBook] = {}


def font_book(font_dir: str = "") -> FontBook:
    """The process's FontBook for `font_dir` (parsed on first use: a build worker or the webhook, once)."""
    if font_dir not in _books:
        _books[font_dir] = FontBook(font_dir)
    return _books[font_dir]
