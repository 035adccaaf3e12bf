"""Storage: protocols (base.py) and two backends (sqlite.py, redis.py) behind one contract."""

from .base import AuditRecord, Store

__all__ = ["AuditRecord", "Store"]
