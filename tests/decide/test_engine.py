"""The holders: load the files, swap in valid changes, keep the running version otherwise."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from subscriber.decide.bundle import Bundle
from subscriber.decide.engine import InstancesHolder, PolicyHolder, read_bundle
from subscriber.errors import PolicyUnavailable
from subscriber.settings import PolicySettings
from tests.support.policy import EXAMPLE_POLICY, EXAMPLE_TOPOLOGY

_tick = [1_700_000_000]


def _write(path: Path, text: str) -> None:
    """Write a file with a fresh mtime, so the change is seen however coarse the clock is."""
    path.write_text(text)
    _tick[0] += 10
    os.utime(path, ns=(_tick[0] * 10**9, _tick[0] * 10**9))


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    """A writable copy of the example topology and policy."""
    topology, policy = tmp_path / "topology.yaml", tmp_path / "policy.yaml"
    _write(topology, EXAMPLE_TOPOLOGY.read_text())
    _write(policy, EXAMPLE_POLICY.read_text())
    return topology, policy


def _settings(files: tuple[Path, Path]) -> PolicySettings:
    return PolicySettings(topology_file=files[0], policy_file=files[1], reload_interval_s=3600)


async def test_loads_on_enter_and_swaps_valid_changes(files: tuple[Path, Path]) -> None:
    """A valid change replaces the bundle and notifies the listener with (old, new)."""
    changes: list[tuple[Bundle | None, Bundle]] = []
    async with PolicyHolder(
        _settings(files), on_change=lambda old, new: changes.append((old, new))
    ) as holder:
        first = holder.bundle
        assert first.version == read_bundle(*files).version
        assert await holder.reload() is False
        _write(files[1], EXAMPLE_POLICY.read_text().replace("cooldown_s: 60", "cooldown_s: 90"))
        assert await holder.reload() is True
        assert holder.bundle.version != first.version
        assert holder.bundle.rules.stateless.cooldown_s == 90
    assert changes == [(None, first), (first, holder.bundle)]


async def test_invalid_change_keeps_the_running_version(files: tuple[Path, Path]) -> None:
    """A broken file is logged with its problems, once, and the old bundle stays in use."""
    async with PolicyHolder(_settings(files)) as holder:
        before = holder.bundle
        _write(files[0], EXAMPLE_TOPOLOGY.read_text().replace("zone: zone-tower-3\n", "zone: z9\n"))
        with capture_logs() as logs:
            assert await holder.reload() is False
            assert await holder.reload() is False
        assert holder.bundle is before
        assert len(logs) == 1
        assert logs[0]["log_level"] == "warning"
        assert logs[0]["version"] == before.version
        (problem,) = logs[0]["problems"]
        assert problem.startswith(f"{files[0]}:")
        assert problem.endswith(": clusters[2].zone: unknown zone 'z9'")
        _write(files[0], EXAMPLE_TOPOLOGY.read_text().replace("latency_ms: 9", "latency_ms: 8"))
        assert await holder.reload() is True
        assert holder.bundle.topology.latency_ms["zone-tower-1"]["edge-2"] == 10


async def test_missing_file_keeps_the_running_version(files: tuple[Path, Path]) -> None:
    """A file that disappears is a rejected reload, not a crash."""
    async with PolicyHolder(_settings(files)) as holder:
        before = holder.bundle
        files[1].unlink()
        with capture_logs() as logs:
            assert await holder.reload() is False
        assert holder.bundle is before
        assert "cannot read" in logs[0]["problems"][0]


async def test_cosmetic_change_keeps_the_version(files: tuple[Path, Path]) -> None:
    """A comment-only edit is read but does not count as a new version."""
    changes: list[object] = []
    async with PolicyHolder(_settings(files), on_change=lambda o, n: changes.append(n)) as holder:
        before = holder.bundle
        _write(files[1], "# reviewed\n" + EXAMPLE_POLICY.read_text())
        assert await holder.reload() is False
        assert holder.bundle is before
    assert len(changes) == 1


async def test_invalid_files_at_start_fail_loudly(files: tuple[Path, Path]) -> None:
    """With nothing valid to keep, entering raises PolicyUnavailable with the problems."""
    _write(files[1], "capacity: {max_utilisation: 2}\n")
    with pytest.raises(PolicyUnavailable, match=r"capacity\.max_utilisation"):
        async with PolicyHolder(_settings(files)):
            pass


async def test_no_topology_file_configured() -> None:
    """Without settings.policy.topology_file there is nothing to run on."""
    holder = PolicyHolder(PolicySettings())
    with pytest.raises(PolicyUnavailable, match="topology_file is not set"):
        async with holder:
            pass
    with pytest.raises(PolicyUnavailable, match="no valid topology"):
        _ = holder.bundle


def test_policy_file_is_optional(files: tuple[Path, Path]) -> None:
    """Without a policy file the defaults apply (same version as the example policy's values)."""
    assert read_bundle(files[0]).version == read_bundle(*files).version


async def test_background_reload_picks_up_a_change(files: tuple[Path, Path]) -> None:
    """With a short interval, the holder swaps in an edited file on its own."""
    settings = PolicySettings(topology_file=files[0], policy_file=files[1], reload_interval_s=0.01)
    async with PolicyHolder(settings) as holder:
        before = holder.bundle
        _write(files[1], EXAMPLE_POLICY.read_text().replace("window_s: 600", "window_s: 300"))
        for _ in range(1000):  # bounded wait for the loop; no assertion on how long it took
            if holder.bundle is not before:
                break
            await asyncio.sleep(0.01)
        assert holder.bundle.rules.stateless.ping_pong_s == 300


async def test_the_instances_file_is_reloaded_and_a_bad_one_refused(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    """A valid change to the instances file replaces the registry; one naming an unknown cluster
    is refused, and the running registry stays."""
    path = tmp_path / "instances.yaml"
    _write(
        path,
        "instances:\n  - {ue: imsi-208930000000001, app: ar-guide, instance: a, cluster: edge-1}\n",
    )
    async with (
        PolicyHolder(_settings(files)) as policy,
        InstancesHolder(path, policy=policy, interval_s=3600) as registry,
    ):
        assert [i.instance for i in registry.current.of("imsi-208930000000001")] == ["a"]
        _write(
            path,
            "instances:\n"
            "  - {ue: imsi-208930000000002, app: ar-guide, instance: b, cluster: edge-2}\n",
        )
        assert await registry.reload()
        assert registry.current.owner("ar-guide", "b") == "imsi-208930000000002"
        _write(
            path,
            "instances:\n"
            "  - {ue: imsi-208930000000003, app: ar-guide, instance: c, cluster: nope}\n",
        )
        with capture_logs() as logs:
            assert not await registry.reload()
        assert registry.current.owner("ar-guide", "b") == "imsi-208930000000002"
        assert any("rejected" in entry["event"] for entry in logs)
