"""What supervisors and managers do in /admin/, and what no one else may.

Supervisors and managers are staff members (is_staff) whose role group grants
the permissions of carriers, hubs, message templates and escalation rules;
users and groups stay with superusers. Logistics and customer service work
only through the staff pages.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from exceptions_mgmt.models import EscalationRule, Level, Severity
from notifications.models import Channel, Kind, MessageTemplate
from shipments.models import Carrier, Location
from tests.factories import CarrierFactory, LocationFactory, UserFactory
from tracksop import roles

pytestmark = pytest.mark.django_db

# (app_label, model_name) of what the README says supervisors edit in the admin.
SUPERVISED = [
    ("shipments", "carrier"),
    ("shipments", "location"),
    ("notifications", "messagetemplate"),
    ("exceptions_mgmt", "escalationrule"),
]
SUPERUSER_ONLY = [("auth", "user"), ("auth", "group")]


def _admin_user(role: str) -> User:
    return UserFactory(role=role, is_staff=True)


def _as(client: Client, user: User) -> Client:
    client.force_login(user)
    return client


def _url(model: tuple[str, str], view: str, *args: Any) -> str:
    return reverse(f"admin:{model[0]}_{model[1]}_{view}", args=args)


@pytest.mark.parametrize("role", [roles.SUPERVISOR, roles.MANAGER])
@pytest.mark.parametrize("model", SUPERVISED)
def test_supervisors_and_managers_open_the_models_they_edit(
    client: Client, role: str, model: tuple[str, str]
) -> None:
    _as(client, _admin_user(role))

    assert client.get(_url(model, "changelist")).status_code == 200
    assert client.get(_url(model, "add")).status_code == 200


@pytest.mark.parametrize("role", [roles.SUPERVISOR, roles.MANAGER])
@pytest.mark.parametrize("model", SUPERUSER_ONLY)
def test_supervisors_and_managers_cannot_open_users_or_groups(
    client: Client, role: str, model: tuple[str, str]
) -> None:
    _as(client, _admin_user(role))

    assert client.get(_url(model, "changelist")).status_code == 403
    assert client.get(_url(model, "add")).status_code == 403


def test_the_admin_index_offers_a_supervisor_only_what_they_may_edit(
    client: Client,
) -> None:
    index = _as(client, _admin_user(roles.SUPERVISOR)).get(reverse("admin:index"))

    assert index.status_code == 200
    models = {
        (app["app_label"], m["object_name"].lower()): m
        for app in index.context["app_list"]
        for m in app["models"]
    }
    for model in SUPERVISED:
        assert models[model]["perms"]["add"], model
        assert models[model]["perms"]["change"], model
    for model in SUPERUSER_ONLY:
        assert model not in models


@pytest.mark.parametrize("persona", ["staff", "cs_agent"])
@pytest.mark.parametrize("model", SUPERVISED)
def test_logistics_and_customer_service_are_sent_to_the_admin_login(
    client: Client, persona: str, model: tuple[str, str], request: Any
) -> None:
    _as(client, request.getfixturevalue(persona))

    response = client.get(_url(model, "changelist"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_a_supervisor_adds_a_carrier_and_a_hub(client: Client) -> None:
    _as(client, _admin_user(roles.SUPERVISOR))

    carrier = client.post(
        _url(("shipments", "carrier"), "add"),
        {
            "code": "dhl",
            "name": "DHL Express",
            "tracking_family": "dhl_express",
            "tracking_url_template": "https://www.dhl.com/track?n={number}",
            "is_active": "on",
            "push_format": "generic",  # the select's preselected default
        },
    )
    hub = client.post(
        _url(("shipments", "location"), "add"),
        {
            "code": "mad",
            "name": "Madrid hub",
            "kind": Location.Kind.HUB,
            "city": "Madrid",
            "country": "ES",
            "timezone": "Europe/Madrid",
            "is_active": "on",
        },
    )

    assert carrier.status_code == 302, carrier.context["adminform"].errors
    assert hub.status_code == 302, hub.context["adminform"].errors
    assert Carrier.objects.get(code="dhl").name == "DHL Express"
    assert Location.objects.get(code="mad").timezone == "Europe/Madrid"


def test_a_supervisor_changes_a_carrier_and_a_hub(client: Client) -> None:
    carrier = CarrierFactory(name="Old name")
    hub = LocationFactory(code="chi", name="Chicago hub", city="Chicago")
    _as(client, _admin_user(roles.SUPERVISOR))

    changed = [
        _change(client, ("shipments", "carrier"), carrier.pk, name="New name"),
        _change(client, ("shipments", "location"), hub.pk, timezone="America/Denver"),
    ]

    assert changed == [302, 302]
    carrier.refresh_from_db()
    hub.refresh_from_db()
    assert (carrier.name, hub.timezone) == ("New name", "America/Denver")


def test_a_supervisor_adds_and_changes_a_message_template(client: Client) -> None:
    _as(client, _admin_user(roles.SUPERVISOR))

    added = client.post(
        _url(("notifications", "messagetemplate"), "add"),
        {
            "kind": Kind.DELIVERED,
            "channel": Channel.SMS,
            "body_text": "Delivered: {{ shipment.shipment_id }}",
        },
    )
    assert added.status_code == 302, added.context["adminform"].errors
    template = MessageTemplate.objects.get(kind=Kind.DELIVERED, channel=Channel.SMS)

    status = _change(
        client,
        ("notifications", "messagetemplate"),
        template.pk,
        body_text="Your parcel is here.",
    )

    assert status == 302
    template.refresh_from_db()
    assert template.body_text == "Your parcel is here."


def test_a_manager_adds_and_changes_an_escalation_rule(client: Client) -> None:
    _as(client, _admin_user(roles.MANAGER))
    # Not one of the default rules of the data migration.
    wanted = {"severity": Severity.LOW, "when": EscalationRule.When.UNACKNOWLEDGED}

    added = client.post(
        _url(("exceptions_mgmt", "escalationrule"), "add"),
        {**wanted, "after": "12:00:00", "level": Level.SUPERVISORS},
    )
    assert added.status_code == 302, added.context["adminform"].errors
    rule = EscalationRule.objects.get(**wanted, level=Level.SUPERVISORS)

    status = _change(
        client, ("exceptions_mgmt", "escalationrule"), rule.pk, after="6:00:00"
    )

    assert status == 302
    rule.refresh_from_db()
    assert rule.after.total_seconds() == 6 * 3600


def _change(client: Client, model: tuple[str, str], pk: int, **changes: Any) -> int:
    """Post the change form as the page fills it in, with `changes` typed over."""
    page = client.get(_url(model, "change", pk))
    assert page.status_code == 200
    form = page.context["adminform"].form
    data: dict[str, Any] = {}
    for name in form.fields:
        value = form[name].value()
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        elif value is not None:
            data[name] = value
    data.update(changes)
    response = client.post(_url(model, "change", pk), data)
    if response.status_code != 302:
        pytest.fail(str(response.context["adminform"].errors))
    return response.status_code


def test_the_demo_supervisor_and_manager_reach_the_admin_the_others_do_not(
    client: Client,
) -> None:
    call_command("seed_demo", shipments=5, verbosity=0)
    changelist = _url(("exceptions_mgmt", "escalationrule"), "changelist")

    def status(username: str) -> int:
        client.force_login(User.objects.get(username=username))
        return client.get(changelist).status_code

    assert {name: status(name) for name in DEMO_LOGINS} == {
        "admin": 200,
        "supervisor": 200,
        "manager": 200,
        "logistics": 302,
        "cs": 302,
    }
    client.force_login(User.objects.get(username="supervisor"))
    assert client.get(_url(("auth", "user"), "changelist")).status_code == 403


DEMO_LOGINS = ["admin", "supervisor", "manager", "logistics", "cs"]
