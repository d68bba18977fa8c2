"""`ws.models`: the MLflow model registry under the workspace's names and grants.

A registered model is named `catalog.schema.model` and is a securable like a table:
registering the first version needs CREATE_MODEL on the schema, adding versions MODIFY,
loading EXECUTE, moving aliases and tags MANAGE. The registry itself is MLflow's, in the
workspace's store, so `models:/prod.churn.model@champion` also works with plain MLflow clients
pointed at it (which then bypass the grants, as any direct database client would).
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakestack.catalog.access import AccessControl
from lakestack.catalog.metastore import Metastore
from lakestack.catalog.names import Name, validate_part
from lakestack.catalog.principals import Caller
from lakestack.catalog.privileges import Privilege
from lakestack.catalog.securables import SecurableInfo, SecurableStore, to_info
from lakestack.errors import InvalidParameter, NotFound, SecurableNotFound
from lakestack.features.store import FeatureStore
from lakestack.features.training import TrainingSet
from lakestack.lineage.service import Lineage
from lakestack.lineage.store import NodeRef
from lakestack.models import feature_models
from lakestack.models.deployment import DeploymentInfo, Deployments, ModelEventInfo
from lakestack.models.feature_models import LoggedModel
from lakestack.models.tracking import Tracking
from lakestack.tables.service import Output, Tables, convert

if TYPE_CHECKING:
    from lakestack.models.validation.checks import (
        Comparison,
        CustomCheck,
        MetadataRequirements,
        SliceThreshold,
        Threshold,
    )
    from lakestack.models.validation.result import ValidationResult

_MODEL_URI = re.compile(
    r"models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[A-Za-z0-9_]+))?(?P<rest>/.*)?"
)


class ModelVersionNotFound(NotFound):
    code = "MODEL_VERSION_NOT_FOUND"


@dataclass(frozen=True)
class ModelVersionInfo:
    name: str
    version: int
    source: str
    run_id: str | None
    status: str
    description: str | None
    created_at: datetime
    aliases: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class RegisteredModelInfo:
    name: str
    owner: str
    comment: str | None
    created_at: datetime
    aliases: dict[str, int]
    latest_version: int | None


def parse_model_uri(uri: str) -> tuple[Name, int | None, str | None]:
    """`models:/cat.sch.model/3` or `models:/cat.sch.model@champion` -> (name, version, alias)."""
    match = _MODEL_URI.fullmatch(uri or "")
    if match is None or match.group("rest"):
        raise InvalidParameter(
            f"Invalid model URI {uri!r}: use models:/catalog.schema.model/VERSION "
            "or models:/catalog.schema.model@ALIAS."
        )
    version = match.group("version")
    return Name.parse(match.group("name"), 3), int(version) if version else None, match.group("alias")


def _version_info(mv: Any) -> ModelVersionInfo:
    return ModelVersionInfo(
        name=mv.name,
        version=int(mv.version),
        source=mv.source,
        run_id=mv.run_id,
        status=str(mv.status),
        description=mv.description or None,
        created_at=datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=UTC),
        aliases=sorted(mv.aliases or []),
        tags=dict(mv.tags or {}),
    )


class ModelRegistry:
    def __init__(
        self,
        metastore: Metastore,
        securables: SecurableStore,
        access: AccessControl,
        caller: Caller,
        tracking_uri: str,
        tables: Tables,
        tracking: Tracking,
        features: FeatureStore,
        lineage: Lineage,
    ) -> None:
        self._tables = tables
        self._tracking = tracking
        self._features = features
        self._lineage = lineage
        self._metastore = metastore
        self._securables = securables
        self._access = access
        self._caller = caller
        self._uri = tracking_uri
        self._deployments = Deployments(self, metastore, securables, caller)

    def client(self) -> Any:
        """An `mlflow.MlflowClient` on the workspace's tracking store and registry."""
        import mlflow

        return mlflow.MlflowClient(tracking_uri=self._uri, registry_uri=self._uri)

    def _check(self, action: str, name: Name, privilege: Privilege, **detail: Any) -> SecurableInfo:
        with self._metastore.session() as session:
            return to_info(
                self._access.check(session, self._caller, action, "model", name, privilege, detail or None)
            )

    # --- logging and scoring ---------------------------------------------------------------

    def log_model(
        self,
        model: Any,
        flavor: str,
        training_set: TrainingSet | None = None,
        registered_model_name: str | None = None,
        name: str = "model",
        input_example: Any = None,
        pip_requirements: builtins.list[str] | None = None,
    ) -> LoggedModel:
        """Log `model` (an MLflow `flavor`: sklearn, lightgbm, ...) in the active run.

        With `training_set`, the model is packaged with its feature spec, signature and input
        example, so `score_batch` can look its features up from keys. With
        `registered_model_name`, the logged model is registered (grants apply).
        """
        self._uri_for_mlflow()
        uri, run_id = feature_models.log_model(
            model, flavor, training_set, name, input_example, pip_requirements
        )
        version = self.register(uri, registered_model_name).version if registered_model_name else None
        return LoggedModel(uri, run_id, version)

    def score_batch(self, model_uri: str, df: Any, to: Output = "arrow") -> Any:
        """Predict on rows of keys (plus a timestamp for point-in-time features, plus any
        features to override). Returns the input, the features, `prediction` and `model_version`.
        Needs EXECUTE on the model and SELECT on its feature tables."""
        import mlflow

        resolved = self.resolve(model_uri, "models.score_batch")
        self._lineage.used(NodeRef("model", resolved.name, resolved.version))
        self._uri_for_mlflow()
        metadata = mlflow.models.get_model_info(resolved.uri).metadata or {}
        spec = metadata.get(feature_models.METADATA_KEY, {}).get("feature_spec")
        model = mlflow.pyfunc.load_model(resolved.uri)
        scored = feature_models.score_batch(self._features, model, spec, df)
        versions = pa.array([resolved.version] * scored.num_rows, pa.int64())
        return convert(scored.append_column("model_version", versions), to)

    def _uri_for_mlflow(self) -> None:
        import mlflow

        # MLflow 3 resolves a version's logged model through the (process-global) tracking
        # store too, so a process that only loads or scores must point both at this workspace.
        mlflow.set_tracking_uri(self._uri)
        mlflow.set_registry_uri(self._uri)

    # --- registering -----------------------------------------------------------------------

    def register(
        self,
        model_uri: str,
        name: str,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        run_id: str | None = None,
    ) -> ModelVersionInfo:
        """Register `model_uri` (e.g. `runs:/<id>/model`) as a new version of model `name`,
        linked to the run that made it (from a runs:/ URI, or `run_id`).

        The first version creates the model (CREATE_MODEL on the schema); later ones need MODIFY.
        """
        parsed = Name.parse(name, 3)
        client = self.client()
        with self._metastore.session() as session:
            exists = self._securables.find(session, "model", parsed) is not None
        if exists:
            self._check("models.register", parsed, Privilege.MODIFY, source=model_uri)
        else:
            with self._metastore.session() as session:
                self._access.check(
                    session,
                    self._caller,
                    "models.create",
                    "schema",
                    parsed.parent,
                    Privilege.CREATE_MODEL,
                    {"model": str(parsed)},
                )
                self._securables.create(session, "model", parsed, self._caller.name, description)
                if not _mlflow_model_exists(client, str(parsed)):
                    client.create_registered_model(str(parsed), description=description)
        if run_id is None and model_uri.startswith("runs:/"):
            run_id = model_uri.split("/")[1]
        mv = client.create_model_version(
            str(parsed), model_uri, run_id=run_id, tags=tags, description=description
        )
        info = _version_info(client.get_model_version(str(parsed), mv.version))
        if info.run_id:
            self._lineage.link(NodeRef("run", info.run_id), NodeRef("model", info.name, info.version))
        return info

    # --- reading ---------------------------------------------------------------------------

    def get(self, name: str) -> RegisteredModelInfo:
        """Describe a registered model: owner, aliases, latest version. Needs EXECUTE."""
        parsed = Name.parse(name, 3)
        info = self._check("models.get", parsed, Privilege.EXECUTE)
        model = self.client().get_registered_model(str(parsed))
        versions = self._versions(parsed)
        return RegisteredModelInfo(
            name=str(parsed),
            owner=info.owner,
            comment=info.comment,
            created_at=info.created_at,
            aliases={alias: int(version) for alias, version in (model.aliases or {}).items()},
            latest_version=max((v.version for v in versions), default=None),
        )

    def list(self, schema: str) -> builtins.list[SecurableInfo]:
        """Registered models of `schema` the caller can see."""
        parsed = Name.parse(schema, 2)
        return self._access.list_visible(self._caller, "models.list", "schema", parsed, "model")

    def versions(self, name: str) -> builtins.list[ModelVersionInfo]:
        """Every version of the model, newest first. Needs EXECUTE."""
        parsed = Name.parse(name, 3)
        self._check("models.versions", parsed, Privilege.EXECUTE)
        return self._versions(parsed)

    def _versions(self, parsed: Name) -> builtins.list[ModelVersionInfo]:
        client = self.client()
        found = client.search_model_versions(f"name = '{parsed}'")
        # Searching does not fill in aliases; the registered model knows them.
        by_version: dict[int, builtins.list[str]] = {}
        for alias, version in (client.get_registered_model(str(parsed)).aliases or {}).items():
            by_version.setdefault(int(version), []).append(alias)
        infos = [replace(_version_info(v), aliases=sorted(by_version.get(int(v.version), []))) for v in found]
        return sorted(infos, key=lambda v: -v.version)

    def resolve(self, model_uri: str, action: str = "models.resolve") -> ModelVersionInfo:
        """The version a `models:/` URI points at (alias or number). Needs EXECUTE."""
        name, version, alias = parse_model_uri(model_uri)
        self._check(action, name, Privilege.EXECUTE, uri=model_uri)
        client = self.client()
        try:
            if alias is not None:
                return _version_info(client.get_model_version_by_alias(str(name), alias))
            if version is None:
                latest = self._versions(name)
                if not latest:
                    raise ModelVersionNotFound(f"Model '{name}' has no versions yet.")
                return latest[0]
            return _version_info(client.get_model_version(str(name), str(version)))
        except Exception as exc:
            if isinstance(exc, NotFound):
                raise
            what = f"alias '{alias}'" if alias else f"version {version}"
            raise ModelVersionNotFound(
                f"Model '{name}' has no {what}. List versions with: lakestack models versions {name}"
            ) from None

    def load(self, model_uri: str) -> Any:
        """Load a registered model as an MLflow pyfunc model. Needs EXECUTE."""
        import mlflow

        resolved = self.resolve(model_uri, "models.load")
        self._lineage.used(NodeRef("model", resolved.name, resolved.version))
        self._uri_for_mlflow()
        return mlflow.pyfunc.load_model(resolved.uri)

    # --- aliases, tags, descriptions -----------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point `alias` (e.g. champion) at `version`. Needs MANAGE."""
        parsed = Name.parse(name, 3)
        alias = validate_part(alias, "alias")
        self._check("models.set_alias", parsed, Privilege.MANAGE, alias=alias, version=version)
        self.resolve(f"models:/{parsed}/{int(version)}")
        self.client().set_registered_model_alias(str(parsed), alias, str(int(version)))

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove an alias. Needs MANAGE."""
        parsed = Name.parse(name, 3)
        alias = validate_part(alias, "alias")
        self._check("models.delete_alias", parsed, Privilege.MANAGE, alias=alias)
        self.client().delete_registered_model_alias(str(parsed), alias)

    def set_tag(self, name: str, version: int, key: str, value: str) -> None:
        """Tag one version (e.g. model_validation_status=PASSED). Needs MANAGE."""
        parsed = Name.parse(name, 3)
        self._check("models.set_tag", parsed, Privilege.MANAGE, version=version, key=key)
        self.resolve(f"models:/{parsed}/{int(version)}")
        self.client().set_model_version_tag(str(parsed), str(int(version)), key, value)

    def set_description(self, name: str, version: int, description: str) -> None:
        parsed = Name.parse(name, 3)
        self._check("models.set_description", parsed, Privilege.MANAGE, version=version)
        self.client().update_model_version(str(parsed), str(int(version)), description=description)

    def score_table(
        self,
        model_uri: str,
        input_table: str,
        output_table: str,
        mode: str = "append",
        keys: builtins.list[str] | None = None,
        batch_size: int = 100_000,
        incremental: bool = False,
        engine: str = "auto",
        progress: Any = None,
    ) -> Any:
        """Score a Delta table with a model version (`@champion`, `/3`) into another Delta table.

        Writes the input's key columns (the feature spec's lookup keys, or `keys`),
        `prediction`, `model_name`, `model_version` and `scored_at` in one commit: `append` keeps
        every run, `overwrite` only this one, `merge` one row per key. With `incremental`, only
        rows inserted or updated since the last run are scored, exactly once (the checkpoint is
        committed with the predictions). `engine="ray"` scores on Ray Data. Needs EXECUTE on the
        model, SELECT on the input, and SELECT + MODIFY on the output (CREATE_TABLE on its schema
        when it does not exist yet). Returns a `lakestack.models.scoring.ScoreResult`.
        """
        from lakestack.models import scoring

        return scoring.score_table(
            self,
            self._tables,
            self._features,
            self._lineage,
            self._tables.storage_options,
            self._caller.name,
            model_uri,
            input_table,
            output_table,
            mode,  # type: ignore[arg-type]
            keys,
            batch_size,
            incremental,
            engine,  # type: ignore[arg-type]
            progress,
        )

    # --- deployment (see `lakestack.models.deployment`) ------------------------------------

    def promote(
        self,
        name: str,
        version: int | None = None,
        *,
        require_approval: bool = False,
        force: bool = False,
        reason: str | None = None,
    ) -> DeploymentInfo:
        """Make a validated version (default: @challenger) the champion, or ask for approval."""
        return self._deployments.promote(
            name, version, require_approval=require_approval, force=force, reason=reason
        )

    def approve(self, name: str, version: int, reason: str | None = None) -> DeploymentInfo:
        """Approve the promotion awaiting approval: the version becomes champion. Needs MANAGE."""
        return self._deployments.approve(name, version, reason)

    def reject(self, name: str, version: int, reason: str) -> DeploymentInfo:
        """Reject the promotion awaiting approval; the champion stays. Needs MANAGE."""
        return self._deployments.reject(name, version, reason)

    def rollback(self, name: str) -> DeploymentInfo:
        """Move the champion back to the version it replaced. Needs MANAGE."""
        return self._deployments.rollback(name)

    def deployments(self, name: str, limit: int = 50) -> builtins.list[DeploymentInfo]:
        """The model's promotion requests and what became of them, newest first."""
        return self._deployments.deployments(name, limit)

    def events(self, name: str, after: int = 0) -> builtins.list[ModelEventInfo]:
        """The model's champion events after event id `after`, oldest first."""
        return self._deployments.events(name, after)

    def copy(self, source: str, destination: str) -> ModelVersionInfo:
        """Copy a version (`cat.sch.model/3`) into another model, e.g. staging -> prod."""
        return self._deployments.copy(source, destination)

    def drop(self, name: str) -> None:
        """Delete the model, all its versions and aliases. Needs MANAGE."""
        parsed = Name.parse(name, 3)
        self._check("models.drop", parsed, Privilege.MANAGE)
        client = self.client()
        if _mlflow_model_exists(client, str(parsed)):
            client.delete_registered_model(str(parsed))
        with self._metastore.session() as session:
            row = self._securables.find(session, "model", parsed)
            if row is None:
                raise SecurableNotFound("model", str(parsed))
            session.delete(row)

    # --- validation ------------------------------------------------------------------------

    def validate(
        self,
        model_uri: str,
        data: Any,
        label: str,
        problem_type: str,
        *,
        thresholds: Sequence[Threshold | str] = (),
        comparisons: Sequence[Comparison | str] = (),
        slices: Sequence[SliceThreshold | str] = (),
        custom_checks: Sequence[CustomCheck | Callable[[Any], Any]] = (),
        metadata: MetadataRequirements | None = None,
        mode: str = "enabled",
        champion_alias: str = "champion",
        challenger_alias: str = "challenger",
        project: str | None = None,
    ) -> ValidationResult:
        """Validate a model version on held-out `data` (a table name or a DataFrame with the
        `label` column) and, in mode `enabled`, give it the challenger alias if every check passes.

        Checks: metadata (signature, ...), metric `thresholds` (`"roc_auc>=0.7"`), `comparisons`
        with the champion on the same rows (`"roc_auc=0.01"`: at least +0.01), per-slice
        thresholds (`"accuracy>=0.6 where region = 'north'"`) and `custom_checks` (callables).
        Mode `dry_run` reports without moving any alias; `disabled` only tags the version
        SKIPPED. Needs EXECUTE on the model and SELECT on the data; recording the verdict (the
        `model_validation_status` tag, the description) and the alias need MANAGE.
        """
        from lakestack.models.validation.result import check_mode
        from lakestack.models.validation.service import ModelValidation, ValidationSpec

        run_mode = check_mode(mode)
        challenger_alias = validate_part(challenger_alias, "alias")
        champion_alias = validate_part(champion_alias, "alias")
        spec = ValidationSpec.build(
            label, problem_type, thresholds, comparisons, slices, custom_checks, metadata
        )
        candidate = self.resolve(model_uri, "models.validate")
        if run_mode == "enabled":
            # Before any work: passing sets the alias, which needs MANAGE.
            self._check(
                "models.validate", Name.parse(candidate.name, 3), Privilege.MANAGE, alias=challenger_alias
            )
        service = ModelValidation(self, self._tables, self._features, self._lineage, self._tracking)
        return service.validate(candidate, data, spec, run_mode, champion_alias, challenger_alias, project)


def _mlflow_model_exists(client: Any, name: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
        return True
    except MlflowException:
        return False
