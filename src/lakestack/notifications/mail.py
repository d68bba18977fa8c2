"""Sending one e-mail through the configured SMTP server, retried on transient failures.

Connection errors and 4xx SMTP replies are retried with the policy's backoff; 5xx replies (a
refused recipient, a failed login) fail at once. STARTTLS or SMTPS verify the server's
certificate against the system's trust store; the password is read from `password_env` at
send time and never recorded.
"""

from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Callable, Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from lakestack.config import SmtpConfig
from lakestack.notifications.retry import AttemptOutcome, DeliveryOutcome, RetryPolicy, deliver, scrub


def build_message(
    smtp: SmtpConfig, to: str, subject: str, text: str, headers: Mapping[str, str]
) -> EmailMessage:
    """The e-mail to send: plain text, from the configured sender, with `headers` added."""
    message = EmailMessage()
    message["From"] = smtp.sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=smtp.sender.rpartition("@")[2])
    for name, value in headers.items():
        message[name] = value
    message.set_content(text)
    return message


def send_email(
    smtp: SmtpConfig,
    password: str | None,
    message: EmailMessage,
    policy: RetryPolicy,
    on_attempt: Callable[[int, AttemptOutcome], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryOutcome:
    """Send `message` through `smtp` (logging in with `password` when a username is configured)."""
    secrets = (password,)

    def attempt() -> AttemptOutcome:
        context = ssl.create_default_context()
        port = smtp.effective_port
        try:
            server: smtplib.SMTP = (
                smtplib.SMTP_SSL(smtp.host, port, timeout=smtp.timeout_seconds, context=context)
                if smtp.ssl
                else smtplib.SMTP(smtp.host, port, timeout=smtp.timeout_seconds)
            )
            with server:
                if smtp.use_starttls:
                    server.starttls(context=context)
                if smtp.username is not None:
                    server.login(smtp.username, password or "")
                server.send_message(message)
            return AttemptOutcome(True, 250)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            return _reply(code, reply, secrets)
        except smtplib.SMTPResponseException as exc:
            return _reply(exc.smtp_code, exc.smtp_error, secrets)
        except (ssl.SSLCertVerificationError, smtplib.SMTPNotSupportedError) as exc:
            # The same certificate, the same missing AUTH or STARTTLS next time: do not retry.
            return AttemptOutcome(False, None, scrub(f"{type(exc).__name__}: {exc}", secrets))
        except (OSError, smtplib.SMTPException) as exc:  # refused, reset, timed out
            return AttemptOutcome(False, None, scrub(f"{type(exc).__name__}: {exc}", secrets), True)

    return deliver(attempt, policy, on_attempt, sleep)


def _reply(code: int, reply: bytes | str, secrets: tuple[str | None, ...]) -> AttemptOutcome:
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
    # 4xx: the server asks to come back later (greylisting, a full queue); 5xx: it refuses.
    return AttemptOutcome(False, code, scrub(f"SMTP {code}: {text}", secrets), 400 <= code < 500)
