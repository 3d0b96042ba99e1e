"""A Docker engine, Compose v2 and a Debian base image for the deployment test, from scratch.

This machine kind reaches Debian's mirror, PyPI, Maven Central and the Go module proxy, but no
container registry, and has no systemd. So, idempotently and cached outside the checkout:

* ``dockerd`` (Debian's docker.io, installed by scripts/bootstrap) is started when none answers,
  and stopped again only by whoever started it;
* Compose v2 is built from the Go module proxy (v2 is not packaged in Debian 12; Debian's
  docker-compose 1.29 is v1, end of life, and knows neither ``depends_on.required`` nor
  ``secrets.environment``) into ``~/.cache/subscriber/docker-compose-<version>/``;
* the base image every build starts from is made with debootstrap from the machine's Debian
  mirror and ``docker import``, tagged by Debian suite and ISO week so it follows point releases.

The whole deployment test holds one machine-wide lock: two test sessions must not start two
daemons, nor publish the same host ports. ``python -m tests.compose.engine`` prepares everything
by hand and prints the compose command to use.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from subscriber.settings import default_cache_dir

COMPOSE_VERSION = "v2.40.3"
COMPOSE_MODULE = "github.com/docker/compose/v2"
SUITE = "bookworm"
BASE_REPO = "subscriber-test/debian"
DOCKER = "/usr/bin/docker"  # Debian's CLI, the daemon's own version (docs/deployment.md)
DOCKERD = "/usr/sbin/dockerd"
IMAGE_LABEL = "org.opencontainers.image.vendor=subscriber"  # on every image the project builds


class EngineError(RuntimeError):
    """Raised when the engine, Compose or the base image cannot be made ready."""


def cache_dir() -> Path:
    """Where the compose binary, the daemon's log and the lock live."""
    path = default_cache_dir() / "docker"
    path.mkdir(parents=True, exist_ok=True)
    return path


def run(argv: list[str], *, timeout_s: float = 600, **kwargs: object) -> str:
    """Run a command; its stdout, or EngineError with the tail of what it printed."""
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout_s, check=False, **kwargs
    )  # type: ignore[call-overload]
    if done.returncode != 0:
        tail = (done.stdout[-1500:] + done.stderr[-2500:]).strip()
        raise EngineError(f"{' '.join(argv[:4])}... exited {done.returncode}: {tail}")
    return str(done.stdout)


@contextlib.contextmanager
def machine_lock() -> Iterator[None]:
    """Hold the machine-wide deployment-test lock (waits for another session to finish)."""
    with open(cache_dir() / "deployment.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _answers() -> bool:
    return (
        subprocess.run(
            [DOCKER, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=30,
            check=False,
        ).returncode
        == 0
    )


def start_dockerd(timeout_s: float = 60) -> subprocess.Popen[bytes] | None:
    """Start dockerd unless one answers; the process started, or None."""
    if not Path(DOCKERD).exists():
        raise EngineError(f"{DOCKERD} is missing: run scripts/bootstrap (installs docker.io)")
    if _answers():
        return None
    log = cache_dir() / "dockerd.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([DOCKERD], stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    while not _answers():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_dockerd(proc)
            raise EngineError(f"dockerd did not start; see {log}")
        time.sleep(0.2)
    return proc


def stop_dockerd(proc: subprocess.Popen[bytes]) -> None:
    """Stop a dockerd this module started: it stops its containers and its containerd too."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def dockerd() -> Iterator[None]:
    """A Docker daemon for the block: the running one, or one started and stopped here."""
    proc = start_dockerd()
    try:
        yield
    finally:
        if proc is not None:
            stop_dockerd(proc)


def compose_binary() -> Path:
    """Compose v2, built once per machine from the Go module proxy (about 2 min on 2 cores)."""
    target = default_cache_dir() / f"docker-compose-{COMPOSE_VERSION}" / "docker-compose"
    if target.exists():
        return target
    go = shutil.which("go")
    if go is None:
        raise EngineError("Go is needed to build Compose v2 (it is not packaged in Debian 12)")
    with tempfile.TemporaryDirectory(prefix="compose-src-") as tmp:
        info = json.loads(
            run([go, "mod", "download", "-json", f"{COMPOSE_MODULE}@{COMPOSE_VERSION}"], cwd=tmp)
        )
        # `go install module/cmd@version` refuses: compose's go.mod has exclude directives. So build
        # inside a writable copy of the module source, as its own Makefile does.
        src = Path(tmp) / "src"
        shutil.copytree(info["Dir"], src)
        for path in (src, *src.rglob("*")):
            path.chmod(path.stat().st_mode | 0o200)
        built = Path(tmp) / "docker-compose"
        version_flag = f"-X {COMPOSE_MODULE}/internal.Version={COMPOSE_VERSION}"
        run(
            [
                go,
                "build",
                "-trimpath",
                "-ldflags",
                f"-s -w {version_flag}",
                "-o",
                str(built),
                "./cmd",
            ],
            cwd=src,
            env={**os.environ, "CGO_ENABLED": "0"},
            timeout_s=1800,
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp_target = target.with_suffix(".tmp")
        shutil.copy2(built, tmp_target)
        tmp_target.replace(target)
    return target


def base_tag(today: datetime.date | None = None) -> str:
    """The base image's tag: suite and ISO week, so a new week brings Debian's updates."""
    year, week, _ = (today or datetime.date.today()).isocalendar()
    return f"{BASE_REPO}:{SUITE}-{year}w{week:02d}"


def debian_mirror(sources: Path = Path("/etc/apt")) -> str:
    """The machine's Debian mirror (the one apt uses), for debootstrap."""
    candidates = sorted(sources.glob("sources.list.d/*.sources"))
    for path in candidates:
        text = path.read_text(errors="replace")
        for stanza in text.split("\n\n"):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
            if uris and suites and SUITE in suites.group(1).split():
                return uris.group(1)
    for path in (sources / "sources.list", *sorted(sources.glob("sources.list.d/*.list"))):
        if path.exists():
            found = re.search(rf"^deb\s+(\S+)\s+{SUITE}\s", path.read_text(), re.M)
            if found:
                return found.group(1)
    return "http://deb.debian.org/debian"


def _image_exists(tag: str) -> bool:
    argv = [DOCKER, "image", "inspect", tag]
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def base_image() -> str:
    """The Debian base image for this week: reused when tagged, else made (about 30 s+)."""
    tag = base_tag()
    if _image_exists(tag):
        return tag
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise EngineError("debootstrap is missing: run scripts/bootstrap")
    with tempfile.TemporaryDirectory(prefix="subscriber-rootfs-", dir="/var/tmp") as tmp:
        root = Path(tmp) / "rootfs"
        argv = [debootstrap, "--variant=minbase", "--include=ca-certificates", SUITE, str(root)]
        run([*argv, debian_mirror()], timeout_s=1200)
        # CAs this machine trusts beyond Debian's (a TLS-intercepting proxy's, say) are trusted by
        # builds too: pip and Maven inside them reach the same registries the host does.
        local_cas = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
        if local_cas:
            for ca in local_cas:
                shutil.copy2(ca, root / "usr/local/share/ca-certificates" / ca.name)
            run(["chroot", str(root), "update-ca-certificates"])
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (root / junk).glob("*"):
                if path.is_file():
                    path.unlink()
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        try:
            run([DOCKER, "import", "-", tag], stdin=tar.stdout)
        finally:
            assert tar.stdout is not None
            tar.stdout.close()
            tar.wait()
    _drop_older_bases(tag)
    return tag


def _drop_older_bases(keep: str) -> None:
    listed = run([DOCKER, "images", BASE_REPO, "--format", "{{.Repository}}:{{.Tag}}"])
    for tag in listed.split():
        if tag != keep:
            subprocess.run([DOCKER, "rmi", tag], capture_output=True, check=False)


def prepare() -> tuple[Path, str]:
    """Compose v2 and the base image, the slow halves side by side (CPU and network).

    The caller must already run a daemon (:func:`dockerd`).
    """
    built: dict[str, Path | BaseException] = {}

    def build() -> None:
        try:
            built["compose"] = compose_binary()
        except BaseException as exc:  # re-raised in the caller's thread
            built["compose"] = exc

    thread = threading.Thread(target=build, name="compose-build")
    thread.start()
    try:
        base = base_image()
    finally:
        thread.join()
    result = built["compose"]
    if isinstance(result, BaseException):
        raise result
    return result, base


if __name__ == "__main__":
    with machine_lock():
        started = start_dockerd()
        binary, base = prepare()
    if started is not None:
        print(f"dockerd started (pid {started.pid}); stop it with: kill {started.pid}")
    print(f"export SUBSCRIBER_BASE_IMAGE={base}")
    print(
        f"{binary} -f compose/docker-compose.yml -f compose/local-images.yml up -d --build --wait"
    )
