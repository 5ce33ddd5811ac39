"""The store fixtures of tests/store, for the evaluator's tests on each backend."""

from tests.store.conftest import ids, make_event, store

__all__ = ["ids", "make_event", "store"]
