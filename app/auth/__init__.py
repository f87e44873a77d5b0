"""Access-token verification, the service's boundary with Supabase Auth.

`bearer` parses the header, `verifier` holds `TokenVerifier` and its modes, `jwks` the public
signing keys, `claims` the rules every token meets, `cache` the verified tokens, `auth_server`
the `GET /auth/v1/user` call, and `refusal` the reasons a token is refused.
"""

from app.auth.bearer import bearer_token
from app.auth.refusal import REFUSAL_REASONS, RefusalReason, TokenRefused
from app.auth.verifier import TokenVerifier

__all__ = ["REFUSAL_REASONS", "RefusalReason", "TokenRefused", "TokenVerifier", "bearer_token"]
