"""The real-server fixture, for the fuzz tests that go through the JSON API."""

from e2e.conftest import make_server  # noqa: F401  (a fixture, used by name)
