"""Personal access tokens (hashed) and the audit log.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("principal_id", sa.Integer, sa.ForeignKey("principals.id", ondelete="CASCADE"), index=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("comment", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS),
        sa.Column("revoked_at", TS),
        sa.Column("last_used_at", TS),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ts", TS, nullable=False, index=True),
        sa.Column("principal", sa.String(200), nullable=False, index=True),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("securable_kind", sa.String(32)),
        sa.Column("securable_name", sa.String(400)),
        sa.Column("privilege", sa.String(32)),
        sa.Column("allowed", sa.Boolean, nullable=False),
        sa.Column("detail", sa.JSON),
    )


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("tokens")
