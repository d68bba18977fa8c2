"""Champion changes on the real MLflow registry: validated promotions, approval, rollback, races,
events, grants, and copying a version from staging to prod."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import mlflow
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from lakestack import Workspace
from lakestack.errors import InvalidParameter, LakestackError, NotFound, PrivilegeMissing
from lakestack.models.deployment import ConcurrentPromotion, NothingToRollBack, PromotionRefused

X = np.array([[0.0], [1.0], [2.0], [3.0]])
Y = [0, 0, 1, 1]
NAME = "dev.churn.model"


def version(ws: Workspace, name: str = NAME, status: str | None = "PASSED") -> int:
    """A newly registered version, tagged as validation left it."""
    with ws.tracking.start_run("churn"):
        model = LogisticRegression().fit(X, Y)
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
    registered = ws.models.register(str(info.model_uri), name)
    if status is not None:
        ws.models.set_tag(name, registered.version, "model_validation_status", status)
    return registered.version


def aliases(ws: Workspace, name: str = NAME) -> dict[str, int]:
    return ws.models.get(name).aliases


@pytest.fixture
def ws(workspace: Workspace) -> Iterator[Workspace]:
    workspace.schemas.create("dev.churn")
    yield workspace


def test_promotion_needs_a_passed_validation_and_remembers_the_champion_it_replaced(ws: Workspace) -> None:
    v1, v2, failed = version(ws), version(ws), version(ws, status="FAILED")
    with pytest.raises(PromotionRefused, match="has no challenger"):
        ws.models.promote(NAME)
    first = ws.models.promote(NAME, v1)  # no champion yet: nothing to compare with
    assert (first.state, first.previous_version, aliases(ws)) == ("DEPLOYED", None, {"champion": v1})

    with pytest.raises(PromotionRefused, match="model_validation_status FAILED"):
        ws.models.promote(NAME, failed)
    assert aliases(ws) == {"champion": v1}  # a refused promotion moves nothing
    with pytest.raises(InvalidParameter, match="needs a reason"):
        ws.models.promote(NAME, failed, force=True)

    ws.models.set_alias(NAME, "challenger", v2)
    second = ws.models.promote(NAME)  # the challenger by default; it stops challenging
    assert (second.version, second.previous_version, aliases(ws)) == (v2, v1, {"champion": v2})
    with pytest.raises(InvalidParameter, match="already the champion"):
        ws.models.promote(NAME, v2)
    assert [(e.kind, e.version, e.previous_version) for e in ws.models.events(NAME)] == [
        ("promoted", v1, None),
        ("promoted", v2, v1),
    ]


def test_rollback_returns_to_the_previous_champion_and_says_when_there_is_none(ws: Workspace) -> None:
    v1, v2, v3 = version(ws), version(ws), version(ws)
    with pytest.raises(NothingToRollBack, match="has no champion"):
        ws.models.rollback(NAME)
    for v in (v1, v2, v3):
        ws.models.promote(NAME, v)
    undone = ws.models.rollback(NAME)
    assert (undone.version, undone.previous_version, undone.state) == (v3, v2, "ROLLED_BACK")
    assert aliases(ws) == {"champion": v2}
    assert ws.models.rollback(NAME).version == v2 and aliases(ws) == {"champion": v1}
    with pytest.raises(NothingToRollBack, match=f"version {v1} was its first"):
        ws.models.rollback(NAME)
    assert [e.kind for e in ws.models.events(NAME)][-2:] == ["rolled_back", "rolled_back"]
    assert [d.state for d in ws.models.deployments(NAME)] == ["ROLLED_BACK", "ROLLED_BACK", "DEPLOYED"]


def test_an_approval_gate_waits_for_a_manager_and_records_who_decided(ws: Workspace) -> None:
    v1, v2, v3 = version(ws), version(ws), version(ws)
    ws.models.promote(NAME, v1)
    ws.principals.create("alice")
    ws.principals.create("carol")
    for who in ("alice", "carol"):
        ws.grants.grant("USE_CATALOG", "catalog", "dev", who)
        ws.grants.grant("USE_SCHEMA", "schema", "dev.churn", who)
    ws.grants.grant("MANAGE", "model", NAME, "alice")
    ws.grants.grant("EXECUTE", "model", NAME, "alice")  # MANAGE moves aliases; EXECUTE reads versions
    ws.grants.grant("EXECUTE", "model", NAME, "carol")
    alice, carol = ws.as_principal("alice"), ws.as_principal("carol")

    waiting = alice.models.promote(NAME, v2, require_approval=True)
    assert (waiting.state, waiting.previous_version) == ("AWAITING_APPROVAL", v1)
    assert aliases(ws) == {"champion": v1}  # nothing moves until someone approves
    with pytest.raises(ConcurrentPromotion, match=f"Version {v2} .* already awaits approval"):
        ws.models.promote(NAME, v3, require_approval=True)
    with pytest.raises(PrivilegeMissing, match="MANAGE"):
        carol.models.approve(NAME, v2)
    with pytest.raises(NotFound, match=f"No promotion of version {v3}"):
        ws.models.approve(NAME, v3)
    approved = ws.models.approve(NAME, v2)
    assert (approved.state, approved.requested_by, approved.decided_by) == ("DEPLOYED", "alice", "admin")
    assert aliases(ws) == {"champion": v2}

    alice.models.promote(NAME, v3, require_approval=True)
    rejected = ws.models.reject(NAME, v3, reason="latency too high")
    assert (rejected.state, rejected.reason) == ("REJECTED", "latency too high")
    assert aliases(ws) == {"champion": v2}
    kinds = [e.kind for e in carol.models.events(NAME)]  # EXECUTE is enough to follow a model
    assert kinds == ["promoted", "approval_requested", "promoted", "approval_requested", "rejected"]


def test_concurrent_promotions_of_one_model_have_one_winner(ws: Workspace) -> None:
    champion = version(ws)
    ws.models.promote(NAME, champion)
    candidates = [version(ws) for _ in range(4)]
    barrier = threading.Barrier(len(candidates))
    outcomes: dict[int, str] = {}

    def promote(candidate: int) -> None:
        barrier.wait()
        try:
            ws.models.promote(NAME, candidate)
            outcomes[candidate] = "won"
        except ConcurrentPromotion:
            outcomes[candidate] = "lost"
        except LakestackError as exc:  # anything else is a bug: show it
            outcomes[candidate] = repr(exc)

    threads = [threading.Thread(target=promote, args=(c,)) for c in candidates]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [c for c, outcome in outcomes.items() if outcome == "won"]
    assert sorted(outcomes.values()) == ["lost", "lost", "lost", "won"], outcomes
    assert aliases(ws) == {"champion": winners[0]}
    promoted = [e for e in ws.models.events(NAME) if e.kind == "promoted"]
    assert [(e.version, e.previous_version) for e in promoted] == [(champion, None), (winners[0], champion)]


def test_copy_a_version_from_staging_to_prod_with_tags_and_lineage(ws: Workspace) -> None:
    ws.schemas.create("staging.churn")  # the staging and prod catalogs come with a workspace
    ws.schemas.create("prod.churn")
    source = version(ws, "staging.churn.model")
    ws.models.set_tag("staging.churn.model", source, "team", "churn")
    copied = ws.models.copy(f"staging.churn.model/{source}", "prod.churn.model")
    assert (copied.name, copied.version) == ("prod.churn.model", 1)
    assert copied.tags == {"team": "churn", "copied_from": f"staging.churn.model/{source}"}
    assert list(ws.models.load("models:/prod.churn.model/1").predict(X)) == Y
    upstream = ws.lineage.upstream("prod.churn.model/1")
    found = {(n.ref.kind, n.ref.name, n.ref.version) for n in upstream.find("model")}
    assert ("model", "staging.churn.model", source) in found
    assert upstream.find("run")  # and, through it, the run that trained it
