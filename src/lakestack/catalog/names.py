"""Three-level names (`catalog.schema.object`), validated once at the edge.

A valid part is a plain identifier: letters, digits and underscores, not starting with a digit,
at most 128 characters. Names are case-insensitive and stored lower-case. Nothing else is
accepted, so a name can never escape its storage folder or break out of a quoted SQL identifier.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lakestack.errors import InvalidName

_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_LEVELS = {1: "catalog", 2: "schema", 3: "table"}


def validate_part(part: str, what: str = "name") -> str:
    """Return `part` lower-cased, or raise InvalidName explaining the rule."""
    if not isinstance(part, str) or not _PART.fullmatch(part):
        raise InvalidName(
            f"Invalid {what} {part!r}: use letters, digits and underscores, starting with a letter "
            "or underscore (at most 128 characters), e.g. 'churn_features'."
        )
    return part.lower()


@dataclass(frozen=True, order=True)
class Name:
    """A validated one-, two- or three-level name."""

    parts: tuple[str, ...]

    @classmethod
    def parse(cls, text: str, levels: int) -> Name:
        """Parse `text` expecting exactly `levels` parts (1 catalog, 2 schema, 3 object)."""
        example = {1: "dev", 2: "dev.churn", 3: "dev.churn.features"}[levels]
        if not isinstance(text, str) or not text:
            raise InvalidName(f"Empty {_LEVELS[levels]} name: expected a name like '{example}'.")
        parts = text.split(".")
        if len(parts) != levels:
            raise InvalidName(
                f"Invalid {_LEVELS[levels]} name {text!r}: expected {levels} part(s) like '{example}'."
            )
        return cls(tuple(validate_part(p, f"{_LEVELS[levels]} name part") for p in parts))

    @property
    def catalog(self) -> str:
        return self.parts[0]

    @property
    def schema(self) -> str:
        return self.parts[1]

    @property
    def object(self) -> str:
        return self.parts[2]

    @property
    def parent(self) -> Name:
        return Name(self.parts[:-1])

    def ancestors(self) -> list[Name]:
        """This name's parents from the catalog down, excluding itself."""
        return [Name(self.parts[:i]) for i in range(1, len(self.parts))]

    def __str__(self) -> str:
        return ".".join(self.parts)
