#!/bin/bash
# The health check compose/docker-compose.yml runs, at the path apache/kafka has it.
exec /opt/kafka/bin/kafka-run-class.sh -Xmx64m kafka.admin.BrokerApiVersionsCommand "$@"
