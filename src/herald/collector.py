"""The garbage collector of a long-running Herald process, set for batches of events.

A batch of 1,000 events allocates hundreds of thousands of short-lived objects, nearly all
freed by reference counting. With the default thresholds (700, 10, 10) each batch still
set off about 90 collections, the older generations' walking every object the process
holds: a fifth of HTTP batch ingest's time went there (BENCHMARKS #46). Collections now start
every 50,000 net allocations, and what exists at start-up (modules, the app, the catalogue)
is frozen out of them, as it lives as long as the process.
"""

from __future__ import annotations

import gc

THRESHOLDS = (50_000, 10, 10)


def tune_for_batches() -> None:
    """Freeze what exists now and collect less often; call once the process is set up."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
