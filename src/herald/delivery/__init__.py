"""Event handlers: push each matching event of the log to customers' systems (webhooks,
MQTT, NATS JetStream, AMQP, S3: ``delivery.sinks``).

Each handler keeps a cursor over the event log; the worker reads after it, filters,
batches, formats (signs a webhook) and sends through the handler's sink, and moves the
cursor only once the receiver answered 2xx or the broker acknowledged, in the transaction
that records the attempt. Delivery is at least once and in order
per handler.
"""
