#!/bin/sh
# One-shot topic creation for the local Compose stack: creates every topic listed in topics.txt
# (idempotent: existing topics are left as they are) and exits 0, which releases the services
# (depends_on: service_completed_successfully). POSIX sh: the Kafka image is Alpine-based.
set -eu

BOOTSTRAP="${KAFKA_BOOTSTRAP_SERVERS:-kafka:19092}"
TOPICS_FILE="${TOPICS_FILE:-/topics/topics.txt}"
KAFKA_TOPICS="${KAFKA_TOPICS_CMD:-/opt/kafka/bin/kafka-topics.sh}"

grep -v -e '^#' -e '^[[:space:]]*$' "$TOPICS_FILE" | while read -r name partitions configs; do
    set -- --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
        --topic "$name" --partitions "$partitions" --replication-factor 1
    if [ -n "${configs:-}" ]; then
        old_ifs=$IFS
        IFS=,
        for config in $configs; do
            set -- "$@" --config "$config"
        done
        IFS=$old_ifs
    fi
    "$KAFKA_TOPICS" "$@"
done

echo "topics:"
"$KAFKA_TOPICS" --bootstrap-server "$BOOTSTRAP" --list
