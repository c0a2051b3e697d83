"""Telling people about promotions: an email (Django's email backend: the console in the demo) and, when the
project has one, a post to its Slack-compatible incoming webhook. Sent from tasks; a failure is logged, never
fatal: the promotion goes on whether or not the message got through."""

from __future__ import annotations

import logging

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail

from deliveries.models import Promotion, PromotionState
from portal.roles import Role

logger = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_SECONDS = 5


def tech_lead_emails() -> list[str]:
    users = get_user_model().objects.filter(is_active=True).exclude(email="")
    leads = users.filter(groups__name=Role.TECHLEAD) | users.filter(is_superuser=True)
    return sorted(set(leads.values_list("email", flat=True)))


def message(promotion: Promotion, event: str) -> tuple[str, str, list[str]]:
    """(subject, text, email recipients) for an event."""
    run, project = promotion.source_run, promotion.project
    link = settings.SITE_URL.rstrip("/") + promotion.get_absolute_url()
    what = f"{project.name} {run.label} ({run.short_sha})"
    if event == "requested":
        passed = "passes" if promotion.gate_snapshot.get("passed") else "FAILS"
        return (f"Promotion to production requested: {what}",
                f"{promotion.requested_by.get_username()} asks to promote {what} to production. The quality gate "
                f"{passed}. Decide at {link}", tech_lead_emails())
    requester = [promotion.requested_by.email] if promotion.requested_by.email else []
    if promotion.state == PromotionState.FAILED:
        return (f"Promotion failed: {what}", f"The promotion of {what} failed: {promotion.state_reason} {link}",
                requester)
    decider = promotion.decided_by.get_username() if promotion.decided_by else "a tech lead"
    comment = f': "{promotion.decision_comment}"' if promotion.decision_comment else ""
    if promotion.state == PromotionState.REJECTED:
        return f"Promotion rejected: {what}", f"{decider} rejected the promotion of {what}{comment}. {link}", requester
    return (f"Promotion approved: {what}",
            f"{decider} approved the promotion of {what}{comment}. The portal merges it now. {link}", requester)


def notify(*, promotion_id: int, event: str) -> int:
    """Send the messages of an event; returns how many went out."""
    promotion = Promotion.objects.select_related("project", "source_run", "requested_by", "decided_by").get(
        pk=promotion_id)
    subject, text, recipients = message(promotion, event)
    sent = 0
    if recipients:
        try:
            send_mail(subject, text, None, recipients)
            sent += 1
        except Exception:  # noqa: BLE001 - a mail server down never stops a promotion
            logger.exception("Promotion %s: the %s email could not be sent", promotion.pk, event)
    url = promotion.project.slack_webhook_url
    if url:
        try:
            response = requests.post(url, json={"text": f"*{subject}*\n{text}"}, timeout=WEBHOOK_TIMEOUT_SECONDS)
            response.raise_for_status()
            sent += 1
        except requests.RequestException as exc:
            # The webhook URL is a secret: the message names the project, not the URL.
            status = getattr(exc.response, "status_code", None)
            logger.warning("Promotion %s: the %s post to %s's webhook failed (%s)", promotion.pk, event,
                           promotion.project.slug, status or type(exc).__name__)
    return sent
