"""Shared test configuration. Database fixtures live in the ``tests.fixtures_db`` plugin."""

pytest_plugins = ["tests.fixtures_db", "tests.fixtures_redis", "tests.live_server"]
