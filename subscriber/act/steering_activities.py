"""The traffic-influence step's side effects: one TS 29.522 subscription per instance at the NEF.

``route`` creates the instance's subscription (its UE, its app, the DNAI) the first time and
re-routes it afterwards; a subscription the NEF no longer knows (it restarted) is created anew.
The record, with a fresh callback key, is saved *before* the NEF is asked, so a notification
racing the NEF's answer is already ours (:mod:`subscriber.influence`). ``release`` deletes it.
The UE comes from the instances registry, read at each call: the workflow's history holds only
a pseudonym. A refusal is final (non-retryable); a NEF that does not answer is retried by
Temporal, then fails the step.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from subscriber.act.nef import TrafficInfluenceClient
from subscriber.act.steering import ReleaseInput, RouteInput, SteerAct
from subscriber.decide.instances import InstanceDoc, find_instance
from subscriber.errors import CoreUnavailable, InfluenceRefused, PolicyUnavailable
from subscriber.influence import InfluenceRecord, InfluenceStore, new_callback_key, record_name
from subscriber.sbi.traffic_influence import TrafficInfluSub

log = structlog.get_logger()


class _NoNef(CoreUnavailable):
    """No NEF could be found to ask."""


class SteeringActivities:
    """The activities, bound to the NEF client, the records and the instances registry.

    Args:
        client: the NEF's traffic-influence API.
        store: our records (``core.state_dir``, shared with the receiver).
        instances_file: the registry naming each instance's UE (``act.instances_file``).
        callback_base: the receiver's public base URL.
    """

    def __init__(
        self,
        *,
        client: TrafficInfluenceClient,
        store: InfluenceStore,
        instances_file: Path | None,
        callback_base: str,
    ) -> None:
        self._client = client
        self._store = store
        self._instances = instances_file
        self._base = callback_base.rstrip("/")

    def all(self) -> list[Callable[..., Awaitable[object]]]:
        """Every activity, for the worker."""
        return [self.route, self.release]

    @activity.defn(name=SteerAct.ROUTE)
    async def route(self, inp: RouteInput) -> None:
        """Route the instance's UE traffic to ``inp.dnai``."""
        try:
            await self._route(inp)
        except InfluenceRefused as exc:
            raise ApplicationError(str(exc), type="InfluenceRefused", non_retryable=True) from exc
        except CoreUnavailable as exc:
            # Not connected, or no NEF found: the request never reached a NEF.
            unreachable = isinstance(exc.__cause__, aiohttp.ClientConnectorError) or isinstance(
                exc, _NoNef
            )
            kind = "NefUnreachable" if unreachable else "CoreUnavailable"
            raise ApplicationError(str(exc), type=kind) from exc

    @activity.defn(name=SteerAct.RELEASE)
    async def release(self, inp: ReleaseInput) -> None:
        """Delete the instance's subscription, if we hold one."""
        record = self._store.get(inp.app, inp.instance)
        if record is None:
            return
        try:
            if record.resource_uri:
                await self._client.delete(record.resource_uri)
        except InfluenceRefused as exc:
            raise ApplicationError(str(exc), type="InfluenceRefused", non_retryable=True) from exc
        except CoreUnavailable as exc:
            raise ApplicationError(str(exc), type="CoreUnavailable") from exc
        self._store.remove(record.name)

    async def _route(self, inp: RouteInput) -> None:
        record = self._store.get(inp.app, inp.instance)
        if record is not None and record.resource_uri:
            request = self._request(record, self._nef_ue(inp), inp.dnai)
            try:
                await self._client.reroute(record.resource_uri, request)
            except InfluenceRefused as exc:
                if exc.status != 404:
                    raise
                log.info("steering.recreate", subscription=record.subscription_id)
            else:
                record.dnai = inp.dnai
                self._store.save(record)
                return
        nef_ue = self._nef_ue(inp)
        record = InfluenceRecord(
            name=record_name(inp.app, inp.instance),
            callback_key=new_callback_key(),
            ue=self._ue_key(inp),
            app=inp.app,
            instance=inp.instance,
            created_s=time.time(),
        )
        self._store.save(record)
        try:
            root = await self._client.nef_root()
        except CoreUnavailable as exc:
            raise _NoNef(str(exc)) from exc
        uri, _ = await self._client.create(root, self._request(record, nef_ue, inp.dnai))
        record.api_root, record.resource_uri, record.dnai = root, uri, inp.dnai
        self._store.save(record)

    def _request(self, record: InfluenceRecord, nef_ue: str, dnai: str) -> TrafficInfluSub:
        return self._client.subscription(
            af_app_id=record.app,
            af_trans_id=record.name,
            ue=nef_ue,
            dnai=dnai,
            notification_destination=f"{self._base}/callbacks/ti/{record.callback_key}",
        )

    def _instance(self, inp: RouteInput) -> InstanceDoc:
        if self._instances is None:
            raise InfluenceRefused("act.instances_file is not set: no UE to steer", status=0)
        try:
            found = find_instance(self._instances.read_bytes(), inp.app, inp.instance)
        except (OSError, PolicyUnavailable) as exc:
            raise CoreUnavailable(f"the instances registry cannot be read: {exc}") from exc
        if found is None:
            raise InfluenceRefused(f"{inp.app}/{inp.instance} is not in the registry", status=0)
        return found

    def _ue_key(self, inp: RouteInput) -> str:
        return self._instance(inp).ue

    def _nef_ue(self, inp: RouteInput) -> str:
        found = self._instance(inp)
        if found.ue_ipv4:
            return found.ue_ipv4
        if found.ue.startswith(("msisdn-", "extid-")):
            return found.ue
        raise InfluenceRefused(
            f"{inp.app}/{inp.instance}: the registry gives its UE no ue_ipv4 and no GPSI", status=0
        )
