"""The evidence of a promotion: one printable page, and the same content as JSON with `?format=json`."""

import pytest
from django.urls import reverse

from deliveries.models import PipelineRun, Promotion, RunStatus
from promotions import services
from scanners import services as scanner_services
from tests.factories import ArtifactFactory, issue_project_token
from tests.promotions.conftest import PATH, load_rows, requested
from tests.scanners import samples


@pytest.fixture
def released(client, gitlab_server, world, dana, tom):
    """A promotion taken all the way: requested with a new critical and a fixed one, approved, merged, released."""
    promotion = requested(world, dana, vulns=[samples.trivy_vulnerability("CVE-2025-0002", severity="HIGH")],
                          latencies={"home": 110, "cart": 180})
    gitlab_server.push(PATH, "dev", promotion.source_run.commit_sha)
    services.approve_promotion(promotion=promotion, user=tom, comment="evidence is fine")
    promotion = services.merge_promotion(promotion_id=promotion.pk)
    PipelineRun.objects.filter(pk=promotion.master_run_id).update(build_number=900, status=RunStatus.SUCCESS)
    ArtifactFactory(run_id=promotion.master_run_id, repository="registry.example.com/shop/app", tag="v2")
    _, _, token = issue_project_token(world.project)
    answer = client.post(reverse("api-deployments", args=["shop", 900]),
                         {"environment": "production", "status": "success"}, content_type="application/json",
                         HTTP_AUTHORIZATION=f"Bearer {token}")
    assert answer.status_code == 201
    promotion = Promotion.objects.get(pk=promotion.pk)
    assert promotion.state == "released"
    return promotion


def evidence_url(promotion, **query):
    url = reverse("promotion-evidence", args=["shop", promotion.pk])
    return url + ("?format=json" if query.get("json") else "")


def test_it_answers_the_evidence_as_json(client, users, released, world):
    client.force_login(users.operator)
    body = client.get(evidence_url(released, json=True)).json()
    run = released.source_run
    assert body["promotion"] == {"id": released.pk, "project": "shop", "state": "released", "state_reason": ""}
    production_before = PipelineRun.objects.filter(project=world.project, branch="master").order_by("pk").first()
    assert body["commits"]["from"] == production_before.commit_sha and body["commits"]["to"] == run.commit_sha
    assert body["merge_request"]["iid"] == released.mr_iid and body["merge_request"]["url"] == released.mr_url
    assert body["dev_run"]["commit_sha"] == run.commit_sha
    assert body["master_run"]["build_number"] == 900
    assert body["gate"]["conditions"] and body["gate"]["passed"] is True
    assert [f["identifier"] for f in body["findings"]["new"]] == ["CVE-2025-0002"]
    assert [f["identifier"] for f in body["findings"]["fixed"]] == ["CVE-2024-0001"]
    assert (body["findings"]["new_count"], body["findings"]["fixed_count"]) == (1, 1)
    home = next(row for row in body["performance"] if row["label"] == "home")
    assert (home["p95_ms"], home["production_p95_ms"], home["p95_change_percent"]) == (110, 100, 10.0)
    assert [a["status"] for a in body["attacks"]] == ["passed"]
    assert body["approvals"]["requested_by"] == "dana" and body["approvals"]["decided_by"] == "tom"
    assert body["approvals"]["decision"] == "approved" and body["approvals"]["comment"] == "evidence is fine"
    actions = [event["action"] for event in body["audit"]]
    assert actions[0] == "promotion.requested" and actions[-1] == "promotion.released"
    assert "promotion.approved" in actions


def test_the_page_shows_the_same_content_printable(client, users, released):
    client.force_login(users.developer)
    page = client.get(evidence_url(released))
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count("<h1") == 1
    for words in ("Commit range", "CVE-2025-0002", "CVE-2024-0001", "Performance against production", "10.0 %",
                  "evidence is fine", "promotion.released", "?format=json"):
        assert words in html, words
    detail = client.get(released.get_absolute_url()).content.decode()
    assert evidence_url(released) in detail


def test_its_queries_do_not_grow_with_the_evidence(client, users, released, world, django_assert_num_queries):
    client.force_login(users.developer)
    with django_assert_num_queries(15) as first:
        client.get(evidence_url(released))
    for index in range(5):  # more findings and labels in the dev run: the same number of queries
        report = scanner_services.ingest_content(
            run=released.source_run, original_name=f"more-{index}.json", kind="trivy",
            content=samples.trivy_report([samples.trivy_vulnerability(f"CVE-2026-00{index}", severity="LOW")]))
        assert report.status == "parsed"
    scanner_services.ingest_content(run=released.source_run, original_name="more.jtl", kind="jmeter",
                                    content=samples.jtl_csv(load_rows({"search": 90, "login": 70})))
    with django_assert_num_queries(len(first)):
        client.get(evidence_url(released))


def test_it_needs_a_role(client, users, released):
    client.force_login(users.outsider)
    assert client.get(evidence_url(released)).status_code == 403
    assert client.get(reverse("promotion-evidence", args=["shop", 999999])).status_code in (403, 404)


def test_a_promotions_decisions_are_read_by_their_index_not_through_the_whole_audit_log(released):
    from deliveries.models import AuditEvent
    from promotions.selectors import evidence_document
    from tests.plans import Executed, plan_of, scans

    # the log of a long history: every stage callback leaves an event
    AuditEvent.objects.bulk_create([AuditEvent(project=released.project, action="stage.upserted", target_type="stage",
                                               target_id=str(n)) for n in range(5000)], batch_size=1000)
    with Executed() as executed:
        document = evidence_document(released)
    assert "promotion.released" in [event["action"] for event in document["audit"]]
    ((sql, params),) = executed.reading("deliveries_auditevent")
    plan = plan_of(sql, params)
    assert "audit_target" in plan and not scans(plan, "auditevent"), plan
