"""Organisations and their application tokens."""
