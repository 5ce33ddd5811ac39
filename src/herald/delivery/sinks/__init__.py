"""Sinks: where a handler's events go (webhook, MQTT, NATS JetStream, AMQP, S3).

``open_sink`` gives the sink of a handler; the worker keeps one per handler while its
settings stay the same. Every sink sends a batch and answers a ``SendResult``: delivered
only once the receiver or broker acknowledged all of it.
"""

from __future__ import annotations

import orjson

from herald.delivery.sinks.base import (
    KINDS,
    TYPES,
    Outgoing,
    SettingsError,
    Sink,
    SinkConfig,
    check_settings,
    check_url,
    settings_of,
)
from herald.delivery.webhook import WebhookSender
from herald.handlers.types import Handler
from herald.sealing import SecretBox

__all__ = [
    "KINDS",
    "TYPES",
    "Outgoing",
    "SettingsError",
    "Sink",
    "check_settings",
    "check_url",
    "credentials_of",
    "open_sink",
    "sink_config",
]


def credentials_of(handler: Handler, box: SecretBox | None) -> dict[str, str]:
    """The handler's credentials, opened (SecretUnavailable if no key opens them)."""
    stored = handler.spec.credentials
    if not stored:
        return {}
    value: dict[str, str] = orjson.loads(box.open(stored) if box else stored)
    return value


def sink_config(
    handler: Handler, box: SecretBox | None, *, allow_private: bool, timeout: float
) -> SinkConfig:
    return SinkConfig(
        handler.spec.type,
        handler.spec.url,
        settings_of(handler),
        credentials_of(handler, box),
        allow_private,
        timeout,
    )


def open_sink(
    handler: Handler,
    box: SecretBox | None,
    webhooks: WebhookSender,
    *,
    allow_private: bool,
    timeout: float,
) -> Sink:
    """The sink a handler sends through (connecting on its first send). Each broker's
    client library is imported when a handler first needs it: botocore alone is a heavy
    import, which a worker of webhooks should not pay."""
    kind = handler.spec.type
    if kind == "webhook":
        from herald.delivery.sinks.webhook import WebhookSink

        return WebhookSink(webhooks, box, handler, credentials_of(handler, box))
    config = sink_config(handler, box, allow_private=allow_private, timeout=timeout)
    if kind == "mqtt":
        from herald.delivery.sinks.mqtt import MqttSink

        return MqttSink(config, handler.id)
    if kind == "nats":
        from herald.delivery.sinks.nats import NatsSink

        return NatsSink(config)
    if kind == "amqp":
        from herald.delivery.sinks.amqp import AmqpSink

        return AmqpSink(config)
    if kind == "s3":
        from herald.delivery.sinks.s3 import S3Sink

        return S3Sink(config)
    raise ValueError(f"unknown handler type {kind!r}")
