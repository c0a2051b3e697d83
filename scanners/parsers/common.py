"""What every report parser shares. No Django here: parsers are pure."""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

# What a parser accepts: the raw bytes, a path on disk, or a binary file object.
Source = bytes | str | Path | BinaryIO


class ReportParseError(ValueError):
    """A report that cannot be read. `location` says where: a line number, a JSON path or an XML element."""

    def __init__(self, message: str, location: str = ""):
        self.message = message
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)


def open_binary(source: Source) -> BinaryIO:
    """A readable binary file object for any accepted source (the caller closes it)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source))
    if isinstance(source, (str, Path)):
        return open(source, "rb")
    return source


def read_all(source: Source, *, max_bytes: int | None = None) -> bytes:
    """All bytes of a source, refusing more than max_bytes without reading them all into memory."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        handle = open_binary(source)
        try:
            data = handle.read(max_bytes + 1 if max_bytes is not None else -1)
        finally:
            if handle is not source:
                handle.close()
    if max_bytes is not None and len(data) > max_bytes:
        raise ReportParseError(f"the file is larger than the {max_bytes:,} bytes allowed")
    return data
