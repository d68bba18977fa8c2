"""The churn pipeline's tasks, run by `job.yml` (each in its own process, as the run's principal).

Every read and write goes through `context.workspace()`, so lineage links the job's tasks,
the feature tables, the training run and the model version.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lakestack import FeatureLookup
from lakestack.datasets import churn_labels
from lakestack.jobs import context, task_values

SEED = 42
CUSTOMERS = "dev.bronze.customers"
TRANSACTIONS = "dev.silver.transactions"
ACTIVITY = "dev.churn.customer_activity"
PROFILE = "dev.churn.customer_profile"
MODEL = "dev.churn.model"

# Weekly snapshots of each customer's last 28 days, computed only from data before the snapshot:
# a feature at time t must never see what happened after t.
ACTIVITY_SQL = """
WITH weeks AS (SELECT unnest(generate_series(?::TIMESTAMPTZ, ?::TIMESTAMPTZ, INTERVAL 7 DAY)) AS ts)
SELECT t.customer_id, w.ts,
       round(sum(t.amount), 2) AS spend_28d,
       count(*) AS purchases_28d,
       count(*) FILTER (WHERE t.status = 'refunded') AS refunds_28d
FROM weeks AS w
JOIN dev.silver.transactions AS t ON t.ts < w.ts AND t.ts >= w.ts - INTERVAL 28 DAY
WHERE t.customer_id IS NOT NULL
GROUP BY ALL
"""


def _day(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def build_features(start: str, end: str) -> dict[str, int]:
    """Weekly activity (with a timestamp key) and a static profile, as feature tables."""
    ws = context.workspace()
    if not ws.schemas.exists("dev.churn"):
        ws.schemas.create("dev.churn", comment="Features and training data for churn prediction")
    activity = ws.sql(ACTIVITY_SQL, [_day(start) + timedelta(days=28), _day(end)])
    profile = ws.tables.read(CUSTOMERS, columns=["customer_id", "plan", "country", "age"])
    if ws.tables.exists(ACTIVITY):  # a later run: upsert (merge on the keys)
        ws.features.write_table(ACTIVITY, activity)
        ws.features.write_table(PROFILE, profile)
    else:
        ws.features.create_table(
            ACTIVITY, primary_keys="customer_id", timestamp_key="ts", df=activity,
            description="Spend, purchases and refunds over the 28 days before each weekly snapshot",
        )  # fmt: skip
        ws.features.create_table(PROFILE, primary_keys="customer_id", df=profile, description="Who")
    return {"activity_rows": activity.num_rows, "profile_rows": profile.num_rows}


def train(label_date: str) -> None:
    """Point-in-time training set, LightGBM in a tracked run, registered; hands on its URI."""
    import logging
    import warnings

    import lightgbm
    import mlflow
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="mlflow")
    ws = context.workspace()
    labels = churn_labels(ws.tables.read(CUSTOMERS), ws.tables.read(TRANSACTIONS), as_of=_day(label_date))
    params = {"n_estimators": 100, "learning_rate": 0.05, "num_leaves": 15, "verbose": -1}
    with ws.tracking.start_run("churn", run_name="lightgbm", params=params) as run:
        training = ws.features.create_training_set(
            labels,
            [
                FeatureLookup(ACTIVITY, "customer_id", timestamp_lookup_key="label_ts",
                              lookback_window=timedelta(days=7), default_values={"purchases_28d": 0}),
                FeatureLookup(PROFILE, "customer_id", feature_names=["age"]),
            ],
            label="churned",
            exclude_columns=["customer_id", "label_ts"],  # identifiers, not signal
        )  # fmt: skip
        frame = training.load_df(to="pandas")
        X, y = frame.drop(columns=["churned"]), frame["churned"].astype(int)
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=0.3, random_state=SEED, stratify=y
        )
        model = lightgbm.LGBMClassifier(random_state=SEED, **params).fit(X_train, y_train)
        auc = float(roc_auc_score(y_test, model.predict_proba(X_test)[:, 1]))
        mlflow.log_metric("test_auc", auc)
        logged = ws.models.log_model(
            model, "lightgbm", training_set=training, registered_model_name=MODEL,
            pip_requirements=["lightgbm", "scikit-learn"],
        )  # fmt: skip
    task_values.set("model_uri", f"models:/{MODEL}/{logged.registered_version}")
    task_values.set("test_auc", round(auc, 4))
    task_values.set("mlflow_run_id", run.info.run_id)
    task_values.set("labels", labels.num_rows)


def promote(model_uri: str) -> dict[str, str]:
    """Point @champion at the version the train task registered."""
    ws = context.workspace()
    version = int(model_uri.rsplit("/", 1)[1])
    ws.models.set_alias(MODEL, "champion", version)
    return {"champion": f"{MODEL}@champion -> version {version}"}
