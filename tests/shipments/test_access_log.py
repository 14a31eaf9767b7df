"""Every view of a shipment's personal data leaves a row saying who, when and
on which page, written in one INSERT; supervisors read them per shipment; the
monthly purge removes the rows past the retention period."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.storage import FileSystemStorage
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries, Settings

from exceptions_mgmt import reporting as exception_reporting
from exceptions_mgmt.models import Cause
from reports.models import Archive
from shipments.access import access_log_write
from shipments.models import AccessLog, Shipment
from tests.factories import ShipmentFactory, UserFactory, dispatched_shipment
from tracksop import roles

pytestmark = pytest.mark.django_db

INSERT = f'INSERT INTO "{AccessLog._meta.db_table}"'


def _as(client: Client, user: User) -> Client:
    client.force_login(user)
    return client


def _inserts(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if q["sql"].startswith(INSERT)]


# --- what is logged ----------------------------------------------------------


def test_opening_a_shipment_logs_who_saw_it_when_and_where(
    client: Client, cs_agent: User
) -> None:
    shipment = ShipmentFactory()
    before = timezone.now()
    response = _as(client, cs_agent).get(shipment.get_absolute_url())
    assert response.status_code == 200
    row = AccessLog.objects.get()
    assert row.user == cs_agent
    assert row.username == "cs"
    assert row.page == AccessLog.Page.SHIPMENT
    assert row.shipment == shipment
    assert row.path == shipment.get_absolute_url()
    assert before <= row.at <= timezone.now()


def test_the_edit_form_shows_the_details_and_is_logged_as_the_shipment_page(
    client: Client, staff: User
) -> None:
    shipment = ShipmentFactory()
    _as(client, staff).get(reverse("shipment-edit", args=[shipment.shipment_id]))
    row = AccessLog.objects.get()
    assert (row.username, row.page, row.shipment_id) == (
        "logistics",
        "shipment",
        shipment.pk,
    )


def test_the_exception_page_logs_the_exceptions_shipment(
    client: Client, supervisor: User
) -> None:
    shipment = dispatched_shipment()
    exception = exception_reporting.exception_report(
        shipment=shipment,
        user=supervisor,
        cause=Cause.WEATHER,
        expected_resolution=timezone.now() + timedelta(hours=6),
    )
    _as(client, supervisor).get(exception.get_absolute_url())
    row = AccessLog.objects.get()
    assert (row.user, row.page, row.shipment) == (supervisor, "exception", shipment)


def test_search_logs_every_listed_shipment_in_one_insert(
    client: Client, cs_agent: User
) -> None:
    listed = [ShipmentFactory(recipient_name=f"Pat Example {i}") for i in range(12)]
    ShipmentFactory(recipient_name="Someone Else")
    _as(client, cs_agent)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("shipment-search"), {"q": "pat example"})
    assert response.status_code == 200
    assert len(_inserts(queries)) == 1
    rows = AccessLog.objects.all()
    assert {r.shipment_id for r in rows} == {s.pk for s in listed}
    assert {(r.username, r.page, r.path) for r in rows} == {
        ("cs", "search", "/shipments/search/?q=pat+example")
    }


def test_a_search_that_finds_nothing_logs_nothing(
    client: Client, cs_agent: User
) -> None:
    ShipmentFactory(recipient_name="Pat Example")
    response = _as(client, cs_agent).get(reverse("shipment-search"), {"q": "nobody"})
    assert response.status_code == 404
    assert not AccessLog.objects.exists()


def test_an_exact_hit_is_logged_once_by_the_shipment_page_it_opens(
    client: Client, cs_agent: User
) -> None:
    shipment = ShipmentFactory()
    response = _as(client, cs_agent).get(
        reverse("shipment-search"), {"q": shipment.shipment_id}, follow=True
    )
    assert response.status_code == 200
    # django-stubs read the foreign key's id as Shipment.shipment_id (a str):
    # the column shares the code field's name.
    assert list(AccessLog.objects.values_list("page", "shipment")) == [  # type: ignore[comparison-overlap]
        ("shipment", shipment.pk)
    ]


def test_the_monitor_logs_the_shipments_on_its_page_in_one_insert(
    client: Client, cs_agent: User
) -> None:
    shown = [dispatched_shipment() for _ in range(3)]
    _as(client, cs_agent)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("monitor"))
    assert response.status_code == 200
    assert len(_inserts(queries)) == 1
    assert set(AccessLog.objects.values_list("shipment", flat=True)) == {  # type: ignore[comparison-overlap]  # as above
        s.pk for s in shown
    }
    assert set(AccessLog.objects.values_list("page", flat=True)) == {"search"}


def test_a_long_address_is_cut_to_fit_the_log(client: Client, cs_agent: User) -> None:
    ShipmentFactory(recipient_name="Pat Example")
    response = _as(client, cs_agent).get(
        reverse("shipment-search"), {"q": "pat example", "x": "y" * 1000}
    )
    assert response.status_code == 200
    assert len(AccessLog.objects.get().path) == 300


# --- who may read it ---------------------------------------------------------


def _access_url(shipment: Shipment) -> str:
    return reverse("shipment-access", args=[shipment.shipment_id])


def test_a_supervisor_reads_who_viewed_a_shipment_newest_first(
    client: Client, supervisor: User, cs_agent: User, staff: User
) -> None:
    shipment = ShipmentFactory()
    access_log_write(user=cs_agent, page="search", shipments=[shipment], path="/a")
    access_log_write(user=staff, page="shipment", shipments=[shipment.pk], path="/b")
    response = _as(client, supervisor).get(_access_url(shipment))
    assert response.status_code == 200
    rows = list(response.context["page"].object_list)
    assert [(r.username, r.page) for r in rows] == [
        ("logistics", "shipment"),
        ("cs", "search"),
    ]
    html = response.content.decode()
    assert html.count('data-testid="access-row"') == 2
    assert "Search results" in html
    assert cs_agent.get_full_name() in html


def test_the_shipment_page_links_the_log_for_supervisors_only(
    client: Client, supervisor: User, cs_agent: User
) -> None:
    shipment = ShipmentFactory()
    link = f'href="{_access_url(shipment)}"'
    assert (
        link
        in _as(client, supervisor).get(shipment.get_absolute_url()).content.decode()
    )
    assert (
        link
        not in _as(client, cs_agent).get(shipment.get_absolute_url()).content.decode()
    )


def test_managers_read_the_log_too(client: Client) -> None:
    manager = UserFactory(username="manager", role=roles.MANAGER)
    assert _as(client, manager).get(_access_url(ShipmentFactory())).status_code == 200


@pytest.mark.parametrize("persona", ["staff", "cs_agent", "outsider"])
def test_others_are_refused_the_log(
    client: Client, persona: str, request: pytest.FixtureRequest
) -> None:
    user = request.getfixturevalue(persona)
    assert _as(client, user).get(_access_url(ShipmentFactory())).status_code == 403


def test_the_log_requires_login_get_and_a_real_shipment(
    client: Client, supervisor: User
) -> None:
    url = _access_url(ShipmentFactory())
    response = client.get(url)
    assert response.status_code == 302
    assert reverse("login") in response["Location"]
    _as(client, supervisor)
    assert client.post(url).status_code == 405
    assert client.get("/shipments/SH-NOPE/access/").status_code == 404
    assert client.get(url, {"page": "999"}).status_code == 200


def test_the_log_page_is_paginated_in_a_bounded_number_of_queries(
    client: Client,
    supervisor: User,
    cs_agent: User,
    settings: Settings,
    django_assert_max_num_queries: DjangoAssertNumQueries,
) -> None:
    settings.TRACKSOP_PAGE_SIZE = 5
    shipment = ShipmentFactory()
    for _ in range(12):
        access_log_write(user=cs_agent, page="shipment", shipments=[shipment])
    _as(client, supervisor)
    # Session, user, permissions (twice); the shipment, the count, one page.
    with django_assert_max_num_queries(4 + 3):
        response = client.get(_access_url(shipment), {"page": "3"})
    assert len(response.context["page"].object_list) == 2
    assert "Page 3 of 3" in response.content.decode()


# --- how long it is kept -----------------------------------------------------


@pytest.fixture
def archives(settings: Settings, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    location = str(tmp_path / "archives")
    settings.STORAGES = {
        **settings.STORAGES,
        "reports": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": location},
        },
    }
    monkeypatch.setattr(
        Archive._meta.get_field("file"), "storage", FileSystemStorage(location)
    )
    return tmp_path / "archives"


def _viewed(shipment: Shipment, user: User, days_ago: int) -> AccessLog:
    (row,) = access_log_write(user=user, page="shipment", shipments=[shipment])
    AccessLog.objects.filter(pk=row.pk).update(
        at=timezone.now() - timedelta(days=days_ago)
    )
    return row


def test_the_purge_removes_views_older_than_the_retention_period(
    archives: Any, cs_agent: User, capsys: pytest.CaptureFixture[str]
) -> None:
    assert connection.vendor == "postgresql"
    kept = dispatched_shipment()  # still in transit: the shipment stays
    old_view = _viewed(kept, cs_agent, days_ago=800)
    recent_view = _viewed(kept, cs_agent, days_ago=30)
    purged = dispatched_shipment()
    Shipment.objects.filter(pk=purged.pk).update(
        status="delivered", last_event_at=timezone.now() - timedelta(days=800)
    )
    archived_view = _viewed(purged, cs_agent, days_ago=800)

    call_command("retention_purge", "--dry-run")
    assert "2 access-log rows older than the cut-off" in capsys.readouterr().out
    assert AccessLog.objects.count() == 3

    call_command("retention_purge")
    assert list(AccessLog.objects.values_list("pk", flat=True)) == [recent_view.pk]
    assert not AccessLog.objects.filter(pk=old_view.pk).exists()
    # The purged shipment's views went into its archive, and come back with it.
    archive = Archive.objects.get()
    assert archive.counts["shipments.accesslog"] == 1
    call_command("archive_restore", archive.file.name)
    assert AccessLog.objects.filter(pk=archived_view.pk, shipment=purged).exists()
