"""`serve` refuses a webhook it could not sign or deliver."""

from __future__ import annotations

from pydantic import SecretStr

from app.config import service_problems
from tests.support.database import make_settings


def test_service_problems_webhook_without_secret_or_service_key_names_both() -> None:
    settings = make_settings(alert_webhook_url="https://hooks.example.com/alerts")

    refused = {problem.variable for problem in service_problems(settings)}

    assert {"ALERT_WEBHOOK_SECRET", "SUPABASE_SECRET_KEY"} <= refused


def test_service_problems_webhook_with_secret_and_service_key_is_fine() -> None:
    settings = make_settings(
        alert_webhook_url="https://hooks.example.com/alerts",
        alert_webhook_secret=SecretStr("s3cret-s3cret"),
        supabase_service_role_key=SecretStr("service-key"),
    )

    refused = {problem.variable for problem in service_problems(settings)}

    assert not refused & {"ALERT_WEBHOOK_SECRET", "SUPABASE_SECRET_KEY"}
