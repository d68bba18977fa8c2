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
APPLICABLE: dict[str, set[Privilege]] = {
    "catalog": set(Privilege),
    "schema": set(Privilege) - {P.USE_CATALOG, P.CREATE_SCHEMA},
    "table": {P.SELECT, P.MODIFY, P.MANAGE, P.ALL_PRIVILEGES},
    "model": _OBJECT,
}

# What using a parent requires, so that a grant on a table alone is not enough to reach it.
USAGE = {"catalog": Privilege.USE_CATALOG, "schema": Privilege.USE_SCHEMA}
