"""/mydata: a copy of everything this chat service holds about the customer.

Sends a JSON file (machine-readable: every row of the customer's data, values decrypted;
see ``core/services/privacy_rights.py``) and a short summary in the chat's language. The
copy is recorded in the audit log as the owner's own view.
"""

from __future__ import annotations

from core.chat import FileReply, Reply
from core.flows.bill import linked_customer
from core.flows.context import FlowContext
from core.flows.menu import with_menu
from core.flows.privacy import contact_line
from core.flows.profile import needs_link
from core.i18n import BANGKOK, Translator
from core.services.privacy_rights import DataExport, export_customer

__all__ = ["handle", "summary"]


def summary(t: Translator, export: DataExport, operator: str, contact: str) -> str:
    """A few lines saying what the file holds, in ``t``'s language."""
    counts = export.counts

    def n(table: str) -> int:
        return counts.get(table, 0)

    lines = [
        t._("📦 A copy of your data"),
        t._(
            "The file holds everything this chat service keeps about you, in JSON (a format "
            "other programs can read). In short:"
        ),
        t._("• your details: name, address, mobile number, email, national ID, language"),
        t.ngettext("• {n} service number", "• {n} service numbers", n("service_accounts")).format(
            n=n("service_accounts")
        ),
        t.ngettext("• {n} linked chat", "• {n} linked chats", n("chat_links")).format(
            n=n("chat_links")
        ),
        t.ngettext("• {n} bill", "• {n} bills", n("bills")).format(n=n("bills"))
        + ", "
        + t.ngettext("{n} payment", "{n} payments", n("payments")).format(n=n("payments")),
        t.ngettext("• {n} consent record", "• {n} consent records", n("consent_ledger")).format(
            n=n("consent_ledger")
        ),
        t.ngettext(
            "• {n} report of wrong data", "• {n} reports of wrong data", n("correction_requests")
        ).format(n=n("correction_requests")),
        t.ngettext(
            "• {n} entry of the access log about your data",
            "• {n} entries of the access log about your data",
            n("audit_log"),
        ).format(n=n("audit_log")),
        "",
        t._("Not included: one-way values such as the hash of your password."),
        t._(
            "Your contract and billing records at {operator} are kept in its own systems; "
            "for a copy of those, contact {contact}."
        ).format(operator=operator, contact=contact),
    ]
    return "\n".join(lines)


async def handle(ctx: FlowContext) -> list[Reply]:
    t = ctx.t
    ctx.leave()
    customer = await linked_customer(ctx)
    if customer is None:
        return [needs_link(t, t._("I can send a copy of your data once I know who you are."))]
    export = await export_customer(ctx.uow, customer, channel=ctx.incoming.channel, now=ctx.now)
    day = ctx.now.astimezone(BANGKOK).date().isoformat()
    file = FileReply(
        filename=f"my-data-{day}.json",
        content=export.content,
        mime_type="application/json",
        caption=t._("Your data (JSON)"),
    )
    text = summary(t, export, ctx.settings.operator_name, contact_line(t, ctx.settings))
    return [file, with_menu(t, text)]
