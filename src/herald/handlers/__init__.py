"""Event handlers: their types and service."""
