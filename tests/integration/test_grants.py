"""Principals, tokens, inherited grants and the audit log, on SQLite and PostgreSQL metastores."""

from datetime import UTC, datetime

import pyarrow as pa
import pytest
from sqlalchemy import text

from lakestack import Workspace
from lakestack.errors import (
    InvalidParameter,
    InvalidToken,
    PermissionDenied,
    PrivilegeMissing,
    SecurableNotFound,
)


@pytest.fixture
def shop(workspace: Workspace) -> Workspace:
    """A prod.churn schema with one table, and principals alice (user), analysts (group), bot (sp)."""
    workspace.schemas.create("prod.churn")
    workspace.tables.create("prod.churn.features", data=pa.table({"id": [1, 2], "x": [0.5, 1.5]}))
    workspace.principals.create("alice")
    workspace.principals.create("analysts", kind="group")
    workspace.principals.create("bot", kind="service_principal")
    return workspace


def test_denied_read_names_the_missing_privilege_and_is_audited(shop: Workspace) -> None:
    alice = shop.as_principal("alice")
    with pytest.raises(PrivilegeMissing) as denied:
        alice.tables.read("prod.churn.features")
    assert denied.value.privilege == "USE_CATALOG"
    assert "lacks USE_CATALOG on catalog 'prod'" in denied.value.message
    assert "lakestack grants grant USE_CATALOG catalog prod alice" in denied.value.message
    assert isinstance(denied.value, PermissionDenied) and denied.value.http_status == 403

    events = shop.audit.list(principal="alice", denied_only=True)
    assert events[0].action == "tables.read" and events[0].privilege == "USE_CATALOG"
    assert events[0].allowed is False and events[0].securable_name == "prod"


def test_privileges_are_inherited_from_catalog_and_schema(shop: Workspace) -> None:
    alice = shop.as_principal("alice")
    shop.grants.grant("USE_CATALOG", "catalog", "prod", "alice")
    with pytest.raises(PrivilegeMissing, match=r"USE_SCHEMA on schema 'prod\.churn'"):
        alice.tables.read("prod.churn.features")
    shop.grants.grant("USE_SCHEMA", "schema", "prod.churn", "alice")
    with pytest.raises(PrivilegeMissing, match=r"SELECT on table 'prod\.churn\.features'"):
        alice.tables.read("prod.churn.features")
    shop.grants.grant("SELECT", "catalog", "prod", "alice")  # granted two levels up
    assert alice.tables.read("prod.churn.features").num_rows == 2
    with pytest.raises(PrivilegeMissing, match="MODIFY"):
        alice.tables.write("prod.churn.features", pa.table({"id": [3], "x": [2.0]}))
    assert shop.tables.get("prod.churn.features").version == 0  # the denied write changed nothing

    shown = {
        (g.principal, g.privilege, g.inherited_from) for g in shop.grants.show("table", "prod.churn.features")
    }
    assert ("alice", "SELECT", "catalog prod") in shown
    assert ("alice", "USE_SCHEMA", "schema prod.churn") in shown

    assert shop.grants.revoke("SELECT", "catalog", "prod", "alice") is True
    assert shop.grants.revoke("SELECT", "catalog", "prod", "alice") is False
    with pytest.raises(PrivilegeMissing, match="SELECT"):
        alice.tables.read("prod.churn.features")


def test_group_grants_reach_members_transitively(shop: Workspace) -> None:
    shop.principals.create("data_team", kind="group")
    shop.principals.add_member("data_team", "analysts")
    shop.principals.add_member("analysts", "alice")
    shop.grants.grant("USE_CATALOG", "catalog", "prod", "data_team")
    shop.grants.grant("USE_SCHEMA", "schema", "prod.churn", "data_team")
    shop.grants.grant("SELECT", "table", "prod.churn.features", "data_team")
    alice = shop.as_principal("alice")
    assert alice.caller.groups == {"analysts", "data_team"}
    assert alice.sql("SELECT sum(x) AS s FROM prod.churn.features").column("s")[0].as_py() == 2.0
    with pytest.raises(InvalidParameter, match="cycle"):
        shop.principals.add_member("analysts", "data_team")


def test_all_privileges_and_ownership(shop: Workspace) -> None:
    shop.grants.grant("USE_CATALOG", "catalog", "prod", "alice")
    shop.grants.grant("ALL PRIVILEGES", "schema", "prod.churn", "alice")
    alice = shop.as_principal("alice")
    alice.tables.write("prod.churn.features", pa.table({"id": [3], "x": [2.0]}))
    mine = alice.tables.create("prod.churn.alice_scratch", data=pa.table({"a": [1]}))
    assert mine.owner == "alice"
    # alice owns her table, so she may grant on it; bob-the-bot may not grant on hers.
    alice.grants.grant("SELECT", "table", "prod.churn.alice_scratch", "bot")
    shop.grants.grant("USE_CATALOG", "catalog", "prod", "bot")
    shop.grants.grant("USE_SCHEMA", "schema", "prod.churn", "bot")
    bot = shop.as_principal("bot")
    assert bot.tables.read("prod.churn.alice_scratch").num_rows == 1
    with pytest.raises(PrivilegeMissing, match=r"lacks MANAGE on table 'prod\.churn\.alice_scratch'"):
        bot.grants.grant("SELECT", "table", "prod.churn.alice_scratch", "alice")


def test_only_admins_create_catalogs_principals_and_read_the_audit_log(shop: Workspace) -> None:
    alice = shop.as_principal("alice")
    for call in (
        lambda: alice.catalogs.create("sandbox"),
        lambda: alice.principals.create("mallory"),
        lambda: alice.audit.list(),
        lambda: alice.as_principal("admin"),
    ):
        with pytest.raises(PermissionDenied):
            call()


def test_listings_show_only_what_a_principal_can_see(shop: Workspace) -> None:
    shop.schemas.create("prod.secret")
    shop.grants.grant("USE_CATALOG", "catalog", "prod", "alice")
    shop.grants.grant("USE_SCHEMA", "schema", "prod.churn", "alice")
    alice = shop.as_principal("alice")
    assert [c.full_name for c in alice.catalogs.list()] == ["prod"]
    assert [s.full_name for s in alice.schemas.list("prod")] == ["prod.churn"]


def test_grant_validation(shop: Workspace) -> None:
    with pytest.raises(InvalidParameter, match="Unknown privilege"):
        shop.grants.grant("READ", "table", "prod.churn.features", "alice")
    with pytest.raises(InvalidParameter, match="does not apply to a table"):
        shop.grants.grant("CREATE_TABLE", "table", "prod.churn.features", "alice")
    with pytest.raises(SecurableNotFound, match="Did you mean 'alice'"):
        shop.grants.grant("SELECT", "table", "prod.churn.features", "alicee")
    with pytest.raises(SecurableNotFound, match=r"Did you mean 'prod\.churn\.features'"):
        shop.grants.grant("SELECT", "table", "prod.churn.feature", "alice")
    with pytest.raises(InvalidParameter, match="Invalid principal name"):
        shop.principals.create("bad name'; drop table grants;--")


def test_tokens_are_stored_hashed_and_authenticate_their_owner(shop: Workspace) -> None:
    new = shop.tokens.create(comment="ci", principal="bot")
    assert new.secret.startswith("lsk_")
    with shop._core.metastore.engine.connect() as connection:
        stored = connection.execute(text("SELECT token_hash FROM tokens")).scalars().all()
    assert new.secret not in stored and all(len(h) == 64 for h in stored)

    as_bot = Workspace.open(shop.folder, token=new.secret)
    assert as_bot.caller.name == "bot"
    assert [t.id for t in as_bot.tokens.list()] == [new.info.id]
    assert as_bot.tokens.list()[0].last_used_at is not None
    shop.tokens.revoke(new.info.id)
    with pytest.raises(InvalidToken, match="revoked"):
        Workspace.open(shop.folder, token=new.secret)
    with pytest.raises(InvalidToken, match="Invalid token") as info:
        Workspace.open(shop.folder, token="lsk_forged_secret")
    assert "forged" not in info.value.message  # secrets are never echoed
    as_bot.close()


def test_expired_tokens_are_rejected(shop: Workspace) -> None:
    new = shop.tokens.create(lifetime_seconds=1, principal="alice")
    from sqlalchemy import update

    from lakestack.catalog.models import Token

    with shop._core.metastore.session() as session:
        session.execute(update(Token).values(expires_at=datetime(2000, 1, 1, tzinfo=UTC)))
    with pytest.raises(InvalidToken, match="expired"):
        Workspace.open(shop.folder, token=new.secret)


def test_users_manage_only_their_own_tokens(shop: Workspace) -> None:
    alice = shop.as_principal("alice")
    mine = alice.tokens.create()
    theirs = shop.tokens.create(principal="bot")
    with pytest.raises(PermissionDenied):
        alice.tokens.revoke(theirs.info.id)
    with pytest.raises(PermissionDenied):
        alice.tokens.create(principal="bot")
    assert [t.id for t in alice.tokens.list()] == [mine.info.id]
    assert alice.tokens.revoke(mine.info.id).revoked_at is not None


def test_every_checked_call_is_audited(shop: Workspace) -> None:
    before = datetime.now(UTC)
    shop.tables.read("prod.churn.features")
    shop.sql("SELECT * FROM prod.churn.features")
    events = shop.audit.list(since=before, securable="prod.churn.features")
    assert {e.action for e in events} >= {"tables.read", "tables.scan"}
    assert all(e.principal == "admin" and e.allowed for e in events)
    shop.as_principal("alice").principals.list()
    assert shop.audit.list(principal="alice", action="principals.list")


def test_not_found_suggestions_never_reveal_hidden_names(shop: Workspace) -> None:
    shop.schemas.create("prod.hr")
    shop.tables.create("prod.hr.salaries", data=pa.table({"id": [1]}))
    shop.grants.grant("USE_CATALOG", "catalog", "prod", "alice")
    shop.grants.grant("USE_SCHEMA", "schema", "prod.churn", "alice")
    alice = shop.as_principal("alice")
    with pytest.raises(SecurableNotFound) as missing:
        alice.tables.read("prod.churn.salaries")
    assert "hr" not in missing.value.message
    with pytest.raises(SecurableNotFound) as missing_schema:
        alice.schemas.get("prod.hrx")
    assert "'prod.hr'" not in missing_schema.value.message
    # The admin, who can see everything, gets the helpful suggestion.
    with pytest.raises(SecurableNotFound, match=r"Did you mean 'prod\.hr\.salaries'"):
        shop.tables.read("prod.hr.salarie")


def test_existence_is_answered_only_to_those_who_may_look(shop: Workspace) -> None:
    alice = shop.as_principal("alice")
    with pytest.raises(PrivilegeMissing, match="USE_CATALOG"):
        alice.tables.exists("prod.churn.features")
    assert alice.catalogs.exists("prod") is False  # invisible to her, so "no"
    shop.grants.grant("USE_CATALOG", "catalog", "prod", "alice")
    shop.grants.grant("USE_SCHEMA", "schema", "prod.churn", "alice")
    assert alice.tables.exists("prod.churn.features") is True
    assert alice.tables.exists("prod.churn.nothing") is False
    assert alice.schemas.exists("prod.nothing") is False
    actions = {e.action for e in shop.audit.list(principal="alice")}
    assert {"tables.exists", "catalogs.exists", "schemas.exists"} <= actions


def test_admin_only_actions_say_how_to_become_admin_and_are_audited(shop: Workspace) -> None:
    alice = shop.as_principal("alice")
    with pytest.raises(PermissionDenied, match="lakestack principals add-member admins alice"):
        alice.catalogs.create("sandbox")
    shop.principals.add_member("admins", "alice")
    assert shop.as_principal("alice").catalogs.create("sandbox").owner == "alice"
    switches = shop.audit.list(action="workspace.as_principal")
    assert switches and switches[0].securable_name == "alice" and switches[0].allowed


def test_failed_token_logins_are_audited_without_the_secret(shop: Workspace) -> None:
    with pytest.raises(InvalidToken):
        Workspace.open(shop.folder, token="lsk_deadbeef_notasecret")
    event = shop.audit.list(action="auth.token")[0]
    assert event.principal == "anonymous" and not event.allowed
    assert event.detail == {"token_id": "deadbeef"}


def test_audit_since_compares_instants_not_clock_text(shop: Workspace) -> None:
    from datetime import timedelta, timezone

    shop.tables.read("prod.churn.features")
    plus_two = timezone(timedelta(hours=2))
    a_minute_ago = datetime.now(plus_two) - timedelta(minutes=1)
    in_half_an_hour = datetime.now(timezone(timedelta(hours=-5))) + timedelta(minutes=30)
    assert shop.audit.list(since=a_minute_ago, action="tables.read")
    assert shop.audit.list(since=in_half_an_hour) == []
