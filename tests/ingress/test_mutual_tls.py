"""Mutual TLS and bearer tokens: the receiver as server, the SBI client as client.

Certificates are made in the test (tests/support/certs.py): one CA for the deployment, a rogue
CA nobody trusts, and an NRF key that signs the bearer tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import httpx
import jwt
import pytest

from subscriber.errors import CoreUnavailable
from subscriber.fakes.core import FakeCoreServer
from subscriber.ingress.nrf import NrfClient, sbi_ssl_context
from subscriber.settings import CoreSettings, Settings, to_env
from subscriber.stack.procs import free_port
from tests.support.callbacks import JSON, amf_body
from tests.support.certs import Pem, issue, make_ca
from tests.support.kafka import read_to_end
from tests.support.problems import check_answer
from tests.support.processes import ACCEPT_ANY


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Pem]:
    """A deployment CA with a server and a client certificate, a rogue CA, and an NRF key."""
    d = tmp_path_factory.mktemp("pki")
    ca, rogue = make_ca(d, "ca"), make_ca(d, "rogue-ca")
    return {
        "ca": ca,
        "server": issue(ca, d, "server", server=True),
        "client": issue(ca, d, "client", server=False),
        "rogue-client": issue(rogue, d, "rogue-client", server=False),
        "nrf": make_ca(d, "nrf"),
    }


def _client_context(pki: dict[str, Pem], cert: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki["ca"].cert)
    if cert is not None:
        context.load_cert_chain(pki[cert].cert, pki[cert].key)
    return context


def _token(key: Pem, scope: str) -> str:
    claims = {"sub": "amf", "scope": scope, "exp": int(time.time()) + 600}
    return jwt.encode(claims, key.private_key, algorithm="RS512")


@contextlib.asynccontextmanager
async def _serve_tls(settings: Settings, log_file: Path) -> AsyncIterator[str]:
    """``subscriber serve`` with TLS on a free port; yields its https base URL."""
    port = free_port()
    settings = settings.model_copy(
        update={"receiver": settings.receiver.model_copy(update={"port": port})}
    )
    with log_file.open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "subscriber", "serve", "--registry", ACCEPT_ANY,
            env={**os.environ, **to_env(settings)}, stdout=log, stderr=log,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.returncode is None, f"serve exited; see {log_file}"
            assert time.monotonic() < deadline, "serve did not listen"
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            await asyncio.sleep(0.1)
        yield f"https://127.0.0.1:{port}"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 30)


@pytest.mark.stack
async def test_receiver_wants_a_client_certificate_and_a_bearer_token(
    stack_settings: Settings, pki: dict[str, Pem], tmp_path: Path
) -> None:
    """With receiver.tls_ca and bearer_key_file, only a client with a certificate of the CA and
    a token the NRF signed, with the scope, gets 204; nothing of the others reaches Kafka."""
    settings = stack_settings.model_copy(
        update={
            "receiver": stack_settings.receiver.model_copy(
                update={
                    "tls_cert": pki["server"].cert,
                    "tls_key": pki["server"].key,
                    "tls_ca": pki["ca"].cert,
                    "bearer_key_file": pki["nrf"].cert,
                    "bearer_scope": "nnef-callback",
                }
            )
        }
    )
    good = {**JSON, "authorization": f"Bearer {_token(pki['nrf'], 'nnef-callback')}"}
    async with _serve_tls(settings, tmp_path / "serve.log") as base:
        for cert in (None, "rogue-client"):
            async with httpx.AsyncClient(verify=_client_context(pki, cert), http2=True) as http:
                # TLS 1.3 sends the refusal after the handshake: it surfaces at the first read,
                # as httpx's error or as the ssl module's own.
                with pytest.raises((httpx.TransportError, ssl.SSLError)):
                    await http.post(
                        f"{base}/callbacks/amf/loc-1", content=amf_body(9, 9), headers=good
                    )
        async with httpx.AsyncClient(verify=_client_context(pki, "client"), http2=True) as http:
            refused = {
                401: [
                    JSON,
                    {**JSON, "authorization": f"Bearer {_token(pki['ca'], 'nnef-callback')}"},
                ],
                403: [{**JSON, "authorization": f"Bearer {_token(pki['nrf'], 'namf-evts')}"}],
            }
            for status, headers_list in refused.items():
                for headers in headers_list:
                    answer = await http.post(
                        f"{base}/callbacks/amf/loc-1", content=amf_body(9, 9), headers=headers
                    )
                    check_answer(answer.status_code, dict(answer.headers), answer.content, {status})
                    assert answer.headers["www-authenticate"].startswith("Bearer error=")
            answer = await http.post(
                f"{base}/callbacks/amf/loc-1", content=amf_body(1, 1), headers=good
            )
            assert answer.status_code == 204
            assert answer.http_version == "HTTP/2"
    records = await read_to_end(settings.kafka.bootstrap_servers, settings.kafka.events_topic)
    assert [r.key for r in records] == [b"imsi-208930000000001"]


async def test_sbi_calls_present_the_client_certificate(
    pki: dict[str, Pem], tmp_path: Path
) -> None:
    """Against an NRF that wants mutual TLS, core.tls_ca/tls_cert/tls_key make registration
    work; without the client certificate, or trusting another CA, it fails."""
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=pki["ca"].cert)
    server.load_cert_chain(pki["server"].cert, pki["server"].key)
    server.verify_mode = ssl.CERT_REQUIRED
    async with FakeCoreServer(ssl_context=server) as fake:
        variants = {
            "mutual": {"tls_ca": pki["ca"].cert, **_pair(pki["client"])},
            "no client certificate": {"tls_ca": pki["ca"].cert},
            "server not trusted": {"tls_ca": pki["rogue-client"].cert, **_pair(pki["client"])},
        }
        for name, tls in variants.items():
            core = CoreSettings.model_validate(
                {"nrf_url": fake.url, "state_dir": tmp_path / name, "retry_attempts": 1, **tls}
            )
            connector = aiohttp.TCPConnector(ssl=sbi_ssl_context(core))
            async with aiohttp.ClientSession(connector=connector) as session:
                nrf = NrfClient(settings=core, session=session)
                if name == "mutual":
                    await nrf.register()
                    assert nrf.instance_id in fake.core.nrf.profiles
                else:
                    with pytest.raises(CoreUnavailable):
                        await nrf.register()


def _pair(pem: Pem) -> dict[str, Path]:
    return {"tls_cert": pem.cert, "tls_key": pem.key}
