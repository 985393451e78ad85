"""Deprecated alias: `DataError` now lives in `datasets.errors`."""

from datasets.errors import DataError

__all__ = ["DataError"]
