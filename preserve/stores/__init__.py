"""Storage backends behind one small interface (storage/base.py)."""

from preserve.stores.base import ObjectInfo, Storage
from preserve.stores.local import LocalStorage

__all__ = ["ObjectInfo", "Storage", "LocalStorage"]
