"""schemathesis fuzzes every operation of the live schema (as the app serves
it at /api/v1/schema/): no input may give a 5xx, and every response must
match the schema (status code, content type, headers, body)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from pytest_django import Settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.factories import dispatched_shipment
from tests.helpers import IssueApiKey

# Generating the schema needs no database: it is read from the code.
schema = schemathesis.openapi.from_wsgi(
    "/api/v1/schema/?format=json", get_wsgi_application()
)


@pytest.fixture
def api_headers(
    db: None, api_key_for: IssueApiKey, settings: Settings
) -> Iterator[dict[str, str]]:
    settings.TRACKSOP_API_RATE = "100000/min"
    # Something to find: fuzzed references sometimes name a real shipment.
    dispatched_shipment(shipment_id="SH-FUZZ0001")
    _, raw = api_key_for()
    # As Django's test client does: requests share the test's transaction.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield {"Authorization": f"Bearer {raw}"}
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_input_gives_a_5xx_or_an_undocumented_answer(
    case: Any, api_headers: dict[str, str]
) -> None:
    # Left out: "a schema-valid request is accepted". Our rules go beyond what
    # a schema says (a real country code, a phone number that exists, a date
    # after the shipment was made, a move the status machine allows), so a
    # schema-valid request may rightly get a 400, 409 or 422.
    case.call_and_validate(
        headers=api_headers, excluded_checks=[positive_data_acceptance]
    )
