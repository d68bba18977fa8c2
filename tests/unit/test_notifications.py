"""Signing and verifying webhooks, backoff, Retry-After, destinations and `[notifications]` config."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from lakestack.config import NotificationsConfig, WorkspaceConfig
from lakestack.errors import InvalidConfig
from lakestack.notifications import (
    DestinationNotFound,
    InvalidSignature,
    NotificationNotConfigured,
    RetryPolicy,
    WebhookRef,
    sign,
    verify_signature,
)
from lakestack.notifications.retry import AttemptOutcome, deliver, scrub
from lakestack.notifications.targets import redact_url, resolve_webhook
from lakestack.notifications.webhook import retry_after_seconds

SECRET = "whsec-unit-test-7f3a"
BODY = b'{"event":"on_failure","run_id":17}'


def test_a_signature_is_the_hmac_of_timestamp_dot_body_and_verifies() -> None:
    header = sign(SECRET, BODY, timestamp=1_767_225_600)
    expected = hmac.new(SECRET.encode(), b"1767225600." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1767225600,v1={expected}"
    assert verify_signature(SECRET, header, BODY, now=1_767_225_600 + 299) == 1_767_225_600
    assert verify_signature(SECRET.encode(), sign(SECRET, BODY), BODY) > 0  # bytes secrets, now


def test_a_tampered_body_a_wrong_secret_and_a_moved_timestamp_are_refused() -> None:
    header = sign(SECRET, BODY)
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_signature(SECRET, header, BODY.replace(b"17", b"18"))
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_signature("another-secret", header, BODY)
    # Re-stamping a captured request with a fresh time breaks the signature: t is signed too.
    t, _, v1 = header.partition(",")
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_signature(SECRET, f"t={int(t[2:]) + 1},{v1}", BODY)


def test_a_stale_or_future_timestamp_is_refused_within_the_tolerance() -> None:
    header = sign(SECRET, BODY, timestamp=1_000_000)
    with pytest.raises(InvalidSignature, match="301 s old"):
        verify_signature(SECRET, header, BODY, now=1_000_301)
    with pytest.raises(InvalidSignature, match="in the future"):
        verify_signature(SECRET, header, BODY, now=999_000)
    assert verify_signature(SECRET, header, BODY, tolerance_seconds=3600, now=1_003_000) == 1_000_000


@pytest.mark.parametrize("header", [None, "", "v1=abc", "t=12", "t=abc,v1=00", "garbage"])
def test_a_missing_or_malformed_header_is_refused(header: str | None) -> None:
    with pytest.raises(InvalidSignature, match=r"not signed|Malformed"):
        verify_signature(SECRET, header, BODY)


def test_any_of_several_v1_signatures_may_match_while_a_secret_is_rotated() -> None:
    old = sign("old-secret", BODY, timestamp=int(time.time()))
    new = sign(SECRET, BODY, timestamp=int(old.split(",")[0][2:]))
    both = f"{old},v1={new.split('v1=')[1]}"
    assert verify_signature(SECRET, both, BODY)
    assert verify_signature("old-secret", both, BODY)
    with pytest.raises(ValueError, match="empty"):
        verify_signature("", both, BODY)


def test_backoff_doubles_with_jitter_is_capped_and_honours_retry_after() -> None:
    policy = RetryPolicy(max_attempts=6, backoff_seconds=1.0, max_backoff_seconds=5.0)
    for attempt, full in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (5, 5.0)]:
        delays = [policy.delay(attempt) for _ in range(50)]
        assert all(full / 2 <= d <= full for d in delays)
        assert len(set(delays)) > 1  # jittered
    assert policy.delay(1, retry_after=3.0) == 3.0
    assert policy.delay(1, retry_after=3600.0) == 5.0  # a receiver cannot park a sender for an hour
    assert policy.budget_seconds() < 6 * 3 * 10 + 6 * 5 + 1


def test_deliver_retries_only_what_may_succeed_and_stops_at_max_attempts() -> None:
    slept: list[float] = []
    answers = iter([AttemptOutcome(False, 500, "HTTP 500", True), AttemptOutcome(True, 200)])
    seen: list[tuple[int, int | None]] = []
    outcome = deliver(
        lambda: next(answers),
        RetryPolicy(3, 0.01, 0.01),
        lambda n, o: seen.append((n, o.status_code)),
        slept.append,
    )
    assert outcome.delivered and outcome.attempts == 2 and seen == [(1, 500), (2, 200)] and len(slept) == 1

    outcome = deliver(
        lambda: AttemptOutcome(False, 400, "HTTP 400", False), RetryPolicy(3), sleep=slept.append
    )
    assert not outcome.delivered and outcome.attempts == 1 and outcome.error == "HTTP 400"

    outcome = deliver(
        lambda: AttemptOutcome(False, None, "refused", True), RetryPolicy(3, 0, 0), sleep=slept.append
    )
    assert (outcome.attempts, outcome.error) == (3, "gave up after 3 attempt(s); last: refused")


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (retry_after_seconds(later) or 0) <= 30
    earlier = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds(earlier) == 0.0


def test_scrub_removes_secrets_and_keeps_one_short_line() -> None:
    assert scrub(f"token {SECRET} in\nthe reply", (SECRET, None)) == "token *** in the reply"
    assert len(scrub("x" * 900, ())) == 500


def test_destinations_resolve_from_config_and_environment_never_echoing_secrets() -> None:
    config = NotificationsConfig.model_validate(
        {
            "secret_env": "INLINE_SECRET",
            "destinations": {
                "ops": {"url": "https://hooks.example.com/ops", "secret_env": "OPS_SECRET"},
                "slack": {"url_env": "SLACK_URL"},
            },
        }
    )
    env = {
        "OPS_SECRET": SECRET,
        "SLACK_URL": "https://hooks.slack.test/services/T1/B2/s3cr3t",
        "INLINE_SECRET": "i",
    }
    ops = resolve_webhook(config, WebhookRef(id="ops"), env)
    assert (ops.url, ops.secret, ops.log_label()) == ("https://hooks.example.com/ops", SECRET, "ops")
    assert SECRET not in repr(ops)
    slack = resolve_webhook(config, WebhookRef(id="slack"), env)
    assert slack.log_label() == "slack (unsigned)" and "s3cr3t" not in repr(slack)
    inline = resolve_webhook(config, WebhookRef(url="https://h.example.com/p?token=abc#f"), env)
    assert inline.label == "https://h.example.com/p" and inline.secret == "i"

    with pytest.raises(DestinationNotFound, match=r"'pager' is not configured \(configured: ops, slack\)"):
        resolve_webhook(config, WebhookRef(id="pager"), env)
    with pytest.raises(NotificationNotConfigured, match="OPS_SECRET, which is not set"):
        resolve_webhook(config, WebhookRef(id="ops"), {})
    with pytest.raises(NotificationNotConfigured, match="INLINE_SECRET"):
        resolve_webhook(config, WebhookRef(url="https://h.example.com/p"), {})
    unsigned = resolve_webhook(NotificationsConfig(), WebhookRef(url="http://h:8080/x?t=1"), {})
    assert unsigned.log_label() == "http://h:8080/x (unsigned)"


def test_redact_url_drops_user_query_and_fragment() -> None:
    assert redact_url("https://u:p@host.example:8443/a/b?sig=1#frag") == "https://host.example:8443/a/b"
    assert redact_url("http://[::1]:9000/hook") == "http://[::1]:9000/hook"


def test_notifications_config_is_strict_and_takes_only_env_names(tmp_path: Path) -> None:
    (tmp_path / "workspace.toml").write_text(
        """
[notifications]
backoff_seconds = 0.1
[notifications.smtp]
host = "smtp.example.com"
sender = "lakestack@example.com"
username = "bot"
password_env = "SMTP_PASSWORD"
[notifications.destinations.ops-alerts]
url = "https://hooks.example.com/x"
secret_env = "OPS_SECRET"
"""
    )
    config = WorkspaceConfig.load(tmp_path).notifications
    assert config.smtp is not None and config.smtp.effective_port == 587 and config.smtp.use_starttls
    assert config.destinations["ops-alerts"].secret_env == "OPS_SECRET"
    assert WorkspaceConfig().notifications == NotificationsConfig()

    bad = {
        'secret = "inline-secret"': r"notifications\.destinations\.ops\.secret",
        'url = "ftp://tok3n@x"': "http:// or https://",
        'url = "https://x"\nsecret_env = "not an env"': "environment variable",
        'url = "https://x"\nurl_env = "U"': "exactly one of url and url_env",
    }
    for body, message in bad.items():
        (tmp_path / "workspace.toml").write_text(f"[notifications.destinations.ops]\n{body}\n")
        with pytest.raises(InvalidConfig, match=message) as caught:
            WorkspaceConfig.load(tmp_path)
        assert "tok3n" not in caught.value.message and "inline-secret" not in caught.value.message
    (tmp_path / "workspace.toml").write_text('[notifications.smtp]\nhost = "h"\nsender = "a@b"\nssl = true\n')
    smtp = WorkspaceConfig.load(tmp_path).notifications.smtp
    assert smtp is not None and smtp.effective_port == 465 and not smtp.use_starttls
    (tmp_path / "workspace.toml").write_text(
        '[notifications.smtp]\nhost = "h"\nsender = "a@b"\nssl = true\nstarttls = true\n'
    )
    with pytest.raises(InvalidConfig, match="not both"):
        WorkspaceConfig.load(tmp_path)


def test_run_states_map_to_events_the_way_databricks_maps_them() -> None:
    from lakestack.jobs.notify import event_for

    assert event_for("SUCCESS") == "on_success"
    assert {event_for(s) for s in ("FAILED", "TIMEDOUT", "CANCELED")} == {"on_failure"}
    assert event_for("RUNNING") is None and event_for("QUEUED") is None


def test_a_run_payload_and_email_carry_the_run_and_each_task() -> None:
    from lakestack.jobs.notify import run_email, run_payload
    from lakestack.jobs.store import RunInfo, TaskRunInfo

    start = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    task = TaskRunInfo(
        "train", "TIMEDOUT", 2, start, start, None, "timed out after 60 s", None, {}, None, None, id=5
    )
    run = RunInfo(
        17, "churn training", "TIMEDOUT", "manual", "svc", "alice", {"catalog": "prod"}, {}, 0,
        "the job timed out after 60 s", start, start, start + timedelta(seconds=61.5), False, [task],
    )  # fmt: skip
    payload = run_payload("on_failure", 3, run)
    assert payload == {
        "event": "on_failure",
        "job_id": 3,
        "job_name": "churn training",
        "run_id": 17,
        "state": "TIMEDOUT",
        "error": "the job timed out after 60 s",
        "trigger": "manual",
        "run_as": "svc",
        "parameters": {"catalog": "prod"},
        "repair_count": 0,
        "start_time": "2026-11-23T08:00:00+00:00",
        "end_time": "2026-11-23T08:01:01.500000+00:00",
        "duration_seconds": 61.5,
        "tasks": [{"task_key": "train", "state": "TIMEDOUT", "attempt": 2, "error": "timed out after 60 s"}],
    }
    subject, text = run_email("on_failure", 3, run)
    assert subject == "[lakestack] Job 'churn training' run 17 TIMEDOUT"
    assert "Duration:   61.5 s" in text and "  train  TIMEDOUT        timed out after 60 s" in text
    assert run_email("on_start", 3, run)[0].endswith("run 17 started")
