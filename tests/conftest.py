"""Shared test configuration. Fixtures shared across tiers live in the ``tests.fixtures_*`` plugins."""

pytest_plugins = [
    "tests.fixtures_db",
    "tests.fixtures_redis",
    "tests.fixtures_monitoring",
    "tests.fixtures_tracing",
    "tests.live_server",
]
