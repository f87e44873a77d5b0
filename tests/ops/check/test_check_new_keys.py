"""`chat-stream check` with only the 2026 keys, against the local stack's gateway.

Needs the gateway that maps the CLI's fixed `sb_` keys (branch `localsplit`); before it the key
checks get 401 "Invalid API key".
"""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from app.config import Settings
from app.ops.check import collect

pytestmark = pytest.mark.slow

PUBLISHABLE = "sb_publishable_ACJWlzQHlZjBrEguHvfOxg_3BJgxAaH"
SECRET = "sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz"


def test_check_with_only_the_2026_keys_passes_the_key_and_signing_checks(
    project: Settings,
) -> None:
    settings = project.model_copy(
        update={
            "supabase_anon_key": SecretStr(""),
            "supabase_service_role_key": SecretStr(""),
            "supabase_publishable_key": SecretStr(PUBLISHABLE),
            "supabase_secret_key": SecretStr(SECRET),
        }
    )
    results = {r.name: r for r in collect(settings)}

    assert results["publishable key"].line() == (
        "ok   publishable key: SUPABASE_PUBLISHABLE_KEY (sb_pub…) accepted by the project's "
        "API gateway"
    )
    assert results["secret key"].line() == (
        "ok   secret key: SUPABASE_SECRET_KEY (sb_sec…) accepted for an admin read"
    )
    signing = results["signing keys"]
    assert signing.status == "ok"
    assert "read from a throwaway user's sign-in" in signing.detail
    assert all(
        PUBLISHABLE[:7] not in r.detail and SECRET[:7] not in r.detail for r in results.values()
    )
