"""Fixtures for the event-log suites: ``private_nats`` (a server a test may crash)
lives in ``tests/conftest.py``."""
