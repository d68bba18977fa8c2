import pytest

from lakestack.catalog.names import Name, validate_part
from lakestack.errors import InvalidName


def test_three_level_names_parse_and_normalise_case() -> None:
    name = Name.parse("Dev.Churn.Features", 3)
    assert (name.catalog, name.schema, name.object) == ("dev", "churn", "features")
    assert str(name) == "dev.churn.features"
    assert [str(a) for a in name.ancestors()] == ["dev", "dev.churn"]
    assert str(name.parent) == "dev.churn"


@pytest.mark.parametrize(
    "text",
    [
        "dev.raw",  # too few parts
        "dev.raw.trips.x",  # too many
        "dev..trips",
        "dev.raw.../etc",
        "dev.raw.tr/ips",
        "dev.raw.trips;drop",
        'dev.raw."trips"',
        "dev.raw.trips'--",
        "dev.raw.1trips",
        "dev.raw.t rips",
        "dev.raw." + "x" * 129,
        "",
    ],
)
def test_malformed_names_are_rejected_with_the_rule(text: str) -> None:
    with pytest.raises(InvalidName) as info:
        Name.parse(text, 3)
    assert (
        "dev.churn.features" in info.value.message or "letters, digits and underscores" in info.value.message
    )


def test_part_rule_message_names_the_offender() -> None:
    with pytest.raises(InvalidName, match=r"'\.\.'"):
        validate_part("..", "schema name")
