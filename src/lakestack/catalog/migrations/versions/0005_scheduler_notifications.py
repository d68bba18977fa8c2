"""Runner heartbeats, fired triggers (schedule ticks, table updates) and notification deliveries.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("job_runs") as batch:
        batch.add_column(sa.Column("runner", sa.String(200)))
        batch.add_column(sa.Column("heartbeat_at", TS))
    op.create_table(
        "job_triggers",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("tick", TS, nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("job_runs.id", ondelete="SET NULL")),
        sa.Column("claimed_by", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("job_id", "kind", "tick", name="uq_job_triggers_tick"),
    )
    op.create_table(
        "notification_deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source_kind", sa.String(32), nullable=False),
        sa.Column("source_id", sa.String(200), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("destination", sa.String(300), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index(
        "ix_notification_deliveries_source", "notification_deliveries", ["source_kind", "source_id"]
    )


def downgrade() -> None:
    op.drop_table("notification_deliveries")
    op.drop_table("job_triggers")
    with op.batch_alter_table("job_runs") as batch:
        batch.drop_column("heartbeat_at")
        batch.drop_column("runner")
