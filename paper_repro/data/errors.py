"""The one error raised when a dataset is missing or malformed."""
from __future__ import annotations


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are missing or malformed. The message says what layout was expected,
    which argument / environment variable points to it, and how to obtain it."""
