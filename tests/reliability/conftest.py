"""The real-server fixture for the reliability tests."""

from e2e.conftest import make_server  # noqa: F401  (a fixture, used by name)
