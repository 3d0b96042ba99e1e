"""Tests for the bearer-token check of incoming notifications (NRF-signed JWTs)."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from subscriber.errors import SubscriberError
from subscriber.ingress.bearer import BearerRefused, BearerVerifier, load_public_key
from tests.support.certs import Pem, make_ca


@pytest.fixture(scope="module")
def nrf(tmp_path_factory: pytest.TempPathFactory) -> Pem:
    """The NRF's key and (self-signed) certificate, like free5GC's nrf.pem."""
    return make_ca(tmp_path_factory.mktemp("nrf"), "nrf")


@pytest.fixture(scope="module")
def rogue(tmp_path_factory: pytest.TempPathFactory) -> Pem:
    """Someone else's key."""
    return make_ca(tmp_path_factory.mktemp("rogue"), "rogue")


def _now() -> int:
    return int(time.time())


def _token(key: Pem, *, alg: str = "RS512", **claims: object) -> str:
    body = {"iss": "", "sub": "amf-1", "aud": "", "scope": "nnef-callback", "exp": _now() + 600}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return "Bearer " + jwt.encode(body, key.private_key, algorithm=alg)


def test_a_token_signed_by_the_nrf_with_the_scope_passes(nrf: Pem) -> None:
    """An RS512 token like free5GC's NRF issues, read from the NRF certificate, is accepted."""
    verifier = BearerVerifier(load_public_key(nrf.cert), scope="nnef-callback")
    verifier.verify(_token(nrf))
    verifier.verify(_token(nrf, alg="RS256", scope="nnef-callback other"))


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (None, "required"),
        ("", "required"),
        ("Basic dXNlcjpwYXNz", "required"),
        ("Bearer", "required"),
        ("Bearer not.a.jwt", "not valid"),
    ],
)
def test_no_bearer_token_is_refused(nrf: Pem, header: str | None, why: str) -> None:
    """A missing, empty or malformed Authorization header is a 401."""
    with pytest.raises(BearerRefused, match=why) as refused:
        BearerVerifier(load_public_key(nrf.cert)).verify(header)
    assert not refused.value.insufficient_scope


def test_forged_tokens_are_refused(nrf: Pem, rogue: Pem) -> None:
    """Signed by another key, unsigned (alg none), HMAC with the public key, expired, or without
    exp: each is refused."""
    verifier = BearerVerifier(load_public_key(nrf.cert))
    public_pem = nrf.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = {"scope": "nnef-callback", "exp": _now() + 600}
    forged = [
        _token(rogue),
        "Bearer " + jwt.encode(claims, None, algorithm="none"),
        "Bearer " + _hs256(claims, public_pem).decode(),
        _token(nrf, exp=_now() - 3600),
        _token(nrf, exp=None),
        _token(nrf, exp="soon"),
    ]
    for header in forged:
        with pytest.raises(BearerRefused):
            verifier.verify(header)


def test_a_valid_token_without_the_scope_is_forbidden(nrf: Pem) -> None:
    """The right signature but not the configured scope: refused as insufficient scope (403)."""
    verifier = BearerVerifier(load_public_key(nrf.cert), scope="nnef-callback")
    for scope in ("namf-evts", "", "nnef-callbackx"):
        with pytest.raises(BearerRefused) as refused:
            verifier.verify(_token(nrf, scope=scope))
        assert refused.value.insufficient_scope


def test_the_key_file_may_be_a_public_key_and_must_be_pem(nrf: Pem, tmp_path: Path) -> None:
    """A bare public key works too; a file that is neither gives one clear error."""
    public = tmp_path / "nrf.pub"
    public.write_bytes(
        nrf.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    BearerVerifier(load_public_key(public)).verify(_token(nrf))
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(SubscriberError, match="not a PEM"):
        load_public_key(tmp_path / "junk.pem")
    with pytest.raises(SubscriberError, match="bearer_key_file"):
        load_public_key(tmp_path / "missing.pem")


def _hs256(claims: dict[str, object], secret: bytes) -> bytes:
    """An HS256 token keyed with the NRF's public key: the classic algorithm-confusion forgery."""
    import base64
    import hashlib
    import hmac

    import orjson

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signing = b64(b'{"alg":"HS256","typ":"JWT"}') + b"." + b64(orjson.dumps(claims))
    return signing + b"." + b64(hmac.new(secret, signing, hashlib.sha256).digest())
