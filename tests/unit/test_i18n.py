"""Money, dates and times as a customer reads them, and loading the catalogs."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import write_po

from core import i18n
from core.i18n import DEFAULT_LANGUAGE, SUPPORTED_LANGUAGES, Translator, translator

THAI_MONTHS = "ม.ค. ก.พ. มี.ค. เม.ย. พ.ค. มิ.ย. ก.ค. ส.ค. ก.ย. ต.ค. พ.ย. ธ.ค.".split()
ENGLISH_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


@pytest.mark.parametrize(
    ("satang", "shown"),
    [
        (0, "฿0.00"),
        (5, "฿0.05"),
        (50, "฿0.50"),
        (123450, "฿1,234.50"),
        (99999, "฿999.99"),
        (100_000_000, "฿1,000,000.00"),
        (-123450, "-฿1,234.50"),
    ],
)
def test_money_is_baht_with_thousands_and_satang_in_both_languages(
    t: Translator, satang: int, shown: str
) -> None:
    assert t.money(satang) == shown


def test_thai_dates_use_the_buddhist_era() -> None:
    assert translator("th").date(date(2026, 11, 25)) == "25 พ.ย. 2569"
    assert translator("th").date(date(2027, 1, 1)) == "1 ม.ค. 2570"


def test_english_dates_use_the_common_era() -> None:
    assert translator("en").date(date(2026, 11, 25)) == "25 Nov 2026"


@pytest.mark.parametrize("month", range(1, 13))
def test_every_month_has_its_abbreviation(month: int) -> None:
    day = date(2026, month, 3)
    assert translator("th").date(day) == f"3 {THAI_MONTHS[month - 1]} 2569"
    assert translator("en").date(day) == f"3 {ENGLISH_MONTHS[month - 1]} 2026"
    assert translator("th").month_year(day) == f"{THAI_MONTHS[month - 1]} 2569"
    assert translator("en").month_year(day) == f"{ENGLISH_MONTHS[month - 1]} 2026"


def test_times_are_shown_on_a_bangkok_clock() -> None:
    moment = datetime(2026, 11, 25, 7, 5, tzinfo=UTC)
    assert translator("th").datetime(moment) == "25 พ.ย. 2569 14:05 น."
    assert translator("en").datetime(moment) == "25 Nov 2026, 14:05"


@pytest.mark.parametrize(
    ("utc", "thai", "english"),
    [
        # 17:30 UTC is already the next day in Bangkok (UTC+7).
        (datetime(2026, 11, 24, 17, 30, tzinfo=UTC), "25 พ.ย. 2569 00:30 น.", "25 Nov 2026, 00:30"),
        (datetime(2026, 11, 24, 16, 59, tzinfo=UTC), "24 พ.ย. 2569 23:59 น.", "24 Nov 2026, 23:59"),
        # New year's eve in UTC is new year's day (and a new Buddhist year) in Bangkok.
        (datetime(2026, 12, 31, 18, 0, tzinfo=UTC), "1 ม.ค. 2570 01:00 น.", "1 Jan 2027, 01:00"),
    ],
)
def test_bangkok_time_across_utc_midnight(utc: datetime, thai: str, english: str) -> None:
    assert translator("th").datetime(utc) == thai
    assert translator("en").datetime(utc) == english


def test_other_time_zones_are_converted_and_naive_times_are_utc() -> None:
    tokyo = datetime(2026, 11, 25, 16, 5, tzinfo=timezone(timedelta(hours=9)))
    assert translator("en").datetime(tokyo) == "25 Nov 2026, 14:05"
    assert translator("en").datetime(datetime(2026, 11, 25, 7, 5)) == "25 Nov 2026, 14:05"


@pytest.mark.parametrize(
    ("asked", "got"),
    [("th", "th"), ("en", "en"), ("en-GB", "en"), ("EN_us", "en"), ("fr", "th"), ("", "th")],
)
def test_translator_falls_back_to_thai(asked: str, got: str) -> None:
    assert translator(asked).lang == got
    assert translator(None).lang == DEFAULT_LANGUAGE == "th"
    assert SUPPORTED_LANGUAGES == ("th", "en")


def test_translators_are_cached_per_language() -> None:
    assert translator("en") is translator("en-GB")
    assert translator("th") is not translator("en")


def test_messages_are_translated_and_unknown_ones_fall_back_to_english() -> None:
    assert translator("th")._("🔒 Privacy") == "🔒 ความเป็นส่วนตัว"
    assert translator("th").gettext("🔒 Privacy") == "🔒 ความเป็นส่วนตัว"
    assert translator("en")._("🔒 Privacy") == "🔒 Privacy"
    assert translator("th")._("not in any catalog") == "not in any catalog"


def test_plural_forms_follow_each_language() -> None:
    singular = "The last step expired after {minutes} minute without a reply, so I've cancelled it."
    plural = "The last step expired after {minutes} minutes without a reply, so I've cancelled it."
    assert translator("en").ngettext(singular, plural, 1) == singular
    assert translator("en").ngettext(singular, plural, 5) == plural
    thai = translator("th")
    assert thai.ngettext(singular, plural, 1) == thai.ngettext(singular, plural, 5)
    assert "นาที" in thai.ngettext(singular, plural, 5)


def _write_catalog(folder: Path, text: str, *, compiled: bool) -> None:
    catalog = Catalog(locale="en", domain=i18n.DOMAIN)
    catalog.add("Hello", text)
    folder.mkdir(parents=True, exist_ok=True)
    if compiled:
        with (folder / f"{i18n.DOMAIN}.mo").open("wb") as mo_file:
            write_mo(mo_file, catalog)
    else:
        with (folder / f"{i18n.DOMAIN}.po").open("wb") as po_file:
            write_po(po_file, catalog)


def test_a_po_file_is_used_without_a_build_step(tmp_path: Path) -> None:
    _write_catalog(tmp_path / "en" / "LC_MESSAGES", "from po", compiled=False)
    assert i18n._load_catalog("en", tmp_path).gettext("Hello") == "from po"


def test_a_compiled_mo_file_is_used_only_when_newer_than_the_po(tmp_path: Path) -> None:
    folder = tmp_path / "en" / "LC_MESSAGES"
    _write_catalog(folder, "from po", compiled=False)
    _write_catalog(folder, "from mo", compiled=True)
    po, mo = folder / f"{i18n.DOMAIN}.po", folder / f"{i18n.DOMAIN}.mo"
    os.utime(po, (1_000_000, 1_000_000))
    os.utime(mo, (2_000_000, 2_000_000))
    assert i18n._load_catalog("en", tmp_path).gettext("Hello") == "from mo"
    os.utime(po, (3_000_000, 3_000_000))
    assert i18n._load_catalog("en", tmp_path).gettext("Hello") == "from po"


def test_a_missing_catalog_shows_the_english_source(tmp_path: Path) -> None:
    assert i18n._load_catalog("en", tmp_path).gettext("Hello") == "Hello"


def test_start_up_refuses_to_run_without_the_thai_catalog(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(i18n, "LOCALES_DIR", tmp_path)
    monkeypatch.setattr(i18n, "_cache", {})
    with pytest.raises(RuntimeError, match="no th catalog"):
        i18n.preload()


def test_an_installed_wheel_carries_every_catalog() -> None:
    """pyproject's data-files list each language's catalog (an installed package has no
    source tree; core/i18n.py then reads <prefix>/share/selfcare/locales)."""
    import tomllib

    root = Path(__file__).resolve().parents[2]
    data_files = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "data-files"
    ]
    shipped = {Path(f) for files in data_files.values() for f in files}
    on_disk = {p.relative_to(root) for p in (root / "locales").glob("*/LC_MESSAGES/*.po")}
    assert on_disk and shipped == on_disk
    for target, files in data_files.items():
        for f in files:
            assert target == "share/selfcare/" + str(Path(f).parent)
