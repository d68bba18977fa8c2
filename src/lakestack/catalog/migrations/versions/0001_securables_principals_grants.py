"""Securables, principals, group membership and grants.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "securables",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("full_name", sa.String(400), nullable=False, index=True),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("securables.id", ondelete="CASCADE")),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("properties", sa.JSON, nullable=False),
        sa.Column("storage_location", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.UniqueConstraint("kind", "full_name", name="uq_securables_kind_name"),
    )
    op.create_table(
        "principals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("display_name", sa.String(200)),
        sa.Column("is_admin", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "group_members",
        sa.Column(
            "group_id", sa.Integer, sa.ForeignKey("principals.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column(
            "member_id", sa.Integer, sa.ForeignKey("principals.id", ondelete="CASCADE"), primary_key=True
        ),
    )
    op.create_table(
        "grants",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("securable_id", sa.Integer, sa.ForeignKey("securables.id", ondelete="CASCADE"), index=True),
        sa.Column("principal_id", sa.Integer, sa.ForeignKey("principals.id", ondelete="CASCADE"), index=True),
        sa.Column("privilege", sa.String(32), nullable=False),
        sa.Column("granted_by", sa.String(200), nullable=False),
        sa.Column("granted_at", TS, nullable=False),
        sa.UniqueConstraint("securable_id", "principal_id", "privilege", name="uq_grants_triple"),
    )


def downgrade() -> None:
    for table in ("grants", "group_members", "principals", "securables"):
        op.drop_table(table)
