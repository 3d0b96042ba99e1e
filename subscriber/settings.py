"""The one settings object.

Values come, highest priority first, from keyword arguments, environment variables prefixed
``SUBSCRIBER_`` (nested groups joined by ``__``, e.g. ``SUBSCRIBER_KAFKA__BOOTSTRAP_SERVERS``),
secret files named the same way in ``SUBSCRIBER_SECRETS_DIR`` (default ``/run/secrets``, where
Docker and Compose mount secrets: ``/run/secrets/subscriber_log__pseudonym_key``), an optional TOML
file named by ``SUBSCRIBER_CONFIG`` or ``--config``, then the defaults below.
Only :func:`load_settings` reads the environment; everything else receives a built object.
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from subscriber.errors import SubscriberError

# Bounds checked when settings are built: a bad value is one clear message at start, not a
# receiver that never publishes (publish_timeout_ms = 0) or a traceback from a socket call.
_DAY_S = 86_400.0
Port = Annotated[int, Field(ge=1, le=65_535)]
ListenPort = Annotated[int, Field(ge=0, le=65_535)]  # 0: the system picks one (tests)
Seconds = Annotated[float, Field(gt=0, le=_DAY_S)]
Seconds0 = Annotated[float, Field(ge=0, le=_DAY_S)]
Millis = Annotated[int, Field(gt=0, le=3_600_000)]
Millis0 = Annotated[int, Field(ge=0, le=60_000)]
Size = Annotated[int, Field(ge=1, le=1 << 40)]
Count = Annotated[int, Field(ge=1, le=1 << 31)]
Index = Annotated[int, Field(ge=0, le=1 << 31)]
Workers = Annotated[int, Field(ge=1, le=256)]

ENV_PREFIX = "SUBSCRIBER_"
CONFIG_ENV = "SUBSCRIBER_CONFIG"
SECRETS_DIR_ENV = "SUBSCRIBER_SECRETS_DIR"
DEFAULT_SECRETS_DIR = "/run/secrets"


class SettingsFileError(SubscriberError):
    """Raised when the config file named by ``--config`` or ``SUBSCRIBER_CONFIG`` is unusable."""


def default_cache_dir() -> Path:
    """Where downloads and local-stack data live: outside any checkout, shared by clones."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "subscriber"


class _Group(BaseModel):
    # The string under each field is its description, in the configuration reference too.
    model_config = ConfigDict(use_attribute_docstrings=True)


class LogSettings(_Group):
    """How the process logs."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    """Lowest level logged."""
    format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto: pretty on a terminal, JSON lines otherwise."
    )
    pseudonym_key: str = Field(
        "",
        description="Secret key of the HMAC that replaces SUPI/GPSI/IP values in logs (16+ "
        "characters); serve, track and consume refuse to start without one.",
    )
    insecure_pseudonyms: bool = Field(
        False,
        description="Development only: accept an empty, example or short pseudonym key "
        "(pseudonyms in logs are then reversible).",
    )
    traces: Literal["off", "console", "otlp"] = Field(
        "off",
        description="Where OpenTelemetry spans go: off (context still propagates, nothing is "
        "recorded), console (stdout), otlp (HTTP to otlp_endpoint; needs the otlp extra).",
    )
    otlp_endpoint: str = "http://127.0.0.1:4318/v1/traces"
    """OTLP collector for traces when log.traces is otlp."""


class KafkaSettings(_Group):
    """Where normalized events, decisions and dead letters go."""

    bootstrap_servers: str = "127.0.0.1:9092"
    """Kafka brokers, host:port, comma-separated."""
    events_topic: str = "subscriber.events.v1"
    """Normalized location events, keyed by UE."""
    dead_letter_topic: str = "subscriber.dead-letter.v1"
    """Rejected callbacks and undecodable records, with the reason."""
    decisions_topic: str = "subscriber.decisions.v1"
    """Every decision with its reasons (the audit trail), keyed by app."""
    state_topic: str = Field(
        "subscriber.ue-state.v1",
        description="Compacted changelog of per-UE consumer state, co-partitioned with events.",
    )
    outcomes_topic: str = Field(
        "subscriber.outcomes.v1",
        description="What became of each relocation request, written by the workflow, keyed by UE "
        "and co-partitioned with events; the consumer reads it.",
    )
    consumer_group: str = "subscriber-act"
    """Consumer group of 'subscriber consume'."""
    linger_ms: Millis0 = 2
    """How long the producer waits to fill a batch."""
    compression: Literal["none", "gzip", "lz4", "zstd", "snappy"] = "snappy"
    """Producer compression codec. Snappy by default: about 15 times less CPU than gzip for half
    its ratio (docs/performance.md); every Kafka client reads all five."""
    request_timeout_ms: Millis = 10_000
    """Producer and admin request timeout."""
    publish_timeout_ms: Millis = Field(
        2_000,
        description="How long the receiver waits for the broker's ack before spooling the events "
        "locally instead; keep it well under the 5G core's 10 s client timeout.",
    )


class TemporalSettings(_Group):
    """The Temporal frontend the consumer signals and the worker polls."""

    address: str = "127.0.0.1:7233"
    """Temporal frontend, host:port."""
    namespace: str = "default"
    """Temporal namespace of the relocation workflows."""
    task_queue: str = "subscriber-relocation"
    """Task queue the worker polls and the consumer signals."""


class PowerDnsSettings(_Group):
    """The authoritative DNS server the relocation workflow steers."""

    api_url: str = "http://127.0.0.1:8081"
    """PowerDNS HTTP API base URL."""
    api_key: str = "subscriber-local"
    """PowerDNS API key (X-API-Key)."""
    server_id: str = "localhost"
    """PowerDNS server id in API paths."""
    dns_host: str = "127.0.0.1"
    """Where the authoritative server answers DNS (to confirm a switch)."""
    dns_port: Port = 53
    """Its DNS port."""
    zone: str = "edge.test."
    """Zone holding the apps' records ({instance}.{app}.{zone})."""
    record_ttl_s: Count = 5
    """TTL of the apps' A records: short, so clients follow a move."""


class ReceiverSettings(_Group):
    """The callback receiver (h2c prior knowledge and HTTP/1.1 on one port)."""

    host: str = "127.0.0.1"
    """Address the receiver binds."""
    port: ListenPort = 8800
    """Port the receiver binds (h2c prior knowledge and HTTP/1.1)."""
    public_url: str | None = Field(
        None, description="Callback base URL given to the core; defaults to http://host:port."
    )
    workers: Workers = 1
    """granian worker processes sharing the port."""
    max_body_bytes: Size = 1_048_576
    """Largest callback body accepted; more gets 413."""
    tls_cert: Path | None = None
    """PEM certificate: serve TLS with ALPN h2 and http/1.1."""
    tls_key: Path | None = None
    """PEM private key of tls_cert."""
    tls_ca: Path | None = Field(
        None,
        description="PEM CA bundle: with tls_cert/tls_key, every client must present a "
        "certificate it signed (mutual TLS).",
    )
    bearer_key_file: Path | None = Field(
        None,
        description="PEM certificate or public key of the NRF: when set, every callback must "
        "carry a bearer token it signed (for cores that send one; free5GC does not).",
    )
    bearer_scope: str = Field(
        "", description="A scope the callback's bearer token must include; empty: any scope."
    )
    spool_dir: Path = Field(default_factory=lambda: default_cache_dir() / "spool")
    """Local spool for events Kafka cannot take yet (fsync'ed)."""
    spool_max_bytes: Size = 256 * 1_048_576
    """Spool bound; past it callbacks get 503 with Retry-After."""
    dead_letter_max_bytes: Size = 65_536
    """How much of a rejected body the dead-letter record keeps."""
    dead_letter_spool_max_bytes: Size = Field(
        4 * 1_048_576,
        description="Spool budget of dead letters while Kafka is away, apart from the events' "
        "(refused bodies never take their room); past it dead letters are dropped and counted.",
    )
    capture_dir: Path | None = Field(
        None, description="When set, every raw callback is also appended here for replay."
    )


class CoreSettings(_Group):
    """How the daemon finds and talks to the 5G core (NRF, AMF, SMF, NEF)."""

    nrf_url: str | None = None
    """NRF apiRoot: registration, OAuth2 tokens, discovery."""
    oauth: bool = True
    """Request OAuth2 tokens from the NRF (on by default in free5GC)."""
    nf_instance_id: str | None = Field(
        None, description="UUID v4 of this AF; generated and kept in state_dir when unset."
    )
    amf_url: str | None = Field(None, description="Static AMF apiRoot for cores without NRF.")
    smf_url: str | None = None
    """Static SMF apiRoot for cores without NRF."""
    nef_url: str | None = None
    """Static NEF apiRoot for cores without NRF."""
    poll_interval_s: Seconds = 1.0
    """How often the poller asks each AMF for every UE's location."""
    subscription_ttl_s: Count = 3600
    """Requested lifetime of event subscriptions; renewed before."""
    state_dir: Path = Field(default_factory=lambda: default_cache_dir() / "state")
    """Where subscriptions, poller state and the NF instance id persist."""
    amf_tracking: Literal["poll", "notify", "both"] = Field(
        "both",
        description="poll: anyUE one-shot polls (free5GC never notifies); notify: a long-lived "
        "LOCATION_REPORT subscription; both: the two, deduplicated by the diff.",
    )
    poll_provide_loc_info: bool = Field(
        False, description="Also ask Namf_Location provide-loc-info for each tracked SUPI."
    )
    poll_max_backoff_s: Seconds = 30.0
    """Longest wait between retries while the core fails."""
    instance_index: Index = Field(0, description="This daemon's index among instance_count.")
    instance_count: Count = Field(1, description="Daemons splitting the AMFs between them.")
    renew_before_s: Seconds = Field(
        60.0, description="Renew a subscription this long before it expires (at most ttl/2)."
    )
    request_timeout_s: Seconds = 5.0
    """Timeout of each SBI request."""
    retry_attempts: Count = 4
    """Attempts per SBI request before giving up."""
    tls_ca: Path | None = Field(
        None, description="PEM CA bundle that https SBI servers (NRF, AMF, ...) must chain to."
    )
    tls_cert: Path | None = Field(
        None, description="PEM client certificate presented to https SBI servers (mutual TLS)."
    )
    tls_key: Path | None = None
    """PEM private key of core.tls_cert."""
    nef_af_id: str = Field(
        "subscriber",
        description="The afId in NEF paths (monitoring events and traffic influence).",
    )
    nef_targets: list[str] = Field(
        default_factory=list,
        description="UEs to follow through NEF monitoring events: msisdn-<digits> GPSIs or "
        "external group ids. Empty: no NEF subscription.",
    )


class TrafficInfluenceSettings(_Group):
    """How moves steered by AF traffic influence (TS 29.522) ask the NEF; docs/relocation.md.

    The NEF is the core's (``core.nef_url``, else found through the NRF); its token, when the
    NRF grants one, has scope ``3gpp-traffic-influence``. Notifications come to the receiver.
    """

    dnn: str = "internet"
    """The data network of the UE's PDU session (free5GC's default)."""
    snssai_sst: int = Field(1, ge=0, le=255, description="Slice/service type of the session.")
    snssai_sd: str | None = Field(
        "010203", pattern=r"^[A-Fa-f0-9]{6}$", description="Slice differentiator; none if unset."
    )
    dnai_change_type: Literal["EARLY", "LATE", "EARLY_LATE"] = Field(
        "EARLY_LATE",
        description="Which UP_PATH_CH notifications to ask for; a move waits for LATE.",
    )
    modify_with: Literal["put", "patch"] = Field(
        "put",
        description="How a subscription is re-routed: put replaces it (works with free5GC); "
        "patch sends a merge patch, which free5GC's NEF and PCF refuse or apply without "
        "notifying (docs/free5gc.md).",
    )
    af_ack: bool = Field(
        False,
        description="Ask the SMF to wait for our acknowledgement of each path change (afAckInd; "
        "free5GC ignores it).",
    )
    supported_features: str = Field(
        "1",
        pattern=r"^[A-Fa-f0-9]*$",
        description="suppFeat of the request; free5GC's PCF only routes traffic when feature "
        "1 (InfluenceOnTrafficRouting) is set.",
    )
    request_timeout_s: float = Field(5.0, gt=0, description="Timeout of one request to the NEF.")


class PolicySettings(_Group):
    """Where the decision engine reads its topology and policy."""

    topology_file: Path | None = None
    """MEC topology YAML (cells, zones, clusters, latency, apps)."""
    policy_file: Path | None = None
    """Policy YAML (rules and parameters); defaults when unset."""
    reload_interval_s: Seconds = 5.0
    """How often the files are checked for changes."""
    capacity_refresh_s: float = Field(
        30.0,
        gt=0,
        description="How often the capacity of Kubernetes clusters is read from their API "
        "(when the policy sets capacity.from_clusters).",
    )


class RelocationSettings(_Group):
    """How the relocation worker deploys, checks readiness, steers DNS and removes instances."""

    orchestrator: Literal["local", "emco"] = Field(
        "local",
        description="For clusters without a kubernetes section in the topology: local "
        "(loopback HTTP services, the demo) or emco (an EMCO orchestrator). Clusters with one "
        "are deployed to through their Kubernetes API (docs/relocation.md).",
    )
    readiness_timeout_s: Seconds = Field(
        60.0, description="A new instance not ready by then fails the move (and compensates)."
    )
    readiness_poll_s: Seconds = 0.25
    """Interval between readiness checks of a new instance."""
    dns_confirm_timeout_s: Seconds = 10.0
    """How long the server may take to answer the new address."""
    drain_s: Seconds0 = Field(
        5.0, description="Wait before removing the old instance; at least the record TTL."
    )
    local_dir: Path = Field(
        default_factory=lambda: default_cache_dir() / "clusters",
        description="Where the local orchestrator records the services it runs.",
    )
    local_warmup_s: Seconds0 = Field(0.5, description="Local services report ready after this.")
    emco_url: str = "http://127.0.0.1:9015"
    """EMCO orchestrator API base URL."""
    emco_project: str = "proj1"
    """EMCO project."""
    emco_composite_app_version: str = Field(
        "v1",
        description="Version of the EMCO composite apps: one per application, named like it, "
        "each instance deployed by its own deployment intent group (docs/relocation.md).",
    )
    emco_composite_profile: str = "default"
    """EMCO composite profile of those deployment intent groups."""
    emco_logical_cloud: str = "default"
    """EMCO logical cloud they deploy to."""
    emco_cluster_provider: str = "edge-provider"
    """EMCO cluster provider of the edge clusters."""
    emco_request_timeout_s: Seconds = 10.0
    """Timeout of each EMCO API request."""
    kubernetes_request_timeout_s: Seconds = Field(
        10.0, description="Timeout of each Kubernetes API request."
    )
    kubernetes_endpoint_timeout_s: Seconds = Field(
        60.0,
        description="How long a deploy waits for a load balancer to give the Service an address.",
    )
    metrics_port: Port | None = Field(
        None, description="Serve Prometheus metrics of 'subscriber worker' here (e.g. 9102)."
    )
    probe_port: Port | None = Field(
        None, description="Serve /healthz and /readyz of 'subscriber worker' here (e.g. 9103)."
    )


class ActSettings(_Group):
    """The consumer that decides and signals the relocation workflows."""

    instances_file: Path | None = Field(
        None, description="YAML: which app instances serve which UEs, and where they start."
    )
    app_port: Port = Field(8080, description="Port clients reach an app instance at.")
    dedup_window: Count = Field(32, description="Recent event ids remembered per UE.")
    max_batch: Count = Field(500, description="Most records fetched at once.")
    fetch_wait_ms: Millis0 = Field(
        5,
        description="How long the broker may hold a fetch to gather the records that arrive "
        "meanwhile. Larger batches cost less CPU per report (0.55 -> 0.4 ms at 1,000/s with 5 ms, "
        "docs/performance.md); a decision waits at most this much longer. 0: a fetch returns as "
        "soon as one record is there.",
    )
    max_concurrent_signals: Count = Field(
        32, description="Relocation signals in flight to Temporal at once (all UEs)."
    )
    max_pending_records: Count = Field(
        50_000,
        description="Records decided but not yet done (signals or writes outstanding) before the "
        "consumer stops fetching until some are.",
    )
    commit_interval_s: Seconds = Field(
        0.5, description="How often the partitions' commit watermarks are committed."
    )
    max_event_time_skew_s: Seconds0 = Field(
        60.0,
        description="How far an event time may lie after its ingest time; a later one is not "
        "believed and the event is decided at its ingest time (docs/policy.md).",
    )
    ue_ttl_s: float = Field(
        86_400.0,
        gt=0,
        le=366 * _DAY_S,
        description="A UE with no event for this long is forgotten: its record leaves memory and "
        "a tombstone replaces it in the changelog (where its instances run is kept).",
    )
    metrics_port: Port | None = Field(
        None,
        description="Serve /metrics, /healthz and /readyz of 'subscriber consume' here (e.g. "
        "9101).",
    )


class AmsSettings(_Group):
    """The Application Mobility Service (ETSI GS MEC 021) that 'subscriber worker' serves."""

    host: str = "127.0.0.1"
    """Address the AMS API (/amsi/v1) binds."""
    port: int = Field(8810, ge=0, le=65535, description="Its port; 0 picks a free one.")
    public_url: str | None = Field(
        None,
        description="Base URL applications reach the AMS at (the local orchestrator hands it "
        "to the instances it starts); defaults to http://host:port.",
    )
    db: Path = Field(
        default_factory=lambda: default_cache_dir() / "ams" / "ams.sqlite3",
        description="SQLite file of registrations, subscriptions and procedures.",
    )
    callback_networks: list[str] = Field(
        default_factory=list,
        description="CIDRs that notification callbacks may go to (e.g. the edge clusters' "
        "networks); none by default, so every callbackReference is refused.",
    )
    notify_timeout_s: float = Field(5.0, gt=0, description="Timeout of one notification POST.")
    notify_attempts: int = Field(3, ge=1, le=10, description="Tries per notification.")
    max_registrations: int = Field(10_000, ge=1, description="Registrations held at most.")
    max_subscriptions: int = Field(10_000, ge=1, description="Subscriptions held at most.")
    max_body_bytes: int = Field(262_144, ge=1024, description="Largest request body; more: 413.")

    @field_validator("callback_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for net in value:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError as exc:
                raise ValueError(f"{net!r} is not a CIDR network") from exc
        return value

    @property
    def url(self) -> str:
        """The base URL applications use (without /amsi/v1)."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


class StackSettings(_Group):
    """The local development stack (Kafka, Temporal, PowerDNS)."""

    dir: Path = Field(default_factory=lambda: default_cache_dir() / "stack")
    """Local stack data and its state file."""
    cache_dir: Path = Field(default_factory=default_cache_dir)
    """Downloads (the Kafka jars), outside any checkout."""
    kafka_version: str = "3.9.1"
    """Apache Kafka version fetched from Maven Central."""
    kafka_heap: str = "768m"
    """Kafka broker JVM heap (-Xmx)."""
    ready_timeout_s: Seconds = 120.0
    """How long a service may take to become ready."""


class Settings(BaseSettings):
    """Everything configurable, in one object built once by the CLI."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid"
    )

    log: LogSettings = LogSettings()
    kafka: KafkaSettings = KafkaSettings()
    temporal: TemporalSettings = TemporalSettings()
    powerdns: PowerDnsSettings = PowerDnsSettings()
    receiver: ReceiverSettings = ReceiverSettings()
    core: CoreSettings = CoreSettings()
    policy: PolicySettings = PolicySettings()
    relocation: RelocationSettings = RelocationSettings()
    act: ActSettings = ActSettings()
    ams: AmsSettings = AmsSettings()
    traffic_influence: TrafficInfluenceSettings = TrafficInfluenceSettings()
    stack: StackSettings = StackSettings()
    shutdown_grace_s: Seconds0 = Field(
        10.0, description="On SIGTERM, how long in-flight work may take to finish."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Secrets as files keep keys out of the environment, which `docker inspect` and /proc show.
        secrets = NestedSecretsSettingsSource(
            file_secret_settings,
            secrets_dir=os.environ.get(SECRETS_DIR_ENV) or DEFAULT_SECRETS_DIR,
            secrets_dir_missing="ok",
            secrets_nested_delimiter="__",
        )
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, secrets]
        config_file = os.environ.get(CONFIG_ENV)
        if config_file:
            sources.append(_toml_source(settings_cls, Path(config_file)))
        return tuple(sources)


def _toml_source(settings_cls: type[BaseSettings], path: Path) -> TomlConfigSettingsSource:
    """The config file's source; a file that is missing or not TOML is an error, not defaults."""
    if not path.is_file():
        raise SettingsFileError(f"config file {path} does not exist (--config or {CONFIG_ENV})")
    try:
        return TomlConfigSettingsSource(settings_cls, toml_file=path)
    except (OSError, ValueError) as exc:  # tomllib.TOMLDecodeError is a ValueError
        raise SettingsFileError(f"config file {path}: {exc}") from exc


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from the environment and an optional TOML file.

    Args:
        config_file: a TOML file; overrides ``SUBSCRIBER_CONFIG`` when given.
        overrides: values that win over every source.
    """
    if config_file is not None:
        os.environ[CONFIG_ENV] = str(config_file)
    return Settings(**overrides)


def to_env(settings: Settings) -> dict[str, str]:
    """The environment variables that rebuild ``settings`` in a child process."""
    env: dict[str, str] = {}
    for group, values in settings.model_dump(mode="json").items():
        if not isinstance(values, dict):
            if values is not None:
                env[f"{ENV_PREFIX}{group.upper()}"] = str(values)
            continue
        for field, value in values.items():
            if value is not None:
                env[f"{ENV_PREFIX}{group.upper()}__{field.upper()}"] = (
                    value if isinstance(value, str) else json.dumps(value)
                )
    return env
