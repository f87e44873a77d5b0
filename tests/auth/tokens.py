"""Token forging for the auth tests: real signatures with our own keys, or deliberately bad ones."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm

DROP = object()  # a claim value meaning "leave this claim out"


@dataclass(frozen=True)
class SigningKey:
    """An ES256 key pair with a kid, as a Supabase project publishes it."""

    kid: str
    private: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def public_jwk(self) -> dict[str, Any]:
        jwk = ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return jwk | {"kid": self.kid, "alg": "ES256", "use": "sig", "key_ops": ["verify"]}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: dict[str, Any], *, kid: str | None = None) -> str:
        return jwt.encode(claims, self.private, algorithm="ES256", headers={"kid": kid or self.kid})


def new_key() -> SigningKey:
    return SigningKey(kid=str(uuid.uuid4()))


def rsa_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def user_claims(*, issuer: str, user_id: str | None = None, **overrides: object) -> dict[str, Any]:
    """The claims Supabase Auth puts in an access token, with `overrides` applied."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": user_id or str(uuid.uuid4()),
        "aud": "authenticated",
        "exp": now + 3600,
        "iat": now,
        "email": "someone@example.com",
        "role": "authenticated",
        "aal": "aal1",
        "session_id": str(uuid.uuid4()),
        "is_anonymous": False,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not DROP}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(claims: dict[str, Any], header: dict[str, Any]) -> str:
    """A token with an arbitrary header and an empty signature (e.g. `alg: none`)."""
    head = _b64(json.dumps(header).encode())
    body = _b64(json.dumps(claims).encode())
    return f"{head}.{body}."


def hs256_with_raw_secret(claims: dict[str, Any], secret: bytes, kid: str | None) -> str:
    """HS256 over an arbitrary secret — PyJWT refuses PEM secrets, so forge the algorithm-confusion
    token (HMAC keyed with the public key PEM) by hand."""
    header: dict[str, Any] = {"alg": "HS256", "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
