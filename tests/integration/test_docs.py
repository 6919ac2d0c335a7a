"""README keeps telling the truth about settings and commands."""

from __future__ import annotations

from pathlib import Path

from bot.cli import build_parser
from bot.settings import ENV_PREFIX, Settings

README = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")


def test_readme_lists_every_setting() -> None:
    missing = [
        ENV_PREFIX + name.upper()
        for name in Settings.model_fields
        if f"`{ENV_PREFIX}{name.upper()}`" not in README
    ]
    assert missing == []


def test_readme_lists_every_command() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert commands is not None
    missing = [name for name in commands if f"`selfcare {name}" not in README]
    assert missing == []


def test_readme_starts_with_the_two_set_up_commands() -> None:
    first_block = README.split("```")[1]
    assert "make run" in first_block and "make test" in first_block
