"""SMTP (the alerts' mail server): connect, STARTTLS or TLS as configured, log in; no mail is sent."""

from __future__ import annotations

import smtplib
import ssl

from include.checks.verdict import Verdict, fail, ok, skip
from include.settings import Settings

SERVICE = "smtp"


def check(settings: Settings) -> list[Verdict]:
    s = settings.smtp
    if not s.host:
        return [
            skip(
                SERVICE,
                "no SMTP_HOST: alerts are only logged (WARNING ALERT ...)",
                "set SMTP_HOST, SMTP_PORT, SMTP_USER, SMTP_PASSWORD and ALERT_EMAIL_TO to get them by mail",
            )
        ]
    where = f"{s.host}:{s.port}"
    timeout = min(float(s.timeout_s), 15.0)
    try:
        server: smtplib.SMTP = (
            smtplib.SMTP_SSL(s.host, s.port, timeout=timeout, context=ssl.create_default_context())
            if s.ssl
            else smtplib.SMTP(s.host, s.port, timeout=timeout)
        )
    except (OSError, smtplib.SMTPException) as exc:
        return [
            fail(
                SERVICE,
                f"{where}: cannot connect ({type(exc).__name__})",
                "check SMTP_HOST, SMTP_PORT (587 STARTTLS, 465 SMTP_SSL=true) and the firewall",
            )
        ]
    steps = ["TLS" if s.ssl else "plain"]
    try:
        server.ehlo()
        if s.starttls and not s.ssl:
            if not server.has_extn("starttls"):
                return [
                    fail(
                        SERVICE,
                        f"{where}: the server offers no STARTTLS",
                        "use SMTP_SSL=true on port 465, or SMTP_STARTTLS=false only inside a trusted network",
                    )
                ]
            server.starttls(context=ssl.create_default_context())
            server.ehlo()
            steps = ["STARTTLS"]
        if s.user:
            server.login(s.user, s.password.get_secret_value())
            steps.append(f"login as {s.user}")
    except smtplib.SMTPAuthenticationError as exc:
        return [
            fail(SERVICE, f"{where}: login as {s.user} refused ({exc.smtp_code})", "check SMTP_USER and SMTP_PASSWORD")
        ]
    except (OSError, smtplib.SMTPException) as exc:
        return [fail(SERVICE, f"{where}: {type(exc).__name__}", "check the server's TLS certificate and log")]
    finally:
        try:
            server.quit()
        except (OSError, smtplib.SMTPException):
            pass
    recipients = settings.alert.recipients()
    verdicts = [ok(SERVICE, f"{where}: connected ({', '.join(steps)}), no mail sent")]
    if not recipients:
        verdicts.append(skip(SERVICE, "ALERT_EMAIL_TO is empty: alerts are only logged", "set ALERT_EMAIL_TO"))
    return verdicts
