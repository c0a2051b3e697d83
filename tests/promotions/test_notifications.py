"""Promotion news: an email to the tech leads on a request and to the requester on the decision, and a post to the
project's Slack-compatible webhook; a failure is logged, never fatal, and never names the webhook's secret URL."""

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail

from deliveries.models import PromotionState
from promotions import notifications, services
from tests.factories import UserFactory
from tests.promotions.conftest import requested


class Webhook:
    """A loopback incoming webhook that records what it is sent and answers `status`."""

    def __init__(self, status: int = 200):
        self.posts, self.status = [], status
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                webhook.posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(webhook.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T0/B0/secret-path"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


def test_tech_leads_are_emailed_and_the_webhook_is_posted_on_a_request(world, dana, tom, webhook):
    UserFactory(username="lea", roles=["techlead"])
    world.project.slack_webhook_url = webhook.url
    world.project.save()
    promotion = requested(world, dana)
    assert notifications.notify(promotion_id=promotion.pk, event="requested") == 2
    (email,) = mail.outbox
    assert sorted(email.to) == ["lea@example.com", "tom@example.com"]
    assert email.subject == f"Promotion to production requested: Shop {promotion.source_run.label} " \
                            f"({promotion.source_run.short_sha})"
    assert promotion.get_absolute_url() in email.body and "The quality gate passes" in email.body
    assert webhook.posts[0]["text"].startswith("*Promotion to production requested: Shop")


def test_the_requester_is_told_the_decision(world, dana, tom):
    promotion = requested(world, dana)
    services.reject_promotion(promotion=promotion, user=tom, comment="After the freeze")
    assert notifications.notify(promotion_id=promotion.pk, event="decided") == 1
    (email,) = mail.outbox
    assert email.to == ["dana@example.com"]
    assert email.subject.startswith("Promotion rejected: Shop")
    assert 'tom rejected the promotion' in email.body and '"After the freeze"' in email.body


def test_a_webhook_that_fails_is_logged_without_its_url_and_the_email_still_goes(world, dana, tom, caplog):
    hook = Webhook(status=500)
    try:
        world.project.slack_webhook_url = hook.url
        world.project.save()
        promotion = services.reject_promotion(promotion=requested(world, dana), user=tom, comment="no")
        with caplog.at_level(logging.WARNING):
            assert notifications.notify(promotion_id=promotion.pk, event="decided") == 1
    finally:
        hook.close()
    assert len(mail.outbox) == 1
    assert "post to shop's webhook failed (500)" in caplog.text
    assert "secret-path" not in caplog.text


def test_a_mail_server_down_is_logged_not_fatal(world, dana, settings, caplog):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2  # nothing listens there
    UserFactory(username="lea", roles=["techlead"])
    promotion = requested(world, dana)
    assert notifications.notify(promotion_id=promotion.pk, event="requested") == 0
    assert "the requested email could not be sent" in caplog.text
    assert promotion.state == PromotionState.REQUESTED
