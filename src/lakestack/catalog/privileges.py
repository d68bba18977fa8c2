"""Privileges and where they apply. Privileges granted on a parent apply to every child."""

from __future__ import annotations

from enum import StrEnum


class Privilege(StrEnum):
    USE_CATALOG = "USE_CATALOG"
    USE_SCHEMA = "USE_SCHEMA"
    CREATE_SCHEMA = "CREATE_SCHEMA"
    CREATE_TABLE = "CREATE_TABLE"
    CREATE_MODEL = "CREATE_MODEL"
    SELECT = "SELECT"
    MODIFY = "MODIFY"
    EXECUTE = "EXECUTE"
    MANAGE = "MANAGE"
    CAN_VIEW = "CAN_VIEW"
    CAN_MANAGE_RUN = "CAN_MANAGE_RUN"
    ALL_PRIVILEGES = "ALL_PRIVILEGES"

    @classmethod
    def parse(cls, text: str) -> Privilege:
        """Accept `select`, `ALL PRIVILEGES`, `all_privileges`, ..."""
        from lakestack.errors import InvalidParameter

        key = text.strip().upper().replace(" ", "_")
        try:
            return cls(key)
        except ValueError:
            choices = ", ".join(p.value for p in cls)
            raise InvalidParameter(f"Unknown privilege {text!r}. Use one of: {choices}.") from None


P = Privilege
_OBJECT = {P.SELECT, P.MODIFY, P.MANAGE, P.ALL_PRIVILEGES, P.EXECUTE}
# Jobs are top-level securables with Databricks' job permissions: CAN_VIEW < CAN_MANAGE_RUN
# (run, cancel, repair) < MANAGE (edit, delete, grant). Any principal may create a job and owns it.
_JOB = {P.CAN_VIEW, P.CAN_MANAGE_RUN, P.MANAGE, P.ALL_PRIVILEGES}
_CATALOG = set(Privilege) - {P.CAN_VIEW, P.CAN_MANAGE_RUN}
APPLICABLE: dict[str, set[Privilege]] = {
    "catalog": _CATALOG,
    "schema": _CATALOG - {P.USE_CATALOG, P.CREATE_SCHEMA},
    "table": {P.SELECT, P.MODIFY, P.MANAGE, P.ALL_PRIVILEGES},
    "model": _OBJECT,
    "job": _JOB,
}

# Securables with no catalog parent: their one-part name is not a catalog.
TOP_LEVEL_KINDS = frozenset({"job"})

# A privilege also held through a stronger one (job permissions are ordered, as in Databricks).
IMPLIED_BY: dict[Privilege, set[Privilege]] = {
    P.CAN_VIEW: {P.CAN_MANAGE_RUN, P.MANAGE},
    P.CAN_MANAGE_RUN: {P.MANAGE},
}

# What using a parent requires, so that a grant on a table alone is not enough to reach it.
USAGE = {"catalog": Privilege.USE_CATALOG, "schema": Privilege.USE_SCHEMA}
