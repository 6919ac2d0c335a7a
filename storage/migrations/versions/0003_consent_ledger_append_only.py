"""consent_ledger is append-only: the database refuses UPDATE (and TRUNCATE), keeps DELETE

A decision once recorded (what was granted or withdrawn, under which notice, when, from
which chat) is never rewritten: a change of mind is a new row. So the database refuses to
UPDATE a row on both engines, and on PostgreSQL refuses TRUNCATE too.

DELETE stays allowed, on purpose. Two paths must remove a customer's consent rows:
erasure (``/forget``: storage/privacy.py deletes every row that reaches the customer
through a foreign key, children first, the customer last; the audit log's
``customer.erased`` entry counts the ledger rows it deleted) and the billing system's
``customer.deleted`` event (``DELETE FROM customers``, whose ON DELETE CASCADE deletes the
ledger rows). A trigger that allowed DELETE "only during erasure" would need a marker it
can read: SQLite has no session setting a trigger can see, so that would take a marker
table and one more write in every erasure, and whoever may delete rows could write the
marker too. Who may DELETE at all is a matter of database privileges, not of a trigger.

Written by hand: autogenerate cannot express triggers, so `make migration` regenerates
0001 only and leaves this revision as it is.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MESSAGE = "consent_ledger is append-only"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION consent_ledger_refuse_change() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'insufficient_privilege';
            END
            $$
            """
        )
        op.execute(
            "CREATE TRIGGER consent_ledger_no_update BEFORE UPDATE ON consent_ledger "
            "FOR EACH ROW EXECUTE FUNCTION consent_ledger_refuse_change()"
        )
        op.execute(
            "CREATE TRIGGER consent_ledger_no_truncate BEFORE TRUNCATE ON consent_ledger "
            "FOR EACH STATEMENT EXECUTE FUNCTION consent_ledger_refuse_change()"
        )
    else:
        op.execute(
            "CREATE TRIGGER consent_ledger_no_update BEFORE UPDATE ON consent_ledger "
            f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS consent_ledger_no_truncate ON consent_ledger")
        op.execute("DROP TRIGGER IF EXISTS consent_ledger_no_update ON consent_ledger")
        op.execute("DROP FUNCTION IF EXISTS consent_ledger_refuse_change()")
    else:
        op.execute("DROP TRIGGER IF EXISTS consent_ledger_no_update")
