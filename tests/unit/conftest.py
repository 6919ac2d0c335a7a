"""Fixtures for the core's unit tests: fakes, a frozen clock and a chat per language."""

from __future__ import annotations

import pytest
from factories import CONTACT, OPERATOR
from fakes import FakeDatabase, FrozenClock
from fakes_linking import FakeHasher, FakeKeyedHash, FakeSms
from fakes_profile import FakeEmail
from harness import Chat

from core.i18n import Translator, translator
from core.services.conversation import ConversationService, ConversationSettings
from core.services.linking import LinkingService
from core.services.passwords import load_common_passwords
from core.services.profile import ProfileService

PUBLIC_URL = "https://selfcare.example"
COMMON_PASSWORDS = load_common_passwords()  # read once, at collection


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
def sms() -> FakeSms:
    return FakeSms()


@pytest.fixture
def hasher() -> FakeHasher:
    return FakeHasher()


@pytest.fixture
def linking(sms: FakeSms, hasher: FakeHasher) -> LinkingService:
    return LinkingService(
        hasher=hasher,
        keyed_hash=FakeKeyedHash(),
        sms=sms,
        public_url=PUBLIC_URL,
        operator_name=OPERATOR,
        common_passwords=COMMON_PASSWORDS,
    )


@pytest.fixture
def email() -> FakeEmail:
    return FakeEmail()


@pytest.fixture
def profile_service(sms: FakeSms, email: FakeEmail) -> ProfileService:
    return ProfileService(keyed_hash=FakeKeyedHash(), sms=sms, email=email, operator_name=OPERATOR)


@pytest.fixture
def service(
    db: FakeDatabase,
    clock: FrozenClock,
    settings: ConversationSettings,
    linking: LinkingService,
    profile_service: ProfileService,
) -> ConversationService:
    return ConversationService(
        db.unit_of_work,
        clock,
        settings,
        services={LinkingService: linking, ProfileService: profile_service},
    )


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
