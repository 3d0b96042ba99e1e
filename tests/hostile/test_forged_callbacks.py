"""Forged callbacks against ``subscriber serve`` and the real subscription registry.

Subscriptions are made by the real subscription manager at the fake core (AMF, SMF and NEF); the
receiver process reads them from the state file, as in production. Every forgery, on a guessed
key or on a valid one, must be refused and leave nothing on the events topic: the topic is read,
not only the status.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
import pytest

from subscriber.events import decode_event
from subscriber.fakes.core import ExternalNrf, FakeCoreServer
from subscriber.ingress.nrf import NrfClient
from subscriber.ingress.subscriptions import SubscriptionManager, SubscriptionRecord
from subscriber.settings import Settings
from subscriber.stack.free5gc import RealNrf
from tests.support.callbacks import JSON, amf_body
from tests.support.kafka import read_to_end
from tests.support.problems import check_answer
from tests.support.processes import serving

REGISTRY = "subscriber.ingress.subscriptions:registry_for"
FORGED_UE = "imsi-208936660000001"


def _amf(correlation: str | None, supi: str, **report: Any) -> bytes:
    doc = orjson.loads(amf_body(1, 7))
    if correlation is None:
        del doc["notifyCorrelationId"]
    else:
        doc["notifyCorrelationId"] = correlation
    doc["reportList"][0].update({"supi": supi, **report})
    return orjson.dumps(doc)


def _smf(notif_id: str, supi: str) -> bytes:
    return orjson.dumps(
        {
            "notifId": notif_id,
            "eventNotifs": [
                {
                    "event": "UP_PATH_CH",
                    "timeStamp": None,
                    "supi": supi,
                    "targetDnai": "mec",
                    "dnaiChgType": "EARLY",
                    "sourceTraRouting": {"dnai": ""},
                    "targetTraRouting": {"dnai": "mec"},
                }
            ],
        }
    )


def _nef(link: str, msisdn: str) -> bytes:
    return orjson.dumps(
        {
            "subscription": link,
            "monitoringEventReports": [
                {
                    "monitoringType": "LOCATION_REPORTING",
                    "msisdn": msisdn,
                    "eventTime": "2026-07-01T08:15:30.123456789Z",
                    "locationInfo": {"plmnId": "208-93", "trackingAreaId": "00000A"},
                }
            ],
        }
    )


@pytest.mark.stack
async def test_forged_callbacks_are_refused_and_nothing_reaches_kafka(
    stack_settings: Settings, real_nrf: RealNrf, tmp_path: Path
) -> None:
    """Guessed keys (the old deterministic ones, random ones, another kind's, a truncated one)
    get 404; valid keys with a body naming another subscription get 400; only the three genuine
    callbacks reach the events topic, and no dead letter carries a callback key."""
    settings = stack_settings
    async with (
        FakeCoreServer(
            ues=1, mode="notify", nrf=ExternalNrf(real_nrf.url, real_nrf.certificate)
        ) as fake,
        aiohttp.ClientSession() as session,
    ):
        core = settings.core.model_copy(
            update={
                "nrf_url": fake.nrf_url,
                "amf_tracking": "notify",
                "nef_targets": ["msisdn-33611223344"],
                "retry_attempts": 2,
            }
        )
        nrf = NrfClient(settings=core, session=session)
        async with (
            SubscriptionManager(
                settings=core, nrf=nrf, callback_base="http://127.0.0.1:9"
            ) as manager,
            serving(settings, tmp_path / "serve.log", registry=REGISTRY) as served,
            httpx.AsyncClient(http2=True, http1=False, timeout=10) as http,
        ):
            await manager.reconcile()
            rec: dict[str, SubscriptionRecord] = {r.kind: r for r in manager.records.values()}
            amf, smf, nef = rec["amf"], rec["smf"], rec["nef"]
            assert amf.subscription_id
            assert nef.resource_uri

            def url(kind: str, key: str) -> str:
                return f"{served.base}/callbacks/{kind}/{key}"

            guessed = [
                (url("amf", amf.key), _amf(amf.key, FORGED_UE)),
                (url("amf", secrets.token_urlsafe(24)), _amf(amf.key, FORGED_UE)),
                (url("amf", smf.callback_key), _amf(amf.key, FORGED_UE)),
                (url("amf", amf.callback_key[:-1]), _amf(amf.key, FORGED_UE)),
                (url("smf", smf.key), _smf(smf.key, FORGED_UE)),
                (url("nef", nef.subscription_id or ""), _nef(nef.resource_uri, "33699999999")),
            ]
            foreign = [
                (url("amf", amf.callback_key), _amf(smf.key, FORGED_UE)),
                (url("amf", amf.callback_key), _amf(None, FORGED_UE)),
                (url("amf", amf.callback_key), _amf(amf.key, FORGED_UE, subscriptionId="999")),
                (url("smf", smf.callback_key), _smf(amf.key, FORGED_UE)),
                (url("nef", nef.callback_key), _nef(nef.resource_uri + "0", "33699999999")),
            ]
            for target, body in guessed:
                answer = await http.post(target, content=body, headers=JSON)
                check_answer(answer.status_code, dict(answer.headers), answer.content, {404})
            for target, body in foreign:
                answer = await http.post(target, content=body, headers=JSON)
                check_answer(answer.status_code, dict(answer.headers), answer.content, {400})
                assert answer.json()["invalidParams"][0]["reason"].startswith("does not match")
            genuine = [
                (url("amf", amf.callback_key), _amf(amf.key, "imsi-208930000000001")),
                (url("smf", smf.callback_key), _smf(smf.key, "imsi-208930000000002")),
                (url("nef", nef.callback_key), _nef(nef.resource_uri, "33611223344")),
            ]
            for target, body in genuine:
                answer = await http.post(target, content=body, headers=JSON)
                assert answer.status_code == 204, answer.text
            await http.get(f"{served.base}/healthz")
        keys = [r.callback_key for r in rec.values()]
    bootstrap = settings.kafka.bootstrap_servers
    events = [
        decode_event(r.value) for r in await read_to_end(bootstrap, settings.kafka.events_topic)
    ]
    assert sorted(e.ue.key() for e in events) == [
        "imsi-208930000000001",
        "imsi-208930000000002",
        "msisdn-33611223344",
    ]
    letters = [r.value for r in await read_to_end(bootstrap, settings.kafka.dead_letter_topic)]
    assert len(letters) == len(guessed) + len(foreign)
    reasons = sorted(orjson.loads(v)["reason"] for v in letters)
    assert reasons == ["foreign_body"] * len(foreign) + ["unknown_subscription"] * len(guessed)
    assert not any(key.encode() in v for key in keys for v in letters)
