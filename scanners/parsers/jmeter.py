"""JMeter results (JTL, CSV or XML): exact per-label statistics and a time series. Pure: no Django.

Speed matters (files of millions of samples): CSV goes through pyarrow with only the needed columns, statistics
are computed with numpy over whole arrays in linear time (bincount for sums, a counting sort or a partial sort
per group for exact percentiles). Anything pyarrow refuses (a second header line, ragged rows, a bad value, ...)
is re-read by a streaming Python csv reader that accepts every variant JMeter writes, or says precisely which
line and field is wrong. XML is streamed through defusedxml's parser without building a tree.

The Total is JMeter's dashboard's: Transaction Controller samples (response message "Number of samples in
transaction ...") keep a row of their own label but stay out of the Total, its percentiles, its throughput and
the time series; empty ones ("... : 0") count nowhere. An XML file saved without elapsed times (`t`) or start
times (`ts`) still counts its samples and errors; the statistics it cannot give are None, with the reason.
"""

from __future__ import annotations

import array
import calendar
import contextlib
import csv
import io
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO
from xml.etree.ElementTree import ParseError
from xml.parsers.expat import ErrorString, ExpatError

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import DefusedXMLParser

from .common import ReportParseError, Source, without_nul
from .masking import mask_tokens_apart

PERCENTILE_DEFINITION = (
    "JMeter dashboard: position p(N+1)/100, linear interpolation, clamped to min/max, exact over all samples"
)

BUCKET_WIDTHS = (1, 5, 10, 30, 60, 300, 600, 1800, 3600)
MAX_BUCKETS = 300
# Longest line (and record) accepted, and pyarrow's block size: a row must fit in a block. (The csv module
# used by the fallback reader also refuses a single field over its default limit of 131,072 characters.)
MAX_LINE_CHARS = 1 << 18  # 256 KiB: far above any real JTL line, and pyarrow reads 256 KiB blocks at full speed
_ARROW_BLOCK = MAX_LINE_CHARS
PROGRESS_EVERY = 4 << 20
HEAD_BYTES = 1 << 20
_CHUNK = 1 << 20

# Every CSV column JMeter can write, in the order it writes them (user variables come after).
CSV_FIELDS = (
    "timeStamp", "elapsed", "label", "responseCode", "responseMessage", "threadName", "dataType", "success",
    "failureMessage", "bytes", "sentBytes", "grpThreads", "allThreads", "URL", "Filename", "Latency", "Encoding",
    "SampleCount", "ErrorCount", "Hostname", "IdleTime", "Connect",
)  # fmt: skip
_FIELD_BY_LOWER = {name.lower(): name for name in CSV_FIELDS}
MANDATORY_COLUMNS = ("timeStamp", "elapsed", "label", "success")
OPTIONAL_COLUMNS = ("bytes", "sentBytes", "allThreads", "responseMessage")
NUMERIC_OPTIONAL_COLUMNS = ("bytes", "sentBytes", "allThreads")
# How JMeter's dashboard (org.apache.jmeter.report.core.Sample) tells a Transaction Controller's sample, and
# an empty one, which it leaves out of every statistic.
TRANSACTION_PREFIX = "Number of samples in transaction"
EMPTY_TRANSACTION_PREFIX = "Number of samples in transaction : 0"
NO_ELAPSED = "no elapsed time (XML attribute t)"  # a sample without it counts, its timing is unknown
NO_START = "no start time (XML attribute ts)"
ONLY_TRANSACTIONS = "every sample is a Transaction Controller sample, which the Total leaves out"

# A file without a header line has JMeter's default column set of the version that wrote it (JMeter itself
# assumes its current defaults). The column count tells which one; every set has a different count.
_BASE = "timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success"
DEFAULT_COLUMN_SETS: dict[int, tuple[str, ...]] = {
    len(columns): columns
    for columns in (
        # Oldest first (versions approximate): 2.x as in the csv-no-header sample file (2014), 2.x with thread
        # counts, 2.13 with failureMessage and IdleTime, 3.0 with Connect, 3.1 and later (5.x, the set of the notes
        # and of JMeter's own dashboard test file) with sentBytes and URL.
        tuple(f"{_BASE},bytes,Latency".split(",")),
        tuple(f"{_BASE},bytes,grpThreads,allThreads,Latency".split(",")),
        tuple(f"{_BASE},failureMessage,bytes,grpThreads,allThreads,Latency,IdleTime".split(",")),
        tuple(f"{_BASE},failureMessage,bytes,grpThreads,allThreads,Latency,IdleTime,Connect".split(",")),
        tuple(f"{_BASE},failureMessage,bytes,sentBytes,grpThreads,allThreads,URL,Latency,IdleTime,Connect".split(",")),
    )
}

_DELIMITERS = (",", ";", "\t", "|")
_NULLS = ("", "null", "NULL")  # what an optional numeric column may hold instead of a number
_XML_SAMPLE_TAGS = ("httpSample", "sample")
_PERCENTILES = (50.0, 90.0, 95.0, 99.0)
_TEXT_TIMESTAMP = re.compile(
    r"\s*(\d{4})[-/](\d{1,2})[-/](\d{1,2})[ T](\d{1,2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?\s*(Z|[+-]\d{2}:?\d{2})?\s*"
)
_EPOCH = re.compile(r"\s*\d+\s*")
_EPOCH_START = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class LabelStats:
    """Statistics of one label, or of the Total. A None figure is not available: `timing_unavailable` says why."""

    label: str  # the label, or "Total" for the total row
    samples: int
    errors: int
    error_percent: float | None  # 0..100; None for a Total without samples
    min_ms: float | None
    max_ms: float | None
    mean_ms: float | None
    stdev_ms: float | None  # population (ddof=0), as JMeter
    p50_ms: float | None
    p90_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    throughput: float | None  # samples / seconds, seconds = (max(ts + elapsed) - min(ts)) / 1000; 0.0 when <= 0
    received_kbps: float | None  # sum(bytes) / 1024 / seconds
    sent_kbps: float | None  # sum(sentBytes) / 1024 / seconds
    is_transaction: bool = False  # the label holds Transaction Controller samples: not in the Total
    timing_unavailable: str = ""  # why some figures are None; empty when all are available


@dataclass(frozen=True, slots=True)
class Bucket:
    started_at: datetime  # timezone-aware UTC
    width_seconds: int
    samples: int
    errors: int
    mean_ms: float  # 0.0 for an empty bucket
    p95_ms: float  # 0.0 for an empty bucket
    active_threads: int  # max allThreads in the slice (0 if unknown)


@dataclass(frozen=True, slots=True)
class JMeterResult:
    format: str  # "csv" | "xml"
    labels: list[LabelStats]  # sorted by label
    total: LabelStats  # the samples of every label except Transaction Controller ones, as JMeter's dashboard
    buckets: list[Bucket]  # the Total's samples: consecutive, empty slices included, at most MAX_BUCKETS
    started_at: datetime | None  # None when the samples have no start time
    finished_at: datetime | None
    transaction_samples: int = 0  # samples of Transaction Controllers (in their labels' rows, not in the Total)
    empty_transactions: int = 0  # Transaction Controller samples of no sample, left out of everything
    timing_unavailable: str = ""  # why there are no buckets, or no start / finish; empty when there are


# ---------------------------------------------------------------------------------------------------------------
# Public entry points


def parse_jmeter(
    source: Source, *, max_bytes: int | None = None, progress: Callable[[int], None] | None = None
) -> JMeterResult:
    """Statistics of a JMeter results file (CSV with or without header, any delimiter, or XML)."""
    if progress is not None:
        progress = _forward_only(progress)
    with _Input(source, max_bytes) as inp:
        head = inp.head()
        kind = _kind(head)
        if kind == "xml":
            samples = _read_xml(inp, progress)
        else:
            layout = _csv_layout(head, inp.size)
            samples = _read_csv(inp, layout, progress)
        if progress is not None:
            progress(inp.size)
    return _statistics(samples, kind)


def _forward_only(progress: Callable[[int], None]) -> Callable[[int], None]:
    """A CSV file the fast path gave up on is read a second time: the progress bar must not go backwards."""
    reported = 0

    def report(consumed: int) -> None:
        nonlocal reported
        if consumed > reported:
            reported = consumed
            progress(consumed)

    return report


def looks_like_jmeter(head: bytes) -> bool:
    """Cheap sniff of the first few KB: a JMeter CSV (with or without header) or an XML <testResults>."""
    try:
        kind = _kind(head)
        if kind == "xml":
            return b"<testResults" in head
        _csv_layout(head, None)
        return True
    except ReportParseError:
        return False


# ---------------------------------------------------------------------------------------------------------------
# Input handling


class _Input:
    """The bytes to parse, readable more than once (the CSV fallback re-reads); enforces max_bytes."""

    def __init__(self, source: Source, max_bytes: int | None):
        self.path: str | None = None
        self.data: bytes | None = None
        self._handle: BinaryIO | None = None
        self._start = 0
        self._spool: BinaryIO | None = None
        if isinstance(source, (bytes, bytearray, memoryview)):
            self.data = bytes(source)
            self.size = len(self.data)
        elif isinstance(source, (str, Path)):
            self.path = os.fspath(source)
            self.size = os.path.getsize(self.path)
        elif _seekable(source):
            self._handle = source
            self._start = source.tell()
            self.size = source.seek(0, io.SEEK_END) - self._start
            source.seek(self._start)
        else:
            # A pipe or socket: spool it to disk (never to memory), refusing more than max_bytes on the way.
            self._spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
            limit = max_bytes + 1 if max_bytes is not None else None
            self.size = _copy(source, self._spool, limit)
            self._spool.seek(0)
            self._handle = self._spool
        if max_bytes is not None and self.size > max_bytes:
            self.close()
            raise ReportParseError(f"the file is larger than the {max_bytes:,} bytes allowed")

    def __enter__(self) -> _Input:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    @contextlib.contextmanager
    def open(self) -> Iterator[BinaryIO]:
        """A binary reader positioned at the start (a borrowed handle is rewound, never closed)."""
        if self.data is not None:
            yield io.BytesIO(self.data)
        elif self.path is not None:
            with open(self.path, "rb") as handle:
                yield handle
        else:
            assert self._handle is not None
            self._handle.seek(self._start)
            yield self._handle

    def head(self) -> bytes:
        if self.data is not None:
            return self.data[:HEAD_BYTES]
        with self.open() as handle:
            return handle.read(HEAD_BYTES)


def _seekable(handle: BinaryIO) -> bool:
    try:
        return bool(handle.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _copy(source: BinaryIO, target: BinaryIO, limit: int | None) -> int:
    total = 0
    while True:
        chunk = source.read(_CHUNK)
        if not chunk:
            return total
        total += len(chunk)
        target.write(chunk)
        if limit is not None and total >= limit:
            return total


class _Counting(io.RawIOBase):
    """Passes reads through, counting bytes for the progress callback; closing it leaves the source open."""

    def __init__(self, raw: BinaryIO, progress: Callable[[int], None] | None):
        super().__init__()
        self._raw = raw
        self._progress = progress
        self.consumed = 0
        self._reported = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._raw.read(len(buffer))
        size = len(data)
        buffer[:size] = data
        self.consumed += size
        if self._progress is not None and self.consumed - self._reported >= PROGRESS_EVERY:
            self._reported = self.consumed
            self._progress(self.consumed)
        return size


def _kind(head: bytes) -> str:
    """'csv' or 'xml', or a ReportParseError saying what the file looks like instead."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ReportParseError("the file is UTF-16 encoded; JMeter results files are UTF-8")
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if not text:
        raise ReportParseError("the file is empty")
    if b"\x00" in head:
        raise ReportParseError("this looks like binary data, not a JMeter results file")
    if text[:1] in (b"{", b"["):
        raise ReportParseError("this looks like a JSON document, not a JMeter results file")
    if text[:1] == b"<":
        return "xml"
    return "csv"


# ---------------------------------------------------------------------------------------------------------------
# CSV


@dataclass(frozen=True, slots=True)
class _CsvLayout:
    delimiter: str
    has_header: bool
    width: int  # number of columns
    columns: dict[str, int]  # position of each column used (MANDATORY_COLUMNS always, OPTIONAL_COLUMNS if present)
    text_timestamps: bool  # the first sample's timeStamp is a date, not epoch milliseconds


def _csv_layout(head: bytes, size: int | None) -> _CsvLayout:
    """Delimiter, header and column positions, from the first record."""
    text = head.removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="surrogateescape")
    first_line = text.split("\n", 1)[0]
    if "\n" not in text and len(head) == HEAD_BYTES and (size is None or size > HEAD_BYTES):
        raise ReportParseError(f"line 1 is longer than {MAX_LINE_CHARS:,} characters")
    if len(first_line) > MAX_LINE_CHARS:
        raise ReportParseError(f"line 1 is longer than {MAX_LINE_CHARS:,} characters")
    delimiter = _sniff_delimiter(first_line)
    try:
        records = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        first = next((row for row in records if row), [])
    except csv.Error as exc:
        raise ReportParseError(str(exc), "line 1") from exc
    if not first:
        raise ReportParseError("the file is empty")
    if _is_timestamp(first[0]):
        names = DEFAULT_COLUMN_SETS.get(len(first))
        if names is None:
            known = ", ".join(str(count) for count in sorted(DEFAULT_COLUMN_SETS))
            raise ReportParseError(
                f"the file has no header line and its {len(first)} columns match no JMeter default column set "
                f"(those have {known} columns); save results with jmeter.save.saveservice.print_field_names=true",
                "line 1",
            )
        columns = _positions(names)
        success = first[columns["success"]].strip().lower()
        if not _EPOCH.fullmatch(first[columns["elapsed"]]) or success not in ("true", "false"):
            raise ReportParseError(
                "this does not look like a JMeter results file: no header line, and the first line's elapsed "
                "and success columns do not hold JMeter values",
                "line 1",
            )
        text_timestamps = not _EPOCH.fullmatch(first[0])
        return _CsvLayout(delimiter, False, len(first), columns, text_timestamps)

    columns = _header_positions(first, line=1)
    text_timestamps = False
    try:
        second = next((row for row in records if row), None)
    except csv.Error:
        second = None
    if second is not None and len(second) > columns["timeStamp"]:
        text_timestamps = bool(_TEXT_TIMESTAMP.fullmatch(second[columns["timeStamp"]]))
    return _CsvLayout(delimiter, True, len(first), columns, text_timestamps)


def _sniff_delimiter(line: str) -> str:
    """The candidate that splits the first line best: most JMeter column names, then most fields outside quotes."""

    def score(delimiter: str) -> tuple[int, int]:
        fields = next(csv.reader([line], delimiter=delimiter), [])
        names = sum(1 for field in fields if field.strip().lower() in _FIELD_BY_LOWER)
        return names, _count_outside_quotes(line, delimiter)

    best = max(_DELIMITERS, key=score)
    if score(best)[1] == 0:
        raise ReportParseError(
            "this does not look like a JMeter results file: the first line has no column delimiter "
            "(comma, semicolon, tab or pipe)",
            "line 1",
        )
    return best


def _count_outside_quotes(line: str, delimiter: str) -> int:
    count = 0
    quoted = False
    for char in line:
        if char == '"':
            quoted = not quoted  # a doubled quote toggles twice: no change
        elif char == delimiter and not quoted:
            count += 1
    return count


def _is_timestamp(field: str) -> bool:
    return bool(_EPOCH.fullmatch(field) or _TEXT_TIMESTAMP.fullmatch(field))


def _positions(names: tuple[str, ...] | list[str]) -> dict[str, int]:
    return {name: names.index(name) for name in (*MANDATORY_COLUMNS, *OPTIONAL_COLUMNS) if name in names}


def _header_positions(fields: list[str], line: int) -> dict[str, int]:
    """Column positions from a header line (names matched case-insensitively; the first of duplicates wins)."""
    names: list[str] = []
    for field in fields:
        key = field.strip().lstrip("\ufeff").lower()
        names.append(_FIELD_BY_LOWER.get(key, field))
    known = [name for name in names if name in CSV_FIELDS]
    if not known:
        raise ReportParseError(
            "this does not look like a JMeter results file: the first line is neither a JMeter CSV header nor a sample",
            f"line {line}",
        )
    for name in MANDATORY_COLUMNS:
        if name not in names:
            raise ReportParseError(
                f"the CSV header has no '{name}' column (a JMeter results file needs {', '.join(MANDATORY_COLUMNS)})",
                f"line {line}",
            )
    return _positions(names)


def _is_header_row(row: list[str]) -> bool:
    """A header line in the middle of the file (two runs appended)."""
    if not row or _is_timestamp(row[0]):
        return False
    lowered = {field.strip().lstrip("\ufeff").lower() for field in row}
    return all(name.lower() in lowered for name in MANDATORY_COLUMNS)


@dataclass
class _Samples:
    """Column arrays of the counted samples, one entry per sample."""

    ts: np.ndarray  # int64 epoch ms of the sample start
    elapsed: np.ndarray  # float64 ms
    label_idx: np.ndarray  # integer index into labels
    labels: list[str]
    success: np.ndarray  # bool
    received: np.ndarray  # float64 bytes
    sent: np.ndarray  # float64 bytes
    threads: np.ndarray | None  # int64 allThreads, None when the file does not record it
    transaction: np.ndarray | None = None  # bool: a Transaction Controller's sample; None when there are none
    no_elapsed: np.ndarray | None = None  # bool: the sample has no elapsed time (0 above); None when all have one
    no_start: np.ndarray | None = None  # bool: the sample has no start time (0 above); None when all have one
    empty_transactions: int = 0  # empty Transaction Controller samples read and left out

    def subset(self, keep: np.ndarray) -> _Samples:
        """The samples where `keep` is true (labels keep their indices)."""

        def take(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else values[keep]

        return _Samples(
            ts=self.ts[keep], elapsed=self.elapsed[keep], label_idx=self.label_idx[keep], labels=self.labels,
            success=self.success[keep], received=self.received[keep], sent=self.sent[keep],
            threads=take(self.threads), transaction=take(self.transaction), no_elapsed=take(self.no_elapsed),
            no_start=take(self.no_start), empty_transactions=self.empty_transactions,
        )  # fmt: skip


class _FastPathRefused(Exception):
    """pyarrow cannot take this file as it is: the streaming reader will."""


def _read_csv(inp: _Input, layout: _CsvLayout, progress: Callable[[int], None] | None) -> _Samples:
    """Every CSV row is a sample, Transaction Controller rows included, flagged by their responseMessage.

    JMeter's CSV writer emits a Transaction Controller's sample ("Number of samples in transaction : ...",
    empty dataType) as an ordinary row, after its children's rows unless "generate parent sample" is on.
    """
    try:
        return _read_csv_arrow(inp, layout, progress, newlines_in_values=False)
    except _FastPathRefused as exc:
        # A record spanning lines only trips pyarrow when it straddles two blocks, and allowing for it slows
        # every read down (~30%): so it is allowed only after a parse error that such a record can cause.
        if not any(hint in str(exc) for hint in ("CSV parse error", "multiple lines")):
            return _read_csv_python(inp, layout, progress)
    try:
        return _read_csv_arrow(inp, layout, progress, newlines_in_values=True)
    except _FastPathRefused:
        return _read_csv_python(inp, layout, progress)


def _read_csv_arrow(
    inp: _Input, layout: _CsvLayout, progress: Callable[[int], None] | None, *, newlines_in_values: bool
) -> _Samples:
    """Fast path: pyarrow reads only the needed columns with fixed types."""
    names = [f"c{i}" for i in range(layout.width)]
    col = {name: f"c{position}" for name, position in layout.columns.items()}
    types = {
        col["timeStamp"]: pa.string() if layout.text_timestamps else pa.int64(),
        col["elapsed"]: pa.int64(),
        col["label"]: pa.dictionary(pa.int32(), pa.string()),  # few distinct labels: indices, not strings
        col["success"]: pa.bool_(),
    }
    for name in NUMERIC_OPTIONAL_COLUMNS:
        if name in col:
            types[col[name]] = pa.int64()
    if "responseMessage" in col:
        types[col["responseMessage"]] = pa.dictionary(pa.int32(), pa.string())  # few distinct messages
    read_options = pa_csv.ReadOptions(
        column_names=names, skip_rows=1 if layout.has_header else 0, block_size=_ARROW_BLOCK
    )
    parse_options = pa_csv.ParseOptions(delimiter=layout.delimiter, newlines_in_values=newlines_in_values)
    convert_options = pa_csv.ConvertOptions(
        include_columns=list(types),
        column_types=types,
        true_values=["true", "True", "TRUE"],
        false_values=["false", "False", "FALSE"],
        null_values=list(_NULLS),
        strings_can_be_null=False,
        check_utf8=True,
    )
    with inp.open() as handle:
        if inp.path is not None and progress is None:
            arrow_source = inp.path  # pyarrow's own file reader: the fastest
        elif inp.data is not None and progress is None:
            arrow_source = pa.BufferReader(inp.data)
        else:
            arrow_source = _Counting(handle, progress)
        try:
            table = pa_csv.read_csv(
                arrow_source, read_options=read_options, parse_options=parse_options, convert_options=convert_options
            )
        except pa.ArrowException as exc:
            raise _FastPathRefused(str(exc)) from exc
    samples = _samples_from_table(table, col, layout.text_timestamps)
    # Everything is in numpy now: give the parse buffers back so that the statistics do not add to the peak.
    del table
    pa.default_memory_pool().release_unused()
    return samples


def _samples_from_table(table: pa.Table, col: dict[str, str], text_timestamps: bool) -> _Samples:
    def numbers(name: str, dtype) -> np.ndarray:
        column = table.column(col[name])
        if column.null_count:
            column = column.fill_null(0)
        return column.to_numpy().astype(dtype, copy=False)

    ts_column = table.column(col["timeStamp"])
    if text_timestamps:
        try:
            # Naive ISO 8601 dates ("2014-02-24 07:42:21.256", "T" or space, with or without millis) read as UTC.
            ts_column = pc.cast(pc.replace_substring(ts_column, "/", "-"), pa.timestamp("ms")).cast(pa.int64())
        except pa.ArrowException as exc:
            raise _FastPathRefused(str(exc)) from exc
    mandatory = (ts_column, table.column(col["elapsed"]), table.column(col["label"]), table.column(col["success"]))
    if any(column.null_count for column in mandatory):
        raise _FastPathRefused("a mandatory value is missing")  # the streaming reader names the line
    ranges = [(ts_column, _MAX_TS), (table.column(col["elapsed"]), _MAX_ELAPSED)]
    if "allThreads" in col:
        ranges.append((table.column(col["allThreads"]), _MAX_THREADS))
    for column, high in ranges:
        extremes = pc.min_max(column).as_py()  # None values when there are no rows
        if extremes["min"] is not None and not (0 <= extremes["min"] and extremes["max"] < high):
            raise _FastPathRefused("a value is out of range")  # the streaming reader names the line

    chunks = table.column(col["label"]).unify_dictionaries().chunks
    labels = chunks[0].dictionary.to_pylist() if chunks else []
    label_idx = np.concatenate([chunk.indices.to_numpy() for chunk in chunks]) if chunks else np.zeros(0, np.int32)
    samples = _Samples(
        ts=ts_column.to_numpy().astype(np.int64, copy=False),
        elapsed=table.column(col["elapsed"]).to_numpy().astype(np.float64),
        label_idx=label_idx,
        labels=labels,
        success=table.column(col["success"]).to_numpy(),
        received=numbers("bytes", np.float64) if "bytes" in col else np.zeros(table.num_rows),
        sent=numbers("sentBytes", np.float64) if "sentBytes" in col else np.zeros(table.num_rows),
        threads=numbers("allThreads", np.int64) if "allThreads" in col else None,
    )
    if "responseMessage" in col:
        return _with_transactions(samples, table.column(col["responseMessage"]))
    return samples


def _with_transactions(samples: _Samples, messages: pa.ChunkedArray) -> _Samples:
    """Flag Transaction Controller samples, and drop empty ones, from the response messages (dictionary
    encoded: each distinct message is tested once)."""

    def flags(prefix: str) -> np.ndarray:
        parts = [
            pc.starts_with(chunk.dictionary, prefix).fill_null(False).take(chunk.indices).fill_null(False)
            for chunk in messages.chunks
        ]
        return np.concatenate([part.to_numpy(zero_copy_only=False) for part in parts]) if parts else np.zeros(0, bool)

    transaction = flags(TRANSACTION_PREFIX)
    if not transaction.any():
        return samples
    samples.transaction = transaction
    empty = flags(EMPTY_TRANSACTION_PREFIX)
    if empty.any():
        samples = samples.subset(~empty)
        samples.empty_transactions = int(np.count_nonzero(empty))
    return samples


class _Accumulator:
    """Compact growing columns for the streaming readers (typed arrays, not Python objects per sample)."""

    def __init__(self, with_threads: bool):
        self.ts = array.array("q")
        self.elapsed = array.array("d")
        self.label_idx = array.array("l")
        self.success = array.array("b")
        self.received = array.array("d")
        self.sent = array.array("d")
        self.threads = array.array("q")
        self.with_threads = with_threads
        self.label_ids: dict[str, int] = {}
        # Rare per-sample facts, as the indices of the samples they apply to.
        self.transactions = array.array("q")
        self.no_elapsed = array.array("q")
        self.no_start = array.array("q")
        self.empty_transactions = 0

    def is_transaction(self, message: str | None) -> bool | None:
        """Notes whether the next sample added is a Transaction Controller's; None: an empty one, not to add."""
        if message is None or not message.startswith(TRANSACTION_PREFIX):
            return False
        if message.startswith(EMPTY_TRANSACTION_PREFIX):
            self.empty_transactions += 1
            return None
        self.transactions.append(len(self.ts))
        return True

    def add(self, ts: int, elapsed: float, label: int, success: bool, received: float, sent: float, threads: int):
        self.ts.append(ts)
        self.elapsed.append(elapsed)
        self.label_idx.append(label)
        self.success.append(success)
        self.received.append(received)
        self.sent.append(sent)
        if self.with_threads:
            self.threads.append(threads)

    def label_id(self, label: str, where: str) -> int:
        index = self.label_ids.get(label)
        if index is None:
            if not label.isascii():
                try:
                    label.encode("utf-8")
                except UnicodeEncodeError as exc:  # a lone surrogate: the bytes were not UTF-8
                    raise ReportParseError("the label is not valid UTF-8", where) from exc
            index = self.label_ids[label] = len(self.label_ids)
        return index

    def samples(self) -> _Samples:
        return _Samples(
            ts=np.frombuffer(self.ts, dtype=np.int64) if self.ts else np.zeros(0, np.int64),
            elapsed=np.frombuffer(self.elapsed, dtype=np.float64) if self.elapsed else np.zeros(0),
            label_idx=np.asarray(self.label_idx, dtype=np.int64),
            labels=list(self.label_ids),
            success=np.asarray(self.success, dtype=bool),
            received=np.frombuffer(self.received, dtype=np.float64) if self.received else np.zeros(0),
            sent=np.frombuffer(self.sent, dtype=np.float64) if self.sent else np.zeros(0),
            threads=np.asarray(self.threads, dtype=np.int64) if self.with_threads else None,
            transaction=self._flags(self.transactions),
            no_elapsed=self._flags(self.no_elapsed),
            no_start=self._flags(self.no_start),
            empty_transactions=self.empty_transactions,
        )

    def _flags(self, indices: array.array) -> np.ndarray | None:
        if not indices:
            return None
        flags = np.zeros(len(self.ts), dtype=bool)
        flags[np.frombuffer(indices, dtype=np.int64)] = True
        return flags


def _bounded_lines(text: io.TextIOBase, position: list[int]) -> Iterator[str]:
    """Physical lines for csv.reader, refusing an over-long line before it is in memory."""
    readline = text.readline
    number = 0
    while line := readline(MAX_LINE_CHARS + 1):
        number += 1
        position[0] = number
        if len(line) > MAX_LINE_CHARS and line[-1] not in "\r\n":
            raise ReportParseError(f"line {number} is longer than {MAX_LINE_CHARS:,} characters")
        yield line


def _read_csv_python(inp: _Input, layout: _CsvLayout, progress: Callable[[int], None] | None) -> _Samples:
    """Robust path: the csv module, streamed, with a precise error for the first bad value.

    Each row first goes through a quick conversion for the common case (epoch ms, plain numbers); a row it
    does not take (header line, formatted date, empty or bad value) goes through _slow_row, which accepts the
    variants or raises an error naming the line and the field.
    """
    acc = _Accumulator(with_threads="allThreads" in layout.columns)
    position = [0]
    with inp.open() as handle:
        raw = io.BufferedReader(_Counting(handle, progress), buffer_size=_CHUNK)
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="")
        reader = csv.reader(_bounded_lines(text, position), delimiter=layout.delimiter, quotechar='"')
        columns, width = layout.columns, layout.width
        ts_at, elapsed_at, label_at, success_at, bytes_at, sent_at, threads_at, message_at = _indices(columns)
        label_ids = acc.label_ids
        append_ts, append_elapsed, append_label = acc.ts.append, acc.elapsed.append, acc.label_idx.append
        append_success, append_received, append_sent = acc.success.append, acc.received.append, acc.sent.append
        append_threads = acc.threads.append if acc.with_threads else None
        start_line = 1
        try:
            if layout.has_header:
                next(reader, None)
                start_line = reader.line_num + 1
            for row in reader:
                line = start_line
                start_line = reader.line_num + 1
                try:
                    if len(row) != width:
                        raise ValueError
                    ts = int(row[ts_at])
                    elapsed = float(row[elapsed_at])
                    success = _BOOLEANS[row[success_at]]
                    label = label_ids[row[label_at]]
                    received = float(row[bytes_at]) if bytes_at is not None else 0.0
                    sent = float(row[sent_at]) if sent_at is not None else 0.0
                    threads = int(row[threads_at]) if threads_at is not None else 0
                    if not _plausible(ts, elapsed, received, sent, threads):
                        raise ValueError  # out of range, nan or inf: _slow_row says which
                    if message_at is not None and row[message_at].startswith(TRANSACTION_PREFIX):
                        if acc.is_transaction(row[message_at]) is None:
                            continue  # an empty transaction
                except (ValueError, KeyError):
                    header = _slow_row(acc, row, columns, width, line)
                    if header is not None:  # two runs appended: the second header may even name other columns
                        columns, width = header
                        ts_at, elapsed_at, label_at, success_at, bytes_at, sent_at, threads_at, message_at = _indices(
                            columns
                        )
                    continue
                append_ts(ts)
                append_elapsed(elapsed)
                append_label(label)
                append_success(success)
                append_received(received)
                append_sent(sent)
                if append_threads is not None:
                    append_threads(threads)
        except csv.Error as exc:
            raise ReportParseError(str(exc), f"line {position[0]}") from exc
        finally:
            text.detach()  # leave the caller's handle open
    return acc.samples()


_BOOLEANS = {"true": True, "false": False, "True": True, "False": False, "TRUE": True, "FALSE": False}
_HUGE = 1e300  # anything beyond is nan or inf
# Accepted ranges: timestamps from 1970 to about the year 9900, elapsed times under ~35 years. Beyond them a
# sample is a typo or garbage, and start / end would no longer be valid datetimes or exact in float64.
_MAX_TS = 250_000_000_000_000
_MAX_ELAPSED = float(2**40)
_MAX_THREADS = 2**62


def _indices(columns: dict[str, int]) -> tuple:
    return (
        columns["timeStamp"],
        columns["elapsed"],
        columns["label"],
        columns["success"],
        columns.get("bytes"),
        columns.get("sentBytes"),
        columns.get("allThreads"),
        columns.get("responseMessage"),
    )


def _slow_row(
    acc: _Accumulator, row: list[str], columns: dict[str, int], width: int, line: int
) -> tuple[dict[str, int], int] | None:
    """A row the quick conversion did not take: skip it, add it, or say precisely what is wrong.

    Returns the new column positions and width when the row is a header line.
    """
    where = f"line {line}"
    if not row or row == [""]:
        return None  # an empty line
    if line == 1 and row[0].startswith("\ufeff"):
        row[0] = row[0][1:]
    if _is_header_row(row):
        return _header_positions(row, line), len(row)
    if len(row) != width:
        raise ReportParseError(f"expected {width} fields, found {len(row)}", where)
    raw_ts = row[columns["timeStamp"]]
    try:
        ts = int(raw_ts)
    except ValueError:
        ts = _text_timestamp_ms(raw_ts)
        if ts is None:
            raise ReportParseError(
                f"timeStamp {raw_ts!r} is neither epoch milliseconds nor a date like 2024-01-31 12:00:00.000", where
            ) from None
    _in_range(ts, _MAX_TS, "timeStamp", raw_ts, where)
    elapsed = _number(row[columns["elapsed"]], "elapsed", where, optional=False)
    _in_range(elapsed, _MAX_ELAPSED, "elapsed", row[columns["elapsed"]], where)
    label = acc.label_id(row[columns["label"]], where)
    success = _success(row[columns["success"]], where)
    received = _number(row[columns["bytes"]], "bytes", where) if "bytes" in columns else 0.0
    sent = _number(row[columns["sentBytes"]], "sentBytes", where) if "sentBytes" in columns else 0.0
    threads = 0
    if "allThreads" in columns:
        threads = _number(row[columns["allThreads"]], "allThreads", where)
        _in_range(threads, _MAX_THREADS, "allThreads", row[columns["allThreads"]], where)
    if "responseMessage" in columns and acc.is_transaction(row[columns["responseMessage"]]) is None:
        return None  # an empty transaction
    acc.add(ts, elapsed, label, success, received, sent, int(threads))
    return None


def _in_range(value: float, high: float, name: str, text: str, where: str) -> None:
    if not 0 <= value < high:
        raise ReportParseError(f"{name} {text!r} is out of range", where)


def _plausible(ts, elapsed, received, sent, threads) -> bool:
    """False for a value out of range, nan or inf: the slow path then names the field."""
    return (
        0 <= ts < _MAX_TS
        and 0 <= elapsed < _MAX_ELAPSED
        and -_HUGE < received < _HUGE
        and -_HUGE < sent < _HUGE
        and 0 <= threads < _MAX_THREADS
    )


def _number(text: str, name: str, where: str, *, optional: bool = True) -> float:
    try:
        value = float(text)
    except ValueError:
        if optional and text.strip() in _NULLS:
            return 0.0
        raise ReportParseError(f"{name} {text!r} is not a number", where) from None
    if not math.isfinite(value):
        raise ReportParseError(f"{name} {text!r} is not a number", where)
    return value


def _success(text: str, where: str) -> bool:
    value = text.strip().lower()
    if value == "true":
        return True
    if value == "false":
        return False
    raise ReportParseError(f"success {text!r} is neither true nor false", where)


def _text_timestamp_ms(text: str) -> int | None:
    """Epoch ms of a formatted timestamp (yyyy/MM/dd or yyyy-MM-dd, space or T, optional millis), UTC if no zone."""
    match = _TEXT_TIMESTAMP.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))  # validates the ranges
    except ValueError:
        return None
    seconds = calendar.timegm((int(year), int(month), int(day), int(hour), int(minute), int(second)))
    millis = int((fraction or "0").ljust(3, "0")[:3])
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        seconds -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return seconds * 1000 + millis


# ---------------------------------------------------------------------------------------------------------------
# XML


class _XmlSamples:
    """Element handlers for the defused expat parser: keeps only the attributes of top-level samples.

    No tree is built and no text is kept (responseData can be large), so memory does not grow with the file.
    """

    def __init__(self):
        self.expat = None  # the expat parser, for line numbers
        self.depth = 0
        self.acc = _Accumulator(with_threads=True)

    def line(self) -> int:
        return self.expat.CurrentLineNumber if self.expat is not None else 0

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        self.depth += 1
        if self.depth == 2:
            # Only top-level samples count: nested ones are embedded resources or Transaction Controller
            # children, already summed up in their parent (as JMeter's reports do).
            if tag in _XML_SAMPLE_TAGS:
                self._add(tag, attrib)
        elif self.depth == 1 and tag != "testResults":
            raise ReportParseError(
                f"this XML is not a JMeter results file: its root element is <{tag}>, not <testResults>",
                f"line {self.line()}",
            )

    def end(self, tag: str) -> None:
        self.depth -= 1

    def _add(self, tag: str, attrib: dict[str, str]) -> None:
        get = attrib.get
        try:
            ts = int(attrib["ts"])
            elapsed = float(attrib["t"])
            success = _BOOLEANS[attrib["s"]]
            label = self.acc.label_ids[get("lb", "")]
            received = float(get("by") or 0)
            sent = float(get("sby") or 0)
            threads = int(get("na") or 0)
            if not _plausible(ts, elapsed, received, sent, threads):
                raise ValueError  # out of range, nan or inf: _slow_add says which
        except (KeyError, ValueError):
            self._slow_add(tag, attrib)
            return
        message = get("rm")
        if message is not None and message.startswith(TRANSACTION_PREFIX) and self.acc.is_transaction(message) is None:
            return  # an empty transaction
        self.acc.add(ts, elapsed, label, success, received, sent, threads)

    def _slow_add(self, tag: str, attrib: dict[str, str]) -> None:
        """A sample the quick conversion did not take: add it, or say precisely which attribute is wrong.

        A sample without `t` or `ts` (saved with those columns turned off) is counted; its timing is not known.
        """
        where = f"line {self.line()}"
        if "s" not in attrib:
            raise ReportParseError(f"<{tag}> has no 's' attribute", where)

        def number(name: str, *, optional: bool = True, high: float | None = None) -> float:
            text = attrib.get(name, "")
            value = _number(text, f"<{tag}> attribute {name}", where, optional=optional)
            if high is not None:
                _in_range(value, high, f"<{tag}> attribute {name}", text, where)
            return value

        ts = int(number("ts", optional=False, high=_MAX_TS)) if "ts" in attrib else 0
        elapsed = number("t", optional=False, high=_MAX_ELAPSED) if "t" in attrib else 0.0
        values = (
            ts, elapsed, self.acc.label_id(attrib.get("lb", ""), where), _success(attrib["s"], where),
            number("by"), number("sby"), int(number("na", high=_MAX_THREADS)),
        )  # fmt: skip
        if self.acc.is_transaction(attrib.get("rm")) is None:
            return  # an empty transaction
        index = len(self.acc.ts)
        if "ts" not in attrib:
            self.acc.no_start.append(index)
        if "t" not in attrib:
            self.acc.no_elapsed.append(index)
        self.acc.add(*values)


def _read_xml(inp: _Input, progress: Callable[[int], None] | None) -> _Samples:
    # defusedxml's parser refuses DTDs, entity declarations and external references (an XML bomb or XXE fails
    # at the declaration, before any expansion). Its ElementTree layer is bypassed for speed: our handlers go
    # straight onto its expat parser, next to defusedxml's guards, which stay in place.
    # The handler has no data / comment / pi methods, so no text is ever handed to Python.
    handler = _XmlSamples()
    parser = DefusedXMLParser(target=handler, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    expat_parser = handler.expat = parser.parser
    expat_parser.ordered_attributes = False  # attributes as a dict
    expat_parser.StartElementHandler = handler.start
    expat_parser.EndElementHandler = handler.end
    expat_parser.DefaultHandlerExpand = None  # text is not needed: drop it inside expat
    consumed = reported = 0
    try:
        with inp.open() as handle:
            while chunk := handle.read(_CHUNK):
                parser.feed(chunk)
                consumed += len(chunk)
                if progress is not None and consumed - reported >= PROGRESS_EVERY:
                    reported = consumed
                    progress(consumed)
            expat_parser.Parse(b"", True)
    except ParseError as exc:
        line, column = getattr(exc, "position", (0, 0))
        message = str(exc).split(":", 1)[0]
        raise ReportParseError(f"the XML is not well-formed: {message} (column {column})", f"line {line}") from exc
    except ExpatError as exc:
        raise ReportParseError(
            f"the XML is not well-formed: {_expat_message(exc)} (column {exc.offset})", f"line {exc.lineno}"
        ) from exc
    except DTDForbidden as exc:
        raise ReportParseError(
            "XML entity declarations are not allowed: the file has a DOCTYPE, which JMeter results never have",
            f"line {handler.line()}",
        ) from exc
    except EntitiesForbidden as exc:
        raise ReportParseError(
            f"XML entity declarations are not allowed (entity '{exc.name}')", f"line {handler.line()}"
        ) from exc
    except ExternalReferenceForbidden as exc:
        raise ReportParseError(
            "XML entity declarations are not allowed (external reference)", f"line {handler.line()}"
        ) from exc
    return handler.acc.samples()


def _expat_message(exc: ExpatError) -> str:
    return ErrorString(exc.code) if exc.code else str(exc)


# ---------------------------------------------------------------------------------------------------------------
# Statistics


def _statistics(samples: _Samples, kind: str) -> JMeterResult:
    count = len(samples.ts)
    if count == 0:
        empty = samples.empty_transactions
        raise ReportParseError(
            f"no samples (only {empty:,} empty Transaction Controller samples)" if empty else "no samples"
        )

    samples = _labels_without_nul(samples)
    # Labels sorted by name; sample label indices remapped so that group g is the g-th label in that order.
    order = sorted(range(len(samples.labels)), key=samples.labels.__getitem__)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    names = [samples.labels[i] for i in order]
    by_label = _Groups(rank[samples.label_idx], len(names))

    end = samples.ts + samples.elapsed  # float64: epoch ms stay exact (< 2**53)
    per_label = _group_stats(by_label, samples, end, ~samples.success, _WholeNumbers.of(samples.elapsed))
    transactions = _count(by_label, samples.transaction)
    labels = [
        _label_stats(name, *row, is_transaction=bool(in_transaction), no_elapsed=no_elapsed, no_start=no_start)
        for name, row, in_transaction, no_elapsed, no_start in zip(
            names,
            per_label,
            transactions,
            _count(by_label, samples.no_elapsed),
            _count(by_label, samples.no_start),
            strict=True,
        )
        if row[0]
    ]
    # The Total, and the time series, are of every sample but Transaction Controller ones (JMeter's dashboard).
    counted = samples if samples.transaction is None else samples.subset(~samples.transaction)
    total, buckets, gap = _total(counted)
    return JMeterResult(
        format=kind,
        labels=labels,
        total=total,
        buckets=buckets,
        started_at=None if samples.no_start is not None else _utc(samples.ts.min()),
        finished_at=None if samples.no_start is not None or samples.no_elapsed is not None else _utc(end.max()),
        transaction_samples=count - len(counted.ts),
        empty_transactions=samples.empty_transactions,
        timing_unavailable=gap,
    )


def _labels_without_nul(samples: _Samples) -> _Samples:
    """The labels as the portal keeps them (common.without_nul); two that differed only by NULs become one."""
    cleaned = [without_nul(label) for label in samples.labels]
    if cleaned == samples.labels:
        return samples
    ids: dict[str, int] = {}
    remap = np.array([ids.setdefault(label, len(ids)) for label in cleaned], dtype=np.int64)
    samples.label_idx = remap[samples.label_idx]
    samples.labels = list(ids)
    return samples


def _count(groups: _Groups, flags: np.ndarray | None) -> list[int]:
    """Per group, how many samples have the flag (an absent flag array: none)."""
    return groups.count_true(flags).tolist() if flags is not None else [0] * groups.count


def _total(samples: _Samples) -> tuple[LabelStats, list[Bucket], str]:
    """The Total row, its time buckets, and why there are no buckets ("" when there are)."""
    count = len(samples.ts)
    if count == 0:
        unknown = (None,) * 13
        return LabelStats("Total", 0, 0, *unknown, timing_unavailable=ONLY_TRANSACTIONS), [], ONLY_TRANSACTIONS
    everything = _Groups(None, 1, count)
    failed = ~samples.success
    whole = _WholeNumbers.of(samples.elapsed)
    (row,) = _group_stats(everything, samples, samples.ts + samples.elapsed, failed, whole)
    (no_elapsed,), (no_start,) = _count(everything, samples.no_elapsed), _count(everything, samples.no_start)
    total = _label_stats("Total", *row, is_transaction=False, no_elapsed=no_elapsed, no_start=no_start)
    if total.timing_unavailable:
        return total, [], total.timing_unavailable
    return total, _buckets(samples, failed, whole), ""


@dataclass(frozen=True, slots=True)
class _WholeNumbers:
    """Values that are all whole numbers (JMeter's elapsed is integer ms), as offsets from the smallest."""

    offsets: np.ndarray  # int64, value - low
    low: int
    span: int  # max - low + 1

    @staticmethod
    def of(values: np.ndarray) -> _WholeNumbers | None:
        low, high = float(values.min()), float(values.max())
        if not (-(2.0**52) < low <= high < 2.0**52):
            return None
        ints = values.astype(np.int64)
        if not np.array_equal(ints, values):
            return None
        ints -= int(low)
        return _WholeNumbers(ints, int(low), int(high) - int(low) + 1)


_HISTOGRAM_CELLS = 1 << 22  # counting-sort cells (8 bytes each) allowed for order statistics


class _Groups:
    """Samples split into groups (labels or time slices), or one group of all (index None, no work to split).

    Sums by bincount, min / max by ufunc.at, order statistics by counting sort (whole numbers in a small
    range) or by gathering each group's values together and partially sorting them (np.partition): linear
    time either way, where a full sort of a million values costs several times more.
    """

    def __init__(self, index: np.ndarray | None, count: int, size: int = 0):
        self.index = index
        self.count = count
        self.sizes = np.bincount(index, minlength=count) if index is not None else np.array([size])
        self.starts = np.concatenate(([0], np.cumsum(self.sizes)[:-1]))

    def sum(self, weights: np.ndarray) -> np.ndarray:
        if self.index is None:
            return np.array([weights.sum(dtype=np.float64)])
        return np.bincount(self.index, weights=weights, minlength=self.count)

    def count_true(self, flags: np.ndarray) -> np.ndarray:
        if self.index is None:
            return np.array([np.count_nonzero(flags)])
        return np.bincount(self.index[flags], minlength=self.count)

    def spread(self, per_group: np.ndarray) -> np.ndarray:
        """The group's value for every sample."""
        return per_group[self.index] if self.index is not None else per_group[0]

    def extreme(self, ufunc: np.ufunc, values: np.ndarray, initial) -> np.ndarray:
        if self.index is None:
            return np.array([ufunc.reduce(values)])
        result = np.full(self.count, initial, dtype=values.dtype)
        ufunc.at(result, self.index, values)
        return result

    def order_statistics(self, values: np.ndarray, ranks: np.ndarray, whole: _WholeNumbers | None) -> np.ndarray:
        """values[rank] in each group's ascending order, for ranks of shape (groups, k); 0.0 for empty groups."""
        result = np.zeros(ranks.shape)
        present = self.sizes > 0
        if whole is not None and self.count * whole.span <= _HISTOGRAM_CELLS:
            # Counting sort: cumulative counts per (group, value) cell; the value at global rank r is in the
            # first cell whose cumulative count exceeds r.
            cells = whole.offsets if self.index is None else self.index * whole.span + whole.offsets
            cumulative = np.bincount(cells, minlength=self.count * whole.span)
            np.cumsum(cumulative, out=cumulative)
            found = np.searchsorted(cumulative, self.starts[present, None] + ranks[present], side="right")
            result[present] = found % whole.span + whole.low
            return result
        if self.index is None:
            result[0] = np.partition(values, np.unique(ranks[0]))[ranks[0]]
            return result
        if self.count > 65_536:  # too many groups for a loop or a 16-bit radix sort: one full sort
            ordered = values[np.lexsort((values, self.index))]
            result[present] = ordered[self.starts[present, None] + ranks[present]]
            return result
        grouped = values[np.argsort(self.index.astype(np.uint16), kind="stable")]  # radix sort: linear
        for group in np.flatnonzero(self.sizes):
            start = self.starts[group]
            segment = grouped[start : start + self.sizes[group]]
            result[group] = np.partition(segment, np.unique(ranks[group]))[ranks[group]]
        return result


def _rank_plan(sizes: np.ndarray, ps: tuple[float, ...]) -> np.ndarray:
    """0-based ranks each group needs: min, max, then the two neighbours of every percentile position."""
    n = sizes.astype(np.int64)
    top = np.maximum(n - 1, 0)
    columns = [np.zeros_like(n), top]
    for p in ps:
        low = np.floor(p * (n + 1) / 100).astype(np.int64)
        columns += [np.clip(low - 1, 0, top), np.clip(low, 0, top)]
    return np.stack(columns, axis=1)


def _percentile_columns(stats: np.ndarray, sizes: np.ndarray, ps: tuple[float, ...]) -> list[np.ndarray]:
    """percentile() for every group from the order statistics of _rank_plan: the same arithmetic, element-wise."""
    n = sizes.astype(np.int64)
    columns = []
    for j, p in enumerate(ps):
        pos = p * (n + 1) / 100
        lower = stats[:, 2 + 2 * j]
        upper = stats[:, 3 + 2 * j]
        value = lower + (pos - np.floor(pos)) * (upper - lower)
        columns.append(np.where(pos < 1, stats[:, 0], np.where(pos >= n, stats[:, 1], value)))
    return columns


def _group_stats(
    groups: _Groups, samples: _Samples, end: np.ndarray, failed: np.ndarray, whole: _WholeNumbers | None
) -> list[tuple]:
    """Per group: samples, errors, min, max, mean, stdev, p50, p90, p95, p99, span_ms, received, sent."""
    elapsed = samples.elapsed
    sizes = groups.sizes
    safe = np.maximum(sizes, 1)
    mean = groups.sum(elapsed) / safe
    # Two passes (deviations from the group mean) rather than a sum of squares: no cancellation.
    stdev = np.sqrt(groups.sum(np.square(elapsed - groups.spread(mean))) / safe)
    stats = groups.order_statistics(elapsed, _rank_plan(sizes, _PERCENTILES), whole)
    span = groups.extreme(np.maximum, end, -np.inf) - groups.extreme(np.minimum, samples.ts, np.iinfo(np.int64).max)
    return list(
        zip(
            sizes.tolist(),
            groups.count_true(failed).tolist(),
            stats[:, 0].tolist(),
            stats[:, 1].tolist(),
            mean.tolist(),
            stdev.tolist(),
            *(column.tolist() for column in _percentile_columns(stats, sizes, _PERCENTILES)),
            span.tolist(),
            groups.sum(samples.received).tolist(),
            groups.sum(samples.sent).tolist(),
            strict=True,
        )
    )


def _label_stats(
    label, samples, errors, min_ms, max_ms, mean_ms, stdev_ms, p50, p90, p95, p99, span_ms, received, sent, *,
    is_transaction: bool, no_elapsed: int, no_start: int,
) -> LabelStats:  # fmt: skip
    """A group's row; figures that need an elapsed or start time some of its samples lack are None."""
    seconds = span_ms / 1000
    # Samples that all started and ended at the same instant have no duration: no rate (0.0), not infinity.
    per_second = 1 / seconds if seconds > 0 else 0.0
    timed = not no_elapsed
    spanned = timed and not no_start
    gaps = [_gap(missing, samples, what) for missing, what in ((no_elapsed, NO_ELAPSED), (no_start, NO_START))]

    def known(value, available: bool) -> float | None:
        return float(value) if available else None

    return LabelStats(
        label=mask_tokens_apart(label),  # a label may be a URL that holds a token
        samples=int(samples),
        errors=int(errors),
        error_percent=errors / samples * 100,
        min_ms=known(min_ms, timed),
        max_ms=known(max_ms, timed),
        mean_ms=known(mean_ms, timed),
        stdev_ms=known(stdev_ms, timed),
        p50_ms=known(p50, timed),
        p90_ms=known(p90, timed),
        p95_ms=known(p95, timed),
        p99_ms=known(p99, timed),
        throughput=known(samples * per_second, spanned),
        received_kbps=known(received / 1024 * per_second, spanned),
        sent_kbps=known(sent / 1024 * per_second, spanned),
        is_transaction=is_transaction,
        timing_unavailable="; ".join(gap for gap in gaps if gap),
    )


def _gap(missing: int, samples: int, what: str) -> str:
    if not missing:
        return ""
    return f"the samples have {what}" if missing == samples else f"{missing:,} of {samples:,} samples have {what}"


def _bucket_width(first_ms: int, last_ms: int) -> int:
    def count(width: int) -> int:
        return last_ms // (width * 1000) - first_ms // (width * 1000) + 1

    for width in BUCKET_WIDTHS:
        if count(width) <= MAX_BUCKETS:
            return width
    # Longer than 300 hours: whole multiples of an hour.
    hours = max(2, (last_ms - first_ms) // (3_600_000 * MAX_BUCKETS))
    while count(3600 * hours) > MAX_BUCKETS:
        hours += 1
    return 3600 * hours


def _buckets(samples: _Samples, failed: np.ndarray, whole: _WholeNumbers | None) -> list[Bucket]:
    """Consecutive slices of the run, aligned to multiples of the width since the epoch, by sample start."""
    first_ms = int(samples.ts.min())
    last_ms = int(samples.ts.max())
    width = _bucket_width(first_ms, last_ms)
    width_ms = width * 1000
    first_slot = first_ms // width_ms
    nbuckets = last_ms // width_ms - first_slot + 1
    groups = _Groups(samples.ts // width_ms - first_slot, nbuckets)
    sizes = groups.sizes
    means = groups.sum(samples.elapsed) / np.maximum(sizes, 1)
    stats = groups.order_statistics(samples.elapsed, _rank_plan(sizes, (95.0,)), whole)
    (p95,) = _percentile_columns(stats, sizes, (95.0,))
    p95 = np.where(sizes > 0, p95, 0.0)
    if samples.threads is not None:
        threads = groups.extreme(np.maximum, samples.threads, 0)
    else:
        threads = np.zeros(nbuckets, dtype=np.int64)
    errors = groups.count_true(failed)
    return [
        Bucket(
            started_at=_utc((first_slot + i) * width_ms),
            width_seconds=width,
            samples=int(sizes[i]),
            errors=int(errors[i]),
            mean_ms=float(means[i]),
            p95_ms=float(p95[i]),
            active_threads=int(threads[i]),
        )
        for i in range(nbuckets)
    ]


def _utc(epoch_ms) -> datetime:
    return _EPOCH_START + timedelta(milliseconds=float(epoch_ms))


__all__ = [
    "PERCENTILE_DEFINITION",
    "Bucket",
    "JMeterResult",
    "LabelStats",
    "looks_like_jmeter",
    "parse_jmeter",
]
