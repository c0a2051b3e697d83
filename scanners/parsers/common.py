"""What every report parser shares. No Django here: parsers are pure."""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

# What a parser accepts: the raw bytes, a path on disk, or a binary file object.
Source = bytes | str | Path | BinaryIO


def without_nul(text: str) -> str:
    """Text as the portal keeps it: without NUL characters, which PostgreSQL refuses in text and JSON and which
    mean nothing in a name or a message. Every value a parser hands out, and every error, goes through here."""
    return text.replace("\x00", "") if "\x00" in text else text


class ReportParseError(ValueError):
    """A report that cannot be read. `location` says where: a line number, a JSON path or an XML element."""

    def __init__(self, message: str, location: str = ""):
        # The message may quote the file (a key, a name): it is stored as the report's error.
        message, location = without_nul(message), without_nul(location)
        self.message = message
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)


def json_type_name(value) -> str:
    """How an error message names the JSON type of a value: "got an array", "got null"..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def open_binary(source: Source) -> BinaryIO:
    """A readable binary file object for any accepted source (the caller closes it)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source))
    if isinstance(source, (str, Path)):
        return open(source, "rb")
    return source


def read_all(source: Source, *, max_bytes: int | None = None) -> bytes:
    """All bytes of a source, refusing more than max_bytes before reading them.

    The size is checked first (file.read(n) would allocate n bytes up front), so an upload over
    the cap costs no memory.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        check_size(len(data), max_bytes)
        return data
    handle = open_binary(source)
    try:
        size = size_of(handle)
        if size is not None:
            check_size(size, max_bytes)
            return handle.read()
        chunks, total = [], 0
        while chunk := handle.read(1024 * 1024):
            total += len(chunk)
            check_size(total, max_bytes)
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        if handle is not source:
            handle.close()


def size_of(handle: BinaryIO) -> int | None:
    """Bytes left to read in a seekable file, or None when it cannot be told."""
    try:
        position = handle.tell()
        end = handle.seek(0, io.SEEK_END)
        handle.seek(position)
    except (OSError, ValueError, AttributeError):
        return None
    return end - position


def check_size(size: int, max_bytes: int | None) -> None:
    if max_bytes is not None and size > max_bytes:
        raise ReportParseError(f"the file is larger than the {max_bytes:,} bytes allowed")
