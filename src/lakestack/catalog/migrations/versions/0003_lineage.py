"""Lineage: nodes (table versions, runs, commits, training sets, model versions) and edges.

Also makes the foreign keys of grants and tokens NOT NULL, as the ORM always assumed.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # batch mode: SQLite can only change a column's nullability by rebuilding the table.
    with op.batch_alter_table("grants") as grants:
        grants.alter_column("securable_id", existing_type=sa.Integer, nullable=False)
        grants.alter_column("principal_id", existing_type=sa.Integer, nullable=False)
    with op.batch_alter_table("tokens") as tokens:
        tokens.alter_column("principal_id", existing_type=sa.Integer, nullable=False)
    op.create_table(
        "lineage_nodes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(600), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(400), nullable=False),
        sa.Column("version", sa.Integer),
        sa.Column("properties", sa.JSON),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_lineage_nodes_kind_name", "lineage_nodes", ["kind", "name", "version"])
    op.create_table(
        "lineage_edges",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "source_id", sa.Integer, sa.ForeignKey("lineage_nodes.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "target_id", sa.Integer, sa.ForeignKey("lineage_nodes.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.UniqueConstraint("source_id", "target_id", name="uq_lineage_edges_pair"),
    )
    op.create_index("ix_lineage_edges_target", "lineage_edges", ["target_id"])


def downgrade() -> None:
    op.drop_table("lineage_edges")
    op.drop_table("lineage_nodes")
    with op.batch_alter_table("tokens") as tokens:
        tokens.alter_column("principal_id", existing_type=sa.Integer, nullable=True)
    with op.batch_alter_table("grants") as grants:
        grants.alter_column("securable_id", existing_type=sa.Integer, nullable=True)
        grants.alter_column("principal_id", existing_type=sa.Integer, nullable=True)
