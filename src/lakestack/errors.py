"""Every error lakestack raises, with a stable code, an HTTP status and a CLI exit code.

Errors are built from two axes: *what went wrong* (not found, denied, invalid, ...) decides
the status and exit code; *where* (catalog, table, ...) is a sub-root a caller can catch.
Messages name the object and the fix, and fit on one line.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence


class LakestackError(Exception):
    """Root of every lakestack error."""

    code = "INTERNAL_ERROR"
    http_status = 500
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str]:
        """The REST body for this error: ``{"error_code": ..., "message": ...}``."""
        return {"error_code": self.code, "message": self.message}


# --- what went wrong -------------------------------------------------------------------


class InvalidParameter(LakestackError):
    """The caller passed something malformed: a name, an option, a file, a schema."""

    code = "INVALID_PARAMETER_VALUE"
    http_status = 400
    exit_code = 2


class NotFound(LakestackError):
    """The named object does not exist (or the caller may not know it exists)."""

    code = "RESOURCE_DOES_NOT_EXIST"
    http_status = 404
    exit_code = 3


class PermissionDenied(LakestackError):
    """The acting principal lacks a privilege; the message names it."""

    code = "PERMISSION_DENIED"
    http_status = 403
    exit_code = 4


class Unauthenticated(LakestackError):
    """No valid credentials: unknown, revoked or expired token."""

    code = "UNAUTHENTICATED"
    http_status = 401
    exit_code = 4


class AlreadyExists(LakestackError):
    """Creating something whose name is taken."""

    code = "RESOURCE_ALREADY_EXISTS"
    http_status = 409
    exit_code = 5


class Conflict(LakestackError):
    """A concurrent change won and retrying did not help, or the object is in use."""

    code = "RESOURCE_CONFLICT"
    http_status = 409
    exit_code = 5


class DataQualityError(LakestackError):
    """Data was rejected by an expectation with action 'fail'."""

    code = "EXPECTATION_FAILED"
    http_status = 422
    exit_code = 6


class ServiceUnavailable(LakestackError):
    """A server lakestack needs (Redis, ...) did not answer; retrying later may work."""

    code = "TEMPORARILY_UNAVAILABLE"
    http_status = 503
    exit_code = 7


# --- where it went wrong ---------------------------------------------------------------


class WorkspaceError(LakestackError):
    """Problems opening or configuring a workspace."""


class CatalogError(LakestackError):
    """Problems with the metastore: securables, principals, grants, audit."""


class TableError(LakestackError):
    """Problems with Delta tables, expectations or SQL."""


class FeatureError(LakestackError):
    """Problems with feature tables and their online store."""


class JobError(LakestackError):
    """Problems with jobs: specs, runs, schedules, executors."""


class WorkspaceNotFound(WorkspaceError, NotFound):
    code = "WORKSPACE_NOT_FOUND"


class InvalidConfig(WorkspaceError, InvalidParameter):
    code = "INVALID_CONFIG"


class UpgradeRequired(WorkspaceError, Conflict):
    code = "UPGRADE_REQUIRED"


class InvalidName(CatalogError, InvalidParameter):
    code = "INVALID_NAME"


class SecurableNotFound(CatalogError, NotFound):
    """A catalog, schema, table, principal, ... that does not exist; suggests near names."""

    def __init__(self, kind: str, name: str, candidates: Iterable[str] = (), hint: str = "") -> None:
        message = f"{kind.capitalize()} '{name}' not found."
        close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.75)
        if close:
            message += f" Did you mean '{close[0]}'?"
        elif hint:
            message += f" {hint}"
        super().__init__(message)
        self.kind = kind
        self.name = name


class SecurableExists(CatalogError, AlreadyExists):
    def __init__(self, kind: str, name: str, hint: str = "") -> None:
        message = f"{kind.capitalize()} '{name}' already exists."
        super().__init__(f"{message} {hint}".strip())


class PrivilegeMissing(CatalogError, PermissionDenied):
    """Raised by the grants check; carries the missing privilege for callers to inspect."""

    def __init__(self, principal: str, privilege: str, kind: str, name: str) -> None:
        super().__init__(
            f"Principal '{principal}' lacks {privilege} on {kind} '{name}'. "
            f"An owner or admin can run: lakestack grants grant {privilege} {kind} {name} {principal}"
        )
        self.principal = principal
        self.privilege = privilege
        self.securable = f"{kind} {name}"


class AdminRequired(CatalogError, PermissionDenied):
    """Raised for actions only workspace admins may take (catalogs, principals, audit log)."""

    def __init__(self, principal: str, action: str) -> None:
        super().__init__(
            f"Only workspace admins may {action}; '{principal}' is not one. "
            f"An admin can run: lakestack principals add-member admins {principal}"
        )
        self.principal = principal


class InvalidToken(CatalogError, Unauthenticated):
    pass


class VersionNotFound(TableError, NotFound):
    """A time-travel target (version or timestamp) the table does not have."""


class TableDataMissing(TableError, NotFound):
    """The metastore knows the table but its Delta log is gone from storage."""


class SchemaMismatch(TableError, InvalidParameter):
    code = "SCHEMA_MISMATCH"


class BadInputData(TableError, InvalidParameter):
    code = "BAD_INPUT_DATA"


class InvalidQuery(TableError, InvalidParameter):
    code = "INVALID_QUERY"


class ExpectationFailed(TableError, DataQualityError):
    pass


class CommitConflict(TableError, Conflict):
    code = "CONCURRENT_MODIFICATION"


class NotPublished(FeatureError, NotFound):
    """A feature table looked up online that was never published (or was unpublished)."""

    code = "FEATURE_TABLE_NOT_PUBLISHED"


class OnlineStoreUnavailable(FeatureError, ServiceUnavailable):
    """The online store (Redis) is unreachable or refused us."""


class InvalidJobSpec(JobError, InvalidParameter):
    """A job spec that fails validation: one `file:line:column: field: problem` line per problem."""

    code = "INVALID_JOB_SPEC"

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems) or (message,)


class JobNotFound(JobError, NotFound):
    code = "JOB_NOT_FOUND"


class JobRunNotFound(JobError, NotFound):
    code = "JOB_RUN_NOT_FOUND"


class InvalidRunState(JobError, Conflict):
    """A run or task run asked to move to a state it cannot reach from where it is."""

    code = "INVALID_STATE"


class TaskValueError(JobError, InvalidParameter):
    """A task value that is not JSON, or read from a task that is not upstream."""

    code = "INVALID_TASK_VALUE"


class ChangesUnavailable(TableError, InvalidParameter):
    """Incremental work needs a table's change feed, and it is off or its history was vacuumed."""

    code = "CHANGES_UNAVAILABLE"
