"""The message catalogs: complete, in sync with the code and with each other.

Fix a failure with the commands in ``core/i18n.py``'s docstring, then fill the msgstr.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
LOCALES = ROOT / "locales"
PLACEHOLDER = re.compile(r"\{[^{}]*\}")
GETTEXT_NAMES = {"_", "gettext", "ngettext"}


def _read(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as po_file:
        return read_po(po_file, locale=locale)


def _messages(catalog: Catalog) -> dict[str, Message]:
    return {_key(m.id): m for m in catalog if m.id}


def _key(msgid: str | tuple[str, ...] | list[str]) -> str:
    return msgid if isinstance(msgid, str) else msgid[0]


def _forms(value: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


TEMPLATE = _read(LOCALES / "messages.pot")
TRANSLATIONS = {
    lang: _read(LOCALES / lang / "LC_MESSAGES" / "selfcare.po", lang) for lang in ("th", "en")
}


def _template_messages() -> list[Message]:
    return [m for m in TEMPLATE if m.id]


def test_the_template_is_not_empty() -> None:
    assert len(_template_messages()) > 20


@pytest.mark.parametrize("lang", ["th", "en"])
def test_each_catalog_has_exactly_the_template_messages(lang: str) -> None:
    assert set(_messages(TRANSLATIONS[lang])) == set(_messages(TEMPLATE))
    assert not TRANSLATIONS[lang].obsolete, "run pybabel update and drop obsolete entries"


@pytest.mark.parametrize("lang", ["th", "en"])
def test_every_message_is_translated_and_not_fuzzy(lang: str) -> None:
    catalog = TRANSLATIONS[lang]
    for message in (m for m in catalog if m.id):
        assert not message.fuzzy, f"{lang}: fuzzy: {_key(message.id)!r}"
        forms = _forms(message.string)
        expected = catalog.num_plurals if message.pluralizable else 1
        assert len(forms) == expected, f"{lang}: plural forms of {_key(message.id)!r}"
        assert all(form.strip() for form in forms), f"{lang}: empty: {_key(message.id)!r}"


@pytest.mark.parametrize("lang", ["th", "en"])
def test_placeholders_are_the_same_in_source_and_translation(lang: str) -> None:
    for message in (m for m in TRANSLATIONS[lang] if m.id):
        wanted = set(PLACEHOLDER.findall(_key(message.id)))
        for form in (*_forms(message.id), *_forms(message.string)):
            assert set(PLACEHOLDER.findall(form)) == wanted, f"{lang}: {form!r}"


def test_messages_use_brace_placeholders_not_percent() -> None:
    for message in _template_messages():
        for form in _forms(message.id):
            assert not re.search(r"%(\(\w+\))?[sdif]", form), form


def test_thai_speaks_as_the_female_persona() -> None:
    for message in (m for m in TRANSLATIONS["th"] if m.id):
        for form in _forms(message.string):
            assert "ครับ" not in form and "ผม" not in form.split(), form


def _extracted_from_core() -> Iterator[tuple[str, str]]:
    with (ROOT / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)  # type: ignore[no-untyped-call]
    for filename, _lineno, message, _comments, _context in extract_from_dir(
        ROOT, method_map, options_map
    ):
        if filename.replace("\\", "/").startswith("core/"):
            yield filename, _key(message)


def test_every_marked_string_in_core_is_in_the_template() -> None:
    found = list(_extracted_from_core())
    assert found, "babel.cfg extracts nothing from core/"
    known = set(_messages(TEMPLATE))
    missing = sorted({f"{name}: {msgid!r}" for name, msgid in found if msgid not in known})
    assert not missing, "run pybabel extract + update:\n" + "\n".join(missing)


def _gettext_calls(tree: ast.AST) -> Iterator[ast.Call]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in GETTEXT_NAMES:
                yield node


# core/i18n.py is the gettext wrapper itself; everything else must pass literals.
MARKED_SOURCES = sorted(p for p in (ROOT / "core").rglob("*.py") if p.name != "i18n.py")


@pytest.mark.parametrize("path", MARKED_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_gettext_is_called_with_literals_only(path: Path) -> None:
    # A variable or f-string in _() cannot be extracted, so it would never be translated.
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for call in _gettext_calls(tree):
        literal_args = call.args[:2] if len(call.args) == 3 else call.args
        for arg in literal_args:
            assert isinstance(arg, ast.Constant) and isinstance(arg.value, str), (
                f"{path.name}:{call.lineno} passes a non-literal to gettext"
            )
