"""What a failed delivery leaves in the alert row, which its user may read."""

from __future__ import annotations

import httpx
import pytest

from app.alerts.delivery import stored_error


@pytest.mark.parametrize(
    ("failure", "stored"),
    [
        (httpx.ConnectError("Cannot connect to host 10.1.2.3:51451 ssl:default"), "ConnectError"),
        (httpx.ReadTimeout("timed out talking to hooks.internal.example:8443"), "ReadTimeout"),
        (503, "HTTP 503"),
    ],
)
def test_stored_error_of_a_failed_delivery_names_the_kind_never_the_webhook_host(
    failure: httpx.HTTPError | int, stored: str
) -> None:
    assert stored_error(failure) == stored
