"""Jobs, job runs and task runs.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "securable_id",
            sa.Integer,
            sa.ForeignKey("securables.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("spec_yaml", sa.Text, nullable=False),
        sa.Column("folder", sa.Text),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "job_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("run_as", sa.String(200), nullable=False),
        sa.Column("started_by", sa.String(200), nullable=False),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("code_version", sa.JSON, nullable=False),
        sa.Column("repair_count", sa.Integer, nullable=False),
        sa.Column("cancel_requested_at", TS),
        sa.Column("error", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("start_time", TS),
        sa.Column("end_time", TS),
    )
    op.create_index("ix_job_runs_job_state", "job_runs", ["job_id", "state"])
    op.create_table(
        "task_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_run_id", sa.Integer, sa.ForeignKey("job_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("task_key", sa.String(100), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("start_time", TS),
        sa.Column("end_time", TS),
        sa.Column("exit_code", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("log_dir", sa.Text),
        sa.Column("task_values", sa.JSON, nullable=False),
        sa.Column("output", sa.JSON),
        sa.Column("condition_outcome", sa.String(8)),
        sa.UniqueConstraint("job_run_id", "task_key", "attempt", name="uq_task_runs_attempt"),
    )
    op.create_index("ix_task_runs_job_run_id", "task_runs", ["job_run_id"])


def downgrade() -> None:
    op.drop_table("task_runs")
    op.drop_table("job_runs")
    op.drop_table("jobs")
