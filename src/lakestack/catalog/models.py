"""The metastore's tables. Migrations in `migrations/versions` create exactly these."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Stores instants in UTC and always returns aware UTC datetimes.

    SQLite keeps no offset, so without this a naive value read back (or an aware one from
    another zone compared as text) would silently mean a different instant.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        utc = aware.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class Securable(Base):
    """Anything grants apply to: catalog, schema, table (later: model, job, endpoint, monitor)."""

    __tablename__ = "securables"
    __table_args__ = (UniqueConstraint("kind", "full_name", name="uq_securables_kind_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    full_name: Mapped[str] = mapped_column(String(400), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("securables.id", ondelete="CASCADE"))
    owner: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str | None] = mapped_column(Text)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    storage_location: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(200))


class Principal(Base):
    """A user, group or service principal."""

    __tablename__ = "principals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    display_name: Mapped[str | None] = mapped_column(String(200))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class GroupMember(Base):
    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(ForeignKey("principals.id", ondelete="CASCADE"), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("principals.id", ondelete="CASCADE"), primary_key=True)


class Grant(Base):
    __tablename__ = "grants"
    __table_args__ = (UniqueConstraint("securable_id", "principal_id", "privilege", name="uq_grants_triple"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    securable_id: Mapped[int] = mapped_column(ForeignKey("securables.id", ondelete="CASCADE"), index=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("principals.id", ondelete="CASCADE"), index=True)
    privilege: Mapped[str] = mapped_column(String(32))
    granted_by: Mapped[str] = mapped_column(String(200))
    granted_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Token(Base):
    """A personal access token. Only the SHA-256 of the secret is stored."""

    __tablename__ = "tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("principals.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class AuditEvent(Base):
    """One checked call: who did what to which securable, and whether it was allowed."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
    principal: Mapped[str] = mapped_column(String(200), index=True)
    action: Mapped[str] = mapped_column(String(100))
    securable_kind: Mapped[str | None] = mapped_column(String(32))
    securable_name: Mapped[str | None] = mapped_column(String(400))
    privilege: Mapped[str | None] = mapped_column(String(32))
    allowed: Mapped[bool] = mapped_column(Boolean)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class LineageNode(Base):
    """One thing lineage connects: a table version, a run, a commit, a training set, a model version."""

    __tablename__ = "lineage_nodes"
    __table_args__ = (Index("ix_lineage_nodes_kind_name", "kind", "name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(600), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(400))
    version: Mapped[int | None] = mapped_column(Integer)
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class LineageEdge(Base):
    """`source` went into making `target` (a read into a run, a run into what it wrote)."""

    __tablename__ = "lineage_edges"
    __table_args__ = (
        UniqueConstraint("source_id", "target_id", name="uq_lineage_edges_pair"),
        Index("ix_lineage_edges_target", "target_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("lineage_nodes.id", ondelete="CASCADE"))
    target_id: Mapped[int] = mapped_column(ForeignKey("lineage_nodes.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))


class Job(Base):
    """A job: its spec (as JSON and as the YAML it was written in) and where its files live.

    Grants apply to its securable (kind `job`, no parent); `owner` mirrors the securable's.
    """

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    securable_id: Mapped[int] = mapped_column(ForeignKey("securables.id", ondelete="CASCADE"), unique=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    spec_yaml: Mapped[str] = mapped_column(Text)
    folder: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(200))


class JobRun(Base):
    """One run of a job: its state, who started it and why, its parameters and code version."""

    __tablename__ = "job_runs"
    __table_args__ = (Index("ix_job_runs_job_state", "job_id", "state"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(32))
    trigger: Mapped[str] = mapped_column(String(32))
    run_as: Mapped[str] = mapped_column(String(200))
    started_by: Mapped[str] = mapped_column(String(200))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    code_version: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    repair_count: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    start_time: Mapped[datetime | None] = mapped_column(UtcDateTime())
    end_time: Mapped[datetime | None] = mapped_column(UtcDateTime())
    #: `host:pid` of the process driving the run, and when it last said it is alive.
    runner: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class TaskRun(Base):
    """One attempt of one task in a job run (a retry or a repair adds a row with the next attempt)."""

    __tablename__ = "task_runs"
    __table_args__ = (UniqueConstraint("job_run_id", "task_key", "attempt", name="uq_task_runs_attempt"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_run_id: Mapped[int] = mapped_column(ForeignKey("job_runs.id", ondelete="CASCADE"), index=True)
    task_key: Mapped[str] = mapped_column(String(100))
    attempt: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(32))
    start_time: Mapped[datetime | None] = mapped_column(UtcDateTime())
    end_time: Mapped[datetime | None] = mapped_column(UtcDateTime())
    exit_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    log_dir: Mapped[str | None] = mapped_column(Text)
    task_values: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    output: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    condition_outcome: Mapped[str | None] = mapped_column(String(8))


class JobTrigger(Base):
    """A schedule tick, periodic tick or table update that fired a job, claimed exactly once.

    The unique (job, kind, tick) is the claim: the scheduler inserts it in the same transaction
    that creates the run, so a tick never starts two runs, whatever crashes or restarts.
    `detail` holds what fired it (the table versions seen, for a table update).
    """

    __tablename__ = "job_triggers"
    __table_args__ = (UniqueConstraint("job_id", "kind", "tick", name="uq_job_triggers_tick"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    tick: Mapped[datetime] = mapped_column(UtcDateTime())
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("job_runs.id", ondelete="SET NULL"))
    claimed_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class NotificationDelivery(Base):
    """One notification (a webhook call or an e-mail) about a job run or an alert, and how its
    delivery went: attempts, the last HTTP status, the last error."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (Index("ix_notification_deliveries_source", "source_kind", "source_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source_kind: Mapped[str] = mapped_column(String(32))
    source_id: Mapped[str] = mapped_column(String(200))
    event: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    destination: Mapped[str] = mapped_column(String(300))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class ModelDeployment(Base):
    """A request to make a model version the champion: AWAITING_APPROVAL, then DEPLOYED or
    REJECTED; a DEPLOYED one becomes ROLLED_BACK when a rollback undoes it. It remembers the
    champion it replaced (`previous_version`)."""

    __tablename__ = "model_deployments"
    __table_args__ = (Index("ix_model_deployments_model", "model_name", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(400))
    version: Mapped[int] = mapped_column(Integer)
    previous_version: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(32))
    requested_by: Mapped[str] = mapped_column(String(200))
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    reason: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ModelEvent(Base):
    """Something that happened to a model's champion (promoted, rolled back, approval asked,
    rejected), in order: endpoints and jobs follow a model by reading its events after an id."""

    __tablename__ = "model_events"
    __table_args__ = (Index("ix_model_events_model", "model_name", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(400))
    kind: Mapped[str] = mapped_column(String(32))
    version: Mapped[int | None] = mapped_column(Integer)
    previous_version: Mapped[int | None] = mapped_column(Integer)
    principal: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
