"""Every foreign-key column leads an index: erasure and export (storage/privacy.py) find a
customer's rows through those columns, and PostgreSQL (unlike some engines) does not index
them by itself, so a missing one turns each ``/forget`` and each cascade into a scan of the
whole table. A table a later feature adds is checked without a change here."""

from __future__ import annotations

from sqlalchemy import Table

from storage import tables as t
from storage.privacy import chat_tables, customer_tables


def _leading_columns(table: Table) -> set[str]:
    """Columns that lead an index, a unique constraint or the primary key."""
    leading = {next(iter(index.columns)).name for index in table.indexes}
    for constraint in table.constraints:
        columns = list(getattr(constraint, "columns", ()))
        if columns and (
            constraint is table.primary_key or type(constraint).__name__ == "UniqueConstraint"
        ):
            leading.add(columns[0].name)
    leading.update(c.name for c in table.columns if c.unique)
    return leading


def test_every_foreign_key_column_leads_an_index() -> None:
    missing = sorted(
        f"{table.name}.{fk.parent.name}"
        for table in t.metadata.sorted_tables
        for fk in table.foreign_keys
        if fk.parent.name not in _leading_columns(table)
    )
    assert missing == []


def test_the_walk_erasure_follows_is_indexed_at_every_step() -> None:
    steps = [
        f"{table.name}.{column}"
        for table, edges in customer_tables()[1:]
        for column, _, _ in edges
        if column not in _leading_columns(table)
    ]
    # The walk reaches bills' payments and pay links, and the linking tables' customer ids.
    followed = {
        f"{table.name}.{column}" for table, edges in customer_tables() for column, *_ in edges
    }
    assert {"payments.bill_id", "pay_links.bill_id", "link_tokens.customer_id"} <= followed
    assert steps == []


def test_payments_are_found_by_the_account_number_they_name() -> None:
    # Erasure deletes payments that matched no bill by their ref1 (the account number).
    assert "ref1" in _leading_columns(t.payments)


def test_every_chat_table_is_indexed_by_chat() -> None:
    # Unlinking and erasure delete a chat's rows by (channel, chat_id) in every chat table.
    def led_by_chat(table: Table) -> bool:
        keyed = [list(index.columns) for index in table.indexes]
        keyed += [list(getattr(c, "columns", ())) for c in table.constraints]
        return any([c.name for c in cols[:2]] == ["channel", "chat_id"] for cols in keyed)

    tables = chat_tables()
    assert {"campaign_deliveries", "contact_changes", "outbox"} <= {x.name for x in tables}
    assert sorted(x.name for x in tables if not led_by_chat(x)) == []
