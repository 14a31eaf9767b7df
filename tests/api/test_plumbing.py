"""Keys, scopes, rate limits, body limits, idempotency and the schema."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries, Settings
from rest_framework.test import APIClient

from shipments.models import Shipment
from tests.api.test_shipments_api import NEW
from tests.helpers import IssueApiKey
from tracksop.api_keys import api_key_check, api_key_revoke
from tracksop.models import ApiKey, IdempotencyRecord

pytestmark = pytest.mark.django_db


def client(raw: str | None = None, scheme: str = "Bearer") -> APIClient:
    c = APIClient()
    if raw is not None:
        c.credentials(HTTP_AUTHORIZATION=f"{scheme} {raw}")
    return c


def test_every_bad_key_gets_the_same_401(api_key_for: IssueApiKey) -> None:
    expired, expired_raw = api_key_for(name="Old shop")
    ApiKey.objects.filter(pk=expired.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    revoked, revoked_raw = api_key_for(name="Gone shop")
    api_key_revoke(key=revoked)
    off, off_raw = api_key_for(name="Paused shop")
    off.integration.is_active = False
    off.integration.save()
    _good, good_raw = api_key_for()
    wrong_secret = good_raw[:-4] + "abcd"
    bodies = []
    for c in (
        client(),
        client("tsk_nothing_here"),
        client(wrong_secret),
        client(good_raw, scheme="Basic"),
        client(expired_raw),
        client(revoked_raw),
        client(off_raw),
        client("x" * 5000),
    ):
        response = c.get("/api/v1/shipments/")
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == 'Bearer realm="api"'
        assert response["Content-Type"] == "application/problem+json"
        bodies.append(response.content)
    assert len(set(bodies)) == 1
    assert client(good_raw).get("/api/v1/shipments/").status_code == 200


def test_a_key_without_the_scope_is_403(api_key_for: IssueApiKey) -> None:
    _, raw = api_key_for("shipments:read")
    c = client(raw)
    assert c.get("/api/v1/shipments/").status_code == 200
    response = c.post("/api/v1/shipments/", NEW, format="json")
    assert response.status_code == 403
    assert "shipments:write" in response.json()["detail"]
    assert not Shipment.objects.exists()


def test_last_used_is_recorded(api_key_for: IssueApiKey) -> None:
    key, raw = api_key_for()
    client(raw).get("/api/v1/shipments/")
    key.refresh_from_db()
    assert key.last_used_at is not None


def test_rate_limit_headers_and_429(
    api_key_for: IssueApiKey, settings: Settings
) -> None:
    settings.TRACKSOP_API_RATE = "3/min"
    _, raw = api_key_for()
    c = client(raw)
    seen = [c.get("/api/v1/shipments/") for _ in range(4)]
    assert [r.status_code for r in seen] == [200, 200, 200, 429]
    assert seen[0]["RateLimit-Limit"] == "3"
    assert [r["RateLimit-Remaining"] for r in seen[:3]] == ["2", "1", "0"]
    assert int(seen[3]["Retry-After"]) > 0
    assert seen[3]["Content-Type"] == "application/problem+json"
    _, other = api_key_for(name="Other shop")
    assert client(other).get("/api/v1/shipments/").status_code == 200


def test_a_huge_body_is_413(api: APIClient) -> None:
    body = '{"checkpoints": ["' + "x" * (3 * 1024 * 1024) + '"]}'
    response = api.post("/api/v1/checkpoints/", body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["status"] == 413


def test_the_same_key_and_body_replays_the_response(api: APIClient) -> None:
    first = api.post(
        "/api/v1/shipments/", NEW, format="json", HTTP_IDEMPOTENCY_KEY="order-1001"
    )
    again = api.post(
        "/api/v1/shipments/", NEW, format="json", HTTP_IDEMPOTENCY_KEY="order-1001"
    )
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again["Idempotent-Replayed"] == "true"
    assert Shipment.objects.count() == 1
    other = api.post(
        "/api/v1/shipments/",
        {**NEW, "order_number": "WEB-2"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="order-1001",
    )
    assert other.status_code == 422
    assert "another request" in other.json()["detail"]
    assert Shipment.objects.count() == 1


def test_an_error_is_replayed_too_and_a_day_later_the_key_is_free(
    api: APIClient,
) -> None:
    bad = {**NEW, "weight_kg": -1}
    first = api.post("/api/v1/shipments/", bad, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert first.status_code == 400
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))
    fixed = api.post("/api/v1/shipments/", bad, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert fixed.status_code == 400
    assert "Idempotent-Replayed" not in fixed
    assert IdempotencyRecord.objects.count() == 1


def test_idempotency_keys_are_per_api_key(
    api: APIClient, api_key_for: IssueApiKey
) -> None:
    _, raw = api_key_for(name="Another shop")
    for c in (api, client(raw)):
        response = c.post(
            "/api/v1/shipments/", NEW, format="json", HTTP_IDEMPOTENCY_KEY="same"
        )
        assert response.status_code == 201
    assert Shipment.objects.count() == 2


def test_a_bad_idempotency_key_is_400(api: APIClient) -> None:
    response = api.post(
        "/api/v1/shipments/", NEW, format="json", HTTP_IDEMPOTENCY_KEY="k" * 256
    )
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["errors"]


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_requests_with_one_key_make_one_shipment(
    api_key_for: IssueApiKey,
) -> None:
    _, raw = api_key_for()
    barrier = threading.Barrier(4)
    responses: list[Any] = []

    def post() -> None:
        c = client(raw)
        barrier.wait()
        try:
            responses.append(
                c.post(
                    "/api/v1/shipments/",
                    NEW,
                    format="json",
                    HTTP_IDEMPOTENCY_KEY="race",
                )
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert Shipment.objects.count() == 1
    assert [r.status_code for r in responses] == [201] * 4
    assert len({r.content for r in responses}) == 1
    assert sum(r.has_header("Idempotent-Replayed") for r in responses) == 3


def test_the_schema_and_its_reference_page_are_served(client: Client) -> None:
    schema = client.get("/api/v1/schema/?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/checkpoints/" in paths
    assert "/api/v1/shipments/{reference}/dispatch/" in paths
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()


def test_api_key_issue_prints_a_working_key(capsys: Any) -> None:
    call_command("api_key_issue", "Scanner fleet", "--scope", "events:write")
    raw = capsys.readouterr().out.strip()
    assert raw.startswith("tsk_")
    key = ApiKey.objects.get()
    assert key.scopes == ["events:write"]
    assert raw not in key.secret_hash
    assert client(raw).get("/api/v1/shipments/").status_code == 403


def test_stored_responses_are_purged_after_a_day(api: APIClient) -> None:
    from tracksop.services import idempotency_records_purge

    api.post("/api/v1/shipments/", NEW, format="json", HTTP_IDEMPOTENCY_KEY="old")
    api.post(
        "/api/v1/shipments/",
        {**NEW, "order_number": "B"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="new",
    )
    IdempotencyRecord.objects.filter(key="old").update(
        created_at=timezone.now() - timedelta(hours=25)
    )
    assert idempotency_records_purge() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]


def test_a_wrong_key_costs_what_a_right_one_does(
    api_key_for: IssueApiKey, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    """No timing tells an unknown prefix from a wrong secret: both are one
    indexed look-up and one constant-time compare of two SHA-256 digests."""
    key, raw = api_key_for()
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())
    for attempt in (raw, raw[:-3] + "xyz", "tsk_00000000_" + "a" * 32):
        with django_assert_num_queries(1):
            api_key_check(attempt)


def test_head_needs_the_scope_get_needs(api_key_for: IssueApiKey) -> None:
    _, raw = api_key_for("events:write")
    assert client(raw).head("/api/v1/shipments/").status_code == 403
    _, reader = api_key_for("shipments:read", name="Reader")
    assert client(reader).head("/api/v1/shipments/").status_code == 200


@pytest.mark.parametrize(
    "path", ["/api/v1/shipments/", "/api/v1/shipments/X/checkpoints/"]
)
def test_a_request_django_cannot_read_is_a_problem_json_400(
    api_key_for: IssueApiKey, path: str
) -> None:
    # A Host header no ALLOWED_HOSTS entry matches never reaches a view.
    _, raw = api_key_for("shipments:write", "events:write")
    response = client(raw).post(
        path, {"kind": "picked_up"}, format="json", HTTP_HOST="bad host +."
    )

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["detail"] == "The request is malformed and was not read."


def test_a_page_django_cannot_read_stays_a_plain_400() -> None:
    response = Client().get("/login/", HTTP_HOST="bad host +.")

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
