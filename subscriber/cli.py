"""The ``subscriber`` console script: parses arguments, configures logging, hands over.

Each subcommand names the function that runs it as ``module:function``, and the type of its
options (:mod:`subscriber.options`) when it has any; the module is imported only when that
subcommand runs, so ``subscriber --help`` stays fast and light. A handler is called as
``handler(settings, options)``, or ``handler(settings)`` for a command without options.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from subscriber import options as o
from subscriber.errors import SubscriberError
from subscriber.logs import configure_logging, mask_text
from subscriber.settings import load_settings

Handler = Callable[..., Any]


def _resolve(target: str) -> Handler:
    module, _, name = target.partition(":")
    handler: Handler = getattr(importlib.import_module(module), name)
    return handler


def _command(
    sub: argparse._SubParsersAction[Any],
    name: str,
    target: str,
    help_: str,
    options: type | None = None,
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_, description=help_)
    parser.set_defaults(target=target, options_type=options)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The whole command line, in one place."""
    parser = _Parser(prog="subscriber", description=__doc__)
    parser.add_argument("--config", type=Path, help="TOML settings file (or SUBSCRIBER_CONFIG).")
    parser.add_argument("-v", "--verbose", action="store_true", help="Log at debug level.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    stack = sub.add_parser("stack", help="Local Kafka, Temporal and PowerDNS: up, down, status.")
    stack_sub = stack.add_subparsers(dest="stack_command", required=True, metavar="ACTION")
    _command(stack_sub, "up", "subscriber.stack.cli:up", "Start (or reuse) the local stack.")
    _command(stack_sub, "down", "subscriber.stack.cli:down", "Stop what the project started.")
    _command(stack_sub, "status", "subscriber.stack.cli:status", "Health of each service.")
    env = _command(
        stack_sub,
        "env",
        "subscriber.stack.cli:env",
        "Print SUBSCRIBER_* variables for the stack.",
        o.StackEnvOptions,
    )
    env.add_argument("--export", action="store_true", help="Prefix each line with 'export'.")
    _command(
        stack_sub,
        "build",
        "subscriber.stack.cli:build",
        "Build (or find cached) the free5GC NRF and FerretDB the tests run (needs Go).",
    )

    fake = _command(
        sub,
        "fakecore",
        "subscriber.fakes.core.server:run",
        "Run the free5GC-faithful fake core.",
        o.FakeCoreOptions,
    )
    fake.add_argument("--host", default="127.0.0.1", help="Address to bind.")
    fake.add_argument("--port", type=port, default=8000, help="Port (0 picks a free one).")
    fake.add_argument("--ues", type=int, default=0, help="UEs registered at start.")
    fake.add_argument("--mode", choices=["free5gc", "notify"], default="free5gc")
    fake.add_argument("--no-oauth", action="store_true", help="Serve without OAuth2.")

    demo = _command(
        sub,
        "demo",
        "subscriber.demo:run",
        "The edge-relocation scenario, end to end.",
        o.DemoOptions,
    )
    demo.add_argument(
        "--timeout", dest="timeout_s", type=float, default=90, help="Seconds to wait for the move."
    )
    demo.add_argument(
        "--deployed",
        action="store_true",
        help="Start nothing: run against the deployment the settings name (compose's worker).",
    )
    demo.add_argument(
        "--steering",
        choices=["dns", "traffic_influence"],
        default="dns",
        help="How the client's traffic follows the move: its DNS name, or AF traffic influence "
        "through the fake core's NEF and user plane (docs/relocation.md).",
    )
    demo.add_argument(
        "--prewarm",
        action="store_true",
        help="Pre-warming on, after commuters taught the predictor tower 1 -> tower 2: the app "
        "is ready on edge-2 before the UE roams, and the move only steers (docs/prewarm.md).",
    )
    _command(sub, "consume", "subscriber.app.consumer:main", "Decide on events and signal moves.")
    _command(sub, "track", "subscriber.app.tracker:main", "Subscribe to and poll the 5G core.")
    serve = _command(
        sub,
        "serve",
        "subscriber.app.receiver:main",
        "Receive core callbacks (h2c, HTTP/1.1).",
        o.ServeOptions,
    )
    serve.add_argument(
        "--registry",
        metavar="MODULE:FUNCTION",
        help="Returns the known-subscription registry (default: the subscription state file).",
    )

    health = _command(
        sub,
        "check",
        "subscriber.health:check",
        "Exit 0 when each dependency answers a real call.",
        o.CheckOptions,
    )
    health.add_argument(
        "--what",
        nargs="+",
        action="extend",
        choices=["kafka", "temporal", "powerdns", "receiver"],
        help="What to check (default: all).",
    )
    health.add_argument(
        "--timeout", dest="timeout_s", type=float, default=3.0, help="Seconds allowed per check."
    )
    docs = _command(
        sub,
        "docs",
        "subscriber.docsgen:run",
        "Regenerate the generated docs (configuration.md, openapi.yaml).",
        o.DocsOptions,
    )
    docs.add_argument("--dir", type=Path, default=Path("docs"), help="The docs directory.")
    docs.add_argument("--check", action="store_true", help="Only report stale files (exit 1).")

    _command(sub, "worker", "subscriber.app.worker:main", "Run the Temporal relocation worker.")
    emco = _command(
        sub, "emco-fake", "subscriber.fakes.emco:serve", "Run a fake EMCO API.", o.EmcoFakeOptions
    )
    emco.add_argument("--host", default="127.0.0.1", help="Address to bind.")
    emco.add_argument("--port", type=port, default=9015, help="Port.")
    emco.add_argument("--app", default="demo", help="App placed at start.")
    emco.add_argument("--instance", default="demo-1", help="Its instance.")
    emco.add_argument("--cluster", default="edge1", help="Cluster it is placed on.")

    policy = sub.add_parser("policy", help="Topology and relocation policy files: check.")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    check = _command(
        policy_sub,
        "check",
        "subscriber.decide.cli:check",
        "Validate a topology (and policy) file and print a summary; exit 1 with every problem.",
        o.PolicyCheckOptions,
    )
    check.add_argument(
        "file", type=Path, nargs="?", help="Topology YAML (default: policy.topology_file)."
    )
    check.add_argument("--policy", type=Path, help="Policy YAML (default: policy.policy_file).")
    check.add_argument(
        "--instances", type=Path, help="Instances YAML (default: act.instances_file)."
    )

    rec = _command(
        sub,
        "record",
        "subscriber.sre.record:run",
        "Copy events (or raw callbacks) to a recording.",
        o.RecordOptions,
    )
    rec.add_argument("--output", "-o", type=Path, required=True, help="Recording to write.")
    rec.add_argument("--topic", help="Topic to copy (default: kafka.events_topic).")
    rec.add_argument("--since", help="ISO time: from the first record at or after it.")
    rec.add_argument("--until", help="ISO time: up to the last record at or before it.")
    rec.add_argument("--offsets", help="START:END offsets in every partition (END excluded).")
    rec.add_argument("--ue", action="append", help="Keep this SUPI/GPSI/UE key (repeatable).")
    rec.add_argument("--cell", action="append", help="Keep CELL, TAC:CELL or TAC: (repeatable).")
    rec.add_argument(
        "--from-capture", type=Path, nargs="+", help="Receiver capture files or directories."
    )

    rep = _command(
        sub, "replay", "subscriber.sre.replay:run", "Send a recording again.", o.ReplayOptions
    )
    rep.add_argument("file", type=Path, help="Recording or receiver capture file.")
    rep.add_argument(
        "--to",
        choices=["receiver", "kafka"],
        default="receiver",
        help="receiver: raw callbacks over HTTP; kafka: events onto --topic.",
    )
    rep.add_argument("--url", help="Receiver base URL (default: receiver.public_url).")
    rep.add_argument("--http", choices=["2", "1.1"], default="2", help="2: h2c prior knowledge.")
    rep.add_argument("--topic", help="Kafka topic (default: kafka.events_topic).")
    rep.add_argument("--speed", default="1", help="1 real time, N times faster, 0/max no wait.")
    rep.add_argument("--start", help="ISO time, or +S seconds after the recording's start.")
    rep.add_argument("--end", help="ISO time, or +S seconds after the recording's start.")
    rep.add_argument("--ue", action="append", help="Only this UE key (repeatable).")
    rep.add_argument("--loop", type=int, default=1, help="Play the recording N times.")
    rep.add_argument(
        "--concurrency", type=int, default=256, help="Requests (so UEs) in flight (receiver)."
    )
    rep.add_argument("--connections", type=int, default=4, help="h2c connections (receiver).")
    rep.add_argument("--json", type=Path, help="Also write the summary as JSON here.")
    rep.add_argument("--no-progress", action="store_true", help="No progress bar.")

    sim = _command(
        sub,
        "simulate",
        "subscriber.sre.simulate:run",
        "Seeded mobility of N UEs.",
        o.SimulateOptions,
    )
    sim.add_argument("--topology", type=Path, help="Topology YAML (default: the example).")
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--ues", type=int, default=10)
    sim.add_argument("--duration", type=float, default=600.0, help="Virtual seconds.")
    sim.add_argument("--pedestrian-dwell", type=float, default=120.0, help="Mean s per cell.")
    sim.add_argument("--vehicle-dwell", type=float, default=30.0, help="Mean s per cell.")
    sim.add_argument("--vehicle-share", type=float, default=0.3)
    sim.add_argument("--oscillation", type=float, default=0.2, help="P(border flips) per move.")
    sim.add_argument("--first-imsi", type=int, default=208930000000001)
    sim.add_argument("--report-interval", type=float, default=0.0, help="Periodic reports (s).")
    sim.add_argument(
        "--model",
        choices=["wander", "commute", "walk"],
        default="wander",
        help="Cell to cell (wander), zone routes out and back (commute), random zones (walk).",
    )
    sim.add_argument("--routes", type=int, default=6, help="commute: how many routes.")
    sim.add_argument(
        "--to",
        choices=["fake-amf", "receiver", "recording"],
        default="recording",
        help="The fake AMF's control API, LOCATION_REPORT callbacks, or a file (-o).",
    )
    sim.add_argument("--url", help="Fake core (fake-amf) or receiver base URL.")
    sim.add_argument("--correlation-id", default="sim-1", help="notifyCorrelationId / path key.")
    sim.add_argument("--output", "-o", type=Path, help="Recording to write (--to recording).")
    sim.add_argument("--callbacks", action="store_true", help="Record raw callbacks, not events.")
    sim.add_argument("--start", help="ISO time of virtual zero in a recording.")
    sim.add_argument("--speed", default="1", help="1 real time, N times faster, 0/max no wait.")

    sha = _command(
        sub,
        "shadow",
        "subscriber.sre.whatif:run",
        "What-if policies over a recording.",
        o.ShadowOptions,
    )
    sha.add_argument("recording", type=Path, help="Recording or receiver capture file.")
    sha.add_argument("--policy", type=Path, required=True, help="Policy A.")
    sha.add_argument("--policy-b", type=Path, help="Policy B, compared with A.")
    sha.add_argument(
        "--topology", type=Path, help="Topology (default: policy.topology_file, else an error)."
    )
    sha.add_argument("--instances", type=Path, help="Instances file (default: act.instances_file).")
    sha.add_argument("--app", action="append", help="Without instances: apps each UE runs.")
    sha.add_argument("--html", type=Path, help="Write the HTML report here.")
    sha.add_argument("--json", type=Path, help="Write the JSON summary here (default: stdout).")
    sha.add_argument(
        "--ue", action="append", help="UE key to follow in detail (repeatable; default: one)."
    )
    sha.add_argument("--flip-window", type=float, default=600.0, help="A-B-A within S seconds.")
    sha.add_argument("--clear-ids", action="store_true", help="Show UE keys, not pseudonyms.")
    sha.add_argument("--workers", type=int, help="Processes sharing the UEs (default: cores, <=4).")

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand and return its exit code.

    Every error the user can fix is one line on stderr and a non-zero exit, never a traceback:
    2 for settings and arguments, 1 for a failure the command reports, 70 for a bug (whose
    traceback ``-v`` shows).
    """
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
        if args.verbose:
            settings.log.level = "debug"
        configure_logging(settings.log)
    except ValidationError as exc:
        for line in settings_errors(exc):
            _say(line)
        return 2
    except SubscriberError as exc:
        _say(str(exc))
        return 2
    try:
        handler = _resolve(args.target)
        if args.options_type is None:
            result = handler(settings)
        else:
            result = handler(settings, o.from_namespace(args.options_type, args))
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
    except SubscriberError as exc:
        _say(str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: one line for the user, the traceback only with -v
        _say(f"unexpected {type(exc).__name__}: {exc} (run with -v for the traceback)")
        if args.verbose:
            traceback.print_exc()
        return 70
    return int(result or 0)


def settings_errors(exc: ValidationError) -> list[str]:
    """One line per invalid setting: where, what is wrong, and the value given."""
    lines = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"])
        given = error.get("input")
        shown = f" (got {given!r})" if isinstance(given, int | float | str) else ""
        lines.append(f"invalid setting {where}: {error['msg']}{shown}")
    return lines


def _say(message: str) -> None:
    """One line on stderr; identities in it are masked like in the logs."""
    text = " ".join(message.split())
    print(f"subscriber: {mask_text(text)}", file=sys.stderr)


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line (and exit 2) instead of usage text."""

    def error(self, message: str) -> NoReturn:
        _say(f"{self.prog}: {message}")
        raise SystemExit(2)


def port(text: str) -> int:
    """An argparse type: a TCP port, 0 to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65_535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (0 to 65535)")
    return value
