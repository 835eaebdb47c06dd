"""koban: self-hosted observability in one Python process."""

__version__ = "0.1.0"
