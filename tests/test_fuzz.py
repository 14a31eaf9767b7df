"""No input answers 5xx: every page of the URLconf, GET with fuzzed query
parameters and POST with fuzzed values for every field its form shows, as a
supervisor and as an anonymous visitor. Deterministic (derandomize) and small
enough for CI; a 5xx found here is a bug to fix, not to skip."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exceptions_mgmt import reporting as exception_reporting
from exceptions_mgmt.models import Cause
from shipments.models import Inquiry, Shipment
from shipments.selectors import shipment_get, shipment_search
from tests.factories import NotificationFactory, dispatched_shipment
from tracksop.middleware import SESSION_KEY

pytestmark = pytest.mark.django_db

# Not ours to fuzz: Django's admin and login pages.
# The API is fuzzed against its schema by schemathesis (tests/api/).
SKIPPED_PREFIXES = ("admin/", "accounts/", "api/")

NASTY = [
    "",
    "\x00",
    "a\x00b",
    "%00",
    "0001-01-01",
    "9999-12-31",
    "0001-01-01T00:00",
    "9999-12-31T23:59",
    "0000-00-00",
    "2026-02-30",
    "99999999",
    "99999999999999999999999999",
    "-1",
    "-99999999",
    "1e309",
    "NaN",
    "Infinity",
    "0",
    "1",
    "me",
    "unassigned",
    "on",
    "true",
    "x" * 100_000,
    "\u202e\ufeff\u200b🚚" * 50,
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "ß\u0130\u0131ﬃ",
]
VALUES = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=40),
    st.integers().map(str),
    st.dates().map(lambda d: d.isoformat()),
)

NAME_RE = re.compile(r'name="([^"]+)"')
FORM_RE = re.compile(r'<form[^>]*method="post"', re.IGNORECASE)
# Query parameters the pages read besides their filter forms.
ZONES = ["UTC", "America/Chicago", "Pacific/Kiritimati", "Asia/Tokyo"]
KNOWN_PARAMS = ["q", "page", "older_than", "status", "channel", "next", "lang"]


def _patterns(
    resolvers: list[Any], prefix: str = ""
) -> Iterator[tuple[str, URLPattern]]:
    for entry in resolvers:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _patterns(entry.url_patterns, route)
        elif isinstance(entry, URLPattern) and entry.name:
            yield route, entry


def _urls(kwargs: dict[str, Any]) -> list[str]:
    """Every named page, its parameters filled with real codes."""
    urls = []
    for route, pattern in _patterns(get_resolver().url_patterns):
        if route.startswith(SKIPPED_PREFIXES):
            continue
        names = re.findall(r"<(?:\w+:)?(\w+)>", route)
        urls.append(reverse(pattern.name, kwargs={n: kwargs[n] for n in names}))
    return sorted(set(urls))


@pytest.fixture
def world(supervisor: User) -> dict[str, Any]:
    shipment = dispatched_shipment()
    exception = exception_reporting.exception_report(
        shipment=shipment,
        user=supervisor,
        cause=Cause.WEATHER,
        expected_resolution=timezone.now() + timedelta(hours=24),
    )
    notification = NotificationFactory(shipment=shipment)
    inquiry = Inquiry.objects.create(
        shipment=shipment,
        channel="phone",
        question="Where is it?",
        created_by=supervisor,
    )
    shipment.refresh_from_db()
    return {
        "code": shipment.shipment_id,
        "token": shipment.public_token,
        "pk": exception.pk,
        "event_id": shipment.events.order_by("id").last().pk,  # type: ignore[union-attr]
        "ref": "nope",
        "notification": notification.pk,
        "inquiry": inquiry.pk,
        "kind": "pdf",
    }


def _fields(client: Client, url: str) -> tuple[list[str], bool]:
    """The input names the page's HTML shows, and whether it has a POST form."""
    response = client.get(url)
    if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
        return [], False
    html = response.content.decode()
    names = [
        n
        for n in dict.fromkeys(NAME_RE.findall(html))
        if n not in ("csrfmiddlewaretoken",)
    ]
    return names, bool(FORM_RE.search(html))


def _assert_no_5xx(response: Any, what: str) -> None:
    assert response.status_code < 500, what


@pytest.fixture
def pages(world: dict[str, Any], supervisor: User) -> list[tuple[str, list[str], bool]]:
    client = Client()
    client.force_login(supervisor)
    # Notification pks ride on the exception pk route; resend takes its own.
    resend = reverse("notification-resend", args=[world["notification"]])
    urls = [*_urls(world), resend]
    return [(url, *_fields(client, url)) for url in urls]


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_page_answers_5xx_to_any_input(
    data: st.DataObject, pages: list[tuple[str, list[str], bool]], supervisor: User
) -> None:
    url, fields, has_form = data.draw(st.sampled_from(pages), label="page")
    client = Client(raise_request_exception=False)
    if data.draw(st.booleans(), label="signed in"):
        client.force_login(supervisor)
        # Zones either side of UTC push year 0001 and 9999 off the calendar.
        session = client.session
        session[SESSION_KEY] = data.draw(st.sampled_from(ZONES), label="zone")
        session.save()
    names = data.draw(
        st.lists(st.sampled_from(fields + KNOWN_PARAMS), max_size=4, unique=True),
        label="params",
    )
    params = {name: data.draw(VALUES, label=name) for name in names}
    _assert_no_5xx(client.get(url, params), f"GET {url} {params!r}")
    if has_form:
        form = {name: data.draw(VALUES, label=name) for name in fields}
        _assert_no_5xx(client.post(url, form), f"POST {url} {form!r}")


def test_every_page_is_fuzzed(pages: list[tuple[str, list[str], bool]]) -> None:
    """The enumeration finds the pages (so the fuzz test covers them)."""
    urls = [url for url, _, _ in pages]
    assert any(u.startswith("/shipments/") for u in urls)
    assert any(u.startswith("/t/") for u in urls)
    assert any(u.startswith("/exceptions/") for u in urls)
    assert sum(1 for _, _, form in pages if form) >= 10


# --- the specific inputs that answered 500 ------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/shipments/search/?q=%00",
        "/shipments/a%00b/",
        "/t/a%00b/",
        "/exceptions/?older_than=%00",
    ],
)
def test_a_nul_byte_anywhere_is_a_400(
    client: Client, supervisor: User, url: str
) -> None:
    client.force_login(supervisor)
    response = client.get(url)
    assert response.status_code == 400
    assert b"NUL" in response.content


def test_a_nul_byte_in_a_form_is_a_400_and_saves_nothing(
    client: Client, supervisor: User
) -> None:
    client.force_login(supervisor)
    response = client.post(reverse("shipment-create"), {"order_number": "A\x00B"})
    assert response.status_code == 400
    assert not Shipment.objects.filter(order_number__startswith="A").exists()


def test_the_selectors_take_a_nul_byte_without_a_database_error(
    supervisor: User,
) -> None:
    from django.http import Http404

    assert shipment_search(user=supervisor, query="\x00").shipments == []
    with pytest.raises(Http404):
        shipment_get(user=supervisor, code="a\x00b")


def test_an_absurd_age_filter_is_a_field_error_not_a_500(
    client: Client, supervisor: User
) -> None:
    client.force_login(supervisor)
    response = client.get(reverse("exception-queue"), {"older_than": "99999999"})
    assert response.status_code < 500
    assert "older_than" in response.context["filter"].form.errors
