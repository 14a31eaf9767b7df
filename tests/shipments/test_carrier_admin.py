"""Carrier accounts in the admin: credentials go in once, encrypted, and are
never shown back; only superusers reach them."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from pytest_django import Settings

from shipments.carriers.credentials import credentials_decrypt, credentials_encrypt
from shipments.models import Carrier, CarrierAccount
from tests.factories import CarrierFactory, OwnFleetFactory, UserFactory
from tracksop import roles

pytestmark = pytest.mark.django_db

SECRET = "s3cr3t-UPS-client-secret-0123456789"
CREDENTIALS = f'{{"client_id": "tracksop-ups", "client_secret": "{SECRET}"}}'
ADD = reverse("admin:shipments_carrieraccount_add")


def _change_url(account: CarrierAccount) -> str:
    return reverse("admin:shipments_carrieraccount_change", args=[account.pk])


@pytest.fixture
def admin_client(client: Client) -> Client:
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def ups() -> Carrier:
    return CarrierFactory()


def _form(carrier: Carrier, **fields: Any) -> dict[str, Any]:
    data = {
        "carrier": carrier.pk,
        "provider": "ups",
        "credentials_json": CREDENTIALS,
        "credentials_env": "",
        "test_mode": "on",
        "is_active": "on",
        "requests_per_minute": "120",
    }
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


def _account(carrier: Carrier, **fields: Any) -> CarrierAccount:
    values = {"client_id": "tracksop-ups", "client_secret": SECRET}
    return CarrierAccount.objects.create(
        carrier=carrier,
        provider="ups",
        credentials=credentials_encrypt(values),
        **fields,
    )


def _errors(response: Any) -> dict[str, list[str]]:
    return {k: list(v) for k, v in response.context["adminform"].form.errors.items()}


def test_an_administrator_enters_credentials_and_they_are_stored_encrypted(
    admin_client: Client, ups: Carrier
) -> None:
    response = admin_client.post(ADD, _form(ups))

    assert response.status_code == 302, _errors(response)
    account = CarrierAccount.objects.get(carrier=ups)
    assert SECRET not in account.credentials
    assert credentials_decrypt(account.credentials) == {
        "client_id": "tracksop-ups",
        "client_secret": SECRET,
    }
    assert account.state == CarrierAccount.State.UNCHECKED


def test_the_change_page_never_shows_the_stored_credentials(
    admin_client: Client, ups: Carrier
) -> None:
    admin_client.post(ADD, _form(ups))
    account = CarrierAccount.objects.get(carrier=ups)

    page = admin_client.get(_change_url(account)).content.decode()
    listing = admin_client.get(
        reverse("admin:shipments_carrieraccount_changelist")
    ).content.decode()

    for html in (page, listing):
        assert SECRET not in html
        assert "tracksop-ups" not in html
        assert account.credentials not in html  # not even encrypted
    assert "stored ✓ (last changed" in page
    assert "by root" in page


def test_credentials_the_key_no_longer_opens_are_said_to_need_entering_again(
    admin_client: Client, ups: Carrier, settings: Settings
) -> None:
    account = _account(ups)
    settings.TRACKSOP_CREDENTIALS_KEY = "a-new-key-since-they-were-stored"

    page = admin_client.get(_change_url(account)).content.decode()

    assert "but unreadable" in page
    assert "Enter them again." in page
    assert SECRET not in page


def test_leaving_the_credentials_empty_on_edit_keeps_the_stored_ones(
    admin_client: Client, ups: Carrier
) -> None:
    account = _account(ups)
    stored = account.credentials

    response = admin_client.post(
        _change_url(account),
        _form(ups, credentials_json="", requests_per_minute="30", test_mode=None),
    )

    assert response.status_code == 302, _errors(response)
    account.refresh_from_db()
    assert account.credentials == stored
    assert (account.requests_per_minute, account.test_mode) == (30, False)


def test_new_credentials_give_a_failing_account_a_fresh_try(
    admin_client: Client, ups: Carrier
) -> None:
    account = _account(
        ups, state=CarrierAccount.State.FAILING, state_message="401 Unauthorized"
    )

    response = admin_client.post(_change_url(account), _form(ups))

    assert response.status_code == 302, _errors(response)
    account.refresh_from_db()
    assert account.state == CarrierAccount.State.UNCHECKED
    assert account.state_message == ""


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ('{"client_id": "a", "client_secret": ', "Enter the credentials as a JSON"),
        ('["client_id", "a"]', "Enter the credentials as a JSON object"),
        ("{}", "Enter the credentials as a JSON object"),
        ('{"client_id": "a", "nested": {"x": 1}}', "Each credential is a name"),
        ('{"client_id": "a\\u0000", "client_secret": "b"}', "Null characters"),
        ('{"client_id": "' + "x" * 20_000 + '"}', "at most 10,000 characters"),
        ('{"client_id": "only-the-id"}', "UPS needs client_secret in the credentials"),
    ],
    ids=["broken", "list", "empty", "nested", "nul", "huge", "missing-secret"],
)
def test_bad_credentials_get_a_message_at_the_field_and_nothing_is_saved(
    admin_client: Client, ups: Carrier, typed: str, message: str
) -> None:
    response = admin_client.post(ADD, _form(ups, credentials_json=typed))

    assert response.status_code == 200
    errors = _errors(response)["credentials_json"]
    assert any(message in e for e in errors), errors
    assert not CarrierAccount.objects.exists()
    # What was typed is not echoed back either.
    if "x" * 100 not in typed:
        assert "only-the-id" not in response.content.decode()


def test_a_raw_nul_byte_is_refused_before_the_form_and_nothing_is_saved(
    admin_client: Client, ups: Carrier
) -> None:
    typed = '{"client_id": "a\x00", "client_secret": "b"}'

    response = admin_client.post(ADD, _form(ups, credentials_json=typed))

    assert response.status_code == 400
    assert not CarrierAccount.objects.exists()


def test_an_account_needs_credentials_or_an_environment_variable(
    admin_client: Client, ups: Carrier
) -> None:
    response = admin_client.post(ADD, _form(ups, credentials_json=""))

    assert response.status_code == 200
    assert "environment variable" in _errors(response)["credentials_json"][0]
    assert not CarrierAccount.objects.exists()


def test_credentials_may_come_from_an_environment_variable(
    admin_client: Client, ups: Carrier, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRACKSOP_UPS_CREDENTIALS", raising=False)
    response = admin_client.post(
        ADD,
        _form(ups, credentials_json="", credentials_env="TRACKSOP_UPS_CREDENTIALS"),
    )
    assert response.status_code == 302, _errors(response)
    account = CarrierAccount.objects.get(carrier=ups)
    assert account.credentials == ""

    page = admin_client.get(_change_url(account)).content.decode()
    assert "from environment variable <code>TRACKSOP_UPS_CREDENTIALS</code>" in page
    assert "(not set on this web server)" in page

    monkeypatch.setenv("TRACKSOP_UPS_CREDENTIALS", CREDENTIALS)
    page = admin_client.get(_change_url(account)).content.decode()
    assert "not set" not in page
    assert SECRET not in page


def test_an_environment_variable_name_is_checked(
    admin_client: Client, ups: Carrier
) -> None:
    response = admin_client.post(
        ADD, _form(ups, credentials_json="", credentials_env="UPS KEYS; rm -rf")
    )

    assert response.status_code == 200
    assert "letters, digits and underscores" in _errors(response)["credentials_env"][0]


def test_the_stored_credentials_can_be_forgotten_once_the_environment_has_them(
    admin_client: Client, ups: Carrier
) -> None:
    account = _account(ups)

    response = admin_client.post(
        _change_url(account),
        _form(
            ups,
            credentials_json="",
            credentials_env="TRACKSOP_UPS_CREDENTIALS",
            forget_credentials="on",
        ),
    )

    assert response.status_code == 302, _errors(response)
    account.refresh_from_db()
    assert (account.credentials, account.credentials_env) == (
        "",
        "TRACKSOP_UPS_CREDENTIALS",
    )


def test_our_own_fleet_cannot_get_a_carrier_account(admin_client: Client) -> None:
    fleet = OwnFleetFactory()

    response = admin_client.post(ADD, _form(fleet))

    assert response.status_code == 200
    assert "carrier" in _errors(response)
    assert not CarrierAccount.objects.exists()


def test_the_list_shows_each_accounts_state(admin_client: Client, ups: Carrier) -> None:
    _account(ups, state=CarrierAccount.State.FAILING, state_message="Bad secret")

    listing = admin_client.get(reverse("admin:shipments_carrieraccount_changelist"))

    html = listing.content.decode()
    assert "Failing" in html
    assert "stored ✓" in html


@pytest.mark.parametrize("role", [roles.SUPERVISOR, roles.MANAGER])
def test_supervisors_and_managers_cannot_open_carrier_accounts(
    client: Client, ups: Carrier, role: str
) -> None:
    account = _account(ups)
    client.force_login(UserFactory(role=role, is_staff=True))

    for url in (
        reverse("admin:shipments_carrieraccount_changelist"),
        ADD,
        _change_url(account),
    ):
        assert client.get(url).status_code == 403, url


@pytest.mark.parametrize("persona", ["staff", "cs_agent"])
def test_logistics_and_customer_service_are_sent_to_the_admin_login(
    client: Client, persona: str, request: pytest.FixtureRequest
) -> None:
    user: User = request.getfixturevalue(persona)
    client.force_login(user)

    response = client.get(reverse("admin:shipments_carrieraccount_changelist"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_carrier_syncs_are_read_only_in_the_admin(admin_client: Client) -> None:
    assert (
        admin_client.get(reverse("admin:shipments_carriersync_changelist")).status_code
        == 200
    )
    assert admin_client.get(reverse("admin:shipments_carriersync_add")).status_code == (
        403
    )
