"""Shared personas and fixtures. The suite runs on the real PostgreSQL and Redis."""

from __future__ import annotations

import os

import pytest
from django.contrib.auth.models import User

from tests.factories import LocationFactory, OwnFleetFactory, UserFactory
from tracksop import roles

# Playwright's sync API runs an event loop in the test thread; the ORM calls in
# live-server tests are still synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(autouse=True)
def _no_cached_template_overrides() -> None:
    """A test's rolled-back overrides must not outlive it in the shared cache."""
    from notifications.rendering import overrides_forget

    overrides_forget()


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
def own_fleet(db: None):  # type: ignore[no-untyped-def]
    return OwnFleetFactory()


@pytest.fixture
def hub(db: None):  # type: ignore[no-untyped-def]
    return LocationFactory(code="chi", name="Chicago hub", city="Chicago")
