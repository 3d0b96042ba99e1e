"""Build the control-plane binaries once per machine, from the Go module proxy, keyed by version.

``go install`` refuses kube-apiserver and etcd (their go.mod files replace sibling modules), so
each lives in a small wrapper module under ``go/`` whose go.mod pins the versions and whose
go.sum is committed. The binaries go to ``<cache>/k8s-<versions>/bin`` and are never committed.
A cold build takes about 8 minutes on 2 cores (most of it kube-apiserver); a warm one nothing.

Several processes may ask at once (``scripts/bootstrap`` starts the build in the background,
then the test session's fixture asks for the same binaries): a file lock makes the later ones
wait for the first build instead of starting their own.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

from subscriber.errors import StackError

KUBERNETES = "v1.36.3"
KWOK = "v0.8.0"
ETCD = "v3.6.8"

# Without these the apiserver reports v0.0.0-master at /version (hack/lib/version.sh upstream).
_VERSION_FLAGS = " ".join(
    f"-X {pkg}.{key}={value}"
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
    for key, value in (
        ("gitVersion", KUBERNETES),
        ("gitMajor", KUBERNETES.split(".")[0].lstrip("v")),
        ("gitMinor", KUBERNETES.split(".")[1]),
        ("gitTreeState", "clean"),
    )
)

# module directory under go/ -> (packages, extra -ldflags)
MODULES: dict[str, tuple[tuple[str, ...], str]] = {
    "control-plane": (
        (
            "k8s.io/kubernetes/cmd/kube-apiserver",
            "k8s.io/kubernetes/cmd/kube-controller-manager",
            "k8s.io/kubernetes/cmd/kube-scheduler",
        ),
        _VERSION_FLAGS,
    ),
    "kwok": (("sigs.k8s.io/kwok/cmd/kwok",), ""),
    "etcd": (("go.etcd.io/etcd/server/v3",), ""),
}

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


def binaries_dir(cache_dir: Path) -> Path:
    """Where the binaries of the pinned versions live (they may not be built yet)."""
    return cache_dir / f"k8s-{KUBERNETES}-kwok-{KWOK}-etcd-{ETCD}" / "bin"


def _inputs_digest(src: Path) -> str:
    """What the build depends on besides the versions: the wrapper modules and the flags."""
    h = hashlib.sha256(_VERSION_FLAGS.encode())
    for path in sorted(src.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(src).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def is_built(cache_dir: Path) -> bool:
    """Whether the binaries of the pinned versions are in the cache, complete."""
    bin_dir = binaries_dir(cache_dir)
    marker = bin_dir.parent / "complete"
    with resources.as_file(resources.files(__package__).joinpath("go")) as src:
        digest = _inputs_digest(src)
    return (
        marker.exists()
        and marker.read_text().split()[0] == digest
        and all((bin_dir / name).exists() for name in BINARIES)
    )


def ensure_binaries(cache_dir: Path, *, echo: bool = False) -> Path:
    """Build the binaries unless they are cached; wait for a build another process started.

    Args:
        cache_dir: the project's download and build cache (``stack.cache_dir``).
        echo: print one line when the build starts and one when it ends.

    Returns:
        The directory that holds etcd, kube-apiserver, kube-controller-manager, kube-scheduler
        and kwok.

    Raises:
        StackError: Go is missing or a build failed; the message ends with the build log's tail.
    """
    bin_dir = binaries_dir(cache_dir)
    if is_built(cache_dir):
        return bin_dir
    bin_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(bin_dir.parent / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not is_built(cache_dir):
            _build(bin_dir, echo=echo)
    return bin_dir


def _build(bin_dir: Path, *, echo: bool) -> None:
    go = shutil.which("go")
    if go is None:
        raise StackError(
            "go not found: the Kubernetes test clusters are built with Go >= 1.26 "
            "(https://go.dev/doc/install)"
        )
    root = bin_dir.parent
    work = root / "src"
    shutil.rmtree(work, ignore_errors=True)
    with resources.as_file(resources.files(__package__).joinpath("go")) as src:
        # A copy: the package may sit in a read-only site-packages, and go must not write there.
        shutil.copytree(src, work)
        digest = _inputs_digest(src)
    staging = root / "bin.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly"}
    log_path = root / "build.log"
    started = time.monotonic()
    if echo:
        print(f"kubernetes: building {', '.join(BINARIES)} into {bin_dir} (log: {log_path})")
    with open(log_path, "w") as log:
        # One go build per module, all at once: the Go build cache is safe to share, and the
        # small modules fill the cores while kube-apiserver links.
        procs = [
            subprocess.Popen(
                [go, "build", "-ldflags", f"-s -w {flags}".strip(), "-o", f"{staging}/", *pkgs],
                cwd=work / module,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            for module, (pkgs, flags) in MODULES.items()
        ]
        codes = [p.wait() for p in procs]
    if any(codes):
        tail = log_path.read_text(errors="replace")[-2000:]
        raise StackError(f"building the Kubernetes binaries failed; {log_path} ends:\n{tail}")
    # go build names a binary after its package path, skipping a major-version suffix ("/v3").
    (staging / "server").rename(staging / "etcd")
    shutil.rmtree(bin_dir, ignore_errors=True)
    staging.rename(bin_dir)
    elapsed = time.monotonic() - started
    (root / "complete").write_text(f"{digest} built in {elapsed:.0f} s\n")
    shutil.rmtree(work, ignore_errors=True)
    if echo:
        print(f"kubernetes: built in {elapsed:.0f} s")


def main() -> None:
    """``python -m subscriber.stack.kubernetes.build [CACHE_DIR]``: what scripts/bootstrap runs."""
    from subscriber.settings import default_cache_dir

    cache = Path(sys.argv[1]) if len(sys.argv) > 1 else default_cache_dir()
    try:
        ensure_binaries(cache, echo=True)
    except StackError as exc:
        print(f"kubernetes: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
