"""The promotion pages: request from the run and project pages (or why not), the promotion page with its frozen
gate, the decision (four eyes, through the UI, the API and the admin), waivers, the gate editor and the audit log."""

from datetime import timedelta

from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.html import strip_tags

from deliveries.models import AuditEvent, GateCondition, Promotion, PromotionState, RunStatus, Waiver
from promotions import services
from tests.factories import UserFactory, issue_project_token
from tests.promotions.conftest import requested


def signed_in(client, user):
    client.force_login(user)
    return client


def text(response) -> str:
    return " ".join(strip_tags(response.content.decode()).split())


# --- request ----------------------------------------------------------------------------------------------------


def test_the_run_page_offers_the_request_and_the_project_page_too(client, world, dana):
    run = world.green_run()
    signed_in(client, dana)
    page = client.get(run.get_absolute_url())
    assert reverse("promotion-request", args=["shop", run.pk]).encode() in page.content
    project_page = client.get(world.project.get_absolute_url())
    assert b"Request promotion of #" in project_page.content
    answer = client.post(reverse("promotion-request", args=["shop", run.pk]))
    promotion = Promotion.objects.get()
    assert answer.status_code == 302 and answer.url == promotion.get_absolute_url()
    assert promotion.requested_by == dana


def test_the_run_page_says_why_a_run_cannot_be_promoted(client, world, dana):
    failed = world.green_run(status=RunStatus.FAILED)
    page = signed_in(client, dana).get(failed.get_absolute_url())
    assert "This run is failed: only a green run can be promoted." in text(page)
    assert reverse("promotion-request", args=["shop", failed.pk]).encode() not in page.content
    answer = client.post(reverse("promotion-request", args=["shop", failed.pk]), follow=True)
    assert "This run is failed: only a green run can be promoted." in text(answer)
    assert not Promotion.objects.exists()


def test_the_project_page_names_the_open_promotion(client, world, dana):
    first = requested(world, dana)
    world.green_run()
    page = text(signed_in(client, dana).get(world.project.get_absolute_url()))
    assert f"Promotion {first.pk} of {first.source_run.label} is requested." in page
    assert "is already requested: one open promotion per project at a time." in page


def test_an_operator_cannot_request(client, world, users):
    run = world.green_run()
    answer = signed_in(client, users.operator).post(reverse("promotion-request", args=["shop", run.pk]))
    assert answer.status_code == 403
    assert not Promotion.objects.exists()


# --- the promotion page and the decision ----------------------------------------------------------------------


def test_the_promotion_page_shows_the_frozen_gate_like_a_quality_gate(client, world, dana, tom,
                                                                     django_assert_num_queries):
    promotion = requested(world, dana, failed_scenarios=["xss"])
    signed_in(client, tom)
    with django_assert_num_queries(6):  # session, user, roles, project, promotion, waivers in force
        page = client.get(promotion.get_absolute_url())
    content = text(page)
    assert page.status_code == 200
    assert "Quality gate failed" in content
    assert "Failed attack scenarios — 1 ≤ 0 failed failed: xss" in content
    assert "Approve and merge" in content
    assert page.content.decode().count("<h1") == 1


def test_a_tech_lead_approves_with_confirmation_and_a_comment(client, world, dana, tom):
    promotion = requested(world, dana)
    signed_in(client, tom)
    url = reverse("promotion-approve", args=["shop", promotion.pk])
    unconfirmed = client.post(url, {"comment": "ok"})
    assert unconfirmed.status_code == 400
    assert Promotion.objects.get().state == PromotionState.REQUESTED
    answer = client.post(url, {"comment": "Ship it", "confirm": "on"})
    assert answer.status_code == 302
    promotion.refresh_from_db()
    assert (promotion.state, promotion.approved_by, promotion.decision_comment) == ("approved", tom, "Ship it")


def test_the_requester_approving_through_the_ui_gets_403_and_nothing_changes(client, world, db):
    lead = UserFactory(username="lea", roles=["developer", "techlead"])
    promotion = requested(world, lead)
    signed_in(client, lead)
    assert b"another tech lead decides" in client.get(promotion.get_absolute_url()).content
    answer = client.post(reverse("promotion-approve", args=["shop", promotion.pk]), {"confirm": "on"})
    assert answer.status_code == 403
    promotion.refresh_from_db()
    assert (promotion.state, promotion.approved_by) == (PromotionState.REQUESTED, None)
    assert not AuditEvent.objects.filter(action="promotion.approved").exists()


def test_a_developer_cannot_decide(client, world, dana):
    promotion = requested(world, dana)
    other = UserFactory(username="dev2", roles=["developer"])
    answer = signed_in(client, other).post(reverse("promotion-reject", args=["shop", promotion.pk]),
                                           {"comment": "no", "confirm": "on"})
    assert answer.status_code == 403


def test_approval_of_a_failing_gate_is_refused_with_the_reason(client, world, dana, tom):
    promotion = requested(world, dana, reports=("gauntlt", "jmeter"))
    answer = signed_in(client, tom).post(reverse("promotion-approve", args=["shop", promotion.pk]), {"confirm": "on"})
    assert answer.status_code == 409
    assert "no Trivy report in this run" in text(answer)
    assert Promotion.objects.get().state == PromotionState.REQUESTED


def test_a_rejection_without_a_reason_is_400(client, world, dana, tom):
    promotion = requested(world, dana)
    answer = signed_in(client, tom).post(reverse("promotion-reject", args=["shop", promotion.pk]), {"confirm": "on"})
    assert answer.status_code == 400
    assert "Say why the promotion is rejected." in text(answer)


# --- the API --------------------------------------------------------------------------------------------------


def test_the_api_approves_for_a_tech_lead_s_session(client, world, dana, tom):
    promotion = requested(world, dana)
    answer = signed_in(client, tom).post(f"/api/v1/promotions/{promotion.pk}/approve/", {"comment": "ok"},
                                         content_type="application/json")
    assert answer.status_code == 200
    assert answer.json()["state"] == "approved" and answer.json()["approved_by"] == "tom"


def test_the_requester_approving_through_the_api_gets_403(client, world, db):
    lead = UserFactory(username="lea", roles=["developer", "techlead"])
    promotion = requested(world, lead)
    answer = signed_in(client, lead).post(f"/api/v1/promotions/{promotion.pk}/approve/", {},
                                          content_type="application/json")
    assert answer.status_code == 403
    assert answer.json()["detail"] == "You requested this promotion: another tech lead must decide on it."
    assert Promotion.objects.get().state == PromotionState.REQUESTED


def test_the_api_refuses_anonymous_callers_and_project_tokens(client, world, dana):
    promotion = requested(world, dana)
    _, _, token = issue_project_token(world.project)
    assert client.post(f"/api/v1/promotions/{promotion.pk}/approve/").status_code == 403
    with_token = client.post(f"/api/v1/promotions/{promotion.pk}/approve/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert with_token.status_code == 403
    assert client.post("/api/v1/promotions/999/approve/").status_code in (403, 404)
    assert Promotion.objects.get().state == PromotionState.REQUESTED


def test_the_api_answers_409_for_a_failing_gate_and_404_for_no_promotion(client, world, dana, tom):
    promotion = requested(world, dana, failed_scenarios=["xss"])
    signed_in(client, tom)
    answer = client.post(f"/api/v1/promotions/{promotion.pk}/approve/", {}, content_type="application/json")
    assert answer.status_code == 409 and "xss" in answer.json()["detail"]
    assert client.post("/api/v1/promotions/999/approve/", {}, content_type="application/json").status_code == 404


# --- the admin ------------------------------------------------------------------------------------------------


def test_the_admin_cannot_change_a_promotion_not_even_a_superuser(client, world, dana):
    promotion = requested(world, dana)
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    signed_in(client, admin)
    url = reverse("admin:deliveries_promotion_change", args=[promotion.pk])
    page = client.get(url)
    assert page.status_code == 200 and b'name="approved_by"' not in page.content and b'name="state"' not in page.content
    answer = client.post(url, {"state": "approved", "approved_by": admin.pk})
    assert answer.status_code == 403
    promotion.refresh_from_db()
    assert (promotion.state, promotion.approved_by) == (PromotionState.REQUESTED, None)
    assert client.post(reverse("admin:deliveries_promotion_delete", args=[promotion.pk]), {"post": "yes"}).status_code \
        == 403


def test_the_slack_webhook_url_is_never_rendered_and_empty_keeps_it(client, world):
    secret = "https://hooks.slack.example/services/T000/B000/very-secret-path"
    world.project.slack_webhook_url = secret
    world.project.save()
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    page = signed_in(client, admin).get(reverse("admin:deliveries_project_change", args=[world.project.pk]))
    assert b"very-secret-path" not in page.content and b"hooks.slack.example/" in page.content


# --- waivers, gate, audit -------------------------------------------------------------------------------------


def test_a_tech_lead_grants_a_waiver_audited_and_a_developer_cannot(client, world, dana, tom):
    url = reverse("project-waivers", args=["shop"])
    expires = (timezone.now() + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M")
    form = {"kind": "vulnerability", "identifier": "CVE-2024-9", "reason": "not reachable", "expires_at": expires}
    assert signed_in(client, dana).post(url, form).status_code == 403
    assert b"Grant a waiver" not in client.get(url).content
    assert signed_in(client, tom).post(url, form).status_code == 302
    waiver = Waiver.objects.get()
    assert (waiver.owner, waiver.identifier) == (tom, "CVE-2024-9")
    assert AuditEvent.objects.filter(action="waiver.created", target_id=str(waiver.pk), actor=tom).exists()
    assert "CVE-2024-9" in text(signed_in(client, dana).get(url))


def test_a_waiver_in_the_past_or_without_a_reason_is_refused_and_nothing_saved(client, world, tom):
    url = reverse("project-waivers", args=["shop"])
    past = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    answer = signed_in(client, tom).post(url, {"kind": "scenario", "identifier": "xss", "reason": "x",
                                               "expires_at": past})
    assert answer.status_code == 400 and "A waiver must expire in the future." in text(answer)
    assert client.post(url, {"kind": "scenario", "identifier": "xss", "expires_at": past}).status_code == 400
    assert not Waiver.objects.exists()


def test_a_tech_lead_edits_the_gate_audited_and_a_developer_cannot(client, world, dana, tom):
    url = reverse("project-gate", args=["shop"])
    read = signed_in(client, dana).get(url)
    assert read.status_code == 200 and "New critical vulnerabilities vs production ≤ 0" in text(read)
    assert client.post(url, {}).status_code == 403
    page = signed_in(client, tom).get(url)
    formset = page.context["formset"]
    data = {"conditions-TOTAL_FORMS": str(len(formset.forms)), "conditions-INITIAL_FORMS": str(len(formset.forms) - 1),
            "conditions-MIN_NUM_FORMS": "0", "conditions-MAX_NUM_FORMS": "1000"}
    for index, form in enumerate(formset.forms):
        for name in ("id", "metric", "comparator", "threshold", "relative_to_production"):
            value = form[name].value()
            if value is not None and value is not False and value != "":
                data[f"conditions-{index}-{name}"] = value
    data["conditions-0-DELETE"] = "on"
    last = len(formset.forms) - 1
    data.update({f"conditions-{last}-metric": "secrets", f"conditions-{last}-comparator": "lte",
                 f"conditions-{last}-threshold": "0"})
    answer = client.post(url, data)
    assert answer.status_code == 302, answer.context["formset"].errors
    metrics = list(GateCondition.objects.filter(gate__project=world.project).values_list("metric", flat=True))
    assert "new_critical_vulnerabilities" not in metrics and "secrets" in metrics
    assert AuditEvent.objects.filter(action="gate.changed", actor=tom).exists()
    data[f"conditions-{last}-threshold"] = "lots"
    assert client.post(url, data).status_code == 400


def test_every_role_reads_the_audit_log_paginated_in_a_fixed_number_of_queries(client, world, dana, users,
                                                                              django_assert_num_queries):
    for _ in range(3):
        services.create_waiver(project=world.project, user=users.techlead, kind="scenario", identifier="x",
                               reason="r", expires_at=timezone.now() + timedelta(days=1))
    url = reverse("project-audit", args=["shop"])
    for user in (users.developer, users.techlead, users.operator):
        assert signed_in(client, user).get(url).status_code == 200
    assert signed_in(client, users.outsider).get(url).status_code == 403
    signed_in(client, users.operator)
    with django_assert_num_queries(6):
        page = client.get(url)
    assert text(page).count("waiver.created") == 3
    assert "Page 1 of 1 · 3 events" in text(page)


def test_the_home_page_links_waiting_promotions_to_their_page(client, world, dana):
    promotion = requested(world, dana)
    page = signed_in(client, dana).get("/")
    assert promotion.get_absolute_url().encode() in page.content


def test_the_promotion_list_in_a_fixed_number_of_queries(client, world, dana, tom, django_assert_num_queries):
    first = requested(world, dana)
    services.reject_promotion(promotion=first, user=tom, comment="later")
    requested(world, dana)
    signed_in(client, dana)
    with django_assert_num_queries(6):
        page = client.get(reverse("promotion-list", args=["shop"]))
    assert text(page).count("Rejected") == 1 and "2 promotions" in text(page)


def test_the_promotion_page_shows_a_merge_pending_with_its_reason_and_next_attempt(client, world, dana, tom):
    promotion = services.approve_promotion(promotion=requested(world, dana), user=tom)
    promotion = services.merge_later(promotion, "GitLab failed with an internal error (503) when asked to merge !1.")
    page = text(signed_in(client, dana).get(promotion.get_absolute_url()))
    assert "Merge pending. GitLab failed with an internal error (503)" in page
    assert "Attempt 1 failed; the next one is at 20" in page and " UTC." in page
    assert "merge pending" in text(client.get(reverse("promotion-list", args=["shop"])))


def test_the_api_needs_the_session_s_csrf_token_and_valid_input(world, dana, tom):
    promotion = requested(world, dana)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(tom)
    url = f"/api/v1/promotions/{promotion.pk}/approve/"
    assert strict.post(url, {}, content_type="application/json").status_code == 403  # no CSRF token: a forged post
    lax = Client()
    lax.force_login(tom)
    answer = lax.post(url, {"comment": ["not", "text"]}, content_type="application/json")
    assert answer.status_code == 400 and "comment" in answer.json()
    rejected = lax.post(f"/api/v1/promotions/{promotion.pk}/reject/", {"comment": ""}, content_type="application/json")
    assert rejected.status_code == 400 and rejected.json()["detail"] == "Say why the promotion is rejected."
    assert Promotion.objects.get().state == PromotionState.REQUESTED


def test_a_gate_edited_in_the_admin_is_audited_and_cannot_be_deleted(client, world):
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    gate = world.project.quality_gate
    signed_in(client, admin)
    url = reverse("admin:deliveries_qualitygate_change", args=[gate.pk])
    formset = client.get(url).context["inline_admin_formsets"][0].formset
    data = {"project": world.project.pk, f"{formset.prefix}-TOTAL_FORMS": "0",
            f"{formset.prefix}-INITIAL_FORMS": "0", f"{formset.prefix}-MIN_NUM_FORMS": "0",
            f"{formset.prefix}-MAX_NUM_FORMS": "1000"}
    assert client.post(url, data).status_code == 302
    event = AuditEvent.objects.get(action="gate.changed")
    assert (event.actor, event.data["active"], event.data["via"]) == (admin, False, "admin")
    assert client.post(reverse("admin:deliveries_qualitygate_delete", args=[gate.pk]), {"post": "yes"}).status_code \
        == 403


def test_every_page_says_when_gitlab_is_simulated(client, users, settings, world):
    client.force_login(users.developer)
    settings.GITLAB_SIMULATED = False
    assert "simulated GitLab" not in client.get(reverse("home")).content.decode()
    settings.GITLAB_SIMULATED = True
    for url in (reverse("home"), reverse("promotion-list", args=["shop"])):
        body = client.get(url).content.decode()
        assert "<strong>simulated GitLab</strong>" in body, url


def test_the_promotion_list_counts_up_to_a_cap(client, world, dana, monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from portal.pagination import CappedCountPaginator

    monkeypatch.setattr(CappedCountPaginator, "COUNT_CAP", 1)
    open_one = requested(world, dana)
    Promotion.objects.bulk_create([Promotion(project=world.project, source_run=open_one.source_run, requested_by=dana,
                                             state=PromotionState.REJECTED) for _ in range(2)])
    client.force_login(dana)
    with CaptureQueriesContext(connection) as queries:
        body = client.get(reverse("promotion-list", args=[world.project.slug])).content.decode()
    counts = [q["sql"] for q in queries if "COUNT(*)" in q["sql"] and "deliveries_promotion" in q["sql"]]
    assert counts and all("LIMIT 2" in sql for sql in counts), counts  # the cap, and one more
    assert "Page 1 of 1+ · 1+ promotions: the newest are paged, the admin lists older ones" in strip_tags(body)
