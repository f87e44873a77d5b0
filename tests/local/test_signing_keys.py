"""The signing-keys file: reading what the CLI writes, the lifecycle edits, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import jwt
import pytest

from app.local import signing_keys
from app.local.keys import LocalKeys
from app.local.keys_config import KeysConfig, load_keys_config, stack_keys


def _file(tmp_path: Path, *algorithms: signing_keys.Algorithm) -> Path:
    path = tmp_path / "signing_keys.json"
    signing_keys.write_keys(path, [signing_keys.generate(a) for a in algorithms])
    return path


def _states(path: Path) -> list[str]:
    return [s.state for s in signing_keys.statuses(signing_keys.read_keys(path))]


def test_generated_keys_have_the_clis_shape(tmp_path: Path) -> None:
    for alg, kty in (("ES256", "EC"), ("RS256", "RSA")):
        jwk = signing_keys.generate(alg)  # type: ignore[arg-type]
        assert (jwk["kty"], jwk["alg"], jwk["use"], jwk["key_ops"]) == (
            kty,
            alg,
            "sig",
            ["sign", "verify"],
        )
        assert jwk["ext"] is True and "d" in jwk


def test_first_key_signs_and_every_key_is_published_public_only(tmp_path: Path) -> None:
    path = _file(tmp_path, "RS256", "ES256")
    first, second = signing_keys.read_keys(path)
    keys = LocalKeys.generate().with_signing_keys(path)

    token = keys.sign_access_token({"sub": "x", "exp": 2**31})

    header = jwt.get_unverified_header(token)
    assert (header["alg"], header["kid"]) == ("RS256", first["kid"])
    published = keys.jwks()["keys"]
    assert [k["kid"] for k in published] == [first["kid"], second["kid"]]
    assert all("d" not in k and k["key_ops"] == ["verify"] for k in published)


def test_a_token_of_a_verify_only_key_verifies(tmp_path: Path) -> None:
    path = _file(tmp_path, "ES256", "RS256")
    old = LocalKeys.generate().with_signing_keys(path)
    signing_keys.rotate(path, "ES256")  # a new key signs; the old moves down
    new = LocalKeys.generate().with_signing_keys(path)
    token = old.sign_access_token({"sub": "x", "exp": 2**31})

    assert new.kid != old.kid
    assert new.verify(token)["sub"] == "x"


def test_lifecycle_standby_in_use_previously_used_revoked(tmp_path: Path) -> None:
    path = _file(tmp_path, "RS256")
    (original,) = signing_keys.read_keys(path)

    standby = signing_keys.add_standby(path, "ES256")
    assert _states(path) == ["standby", "in use"]
    now = signing_keys.rotate(path, "ES256")
    assert now["kid"] == standby["kid"]
    assert _states(path) == ["in use", "previously used"]
    signing_keys.revoke(path, original["kid"])
    assert [k["kid"] for k in signing_keys.read_keys(path)] == [standby["kid"]]


def test_a_revoked_key_is_kept_aside_and_restore_makes_it_previously_used(tmp_path: Path) -> None:
    path = _file(tmp_path, "RS256")
    (original,) = signing_keys.read_keys(path)
    now = signing_keys.rotate(path, "ES256")
    signing_keys.revoke(path, original["kid"])

    assert [k["kid"] for k in signing_keys.read_keys(path)] == [now["kid"]]  # not published
    assert [s.state for s in signing_keys.revoked_statuses(path)] == ["revoked"]
    signing_keys.restore(path, original["kid"])
    assert _states(path) == ["in use", "previously used"]
    assert signing_keys.read_keys(path)[1]["kid"] == original["kid"]
    assert signing_keys.read_revoked(path) == []
    with pytest.raises(signing_keys.SigningKeysError, match="no revoked key"):
        signing_keys.restore(path, original["kid"])


def test_revoking_the_key_in_use_is_refused(tmp_path: Path) -> None:
    path = _file(tmp_path, "ES256")
    (only,) = signing_keys.read_keys(path)
    with pytest.raises(signing_keys.SigningKeysError, match="in use"):
        signing_keys.revoke(path, only["kid"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{}", "JSON array"),
        ("not json", "not JSON"),
        ('[{"kty": "oct", "k": "c2VjcmV0"}]', "unsupported"),
        ('[{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]', "JWK"),
    ],
)
def test_a_bad_signing_keys_file_is_one_clear_error(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "signing_keys.json"
    path.write_text(content)
    with pytest.raises(signing_keys.SigningKeysError, match=message):
        signing_keys.read_keys(path)


def test_a_file_without_a_signing_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "signing_keys.json"
    path.write_text(json.dumps([signing_keys.generate("ES256") | {"key_ops": ["verify"]}]))
    with pytest.raises(signing_keys.SigningKeysError, match="may sign"):
        signing_keys.read_keys(path)


def test_keys_config_reads_paths_relative_to_the_supabase_folder_and_env_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "supabase" / "config.toml"
    config.parent.mkdir()
    config.write_text(
        '[auth]\nsigning_keys_path = "./keys.json"\n'
        'publishable_key = "env(MY_PUBLISHABLE)"\nsecret_key = "sb_secret_mine"\n'
    )
    monkeypatch.setenv("MY_PUBLISHABLE", "sb_publishable_mine")

    loaded = load_keys_config(config)

    assert loaded == KeysConfig(
        (tmp_path / "supabase" / "keys.json").resolve(), "sb_publishable_mine", "sb_secret_mine"
    )


def test_without_a_file_the_stack_keeps_its_own_es256_key_and_the_legacy_secret(
    tmp_path: Path,
) -> None:
    first = stack_keys(tmp_path, KeysConfig())
    again = stack_keys(tmp_path, KeysConfig())

    assert first.kid == again.kid and first.algorithm == "ES256"
    assert first.secret_in_jwks
    assert jwt.get_unverified_header(first.anon_key)["alg"] == "HS256"
    assert first.verify(first.anon_key)["role"] == "anon"
