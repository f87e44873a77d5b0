"""The signing-keys file of `[auth] signing_keys_path`: a JSON array of private JWKs, exactly what
`supabase gen signing-key --algorithm ES256|RS256` writes (EC P-256 or RSA, `kid`, `key_ops`).

As the CLI's stack reads it: the first key whose `key_ops` allows `sign` signs every new token
(GoTrue takes the one key with `sign`; the CLI signs the legacy API keys with the first key), and
every key is published in the JWKS, public parts only. The lifecycle of a key follows from where
it stands in the file: the signing key is *in use*; verify-only keys listed before it are
*standby* (published, signing nothing yet); keys after it are *previously used* (their tokens
still verify); a key no longer in the file is *revoked*. `rotate` and `revoke` rewrite the file;
the stack reads it when it starts.

As on the platform, every step but deletion can be undone: `revoke` keeps the key it drops in a
sibling file (`<name>.revoked.json`, which the CLI's stack never reads), and `restore` puts it back
as previously used.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

Algorithm = Literal["ES256", "RS256"]
State = Literal["standby", "in use", "previously used", "revoked"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
_PUBLIC_MEMBERS = {"EC": ("crv", "x", "y"), "RSA": ("n", "e")}


class SigningKeysError(ValueError):
    """The file is missing, not a JSON array of usable private JWKs, or an edit is refused."""


@dataclass(frozen=True)
class KeyStatus:
    kid: str
    algorithm: str
    state: State


def algorithm_of(jwk: dict[str, Any]) -> Algorithm:
    """ES256 for an EC P-256 key, RS256 for an RSA key (the two the CLI generates)."""
    kty = jwk.get("kty")
    if kty == "EC" and jwk.get("crv") == "P-256" and jwk.get("alg", "ES256") == "ES256":
        return "ES256"
    if kty == "RSA" and jwk.get("alg", "RS256") == "RS256":
        return "RS256"
    raise SigningKeysError(f"unsupported signing key {jwk.get('kid')!r}: kty={kty!r}")


def _from_jwk(jwk: dict[str, Any]) -> Any:
    text = json.dumps(jwk)
    ec_key = algorithm_of(jwk) == "ES256"
    try:
        return ECAlgorithm.from_jwk(text) if ec_key else RSAAlgorithm.from_jwk(text)
    except (jwt.InvalidKeyError, ValueError, KeyError) as exc:
        raise SigningKeysError(f"signing key {jwk.get('kid')!r} is not a valid JWK") from exc


def private_key(jwk: dict[str, Any]) -> PrivateKey:
    key = _from_jwk(jwk)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise SigningKeysError(f"signing key {jwk.get('kid')!r} has no private part")
    return key


def public_key(jwk: dict[str, Any]) -> PublicKey:
    """The public key of a public (or private) JWK."""
    key = _from_jwk(jwk)
    if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        return key.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
    return key


def public_jwk(jwk: dict[str, Any]) -> dict[str, Any]:
    """What GoTrue publishes for a key: its public members, `use: sig`, `key_ops: [verify]`."""
    alg = algorithm_of(jwk)
    members = {name: jwk[name] for name in _PUBLIC_MEMBERS[jwk["kty"]]}
    out: dict[str, Any] = {"kty": jwk["kty"], **members, "alg": alg, "use": "sig"}
    if jwk.get("kid"):
        out["kid"] = jwk["kid"]
    if "ext" in jwk:
        out["ext"] = jwk["ext"]
    out["key_ops"] = ["verify"]
    return out


def signs(jwk: dict[str, Any]) -> bool:
    ops = jwk.get("key_ops")
    return ops is None or "sign" in ops


def read_keys(path: Path, *, may_sign: bool = True) -> list[dict[str, Any]]:
    """The file's keys, each checked to be a usable private key; at least one may sign."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise SigningKeysError(f"signing_keys_path {path} does not exist") from exc
    except ValueError as exc:
        raise SigningKeysError(f"signing_keys_path {path} is not JSON: {exc}") from exc
    if not isinstance(data, list) or not all(isinstance(k, dict) for k in data):
        raise SigningKeysError(f"signing_keys_path {path} must hold a JSON array of JWKs")
    for jwk in data:
        private_key(jwk)
    if may_sign and not any(signs(k) for k in data):
        raise SigningKeysError(f"no key in {path} may sign (key_ops without 'sign')")
    return data


def signing_index(keys: Sequence[dict[str, Any]]) -> int:
    return next(i for i, k in enumerate(keys) if signs(k))


def statuses(keys: Sequence[dict[str, Any]]) -> list[KeyStatus]:
    current = signing_index(keys)
    out = []
    for i, jwk in enumerate(keys):
        state: State = "in use" if i == current else "standby" if i < current else "previously used"
        out.append(KeyStatus(str(jwk.get("kid", "")), algorithm_of(jwk), state))
    return out


def revoked_path(path: Path) -> Path:
    """Where `revoke` keeps the keys it dropped, beside the file (never published)."""
    path = Path(path)
    return path.with_name(f"{path.stem}.revoked.json")


def read_revoked(path: Path) -> list[dict[str, Any]]:
    """The keys revoked from `path` and not restored, oldest first (none: an empty list)."""
    kept = revoked_path(path)
    return read_keys(kept, may_sign=False) if kept.exists() else []


def revoked_statuses(path: Path) -> list[KeyStatus]:
    return [
        KeyStatus(str(k.get("kid", "")), algorithm_of(k), "revoked") for k in read_revoked(path)
    ]


def generate(algorithm: Algorithm) -> dict[str, Any]:
    """A new private JWK shaped as `supabase gen signing-key` writes it."""
    key: PrivateKey
    if algorithm == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
        body: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(key))
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        body = json.loads(RSAAlgorithm.to_jwk(key))
    body.pop("key_ops", None)
    head: dict[str, Any] = {
        "kty": body.pop("kty"),
        "kid": str(uuid.uuid4()),
        "use": "sig",
        "key_ops": ["sign", "verify"],
        "alg": algorithm,
        "ext": True,
    }
    return head | body


def add_standby(path: Path, algorithm: Algorithm) -> dict[str, Any]:
    """A new verify-only key at the top of the file: published, signing nothing yet."""
    keys = read_keys(path)
    new = generate(algorithm) | {"key_ops": ["verify"]}
    write_keys(path, [new, *keys])
    return new


def rotate(path: Path, algorithm: Algorithm) -> dict[str, Any]:
    """The standby key nearest the top (else a new key) signs; the one that signed moves right
    after it, verify-only: previously used. Returns the key now in use."""
    keys = read_keys(path)
    current = signing_index(keys)
    if current > 0:
        promoted = keys[0] | {"key_ops": ["sign", "verify"]}
        rest = keys[1:current]
    else:
        promoted = generate(algorithm)
        rest = []
    previous = keys[current] | {"key_ops": ["verify"]}
    write_keys(path, [promoted, previous, *rest, *keys[current + 1 :]])
    return promoted


def revoke(path: Path, kid: str) -> None:
    """Drop a standby or previously used key: its tokens stop verifying at the next start."""
    keys = read_keys(path)
    index = next((i for i, k in enumerate(keys) if k.get("kid") == kid), None)
    if index is None:
        raise SigningKeysError(f"no key {kid!r} in {path}")
    if index == signing_index(keys):
        raise SigningKeysError(f"key {kid} is in use: rotate to another key before revoking it")
    write_keys(revoked_path(path), [*read_revoked(path), keys[index] | {"key_ops": ["verify"]}])
    write_keys(path, keys[:index] + keys[index + 1 :])


def restore(path: Path, kid: str) -> None:
    """Undo `revoke`: the key is published again, last in the file (previously used)."""
    revoked = read_revoked(path)
    index = next((i for i, k in enumerate(revoked) if k.get("kid") == kid), None)
    if index is None:
        raise SigningKeysError(f"no revoked key {kid!r} beside {path}")
    write_keys(path, [*read_keys(path), revoked[index]])
    write_keys(revoked_path(path), revoked[:index] + revoked[index + 1 :])


def write_keys(path: Path, keys: Sequence[dict[str, Any]]) -> None:
    """Replace the file at once (owner-only, as the CLI writes it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(list(keys), f, indent=2)
        f.write("\n")
    tmp.replace(path)
