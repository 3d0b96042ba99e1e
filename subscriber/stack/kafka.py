"""Apache Kafka 3.9 (KRaft, one combined broker+controller) from Maven Central jars.

Recipe: apache/kafka 3.9.1 (``build.gradle``, ``bin/kafka-storage.sh``). 3.9.x keeps every old
protocol version, which is the safest choice for aiokafka 0.14 (Kafka 4.0 removed the old ones,
KIP-896).
"""

from __future__ import annotations

import base64
import subprocess
import uuid
from importlib import resources
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from subscriber.errors import StackError

SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{cport}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data}/kraft-logs
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
delete.topic.enable=true
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=2097152
"""

LOG4J = """\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=WARN
"""

STARTED = "Kafka Server started"


def cluster_id() -> str:
    """22 chars of URL-safe base64; never starting with '-', which argparse4j takes for a flag."""
    while True:
        s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not s.startswith("-"):
            return s


def ensure_classpath(cache_dir: Path, version: str) -> Path:
    """Download the broker's jars once per machine into the cache; return the libs folder."""
    libs = cache_dir / f"kafka-{version}" / "libs"
    marker = libs / ".complete"
    if marker.exists():
        return libs
    pom = resources.files("subscriber.stack").joinpath("kafka-pom.xml")
    with resources.as_file(pom) as pom_path:
        result = subprocess.run(
            [
                "mvn", "-B", "-q", "-f", str(pom_path),
                f"-Dkafka.version={version}",
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={libs}",
            ],
            capture_output=True,
            text=True,
        )  # fmt: skip
    if result.returncode != 0:
        raise StackError(f"maven could not fetch Kafka {version}: {result.stdout[-1500:]}")
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise StackError(f"maven ran but no kafka_2.13 jar is in {libs}")
    marker.touch()
    return libs


def prepare(data: Path, libs: Path, port: int, cport: int, heap: str) -> list[str]:
    """Write the config, format the storage, and return the broker's argv."""
    data.mkdir(parents=True, exist_ok=True)
    props = data / "server.properties"
    props.write_text(SERVER_PROPERTIES.format(port=port, cport=cport, data=data))
    (data / "log4j.properties").write_text(LOG4J)
    logopt = f"-Dlog4j.configuration=file:{data}/log4j.properties"
    classpath = f"{libs}/*"
    if not (data / "kraft-logs" / "meta.properties").exists():
        _format(props, logopt, classpath)
    # The full JIT, as a deployment's broker has: once compiled (its first seconds under load),
    # it costs about a third less CPU per record than C1 alone, which starts 0.3 s sooner
    # (docs/performance.md). The one-shot format below keeps C1.
    return [
        "java", "-Xms256m", f"-Xmx{heap}", "-XX:+UseSerialGC",
        "-Djava.awt.headless=true", f"-Dkafka.logs.dir={data}/logs", logopt,
        "-cp", classpath, "kafka.Kafka", str(props),
    ]  # fmt: skip


def _format(props: Path, logopt: str, classpath: str) -> None:
    # Only a fresh data dir: Kafka 3.9 refuses to re-format (even --ignore-formatted) with
    # another cluster id, so a restart keeping its data must skip this step.
    fmt = subprocess.run(
        [
            "java", "-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", logopt,
            "-cp", classpath, "kafka.tools.StorageTool", "format",
            "-t", cluster_id(), "-c", str(props), "--ignore-formatted",
        ],
        capture_output=True,
        text=True,
    )  # fmt: skip
    if fmt.returncode != 0:
        raise StackError(f"kafka storage format failed: {fmt.stdout[-1000:]}{fmt.stderr[-1000:]}")


def rewrite_ports(data: Path, port: int, cport: int) -> None:
    """Keep the same ports on restart: clients and the state file already know them."""
    props = data / "server.properties"
    props.write_text(SERVER_PROPERTIES.format(port=port, cport=cport, data=data))


async def healthy(bootstrap: str) -> bool:
    """A real metadata round trip to the broker."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        return bool(cluster.get("brokers"))
    except Exception:
        return False
    finally:
        await admin.close()
