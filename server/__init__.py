"""teleconsult: self-hosted video consultation server."""

__version__ = "0.1.0"
