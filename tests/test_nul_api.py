"""A NUL byte sent to the API is refused as the API refuses anything: a 400
problem+json body (the schema fuzz test holds every answer to the schema)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.mark.django_db
def test_a_nul_byte_in_an_api_query_is_a_problem_400(api: Any) -> None:
    response = api.get("/api/v1/shipments/?status=a%00b")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == 400
    assert "NUL" in response.json()["detail"]
