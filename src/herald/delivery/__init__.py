"""Event handlers: push each matching event of the log to customers' systems.

Each handler keeps a cursor over the event log; the worker reads after it, filters,
batches, formats, signs and sends, and moves the cursor only once the receiver answered
2xx, in the transaction that records the attempt. Delivery is at least once and in order
per handler.
"""
