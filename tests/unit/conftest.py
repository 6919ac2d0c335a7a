"""Fixtures for the core's unit tests: fakes, a frozen clock and a chat per language."""

from __future__ import annotations

import pytest
from factories import CONTACT, OPERATOR
from fakes import FakeDatabase, FrozenClock
from harness import Chat

from core.i18n import Translator, translator
from core.services.conversation import ConversationService, ConversationSettings


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def db() -> FakeDatabase:
    return FakeDatabase()


@pytest.fixture
def settings() -> ConversationSettings:
    return ConversationSettings(operator_name=OPERATOR, privacy_contact=CONTACT)


@pytest.fixture
def service(
    db: FakeDatabase, clock: FrozenClock, settings: ConversationSettings
) -> ConversationService:
    return ConversationService(db.unit_of_work, clock, settings)


@pytest.fixture(params=["th", "en"])
def lang(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def t(lang: str) -> Translator:
    return translator(lang)


@pytest.fixture
def new_chat(service: ConversationService, db: FakeDatabase, clock: FrozenClock) -> Chat:
    """A chat that has never talked to the bot."""
    return Chat(service, db, clock)


@pytest.fixture
def chat(new_chat: Chat, lang: str) -> Chat:
    """A chat in ``lang`` that has seen the privacy notice before."""
    new_chat.seed(language=lang)
    return new_chat
