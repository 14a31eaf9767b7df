"""The HTML version of a previewed email, served at its own address for the
preview page's sandboxed frame."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from shipments.models import Shipment
from tests.factories import dispatched_shipment

pytestmark = pytest.mark.django_db

FRAME_URL = reverse("template-preview-html")
SAMPLE_TRACKING_NUMBER = "1Z999AA10123456784"  # the made-up sample shipment's


def _frame(client: Client, **params: str) -> Any:
    return client.get(FRAME_URL, {"kind": "dispatched", "channel": "email", **params})


def test_the_frame_sends_anonymous_visitors_to_the_login_page(client: Client) -> None:
    response = _frame(client)

    assert response.status_code == 302
    assert response["Location"].startswith(f"{reverse('login')}?next=")


@pytest.mark.parametrize("role", ["staff", "cs_agent", "outsider"])
def test_only_supervisors_may_see_the_frame(
    client: Client, request: pytest.FixtureRequest, role: str
) -> None:
    client.force_login(request.getfixturevalue(role))

    assert _frame(client).status_code == 403


def test_the_frame_refuses_a_post(client: Client, supervisor: User) -> None:
    client.force_login(supervisor)

    assert client.post(FRAME_URL).status_code == 405


def test_the_frame_is_the_emails_html_for_this_site_only_with_no_scripts(
    client: Client, supervisor: User
) -> None:
    client.force_login(supervisor)

    response = _frame(client)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert html.startswith("<!doctype html>")
    assert f"<strong>{SAMPLE_TRACKING_NUMBER}</strong>" in html
    # Framed by the preview page only; an edited template cannot run a script
    # at this address even when it is opened on its own.
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    policy = response["Content-Security-Policy"]
    assert "sandbox" in policy
    assert "default-src 'none'" in policy
    assert "frame-ancestors 'self'" in policy


def test_the_frame_renders_a_real_shipment(client: Client, supervisor: User) -> None:
    shipment: Shipment = dispatched_shipment(order_number="ORD-40002")
    client.force_login(supervisor)

    response = _frame(client, shipment=shipment.shipment_id.lower())

    assert response.status_code == 200
    assert shipment.tracking_number
    assert shipment.tracking_number in response.content.decode()


@pytest.mark.parametrize(
    "params",
    [
        {"kind": "birthday"},
        {"channel": "sms"},
        {"kind": "escalation", "channel": "sms"},
        {"shipment": "SH-NOSUCH"},
    ],
    ids=["unknown kind", "sms has no html", "escalation by sms", "unknown shipment"],
)
def test_the_frame_answers_4xx_when_there_is_no_html_to_show(
    client: Client, supervisor: User, params: dict[str, str]
) -> None:
    client.force_login(supervisor)

    response = _frame(client, **params)

    assert response.status_code in (400, 404)
    assert b"<strong>" not in response.content


def test_the_preview_page_frames_the_html_at_that_address(
    client: Client, supervisor: User
) -> None:
    client.force_login(supervisor)

    response = client.get(
        reverse("template-preview"),
        {"kind": "dispatched", "channel": "email", "source": "file"},
    )

    assert response.status_code == 200
    framed = response.context["preview"]["frame_url"]
    assert framed.startswith(FRAME_URL + "?")
    frame = re.search(r"<iframe [^>]*>", response.content.decode())
    assert frame is not None
    assert f'src="{escape(framed)}"' in frame.group()
    assert " sandbox" in frame.group()
    assert "srcdoc" not in frame.group()
    assert client.get(framed).content.decode().startswith("<!doctype html>")
