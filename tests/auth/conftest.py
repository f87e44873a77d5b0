"""The verifier's own tests: tokens are minted for users no Auth holds, so the session check
(app/auth/sessions.py, tested in test_sessions.py and tests/security/test_sign_out.py) is off."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_session_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSION_CHECK_SECONDS", "0")
