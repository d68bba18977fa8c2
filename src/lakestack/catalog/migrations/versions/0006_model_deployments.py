"""Model deployments (promotions, approvals, rollbacks) and model events.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "model_deployments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(400), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("previous_version", sa.Integer),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("requested_at", TS, nullable=False),
        sa.Column("decided_by", sa.String(200)),
        sa.Column("decided_at", TS),
        sa.Column("reason", sa.Text),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_index("ix_model_deployments_model", "model_deployments", ["model_name", "id"])
    op.create_table(
        "model_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(400), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer),
        sa.Column("previous_version", sa.Integer),
        sa.Column("principal", sa.String(200), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_model_events_model", "model_events", ["model_name", "id"])


def downgrade() -> None:
    op.drop_table("model_events")
    op.drop_table("model_deployments")
