"""SMS and email go out after the turn's commit, never while its transaction (and the
chat's lock) is held; a turn that rolls back sends nothing; a send that fails after the
commit is told to the customer in a message of its own."""

from __future__ import annotations

import pytest
from fakes import FakeDatabase
from fakes_linking import FakeHasher, FakeKeyedHash, FakeLinking, FakeSms
from harness import Chat, texts
from link_support import PHONE, add_account, to_code_step, to_phone_step

from core.flows import fallback
from core.i18n import Translator
from core.services import after_commit
from core.services.after_commit import DeferredEmail, DeferredSms
from core.services.linking import LinkingService
from core.services.passwords import load_common_passwords

OPERATOR = "ExampleTel"
PUBLIC_URL = "https://selfcare.example"
COMMON_PASSWORDS = load_common_passwords()  # read once, at collection


class CommitWatchingSms(FakeSms):
    """Notes how many commits the database had seen when each SMS went out."""

    def __init__(self, db: FakeDatabase) -> None:
        super().__init__()
        self.db = db
        self.commits_at_send: list[int] = []

    async def send(self, phone: str, text: str) -> None:
        self.commits_at_send.append(self.db.commits)
        await super().send(phone, text)


@pytest.fixture
def sms(db: FakeDatabase) -> CommitWatchingSms:
    return CommitWatchingSms(db)


@pytest.fixture
def linking(sms: CommitWatchingSms, hasher: FakeHasher) -> LinkingService:
    return LinkingService(
        hasher=hasher,
        keyed_hash=FakeKeyedHash(),
        sms=DeferredSms(sms),
        public_url=PUBLIC_URL,
        operator_name=OPERATOR,
        common_passwords=COMMON_PASSWORDS,
    )


async def test_the_code_goes_out_after_the_turn_committed(
    chat: Chat, db: FakeDatabase, sms: CommitWatchingSms
) -> None:
    add_account(db)
    await to_code_step(chat)
    commits_before_the_code_step = sms.db.commits - 1
    (message,) = sms.sent
    assert message.phone == PHONE
    # The turn that asked for the code had committed when the SMS left.
    assert sms.commits_at_send == [commits_before_the_code_step + 1]
    # …and the code it committed is the one that works.
    await chat.say(message.code)
    assert (chat.channel, chat.chat_id) in db.state.links


async def test_a_failed_send_after_the_commit_is_told_to_the_customer(
    chat: Chat, db: FakeDatabase, sms: CommitWatchingSms, t: Translator
) -> None:
    add_account(db)
    sms.fail_next = True
    replies = await to_code_step(chat)
    assert sms.sent == []
    assert texts(replies)[-1] == t._(
        "Sorry, I couldn't send the code just now. Please try again shortly."
    )


async def test_a_turn_that_does_not_commit_sends_nothing(
    chat: Chat, db: FakeDatabase, sms: CommitWatchingSms
) -> None:
    add_account(db)
    await to_phone_step(chat)
    db.fail_next_save = RuntimeError("the database went away before the commit")
    with pytest.raises(RuntimeError):
        await chat.say(PHONE)
    assert sms.sent == []  # its challenge rolled back: a code that could never work


async def test_a_flow_that_fails_after_asking_for_the_sms_sends_nothing(
    chat: Chat,
    db: FakeDatabase,
    sms: CommitWatchingSms,
    t: Translator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    add_account(db)

    async def broken(self: FakeLinking, challenge: object) -> None:
        raise ValueError("a bug after the SMS was asked for")

    monkeypatch.setattr(FakeLinking, "add_otp", broken)
    replies = await to_code_step(chat)
    assert sms.sent == []  # rolled back with the turn: the apology alone goes out
    assert texts(replies) == texts([fallback.something_went_wrong(t)])


async def test_outside_a_turn_the_senders_send_at_once() -> None:
    sms, sent_mail = FakeSms(), []

    class Mail:
        async def send(self, to: str, subject: str, text: str) -> None:
            sent_mail.append((to, subject, text))

    await DeferredSms(sms).send(PHONE, "hello")
    await DeferredEmail(Mail()).send("a@example.co.th", "s", "t")
    assert [m.text for m in sms.sent] == ["hello"] and sent_mail == [("a@example.co.th", "s", "t")]


async def test_collected_effects_are_dropped_by_discard_and_outside_the_block() -> None:
    sms = FakeSms()
    with after_commit.collecting() as effects:
        await DeferredSms(sms).send(PHONE, "later")
        assert [e.kind for e in effects] == ["sms"] and sms.sent == []
        after_commit.discard()
        assert effects == []
    await DeferredSms(sms).send(PHONE, "now")
    assert [m.text for m in sms.sent] == ["now"]


async def test_after_a_failed_send_a_new_code_can_be_asked_for_and_works(
    chat: Chat, db: FakeDatabase, sms: CommitWatchingSms
) -> None:
    add_account(db)
    sms.fail_next = True
    await to_code_step(chat)
    assert sms.sent == []
    await chat.press("link:otp")
    await chat.say(PHONE)
    (message,) = sms.sent
    await chat.say(message.code)
    assert (chat.channel, chat.chat_id) in db.state.links
