"""Storage backends behind one small interface (storage/base.py)."""

from preserve.infrastructure.storage.base import ObjectInfo, Storage
from preserve.infrastructure.storage.local import LocalStorage

__all__ = ["ObjectInfo", "Storage", "LocalStorage"]
