"""Telling people about a broken build, about the first green one after it, and about a
deploy waiting for their approval: a webhook POST (JSON) and a mail through an SMTP
server, each sent by a steep job so a receiver that is down delays the message but never
loses it."""

from __future__ import annotations

import json
import smtplib
import urllib.error
import urllib.request
from email.message import EmailMessage

from steep.pipeline.config import PipelineConfig, Project
from steep.pipeline.records import Run


class Undelivered(Exception):
    """The receiver could not take the message now (retried)."""


def event_of(run: Run, previous: Run | None) -> str | None:
    """`failed` for a failed run, `fixed` for a passing one after a failure, else None."""
    if run.state in ("failed", "error"):
        return "failed"
    if run.state == "passed" and previous is not None and previous.state in ("failed", "error"):
        return "fixed"
    return None


def payload(run: Run, event: str, url: str) -> dict[str, object]:
    return {
        "event": event,
        "project": run.meta.project,
        "run": run.id,
        "state": run.state,
        "ref": run.meta.ref,
        "pr": run.meta.pr,
        "sha": run.meta.sha,
        "author": run.meta.author,
        "message": run.meta.message,
        "reason": run.reason,
        "url": url,
    }


def approval_payload(
    run: Run, env: str, deploy_id: str, command: str, url: str
) -> dict[str, object]:
    """A deploy waits for a person: what it is, and how to approve it."""
    return {
        **payload(run, "approval", url),
        "env": env,
        "deploy": deploy_id,
        "approve": command,
        "reason": f"{env} waits for approval: {command}",
    }


def post_webhook(url: str, body: dict[str, object], timeout: float = 10.0) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "steep-pipeline"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        if exc.code >= 500 or exc.code == 429:
            raise Undelivered(f"the notification webhook answered {exc.code}") from None
        # a 4xx will not change by trying again: say so once in the worker's log
        raise ValueError(f"the notification webhook refused it: {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise Undelivered(f"the notification webhook is unreachable: {exc}") from None


def send_mail(config: PipelineConfig, recipients: list[str], body: dict[str, object]) -> None:
    notify = config.notify
    if not notify.smtp_host:
        return
    message = EmailMessage()
    verb = "is broken" if body["event"] == "failed" else "is green again"
    where = f"pull request #{body['pr']}" if body.get("pr") else f"branch {body['ref']}"
    message["Subject"] = f"[steep] {body['project']} {where} {verb} ({body['run']})"
    if body["event"] == "approval":
        message.replace_header(
            "Subject", f"[steep] {body['project']} {body['env']} waits for approval ({body['run']})"
        )
    message["From"] = notify.mail_from
    message["To"] = ", ".join(recipients)
    lines = [
        f"Run {body['run']} of {body['project']} {body['state']}.",
        f"Commit: {str(body['sha'] or '')[:12]} {body.get('message') or ''}",
        f"Author: {body.get('author') or '-'}",
    ]
    if body.get("reason"):
        lines.append(f"Why: {body['reason']}")
    lines.append(f"Details: {body['url']}")
    message.set_content("\n".join(lines) + "\n")
    try:
        with smtplib.SMTP(notify.smtp_host, notify.smtp_port, timeout=30) as smtp:
            smtp.send_message(message)
    except smtplib.SMTPResponseException as exc:
        if 400 <= exc.smtp_code < 500:
            raise Undelivered(f"the mail server answered {exc.smtp_code}") from None
        raise ValueError(f"the mail server refused the mail: {exc.smtp_code}") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise Undelivered(f"the mail server is unreachable: {exc}") from None


def recipients(config: PipelineConfig, project: Project) -> tuple[str | None, list[str]]:
    return (
        project.notify_webhook or config.notify.webhook,
        list(project.notify_mail or config.notify.mail_to),
    )
