"""Job notifications against real servers: an HTTP receiver that checks signatures and answers
as scripted (500, 429 + Retry-After, 400, a closed port) and an SMTP server that requires a login.
Runs use real task processes; no lakestack component is mocked."""

from __future__ import annotations

import json
import socket
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select
from tests.e2e.test_cli import lakestack
from tests.integration.jobs_project import make_project

from lakestack import Workspace
from lakestack.catalog.models import NotificationDelivery
from lakestack.cli.output import to_plain
from lakestack.errors import InvalidParameter
from lakestack.jobs.store import RunInfo
from lakestack.notifications import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    InvalidSignature,
    verify_signature,
)

OPS_SECRET = "ops-secret-Zq81xK"
FLAKY_SECRET = "flaky-secret-Pw33nB"
INLINE_SECRET = "inline-secret-Hv07cT"
SMTP_PASSWORD = "smtp-password-Lr55dM"
URL_TOKEN = "urltoken-Jd29sQ"
SECRETS = (OPS_SECRET, FLAKY_SECRET, INLINE_SECRET, SMTP_PASSWORD, URL_TOKEN)
# The test SMTP server takes a login without TLS (it is on 127.0.0.1); aiosmtpd warns about that.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


# --- a real webhook receiver --------------------------------------------------------------


@dataclass
class Received:
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    at: float
    verified: str  # "ok", "unsigned", or why verification failed

    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP server answering each path from a script (then 200); it verifies every
    signature with the secret it was given for the path."""

    secrets: dict[str, str]
    script: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        body = handler.rfile.read(int(handler.headers.get("Content-Length", "0")))
        secret = self.secrets.get(parts.path)
        header = handler.headers.get(SIGNATURE_HEADER)
        if header is None:
            verified = "unsigned"
        elif secret is None:
            verified = "signed, but no secret to check it with"
        else:
            try:
                verify_signature(secret, header, body)
                verified = "ok"
            except InvalidSignature as exc:
                verified = exc.message
        self.requests.append(
            Received(parts.path, parts.query, dict(handler.headers.items()), body, time.monotonic(), verified)
        )
        queue = self.script.get(parts.path) or []
        status, headers = queue.pop(0) if queue else (200, {})
        reply = b"ok" if status < 400 else f"error {status} from the receiver".encode()
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(reply)))
        handler.end_headers()
        handler.wfile.write(reply)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(secrets={})

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            state.answer(self)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- a real SMTP server -------------------------------------------------------------------


@dataclass
class Mailbox:
    port: int
    messages: list[tuple[list[str], bytes]] = field(default_factory=list)


@pytest.fixture
def smtp_server() -> Iterator[Mailbox]:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    box = Mailbox(closed_port())

    class Collect:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            box.messages.append((list(envelope.rcpt_tos), bytes(envelope.content)))
            return "250 Message accepted"

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        good = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"bot",
            SMTP_PASSWORD.encode(),
        )
        return AuthResult(success=good, handled=False)

    controller = Controller(
        Collect(),
        hostname="127.0.0.1",
        port=box.port,
        authenticator=authenticate,
        auth_required=True,  # mail is only accepted after a login: a delivery proves the password
        auth_require_tls=False,
    )
    controller.start()
    yield box
    controller.stop()


# --- helpers ------------------------------------------------------------------------------


def configure(ws: Workspace, text: str) -> None:
    """Append `[notifications]` settings to the workspace's workspace.toml."""
    path = ws.folder / "workspace.toml"
    path.write_text(path.read_text() + "\n" + textwrap.dedent(text))


def create_job(ws: Workspace, project: Path, text: str) -> None:
    path = project / "job.yml"
    path.write_text(textwrap.dedent(text))
    ws.jobs.create(path)


def deliveries(run: RunInfo) -> dict[tuple[str, str], tuple[str, int, int | None]]:
    return {(d.event, d.destination): (d.state, d.attempts, d.status_code) for d in run.notifications}


def wait_for_deliveries(ws: Workspace, run_id: int, timeout: float = 30) -> RunInfo:
    """The run once it has ended and its end notifications are sent (none PENDING): the runner
    records the end first, then sends what it announces."""
    deadline = time.monotonic() + timeout
    while True:
        run = ws.jobs.get_run(run_id)
        ended = [d for d in run.notifications if d.event in ("on_success", "on_failure")]
        if run.end_time is not None and ended and all(d.state != "PENDING" for d in run.notifications):
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.05)


def delivery_rows_text(ws: Workspace) -> str:
    with ws._core.metastore.session() as session:
        rows = session.scalars(select(NotificationDelivery)).all()
        return json.dumps(
            [{c.name: getattr(r, c.name) for c in NotificationDelivery.__table__.columns} for r in rows],
            default=str,
        )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "project")


# --- tests --------------------------------------------------------------------------------


def test_signed_webhooks_are_retried_delivered_and_recorded_on_the_run(
    workspace: Workspace, project: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_OPS_SECRET", OPS_SECRET)
    monkeypatch.setenv("TEST_FLAKY_SECRET", FLAKY_SECRET)
    monkeypatch.delenv("TEST_UNSET_SECRET", raising=False)
    receiver.secrets = {"/ops": OPS_SECRET, "/flaky": FLAKY_SECRET, "/busy": OPS_SECRET, "/bad": OPS_SECRET}
    receiver.script = {
        "/flaky": [(500, {})],
        "/busy": [(429, {"Retry-After": "1"})],
        "/bad": [(400, {})],
    }
    configure(
        workspace,
        f"""
        [notifications]
        max_attempts = 3
        backoff_seconds = 0.01
        max_backoff_seconds = 2
        timeout_seconds = 2

        [notifications.destinations.ops]
        url = "{receiver.url("/ops")}"
        secret_env = "TEST_OPS_SECRET"
        [notifications.destinations.flaky]
        url = "{receiver.url("/flaky")}"
        secret_env = "TEST_FLAKY_SECRET"
        [notifications.destinations.busy]
        url = "{receiver.url("/busy")}"
        secret_env = "TEST_OPS_SECRET"
        [notifications.destinations.bad]
        url = "{receiver.url("/bad")}"
        secret_env = "TEST_OPS_SECRET"
        [notifications.destinations.dead]
        url = "http://127.0.0.1:{closed_port()}/dead"
        [notifications.destinations.unset]
        url = "{receiver.url("/unset")}"
        secret_env = "TEST_UNSET_SECRET"
        """,
    )
    # An unknown destination does not stop the job from being created: it may be configured later.
    create_job(
        workspace,
        project,
        """
        name: notified
        parameters: [{name: who, default: world}]
        email_notifications: {on_success: [team@example.com]}
        webhook_notifications:
          on_start: [{id: ops}]
          on_success: [{id: flaky}, {id: busy}, {id: bad}, {id: dead}, {id: unset}, {id: nowhere}]
          on_failure: [{id: ops}]
        tasks:
          - task_key: only
            python_task: {function: "steps:noop"}
        """,
    )
    started = time.monotonic()
    run = workspace.jobs.run_now("notified", {"who": "you"})
    took = time.monotonic() - started
    assert run.state == "SUCCESS", run  # a dead, refusing or unknown webhook never fails a job
    assert took < 20  # the run waited for its deliveries, within the retry budget

    assert deliveries(run) == {
        ("on_start", "ops"): ("DELIVERED", 1, 200),
        ("on_success", "flaky"): ("DELIVERED", 2, 200),
        ("on_success", "busy"): ("DELIVERED", 2, 200),
        ("on_success", "bad"): ("FAILED", 1, 400),
        ("on_success", "dead (unsigned)"): ("FAILED", 3, None),
        ("on_success", "unset"): ("FAILED", 0, None),
        ("on_success", "nowhere"): ("FAILED", 0, None),
        ("on_success", "team@example.com"): ("FAILED", 0, None),
    }
    errors = {d.destination: d.error for d in run.notifications}
    assert errors["ops"] is None and errors["flaky"] is None
    assert errors["bad"] == "HTTP 400: error 400 from the receiver"
    assert (errors["dead (unsigned)"] or "").startswith("gave up after 3 attempt(s); last: ConnectError")
    assert "TEST_UNSET_SECRET, which is not set" in (errors["unset"] or "")
    assert "'nowhere' is not configured" in (errors["nowhere"] or "")
    assert "[notifications.destinations.nowhere]" in (errors["nowhere"] or "")
    assert "No SMTP server is configured" in (errors["team@example.com"] or "")
    assert [d.channel for d in run.notifications].count("email") == 1

    # Every request was signed with its destination's secret, and nothing went to on_failure.
    assert {r.path for r in receiver.requests} == {"/ops", "/flaky", "/busy", "/bad"}
    assert all(r.verified == "ok" for r in receiver.requests), [r.verified for r in receiver.requests]
    assert len(receiver.at("/ops")) == 1 and len(receiver.at("/bad")) == 1
    (start,) = receiver.at("/ops")
    assert start.headers[EVENT_HEADER] == "job_run.on_start" and start.json()["state"] == "RUNNING"

    first, second = receiver.at("/flaky")
    assert first.body == second.body and first.headers[DELIVERY_HEADER] == second.headers[DELIVERY_HEADER]
    assert first.headers[SIGNATURE_HEADER] != "" and second.headers[EVENT_HEADER] == "job_run.on_success"
    payload = second.json()
    assert payload["delivery_id"] == second.headers[DELIVERY_HEADER]
    assert payload["event"] == "on_success" and payload["job_name"] == "notified"
    assert payload["run_id"] == run.run_id and payload["state"] == "SUCCESS" and payload["error"] is None
    assert payload["trigger"] == "manual" and payload["parameters"] == {"who": "you"}
    assert payload["start_time"] and payload["end_time"] and payload["duration_seconds"] >= 0
    assert payload["tasks"] == [{"task_key": "only", "state": "SUCCESS", "attempt": 1, "error": None}]

    # 429 with Retry-After: 1 waited about a second, though the backoff is 10 ms.
    busy_first, busy_second = receiver.at("/busy")
    assert busy_second.at - busy_first.at >= 0.9

    assert workspace.jobs.get_run(run.run_id) == run
    rows = delivery_rows_text(workspace)
    assert not any(secret in rows for secret in SECRETS)

    # Deleting the job forgets its deliveries.
    workspace.jobs.delete("notified")
    assert delivery_rows_text(workspace) == "[]"


def test_a_failed_run_emails_through_smtp_and_calls_an_inline_signed_webhook(
    sqlite_workspace: Workspace,
    project: Path,
    receiver: Receiver,
    smtp_server: Mailbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ws = sqlite_workspace
    monkeypatch.setenv("TEST_INLINE_SECRET", INLINE_SECRET)
    monkeypatch.setenv("TEST_SMTP_PASSWORD", SMTP_PASSWORD)
    receiver.secrets = {"/inline": INLINE_SECRET}
    configure(
        ws,
        f"""
        [notifications]
        secret_env = "TEST_INLINE_SECRET"
        max_attempts = 2
        backoff_seconds = 0.01

        [notifications.smtp]
        host = "127.0.0.1"
        port = {smtp_server.port}
        sender = "lakestack@example.com"
        username = "bot"
        password_env = "TEST_SMTP_PASSWORD"
        starttls = false
        """,
    )
    create_job(
        ws,
        project,
        f"""
        name: breaks
        email_notifications:
          on_success: [never@example.com]
          on_failure: [oncall@example.com, lead@example.com]
        webhook_notifications:
          on_failure: [{{url: "{receiver.url("/inline")}?token={URL_TOKEN}"}}]
        tasks:
          - task_key: env
            python_task:
              function: "steps:seen_env"
              parameters: {{names: [TEST_INLINE_SECRET, TEST_SMTP_PASSWORD, PATH]}}
          - task_key: boom
            python_task: {{function: "steps:fail", parameters: {{message: "the data is late"}}}}
        """,
    )
    run = ws.jobs.run_now("breaks")
    assert run.state == "FAILED"
    # Task code runs as the run's principal: the notification secrets stay with the runner.
    assert run.task("env").task_values == {
        "seen": {"TEST_INLINE_SECRET": False, "TEST_SMTP_PASSWORD": False, "PATH": True}
    }
    inline = f"{receiver.url('/inline')}"
    assert deliveries(run) == {
        ("on_failure", "oncall@example.com"): ("DELIVERED", 1, 250),
        ("on_failure", "lead@example.com"): ("DELIVERED", 1, 250),
        ("on_failure", inline): ("DELIVERED", 1, 200),  # recorded without its query string
    }

    (hook,) = receiver.at("/inline")
    assert hook.verified == "ok" and hook.query == f"token={URL_TOKEN}"
    body = hook.json()
    assert body["event"] == "on_failure" and body["state"] == "FAILED"
    assert "task 'boom' FAILED" in body["error"] and "the data is late" in body["error"]
    assert body["tasks"][1]["state"] == "FAILED" and "the data is late" in body["tasks"][1]["error"]

    # One e-mail per address, after logging in (the server refuses mail without it).
    import email

    assert sorted(to for (to,), _ in smtp_server.messages) == ["lead@example.com", "oncall@example.com"]
    message = email.message_from_bytes(smtp_server.messages[0][1])
    assert message["From"] == "lakestack@example.com"
    assert message["Subject"] == f"[lakestack] Job 'breaks' run {run.run_id} FAILED"
    assert message[EVENT_HEADER] == "job_run.on_failure" and message[DELIVERY_HEADER]
    text = message.get_payload(decode=True).decode()
    assert "State:      FAILED" in text and "the data is late" in text
    assert f"lakestack jobs get-run {run.run_id}" in text

    rows = delivery_rows_text(ws)
    assert not any(secret in rows for secret in SECRETS)


def test_a_wrong_smtp_password_fails_the_email_at_once_and_says_why(
    sqlite_workspace: Workspace, project: Path, smtp_server: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = sqlite_workspace
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "not-the-password")
    configure(
        ws,
        f"""
        [notifications.smtp]
        host = "127.0.0.1"
        port = {smtp_server.port}
        sender = "lakestack@example.com"
        username = "bot"
        password_env = "TEST_SMTP_PASSWORD"
        starttls = false
        """,
    )
    create_job(
        ws,
        project,
        """
        name: quiet
        email_notifications: {on_start: [oncall@example.com]}
        tasks: [{task_key: t, python_task: {function: "steps:noop"}}]
        """,
    )
    run = ws.jobs.run_now("quiet")
    assert run.state == "SUCCESS"
    (delivery,) = run.notifications
    assert (delivery.state, delivery.attempts, delivery.status_code) == ("FAILED", 1, 535)
    assert (delivery.error or "").startswith("SMTP 535")
    assert "not-the-password" not in delivery_rows_text(ws) and smtp_server.messages == []


def test_a_canceled_run_notifies_on_failure_like_databricks(
    sqlite_workspace: Workspace, project: Path, receiver: Receiver
) -> None:
    ws = sqlite_workspace
    create_job(
        ws,
        project,
        f"""
        name: stopped
        webhook_notifications:
          on_success: [{{url: "{receiver.url("/success")}"}}]
          on_failure: [{{url: "{receiver.url("/failure")}"}}]
        tasks: [{{task_key: t, python_task: {{function: "steps:sleep", parameters: {{seconds: 30}}}}}}]
        """,
    )
    run = ws.jobs.run_now("stopped", wait=False)
    deadline = time.monotonic() + 20
    while ws.jobs.get_run(run.run_id).task("t").state != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    ws.jobs.cancel(run.run_id)
    run = wait_for_deliveries(ws, run.run_id)
    assert run.state == "CANCELED"
    # No workspace secret for inline URLs: sent unsigned, and the log says so.
    url = receiver.url("/failure")
    assert deliveries(run) == {("on_failure", f"{url} (unsigned)"): ("DELIVERED", 1, 200)}
    (hook,) = receiver.requests
    assert hook.verified == "unsigned" and hook.json()["state"] == "CANCELED"


def test_a_detached_runner_waits_for_its_deliveries_and_no_secret_reaches_logs_or_the_cli(
    sqlite_workspace: Workspace, project: Path, receiver: Receiver
) -> None:
    ws = sqlite_workspace
    receiver.secrets = {"/start": OPS_SECRET, "/end": OPS_SECRET}
    receiver.script = {"/start": [(503, {})], "/end": [(502, {})]}
    configure(
        ws,
        f"""
        [notifications]
        backoff_seconds = 0.3
        [notifications.destinations.start]
        url = "{receiver.url("/start")}"
        secret_env = "TEST_OPS_SECRET"
        [notifications.destinations.end]
        url = "{receiver.url("/end")}"
        secret_env = "TEST_OPS_SECRET"
        """,
    )
    create_job(
        ws,
        project,
        """
        name: cli job
        webhook_notifications: {on_start: [{id: start}], on_success: [{id: end}]}
        tasks: [{task_key: t, python_task: {function: "steps:noop"}}]
        """,
    )
    # --no-wait: a detached process drives the run; it must not exit before its deliveries end
    # (the on_success retry comes after the run has ended: a row left PENDING would show it).
    env = {"TEST_OPS_SECRET": OPS_SECRET}
    started = lakestack("jobs", "run", "cli job", "--no-wait", "--json", ws=ws.folder, env=env)
    outputs = [started]
    assert started.returncode == 0, started.stderr
    run_id = json.loads(started.stdout)["run_id"]
    deadline = time.monotonic() + 60
    while ws.jobs.get_run(run_id).state not in ("SUCCESS", "FAILED"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    run = wait_for_deliveries(ws, run_id, timeout=30)
    assert run.state == "SUCCESS"
    assert deliveries(run) == {
        ("on_start", "start"): ("DELIVERED", 2, 200),
        ("on_success", "end"): ("DELIVERED", 2, 200),
    }
    assert all(r.verified == "ok" for r in receiver.requests) and len(receiver.requests) == 4

    shown = lakestack("jobs", "get-run", str(run_id), ws=ws.folder)
    assert shown.returncode == 0, shown.stderr
    assert "notifications" in shown.stdout and "DELIVERED" in shown.stdout and "on_success" in shown.stdout
    notes = to_plain(ws.jobs.get_run(run_id))["notifications"]  # what get-run --json prints
    assert [(n["event"], n["destination"], n["state"], n["attempts"]) for n in notes] == [
        ("on_start", "start", "DELIVERED", 2),
        ("on_success", "end", "DELIVERED", 2),
    ]
    outputs.append(shown)
    for result in outputs:
        assert OPS_SECRET not in result.stdout + result.stderr
    for path in (ws.folder / "jobs" / "runs" / str(run_id)).rglob("*"):
        if path.is_file():
            assert OPS_SECRET not in path.read_text(errors="replace"), path
    assert OPS_SECRET not in delivery_rows_text(ws)


def test_a_webhook_url_with_a_password_is_refused_at_create(
    sqlite_workspace: Workspace, project: Path
) -> None:
    with pytest.raises(InvalidParameter) as caught:
        create_job(
            sqlite_workspace,
            project,
            f"""
            name: leaky
            webhook_notifications: {{on_failure: [{{url: "https://user:{OPS_SECRET}@hooks.example.com/x"}}]}}
            tasks: [{{task_key: t, python_task: {{function: "steps:noop"}}}}]
            """,
        )
    assert "use a destination id" in caught.value.message and OPS_SECRET not in caught.value.message


# --- e-mail over TLS ----------------------------------------------------------------------


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_email_goes_over_starttls_or_smtps_and_an_untrusted_certificate_fails_it(
    sqlite_workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    import ssl

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    from lakestack.config import NotificationsConfig
    from lakestack.notifications import DeliveryLog, Notification, Notifier

    cert_file, key_file = self_signed_certificate(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_file, key_file)
    received: list[bytes] = []

    class Collect:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append(bytes(envelope.content))
            return "250 Message accepted"

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        good = isinstance(data, LoginPassword) and data.password == SMTP_PASSWORD.encode()
        return AuthResult(success=good, handled=False)

    port = closed_port()
    tls: dict[str, Any] = {"tls_context": server_tls, "require_starttls": True}
    if mode == "ssl":
        # aiosmtpd does not count implicit TLS as TLS for AUTH: the connection is encrypted anyway.
        tls = {"ssl_context": server_tls, "auth_require_tls": False}
    controller = Controller(
        Collect(), hostname="127.0.0.1", port=port, authenticator=authenticate, auth_required=True, **tls
    )
    # The controller checks it is up by connecting to itself: over TLS it must trust the cert.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    controller.start()
    try:
        config = NotificationsConfig.model_validate(
            {
                "max_attempts": 2,
                "backoff_seconds": 0.01,
                "smtp": {
                    "host": "127.0.0.1",
                    "port": port,
                    "sender": "lakestack@example.com",
                    "username": "bot",
                    "password_env": "PW",
                    "ssl": mode == "ssl",
                },
            }
        )
        notifier = Notifier(sqlite_workspace._core.metastore, config, environ={"PW": SMTP_PASSWORD})
        note = Notification("job_run", "900", "on_failure", {"state": "FAILED"}, "subject", "body")
        notifier.send(note, emails=["oncall@example.com"])
        assert notifier.wait(30)
        # The client checks the server's certificate against the system's trust store.
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-such-bundle.pem"))
        notifier.send(
            Notification("job_run", "901", "on_failure", {}, "subject", "body"), emails=["x@example.com"]
        )
        assert notifier.wait(30)
    finally:
        controller.stop()
    log = DeliveryLog(sqlite_workspace._core.metastore)
    (trusted,) = log.list("job_run", "900")
    assert (trusted.state, trusted.attempts, trusted.status_code) == ("DELIVERED", 1, 250), trusted
    assert len(received) == 1 and b"Subject: subject" in received[0]
    (untrusted,) = log.list("job_run", "901")
    assert (untrusted.state, untrusted.attempts) == ("FAILED", 1), untrusted  # not retried
    assert "CERTIFICATE_VERIFY_FAILED" in (untrusted.error or "")
    assert SMTP_PASSWORD not in delivery_rows_text(sqlite_workspace)
