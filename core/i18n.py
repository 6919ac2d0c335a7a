"""Translations and the way money, dates and times look to a customer.

Messages are English source strings marked with ``_()`` / ``ngettext`` (on a
:class:`Translator`, e.g. ``t._("Hello, {name}!").format(name=...)``); placeholders are
``{name}`` for ``str.format``, never ``%``. Thai is the default language, English the second.

Catalogs live in ``locales/<lang>/LC_MESSAGES/selfcare.po``. They are read with Babel and
compiled in memory, so running the bot needs no build step; a compiled ``selfcare.mo``
beside a ``.po`` is used instead when it is newer. Each language is loaded once per process
(:func:`preload` at start-up keeps file reads off the event loop).

Keeping the three files in sync after adding or changing a string::

    pybabel extract -F babel.cfg -o locales/messages.pot .
    pybabel update -i locales/messages.pot -d locales -D selfcare
    # then fill every empty or "fuzzy" msgstr in th and en (tests/unit/test_catalogs.py checks)

Optional, for speed only: ``pybabel compile -d locales -D selfcare`` (``*.mo`` is not committed).
"""

from __future__ import annotations

import datetime as _dt
import gettext
import io
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

__all__ = [
    "BANGKOK",
    "DEFAULT_LANGUAGE",
    "DOMAIN",
    "LOCALES_DIR",
    "SUPPORTED_LANGUAGES",
    "Translator",
    "normalise_language",
    "preload",
    "translator",
]

SUPPORTED_LANGUAGES: tuple[str, ...] = ("th", "en")
DEFAULT_LANGUAGE = "th"
DOMAIN = "selfcare"


def _find_locales() -> Path:
    """``locales/`` of the source tree (a checkout, an editable install), else where an
    installed wheel puts it (``<prefix>/share/selfcare/locales``, pyproject's data-files)."""
    candidates = (
        Path(__file__).resolve().parent.parent / "locales",
        Path(sys.prefix) / "share" / DOMAIN / "locales",
    )
    for folder in candidates:
        if (folder / DEFAULT_LANGUAGE / "LC_MESSAGES" / f"{DOMAIN}.po").exists():
            return folder
    return candidates[0]


LOCALES_DIR = _find_locales()
BANGKOK = ZoneInfo("Asia/Bangkok")

# Formatting data, not messages: these are fixed by the languages themselves.
_THAI_MONTHS = (
    "ม.ค.",
    "ก.พ.",
    "มี.ค.",
    "เม.ย.",
    "พ.ค.",
    "มิ.ย.",
    "ก.ค.",
    "ส.ค.",
    "ก.ย.",
    "ต.ค.",
    "พ.ย.",
    "ธ.ค.",
)
_ENGLISH_MONTHS = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)
_BUDDHIST_ERA_OFFSET = 543


def normalise_language(lang: str | None) -> str:
    """A supported language code for ``lang`` ("en-GB" → "en"); Thai for anything else."""
    if not lang:
        return DEFAULT_LANGUAGE
    code = lang.replace("_", "-").split("-", 1)[0].strip().lower()
    return code if code in SUPPORTED_LANGUAGES else DEFAULT_LANGUAGE


@dataclass(frozen=True, slots=True, eq=False)
class Translator:
    """Messages and formats of one language. Obtain one with :func:`translator`."""

    lang: str
    catalog: gettext.NullTranslations

    def gettext(self, message: str) -> str:
        """``message`` translated; the English source if the catalog lacks it."""
        return self.catalog.gettext(message)

    _ = gettext

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        """The form of ``singular``/``plural`` for the count ``n``, translated."""
        return self.catalog.ngettext(singular, plural, n)

    def money(self, satang: int) -> str:
        """An amount of satang as baht: ``฿1,234.50`` (the same in Thai and English)."""
        sign = "-" if satang < 0 else ""
        baht, rest = divmod(abs(satang), 100)
        return f"{sign}฿{baht:,}.{rest:02d}"

    def date(self, d: _dt.date) -> str:
        """Thai: ``25 พ.ย. 2569`` (Buddhist era); English: ``25 Nov 2026``."""
        if self.lang == "th":
            return f"{d.day} {_THAI_MONTHS[d.month - 1]} {d.year + _BUDDHIST_ERA_OFFSET}"
        return f"{d.day} {_ENGLISH_MONTHS[d.month - 1]} {d.year}"

    def datetime(self, dt: _dt.datetime) -> str:
        """``dt`` on a Bangkok clock. Thai: ``25 พ.ย. 2569 14:05 น.``; English:
        ``25 Nov 2026, 14:05``. A naive ``dt`` is taken to be UTC, as stored."""
        aware = dt if dt.tzinfo is not None else dt.replace(tzinfo=_dt.UTC)
        local = aware.astimezone(BANGKOK)
        clock = f"{local.hour:02d}:{local.minute:02d}"
        if self.lang == "th":
            return f"{self.date(local.date())} {clock} น."
        return f"{self.date(local.date())}, {clock}"

    def month_year(self, d: _dt.date) -> str:
        """A billing month. Thai: ``พ.ย. 2569``; English: ``Nov 2026``."""
        if self.lang == "th":
            return f"{_THAI_MONTHS[d.month - 1]} {d.year + _BUDDHIST_ERA_OFFSET}"
        return f"{_ENGLISH_MONTHS[d.month - 1]} {d.year}"


_cache: dict[str, Translator] = {}
_cache_lock = threading.Lock()


def _load_catalog(lang: str, locales_dir: Path) -> gettext.NullTranslations:
    folder = locales_dir / lang / "LC_MESSAGES"
    po_path = folder / f"{DOMAIN}.po"
    mo_path = folder / f"{DOMAIN}.mo"
    if mo_path.exists() and (
        not po_path.exists() or mo_path.stat().st_mtime >= po_path.stat().st_mtime
    ):
        with mo_path.open("rb") as mo_file:
            return gettext.GNUTranslations(mo_file)
    if not po_path.exists():
        # No catalog: the English source strings are shown. The catalog test guards this.
        return gettext.NullTranslations()
    with po_path.open("rb") as po_file:
        catalog = read_po(po_file, locale=lang, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def translator(lang: str | None) -> Translator:
    """The :class:`Translator` for ``lang`` (unknown or empty → Thai), loaded once."""
    code = normalise_language(lang)
    found = _cache.get(code)
    if found is not None:
        return found
    with _cache_lock:
        found = _cache.get(code)
        if found is None:
            found = Translator(lang=code, catalog=_load_catalog(code, LOCALES_DIR))
            _cache[code] = found
    return found


def preload() -> None:
    """Load every supported language now (reads files: call at start-up, not in a handler).

    Raises RuntimeError when the Thai catalog is missing: English source strings shown to
    Thai customers must stop a deployment, not slip through it."""
    for lang in SUPPORTED_LANGUAGES:
        translator(lang)
    # Loaded once and cached: later calls (every ConversationService) touch no file.
    if type(translator(DEFAULT_LANGUAGE).catalog) is gettext.NullTranslations:
        raise RuntimeError(f"no {DEFAULT_LANGUAGE} catalog in {LOCALES_DIR} (see core/i18n.py)")
