#!/bin/bash
# java with the broker's classpath: the part of Kafka's bin/kafka-run-class.sh the image needs.
# C1 only and the serial collector: start fast and stay small on a one-broker host.
exec java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.awt.headless=true \
  -Dlog4j.configuration=file:/opt/kafka/config/log4j.properties ${KAFKA_OPTS:-} \
  -cp '/opt/kafka/libs/*' "$@"
