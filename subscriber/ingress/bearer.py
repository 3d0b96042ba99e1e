"""OAuth2 bearer tokens on incoming notifications, checked against the NRF's key.

Some cores send an access token with each notification (OAI does; free5GC does not, except an
NRF-self-signed one with an empty scope on NF-status notifications: nrf v1.4.5
processor/access_token.go). Where the
core does, ``receiver.bearer_key_file`` turns the check on: every callback must carry
``Authorization: Bearer <JWT>`` signed by the NRF (RS256/RS384/RS512: free5GC's NRF signs
RS512 with the key of its ``nrf.pem``), not expired, and with ``receiver.bearer_scope`` among
its space-separated scopes when that is set. This is the check free5GC's own servers make
(free5gc/openapi ``oauth/oauth.go`` VerifyOAuth: signature and scope), plus ``exp``, which they
do not enforce.

A verified token is remembered until it expires, so a core that reuses its token (they all do,
until it nears expiry) costs one RSA verification, not one per callback.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from subscriber.errors import SubscriberError

_ALGORITHMS = ["RS256", "RS384", "RS512"]
_LEEWAY_S = 60  # clocks of the NRF and ours may differ a little
_CACHE_MAX = 4096


class BearerRefused(SubscriberError):
    """Raised when a callback's bearer token is missing, invalid or lacks the scope.

    ``insufficient_scope`` tells 403 (a valid token without the scope) from 401 (no valid token).
    """

    def __init__(self, detail: str, *, insufficient_scope: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.insufficient_scope = insufficient_scope


def load_public_key(path: Path) -> Any:
    """The public key in a PEM file: an X.509 certificate (the NRF's ``nrf.pem``) or a key.

    Raises:
        SubscriberError: the file cannot be read or holds neither.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SubscriberError(f"receiver.bearer_key_file {path}: {exc.strerror}") from exc
    try:
        if b"BEGIN CERTIFICATE" in data:
            return x509.load_pem_x509_certificate(data).public_key()
        return load_pem_public_key(data)
    except ValueError as exc:
        raise SubscriberError(
            f"receiver.bearer_key_file {path}: not a PEM certificate or public key"
        ) from exc


class BearerVerifier:
    """Checks the ``Authorization`` header of each callback.

    Args:
        public_key: the NRF's public key (:func:`load_public_key`).
        scope: a scope the token must include; empty: any scope.
    """

    def __init__(self, public_key: Any, *, scope: str = "") -> None:
        self._key = public_key
        self._scope = scope
        self._verified: dict[str, float] = {}  # token -> until when it is accepted

    def verify(self, authorization: str | None) -> None:
        """Accept or refuse one ``Authorization`` header value.

        Raises:
            BearerRefused: no bearer token, a bad signature, an expired token, or no scope.
        """
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise BearerRefused("a bearer token is required")
        accepted_until = self._verified.get(token)
        if accepted_until is not None and time.time() < accepted_until:
            return
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=_ALGORITHMS,
                leeway=_LEEWAY_S,
                options={"require": ["exp"], "verify_aud": False, "verify_iat": False},
            )
        except jwt.ExpiredSignatureError:
            raise BearerRefused("the bearer token has expired") from None
        except jwt.InvalidTokenError:
            raise BearerRefused("the bearer token is not valid") from None
        if self._scope and self._scope not in str(claims.get("scope", "")).split():
            raise BearerRefused(
                f"the bearer token's scope lacks {self._scope}", insufficient_scope=True
            )
        if len(self._verified) >= _CACHE_MAX:
            self._verified.clear()
        self._verified[token] = float(claims["exp"]) + _LEEWAY_S
