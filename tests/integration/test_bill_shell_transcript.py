"""The issue's "done when", as an operator would try it: ``selfcare demo seed``, a linked
terminal chat, then "บิล" and "จ่าย" through ``selfcare shell`` in a subprocess.

The chat is linked through the repositories here; signing in through the chat is the
linking feature's own transcript.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path

from bot.demo import DEMO_USER_ID
from core.domain import BillStatus, Channel, ChatLink
from core.i18n import BANGKOK, translator
from core.services.billing import payable
from storage.uow import Database
from tests.integration.pay_support import scan_png
from tests.integration.support import run_cli
from tests.unit.emvco_parser import crc_is_valid, parse_payload

CHAT_ID = "transcript-1"
IMAGE_LINE = re.compile(r"^🖼\s+(\S+\.png)$", re.MULTILINE)
TH = translator("th")  # loaded at collection, not on the event loop


async def _link_demo_customer(db: Database) -> str:
    async with db.uow() as uow:
        user = await uow.users.get_by_user_id(DEMO_USER_ID)
        assert user is not None
        await uow.links.link(
            ChatLink(Channel.TERMINAL, CHAT_ID, user.id, user.customer_id, datetime.now(UTC))
        )
        await uow.commit()
    return user.customer_id


async def test_bill_then_pay_in_the_shell_shows_the_bill_and_writes_a_payable_qr(
    cli_env: dict[str, str], db: Database, tmp_path: Path
) -> None:
    seeded = await run_cli(cli_env, "demo", "seed", cwd=tmp_path)
    assert seeded.code == 0, seeded.stderr
    customer_id = await _link_demo_customer(db)
    async with db.uow() as uow:
        customer = await uow.customers.get(customer_id)
        bills = await uow.bills.for_customer(customer_id)
    assert customer is not None
    today = datetime.now(BANGKOK).date()
    (unpaid,) = payable(bills)  # the demo user owes exactly October's bill
    assert unpaid.status(today) is BillStatus.UNPAID

    media = tmp_path / "media"
    shell = await run_cli(
        cli_env,
        "shell",
        "--chat-id",
        CHAT_ID,
        "--media-dir",
        str(media),
        stdin="บิล\nจ่าย\n",
        cwd=tmp_path,
    )
    assert shell.code == 0, shell.stderr
    out = shell.stdout
    bill_part, _, pay_part = out.partition("› จ่าย")
    bill_answer = bill_part.partition("› บิล")[2]

    due = unpaid.due_on
    assert f"{due.year + 543}" in bill_answer  # Buddhist era
    assert TH.date(due) in bill_answer
    assert TH.money(unpaid.amount_satang) in bill_answer
    assert "ยังไม่ได้ชำระ" in bill_answer  # unpaid

    (image_path,) = IMAGE_LINE.findall(pay_part)
    png = Path(image_path)
    assert png.parent == await asyncio.to_thread(media.resolve)
    payload = scan_png(await asyncio.to_thread(png.read_bytes))
    assert crc_is_valid(payload)
    fields = parse_payload(payload)
    assert fields["00"] == "01" and fields["01"] == "12"
    account = fields["30"]
    assert isinstance(account, dict)
    assert account["00"] == "A000000677010112"
    assert account["01"].isdigit() and len(account["01"]) == 15
    assert account["02"] == customer.account_no  # ref1
    assert account["03"] == unpaid.reference  # ref2
    baht, satang = divmod(unpaid.outstanding_satang, 100)
    assert fields["54"] == f"{baht}.{satang:02d}"
    assert fields["53"] == "764" and fields["58"] == "TH"
    assert re.search(r"https://\S+/pay/[A-Za-z0-9_-]{43}", pay_part)
