"""The 12-month bill chart: a PNG with Thai labels when a Thai font is installed,
digits-only labels when it is not."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import pytest
from PIL import Image

from core.charts import FONT_DIRS, MonthAmount, find_thai_font, render_monthly_bars

MONTHS = [
    MonthAmount(date(2025 + (m > 12), (m - 1) % 12 + 1, 1), 40_000 + 1_111 * m, highlight=m == 22)
    for m in range(11, 23)
]


def _image(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return image


@pytest.mark.parametrize("lang", ["th", "en"])
def test_a_chart_is_a_small_png(lang: str) -> None:
    image = _image(render_monthly_bars(MONTHS, lang=lang))
    assert image.size == (720, 400)


def test_the_bill_to_pay_is_drawn_in_the_highlight_colour() -> None:
    image = _image(render_monthly_bars(MONTHS, lang="en")).convert("RGB")
    colours = {colour for _, colour in image.getcolors(720 * 400) or []}
    assert (230, 126, 34) in colours and (96, 125, 160) in colours


def test_the_thai_font_is_found_where_debian_installs_it() -> None:
    found = find_thai_font(FONT_DIRS)
    if found is None:
        pytest.skip("no Thai font installed (apt-get install fonts-thai-tlwg)")
    assert found.suffix in (".ttf", ".otf")


def test_without_a_thai_font_a_thai_chart_is_still_drawn(tmp_path: Path) -> None:
    with_font = render_monthly_bars(MONTHS, lang="th")
    without = render_monthly_bars(MONTHS, lang="th", font_dirs=(tmp_path,))
    assert find_thai_font((tmp_path,)) is None
    assert _image(without).size == (720, 400)
    if find_thai_font(FONT_DIRS) is not None:
        assert without != with_font  # digits instead of Thai month names


def test_one_month_and_zero_amounts_are_fine() -> None:
    _image(render_monthly_bars([MonthAmount(date(2026, 10, 1), 0)], lang="th"))


@pytest.mark.parametrize("months", [[], [MonthAmount(date(2026, 10, 1), -1)]])
def test_nothing_or_a_negative_amount_is_refused(months: list[MonthAmount]) -> None:
    with pytest.raises(ValueError):
        render_monthly_bars(months, lang="en")
