"""A small PNG bar chart of a customer's monthly bill amounts (Pillow).

Thai month labels need a font with Thai glyphs: the first of :data:`THAI_FONTS` found
under :data:`FONT_DIRS` is used (Debian: ``apt-get install fonts-thai-tlwg``). Without
one, Thai charts fall back to digits-only labels (``10/69``) in Pillow's built-in font,
so a chart is always drawn and never shows boxes instead of letters.

Rendering reads a font file and is CPU-bound: on the event loop, call
``await asyncio.to_thread(render_monthly_bars, ...)``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, features

__all__ = [
    "FONT_DIRS",
    "THAI_FONTS",
    "MonthAmount",
    "find_thai_font",
    "render_monthly_bars",
]

#: Where font packages put their files (Debian/Ubuntu first).
FONT_DIRS: tuple[Path, ...] = (
    Path("/usr/share/fonts/truetype/tlwg"),
    Path("/usr/share/fonts/opentype/tlwg"),
    Path("/usr/share/fonts/truetype/noto"),
    Path("/usr/share/fonts/opentype/noto"),
    Path("/usr/share/fonts/truetype"),
    Path("/usr/local/share/fonts"),
)
#: Sans-serif faces with Thai glyphs, preferred first (file names without extension).
THAI_FONTS: tuple[str, ...] = (
    "Loma",
    "Garuda",
    "Waree",
    "Umpush",
    "NotoSansThai-Regular",
    "NotoSansThaiUI-Regular",
    "Sawasdee",
)

_WIDTH, _HEIGHT = 720, 400
_MARGIN_X, _TOP, _BOTTOM = 24, 44, 64
_BACKGROUND = (255, 255, 255)
_BAR = (96, 125, 160)
_HIGHLIGHT = (230, 126, 34)
_TEXT = (40, 40, 40)
_MUTED = (120, 120, 120)
_BASELINE = (200, 200, 200)

_THAI_MONTHS = (
    "ม.ค.", "ก.พ.", "มี.ค.", "เม.ย.", "พ.ค.", "มิ.ย.",
    "ก.ค.", "ส.ค.", "ก.ย.", "ต.ค.", "พ.ย.", "ธ.ค.",
)  # fmt: skip
_ENGLISH_MONTHS = (
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
)  # fmt: skip
_BUDDHIST_ERA_OFFSET = 543


@dataclass(frozen=True, slots=True)
class MonthAmount:
    """One bar: the billing month, its amount, and whether to draw it highlighted (a bill
    still to pay)."""

    month: date
    amount_satang: int
    highlight: bool = False


@lru_cache(maxsize=8)
def find_thai_font(font_dirs: tuple[Path, ...] = FONT_DIRS) -> Path | None:
    """The preferred Thai font file found under ``font_dirs`` (searched one level deep
    too), or None. Reads directories: call it off the event loop. Cached per process."""
    found: dict[str, Path] = {}
    for folder in font_dirs:
        if not folder.is_dir():
            continue
        for pattern in ("*.ttf", "*.otf", "*/*.ttf", "*/*.otf"):
            for path in folder.glob(pattern):
                found.setdefault(path.stem, path)
    return next((found[name] for name in THAI_FONTS if name in found), None)


def _font(path: Path | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if path is None:
        return ImageFont.load_default(size)
    engine = ImageFont.Layout.RAQM if features.check("raqm") else ImageFont.Layout.BASIC
    # RAQM shapes Thai marks (above/below vowels, tone marks) into place.
    return ImageFont.truetype(str(path), size, layout_engine=engine)


def _labels(month: date, lang: str, thai_font: bool) -> tuple[str, str]:
    """(month, year) under a bar, in the chat's language and calendar."""
    if lang == "th":
        year = str(month.year + _BUDDHIST_ERA_OFFSET)
        if thai_font:
            return _THAI_MONTHS[month.month - 1], year
        return f"{month.month}/{year[-2:]}", ""
    return _ENGLISH_MONTHS[month.month - 1], str(month.year)


def _baht(satang: int) -> str:
    # Whole baht on the chart (the caption and the bill text carry the exact amounts).
    return f"{round(satang / 100):,}"


def render_monthly_bars(
    months: Sequence[MonthAmount],
    *,
    lang: str,
    font_dirs: tuple[Path, ...] = FONT_DIRS,
) -> bytes:
    """A PNG (720x400) with one bar per month, oldest on the left, the amount in baht
    above each bar and the month below it (the year under the first month of each year).

    ``lang`` "th" labels months in Thai with Buddhist-era years, anything else in English.
    Raises ValueError when ``months`` is empty or an amount is negative."""
    if not months:
        raise ValueError("nothing to draw")
    if any(m.amount_satang < 0 for m in months):
        raise ValueError("amounts must not be negative")
    thai_path = find_thai_font(font_dirs) if lang == "th" else None
    use_thai = thai_path is not None
    font_path = thai_path if use_thai else None
    label_font = _font(font_path, 17)
    value_font = _font(font_path, 15)

    image = Image.new("RGB", (_WIDTH, _HEIGHT), _BACKGROUND)
    draw = ImageDraw.Draw(image)
    ordered = sorted(months, key=lambda m: m.month)
    slot = (_WIDTH - 2 * _MARGIN_X) / len(ordered)
    bar_width = max(4, int(slot * 0.62))
    baseline = _HEIGHT - _BOTTOM
    tallest = max(m.amount_satang for m in ordered) or 1
    usable = baseline - _TOP
    draw.line((_MARGIN_X, baseline, _WIDTH - _MARGIN_X, baseline), fill=_BASELINE, width=2)
    last_year: str | None = None
    for index, item in enumerate(ordered):
        centre = _MARGIN_X + slot * index + slot / 2
        height = round(usable * item.amount_satang / tallest)
        left, right = centre - bar_width / 2, centre + bar_width / 2
        if height > 0:
            colour = _HIGHLIGHT if item.highlight else _BAR
            draw.rectangle((left, baseline - height, right, baseline), fill=colour)
        draw.text(
            (centre, baseline - height - 4),
            _baht(item.amount_satang),
            font=value_font,
            fill=_TEXT,
            anchor="md",
        )
        month_label, year_label = _labels(item.month, lang, use_thai)
        draw.text((centre, baseline + 8), month_label, font=label_font, fill=_TEXT, anchor="ma")
        if year_label and year_label != last_year:
            draw.text(
                (centre, baseline + 32), year_label, font=value_font, fill=_MUTED, anchor="ma"
            )
        last_year = year_label or last_year
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
