"""`manage.py runoutboxrelay`: publishes the outbox to Kafka (common/outbox_relay.py).

Several may run (e.g. one per host); a PostgreSQL advisory lock lets one
publish at a time and the others wait as standbys. SIGTERM/SIGINT end the
loop after the batch in progress.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from common import outbox_relay
from common.outbox_relay import BatchOutcome
from messaging import topics as names
from messaging.avro import AvroCodec, EncodeError, RegistryUnavailableError
from messaging.kafka import TopicSetupError, admin_config, ensure_topics
from messaging.topics import Topics
from telemetry import tracing

logger = logging.getLogger("mms.outbox")


def published_topics_ensure(brokers: str, partitions: int, topics: Topics) -> list[str]:
    """Creates the published topics that are missing; returns their broker names.

    Existing ones are left as they are, whatever their partition count: the
    relay only needs them to exist (keys still map to one partition each).
    """
    existing = AdminClient(admin_config(bootstrap=brokers)).list_topics(timeout=10).topics
    missing = [name for name in topics.names(names.PUBLISHED) if name not in existing]
    if missing:
        ensure_topics(
            brokers, dict.fromkeys(missing, partitions), namespace=topics, co_partitioned=()
        )
    return missing


class Command(BaseCommand):
    help = "Publish committed outbox rows to Kafka, in id order, until SIGINT/SIGTERM."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--partitions",
            type=int,
            default=12,
            help="partition count for published topics that do not exist yet",
        )
        parser.add_argument("--batch-size", type=int, default=outbox_relay.DEFAULT_BATCH_SIZE)
        parser.add_argument(
            "--poll-interval",
            type=float,
            default=outbox_relay.DEFAULT_POLL_INTERVAL_S,
            help="seconds to wait when there is nothing to publish",
        )
        parser.add_argument(
            "--delivery-timeout",
            type=float,
            default=outbox_relay.DEFAULT_DELIVERY_TIMEOUT_S,
            help="seconds before an undelivered message counts as failed",
        )
        parser.add_argument(
            "--max-backoff",
            type=float,
            default=outbox_relay.DEFAULT_MAX_BACKOFF_S,
            help="longest wait between retries after a failure",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        service = settings.SERVICE
        brokers = service.kafka_brokers
        delivery_timeout = options["delivery_timeout"]
        topics = Topics(service.kafka_topic_namespace)
        try:
            created = published_topics_ensure(brokers, options["partitions"], topics)
        except (TopicSetupError, KafkaException) as exc:
            raise CommandError(f"Kafka topics on {brokers}: {exc}") from exc
        if created:
            logger.info("runoutboxrelay: created %s", ", ".join(created))
        codec = AvroCodec(service.schema_registry_url)
        try:
            for topic in names.PUBLISHED:  # fail at start, not on the first row
                codec.schema_id(topic)
        except (RegistryUnavailableError, EncodeError) as exc:
            raise CommandError(f"schema registry {service.schema_registry_url}: {exc}") from exc

        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda _signum, _frame: stop.set())

        def make_producer() -> Producer:
            return Producer(
                outbox_relay.relay_producer_config(
                    bootstrap=brokers, delivery_timeout_s=delivery_timeout
                )
            )

        def log_batch(outcome: BatchOutcome) -> None:
            line = f"outbox relay: published {outcome.published}"
            if outcome.failed:
                kind = "poison row" if outcome.poison else "delivery failed at row"
                line += f", stopped: {kind} {outcome.stopped_at}: {outcome.error}"
                logger.error(line)
            else:
                logger.info(line)

        logger.info("runoutboxrelay: publishing the outbox to %s", brokers)
        tracing.configure("mms-outbox-relay", settings.SERVICE.otlp_endpoint)
        try:
            outbox_relay.run_relay(
                make_producer=make_producer,
                codec=codec,
                topics=topics,
                stop=stop,
                poll_interval=options["poll_interval"],
                limit=options["batch_size"],
                flush_timeout=delivery_timeout + outbox_relay.FLUSH_MARGIN_S,
                max_backoff=options["max_backoff"],
                on_batch=log_batch,
            )
        finally:
            tracing.shutdown()
        logger.info("runoutboxrelay: stopped; totals %s", outbox_relay.COUNTERS)
