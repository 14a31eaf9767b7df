"""Shared personas and fixtures. The suite runs on the real PostgreSQL and Redis."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User
from pytest_django import Settings

from shipments.models import Carrier, Location
from tests.factories import LocationFactory, OwnFleetFactory, UserFactory
from tests.helpers import IssueApiKey
from tracksop import roles

if TYPE_CHECKING:
    from rest_framework.test import APIClient

    from shipments.carriers.fake.server import FakeCarrier
    from tracksop.models import ApiKey

# Playwright's sync API runs an event loop in the test thread; the ORM calls in
# live-server tests are still synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(autouse=True)
def _no_cached_template_overrides() -> None:
    """A test's rolled-back overrides must not outlive it in the shared cache."""
    from notifications.rendering import overrides_forget

    overrides_forget()


@pytest.fixture
def eager_tasks() -> Iterator[None]:
    """Celery tasks run in the process that queues them, as a worker would."""
    from tracksop.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


@pytest.fixture
def escalation_rules(db: None) -> None:
    """The default escalation rules of the data migration. A transactional
    test's flush empties the table (and --reuse-db keeps it empty), so tests
    that escalate put them back."""
    from django.apps import apps

    from exceptions_mgmt.models import EscalationRule

    default_rules = importlib.import_module(
        "exceptions_mgmt.migrations.0002_default_rules"
    )
    EscalationRule.objects.all().delete()
    default_rules.add_rules(apps, None)


@pytest.fixture
def staff(db: None) -> User:
    return UserFactory(username="logistics", role=roles.LOGISTICS)


@pytest.fixture
def cs_agent(db: None) -> User:
    return UserFactory(username="cs", role=roles.CUSTOMER_SERVICE)


@pytest.fixture
def supervisor(db: None) -> User:
    return UserFactory(username="supervisor", role=roles.SUPERVISOR)


@pytest.fixture
def outsider(db: None) -> User:
    """Signed in, but with no role."""
    return UserFactory(username="outsider")


@pytest.fixture
def own_fleet(db: None) -> Carrier:
    return OwnFleetFactory()


@pytest.fixture
def hub(db: None) -> Location:
    return LocationFactory(code="chi", name="Chicago hub", city="Chicago")


@pytest.fixture
def api_key_for(db: None) -> IssueApiKey:
    """`api_key_for(*scopes)` → (ApiKey, the plain key) of a test integration."""
    from tracksop.api_keys import api_key_issue
    from tracksop.models import Integration

    def issue(*scopes: str, name: str = "Test shop") -> tuple[ApiKey, str]:
        integration, _ = Integration.objects.get_or_create(name=name)
        return api_key_issue(
            integration=integration, name="test", scopes=list(scopes) or ALL_SCOPES
        )

    return issue


@pytest.fixture
def api(api_key_for: IssueApiKey) -> APIClient:
    """A DRF test client holding a key with every scope."""
    from rest_framework.test import APIClient

    _, raw = api_key_for()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


ALL_SCOPES = ["shipments:read", "shipments:write", "events:write", "webhooks:manage"]


@pytest.fixture
def fake_carrier(settings: Settings) -> Iterator[FakeCarrier]:
    """The local fake of the carriers' tracking APIs (shipments.carriers.fake),
    on a free port, with every provider's requests pointed at it."""
    from shipments.carriers.fake.server import FakeCarrier

    with FakeCarrier() as fake:
        settings.TRACKSOP_CARRIER_API_URLS = fake.api_urls()
        yield fake
