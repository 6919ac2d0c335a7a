"""Helpers for the linking tests: a customer with an e-service user, and the steps of the
dialogue up to the question under test."""

from __future__ import annotations

from dataclasses import dataclass

from factories import customer
from fakes import FakeDatabase
from fakes_linking import FakeHasher
from harness import Chat

from core.chat import Button, LinkButton, Reply, TextReply
from core.domain import Customer, EServiceUser, new_id

USER_ID = "somying"
PASSWORD = "ถั่วเขียว-correct-horse"
NAME = "สมหญิง ใจดี"
PHONE = "0812345678"


@dataclass(frozen=True)
class Account:
    customer: Customer
    user: EServiceUser | None


def add_account(
    db: FakeDatabase,
    *,
    name: str = NAME,
    phone: str = PHONE,
    user_id: str | None = USER_ID,
    password: str = PASSWORD,
    account_no: str | None = None,
) -> Account:
    """A customer (and, unless ``user_id`` is None, their e-service user) in ``db``."""
    extra = {} if account_no is None else {"account_no": account_no}
    owner = customer(name=name, phone=phone, **extra)
    db.state.customers[owner.id] = owner
    user = None
    if user_id is not None:
        user = EServiceUser(
            id=new_id(),
            user_id=user_id,
            customer_id=owner.id,
            password_hash=FakeHasher.hash_of(password),
        )
        db.state.users[user.id] = user
    return Account(owner, user)


async def to_password_step(chat: Chat, user_id: str = USER_ID) -> list[Reply]:
    """Accept the notice, choose "password in chat", give the User ID."""
    await chat.press("link:accept")
    await chat.press("link:password")
    return await chat.say(user_id)


async def to_phone_step(chat: Chat, method: str = "otp") -> list[Reply]:
    await chat.press("link:accept")
    return await chat.press(f"link:{method}")


async def to_code_step(chat: Chat, phone: str = PHONE, method: str = "otp") -> list[Reply]:
    await to_phone_step(chat, method)
    return await chat.say(phone)


def link_buttons(replies: list[Reply]) -> list[LinkButton]:
    return [
        b
        for r in replies
        if isinstance(r, TextReply)
        for row in r.buttons
        for b in row
        if isinstance(b, LinkButton)
    ]


def all_payloads(replies: list[Reply]) -> list[str]:
    return [
        b.payload
        for r in replies
        if isinstance(r, TextReply)
        for row in r.buttons
        for b in row
        if isinstance(b, Button)
    ]


def token_of(url: str) -> str:
    return url.rsplit("/link/", 1)[1]
