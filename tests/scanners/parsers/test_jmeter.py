"""JMeter results parser: the shared sample files, every CSV / XML variant, statistics checked against numpy,
time buckets, and every kind of bad input.

Expected numbers for the shared files were worked out by hand (awk / the csv module / ElementTree while the
tests were written), never by calling the parser. Generated data is checked against numpy directly.
"""

from __future__ import annotations

import csv
import io
import math
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from scanners.parsers import jmeter
from scanners.parsers.common import ReportParseError
from scanners.parsers.jmeter import (
    PERCENTILE_DEFINITION,
    Bucket,
    JMeterResult,
    LabelStats,
    looks_like_jmeter,
    parse_jmeter,
)
from tests.scanners import samples

FIXTURES = "jmeter/"
HEADER = (
    "timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success,failureMessage,bytes,"
    "sentBytes,grpThreads,allThreads,URL,Latency,IdleTime,Connect"
)
COLUMNS = HEADER.split(",")
T0 = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC


def exact(value: float):
    return pytest.approx(value, rel=1e-12, abs=1e-12)


def close(value: float):
    return pytest.approx(value, rel=1e-9, abs=1e-9)


def utc_ms(epoch_ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(epoch_ms))


def row(ts, elapsed, label, success="true", received=100, sent=10, threads=1, code="200", message="OK") -> list:
    """One sample in JMeter's default 17 columns."""
    failure = "" if str(success).lower() == "true" else "Test failed"
    return [ts, elapsed, label, code, message, "Thread Group 1-1", "text", success, failure, received, sent,
            threads, threads, "https://example.com/", elapsed // 2, 0, 3]  # fmt: skip


def write_csv(path: Path, rows: list[list], *, header: list[str] | None = COLUMNS, delimiter: str = ",") -> Path:
    """A CSV written by Python's csv module (quotes what needs quoting), like JMeter's writer."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter, lineterminator="\n")
        if header is not None:
            writer.writerow(header)
        writer.writerows(rows)
    return path


def by_label(result: JMeterResult) -> dict[str, LabelStats]:
    return {stats.label: stats for stats in result.labels}


@pytest.fixture(params=["arrow", "python"])
def reader(request, monkeypatch) -> str:
    """Runs a CSV test twice: through the pyarrow fast path, and through the streaming fallback alone."""
    if request.param == "python":

        def refuse(*args, **kwargs):
            raise jmeter._FastPathRefused("forced by the test")

        monkeypatch.setattr(jmeter, "_read_csv_arrow", refuse)
    return request.param


@pytest.fixture
def fast_path_only(monkeypatch):
    """Fails the test if the streaming fallback is used (it is ~15x slower than pyarrow)."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the slow CSV reader was used")

    monkeypatch.setattr(jmeter, "_read_csv_python", forbidden)


# ---------------------------------------------------------------------------------------------------------------
# The percentile definition


def percentile(sorted_values: np.ndarray, p: float) -> float:
    """The JMeter dashboard percentile (commons-math Percentile, LEGACY estimation) of ascending values, one at a
    time: the reference the parser's vectorised percentiles are checked against.

    pos = p(N+1)/100; below 1 gives the minimum, from N on the maximum, otherwise linear interpolation
    between the neighbours at 1-based positions floor(pos) and floor(pos) + 1.
    """
    n = len(sorted_values)
    pos = p * (n + 1) / 100
    if pos < 1:
        return float(sorted_values[0])
    if pos >= n:
        return float(sorted_values[n - 1])
    low = math.floor(pos)
    lower = float(sorted_values[low - 1])
    upper = float(sorted_values[low])
    return lower + (pos - low) * (upper - lower)


def one_label(tmp_path: Path, elapsed) -> LabelStats:
    rows = [row(T0 + i, value, "a") for i, value in enumerate(elapsed)]
    (stats,) = parse_jmeter(write_csv(tmp_path / "one-label.jtl", rows)).labels
    return stats


def test_it_defines_percentiles_like_the_jmeter_dashboard(tmp_path):
    stats = one_label(tmp_path, range(1, 11))  # 1..10
    assert stats.p50_ms == 5.5  # pos 5.5: halfway between the 5th and 6th
    assert stats.p90_ms == pytest.approx(9.9)  # pos 9.9
    assert stats.p95_ms == stats.p99_ms == 10.0  # pos 10.45 >= N: the maximum
    assert one_label(tmp_path, [7]).p50_ms == 7.0
    assert "p(N+1)/100" in PERCENTILE_DEFINITION


def test_it_computes_the_reference_percentile_for_every_size_including_the_clamping(tmp_path):
    rng = np.random.default_rng(3)
    for size in [1, 2, 3, 4, 5, 7, 10, 19, 20, 99, 100, 101, 1000]:
        values = rng.lognormal(4, 1, size).round().astype(np.int64)
        stats = one_label(tmp_path, values.tolist())
        ordered = np.sort(values)
        for p in (50, 90, 95, 99):
            assert getattr(stats, f"p{p}_ms") == exact(percentile(ordered, p)), (size, p)


def test_the_reference_percentile_is_numpys_weibull_method():
    # The generated-data tests below use numpy's weibull method: the same definition, clamping included.
    rng = np.random.default_rng(3)
    for size in [1, 2, 3, 10, 101, 12_345]:
        values = np.sort(rng.lognormal(4, 1, size).round())
        for p in [0.1, 1, 5, 25, 50, 90, 99.9, 100]:
            assert percentile(values, p) == exact(np.percentile(values, p, method="weibull")), (size, p)


# ---------------------------------------------------------------------------------------------------------------
# The shared sample files (numbers worked out by hand)


def test_it_reads_jmeters_own_dashboard_test_file(shared_fixture, reader):
    result = parse_jmeter(shared_fixture(FIXTURES + "jmeter-dashboard-default-17cols.csv"))

    assert result.format == "csv"
    assert [stats.label for stats in result.labels] == ["JR-KO", "JR-OK"]
    ok, ko = by_label(result)["JR-OK"], by_label(result)["JR-KO"]
    assert (ok.samples, ok.errors, ok.min_ms, ok.max_ms) == (252, 0, 101.0, 353.0)
    assert ok.mean_ms == exact(59447 / 252)  # sum of the 252 elapsed values
    # Sorted JR-OK values: positions 126/127 are 232/232, 227/228 are 337/337, 240/241 are 339/340.
    assert (ok.p50_ms, ok.p90_ms, ok.p99_ms) == (232.0, 337.0, 353.0)
    assert ok.p95_ms == exact(339.35)  # pos 0.95 * 253 = 240.35
    assert (ko.samples, ko.errors, ko.error_percent) == (3, 3, 100.0)
    assert (ko.min_ms, ko.max_ms, ko.p50_ms) == (100.0, 329.0, 170.0)
    assert ko.mean_ms == exact(599 / 3)

    total = result.total
    assert (total.label, total.samples, total.errors) == ("Total", 255, 3)
    assert total.error_percent == exact(3 / 255 * 100)
    assert (total.p50_ms, total.p90_ms, total.p95_ms, total.p99_ms) == (232.0, 337.0, exact(339.2), 353.0)
    # First start 1551783627191, last end 1551783687376: 60.185 s; 4596 bytes received, 2040 sent.
    assert total.throughput == exact(255 / 60.185)
    assert total.received_kbps == exact(4596 / 1024 / 60.185)
    assert total.sent_kbps == exact(2040 / 1024 / 60.185)
    assert result.started_at == utc_ms(1551783627191)
    assert result.finished_at == utc_ms(1551783687376)
    # 61 distinct seconds from 1551783627 to 1551783687: one-second buckets, the first holding 4 samples.
    assert len(result.buckets) == 61
    assert result.buckets[0] == Bucket(
        started_at=utc_ms(1551783627000),
        width_seconds=1,
        samples=4,
        errors=0,
        mean_ms=exact((351 + 192 + 131 + 261) / 4),
        p95_ms=351.0,
        active_threads=1,
    )
    assert sum(bucket.samples for bucket in result.buckets) == 255


def test_it_reads_a_file_without_header_with_jmeters_old_default_columns(shared_fixture, reader):
    # 10 columns: ts, elapsed, label, rc, rm, thread, dataType, success, bytes, Latency; no trailing newline.
    result = parse_jmeter(shared_fixture(FIXTURES + "csv-no-header.jtl"))

    assert [(s.label, s.samples, s.errors, s.mean_ms) for s in result.labels] == [
        ("GET /ordermgmt/inventory", 1, 0, 59.0),
        ("GET /ordermgmt/login - Login Page", 1, 0, 1425.0),
        ("GET /ordermgmt/pre-logout", 1, 0, 2204.0),
    ]
    total = result.total
    assert (total.samples, total.errors, total.min_ms, total.max_ms) == (3, 0, 59.0, 2204.0)
    assert total.mean_ms == exact(3688 / 3)
    assert total.p50_ms == 1425.0
    # Starts 1393227741256; the last end is 1393227743132 + 2204 = 1393227745336: 4.080 s.
    assert total.throughput == exact(3 / 4.080)
    assert total.received_kbps == exact((3478 + 3100 + 19714) / 1024 / 4.080)
    assert total.sent_kbps == 0.0
    assert result.buckets[0].active_threads == 0  # no allThreads column in this set


def test_it_reads_formatted_timestamps_as_utc(shared_fixture, reader):
    result = parse_jmeter(shared_fixture(FIXTURES + "csv-formatted-timestamp.csv"))

    login, logout = result.labels
    assert login.label == "GET /ordermgmt/login - Login Page"
    assert (login.samples, login.errors, login.mean_ms) == (1, 1, 1300.0)
    assert (logout.label, logout.samples, logout.errors) == ("GET /ordermgmt/pre-logout", 2, 0)
    assert (logout.mean_ms, logout.stdev_ms, logout.p50_ms, logout.p90_ms) == (1500.0, 500.0, 1500.0, 2000.0)
    assert result.total.errors == 1
    assert result.total.mean_ms == exact(4300 / 3)
    assert result.started_at == datetime(2014, 2, 24, 7, 42, 21, 256000, tzinfo=UTC)
    assert result.finished_at == datetime(2014, 2, 24, 7, 42, 23, 257000, tzinfo=UTC)  # 21.257 + 2000 ms
    # pre-logout: starts 21.257 and 21.258, ends 23.257 and 22.258: 2.000 s for 2 samples.
    assert logout.throughput == exact(1.0)
    assert result.total.throughput == exact(3 / 2.001)


def test_it_counts_failures_non_http_codes_and_leaves_transaction_rows_out_of_the_total(shared_fixture, reader):
    # 13 columns with Hostname, no dataType; two Transaction Controller parent rows; quoted messages.
    result = parse_jmeter(shared_fixture(FIXTURES + "csv-failures-nonhttp.jtl"))

    stats = by_label(result)
    assert len(stats) == 8
    unknown_host = stats["not exist url"]  # rc "Non HTTP response code: java.net.UnknownHostException"
    assert (unknown_host.samples, unknown_host.errors, unknown_host.mean_ms) == (1, 1, 64.0)
    # Transaction Controller rows keep their own label row, marked as transactions...
    passed = stats["TC for embeddedResources check pass"]
    assert (passed.samples, passed.errors, passed.mean_ms, passed.is_transaction) == (1, 0, 75.0, True)
    failed = stats["TC for embeddedResources check last fail"]
    assert (failed.errors, failed.max_ms, failed.is_transaction) == (1, 450.0, True)
    assert [label for label, row in stats.items() if row.is_transaction] == [failed.label, passed.label]
    # ...and stay out of the Total, as in JMeter's dashboard: the 6 other rows.
    total = result.total
    assert (total.samples, total.errors, result.transaction_samples) == (6, 5, 2)
    assert total.error_percent == exact(5 / 6 * 100)
    assert (total.min_ms, total.max_ms) == (3.0, 210.0)  # not the transaction's 450
    assert total.mean_ms == exact(566 / 6)
    assert total.p50_ms == 82.0  # sorted 3,50,64,100,139,210: pos 3.5
    assert total.p90_ms == total.p95_ms == 210.0  # pos 6.3 >= 6
    # First start 1551614636213, last end 1551614636715 + 210: 0.712 s; 10138 bytes received.
    assert total.throughput == exact(6 / 0.712)
    assert total.received_kbps == exact(10138 / 1024 / 0.712)
    assert sum(bucket.samples for bucket in result.buckets) == 6
    assert result.finished_at == utc_ms(1551614636719 + 450)  # the test itself ends with the transaction
    assert result.buckets[0].active_threads == 1


def test_it_counts_only_top_level_xml_samples_with_embedded_resources(shared_fixture):
    result = parse_jmeter(shared_fixture(FIXTURES + "xml-embedded-resources-subsamples.jtl"))

    assert result.format == "xml"
    (only,) = result.labels  # the 3 embedded-resource sub-samples are not counted
    assert (only.label, only.samples, only.errors, only.mean_ms) == ("get echo embedded", 1, 1, 459.0)
    assert only.received_kbps == exact(6334 / 1024 / 0.459)
    assert result.started_at == utc_ms(1522851677051)
    assert result.finished_at == utc_ms(1522851677051 + 459)


def test_it_reads_jmeter3_xml_sample_attributes(shared_fixture):
    result = parse_jmeter(shared_fixture(FIXTURES + "xml-sample-jmeter3-attrs.jtl"))

    (dummy,) = result.labels
    assert (dummy.label, dummy.samples, dummy.errors, dummy.error_percent) == ("jp@gc - Dummy Sampler", 2, 1, 50.0)
    assert (dummy.min_ms, dummy.max_ms, dummy.mean_ms, dummy.stdev_ms) == (333.0, 454.0, 393.5, 60.5)
    assert dummy.p50_ms == 393.5  # pos 1.5
    assert dummy.p90_ms == 454.0  # pos 2.7 >= 2
    # Starts 1492525461260 and ...726, ends ...714 and ...726 + 333 = ...2059: 0.799 s.
    assert dummy.throughput == exact(2 / 0.799)
    assert dummy.received_kbps == exact(228 / 1024 / 0.799)
    assert result.buckets[0].active_threads == 1  # na="1"


def test_it_keeps_xml_transaction_parents_out_of_the_total_and_their_nested_children_everywhere(shared_fixture):
    # Two Transaction Controller parents ("generate parent sample", children nested) and one plain request.
    result = parse_jmeter(shared_fixture(FIXTURES + "xml-transaction-parent-nested-2-levels.jtl"))

    assert [(s.label, s.samples, s.errors, s.mean_ms, s.is_transaction) for s in result.labels] == [
        ("01_LoginPage", 1, 1, 1200.0, True),
        ("02_ChannelSearch", 1, 1, 1300.0, True),
        ("03_Health", 1, 1, 120.0, False),
    ]
    # JMeter's dashboard, given the same run as a CSV (one row per top-level sample), leaves both transaction
    # rows out of the Total: only 03_Health, 120 ms from 1690000002000, 200 bytes, remains.
    total = result.total
    assert (total.samples, total.errors, total.error_percent, result.transaction_samples) == (1, 1, 100.0, 2)
    assert (total.min_ms, total.max_ms, total.mean_ms) == (120.0, 120.0, 120.0)
    assert (total.p50_ms, total.p90_ms, total.p95_ms, total.p99_ms) == (120.0, 120.0, 120.0, 120.0)
    assert total.throughput == exact(1 / 0.12)
    assert total.received_kbps == exact(200 / 1024 / 0.12)
    assert [(bucket.started_at, bucket.samples) for bucket in result.buckets] == [(utc_ms(1690000002000), 1)]
    assert result.started_at == utc_ms(1690000000000)
    assert result.finished_at == utc_ms(1690000001000 + 1300)


def test_it_recognises_every_shared_sample_file(shared_fixture):
    for name in [
        "jmeter-dashboard-default-17cols.csv",
        "csv-no-header.jtl",
        "csv-formatted-timestamp.csv",
        "csv-failures-nonhttp.jtl",
        "xml-embedded-resources-subsamples.jtl",
        "xml-sample-jmeter3-attrs.jtl",
        "xml-transaction-parent-nested-2-levels.jtl",
    ]:
        assert looks_like_jmeter(shared_fixture(FIXTURES + name).read_bytes()[:4096]), name


# ---------------------------------------------------------------------------------------------------------------
# Exact statistics on generated data, checked against numpy


def generate(seed: int = 7, size: int = 50_000, labels: int = 6, elapsed_scale: float = 5.0):
    rng = np.random.default_rng(seed)
    names = np.array([f"API {i:02d} /items, list" if i % 2 else f'GET "/orders/{i}"' for i in range(labels)])
    return {
        "ts": T0 + np.sort(rng.integers(0, 600_000, size)),  # 10 minutes
        "elapsed": rng.lognormal(elapsed_scale, 0.9, size).astype(np.int64),
        "label": names[rng.integers(0, labels, size)],
        "success": rng.random(size) > 0.03,
        "bytes": rng.integers(0, 50_000, size),
        "sent": rng.integers(0, 900, size),
        "threads": rng.integers(1, 60, size),
    }


def generated_rows(data) -> list[list]:
    return [
        row(ts, elapsed, label, "true" if ok else "false", received, sent, threads)
        for ts, elapsed, label, ok, received, sent, threads in zip(
            data["ts"].tolist(), data["elapsed"].tolist(), data["label"].tolist(), data["success"].tolist(),
            data["bytes"].tolist(), data["sent"].tolist(), data["threads"].tolist(), strict=True,
        )
    ]  # fmt: skip


def write_generated_xml(path: Path, data) -> Path:
    """The same samples as XML; every third one carries nested sub-samples that must not be counted."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write('<?xml version="1.0" encoding="UTF-8"?>\n<testResults version="1.2">\n')
        for i, (ts, elapsed, label, ok, received, sent, threads) in enumerate(
            zip(data["ts"].tolist(), data["elapsed"].tolist(), data["label"].tolist(), data["success"].tolist(),
                data["bytes"].tolist(), data["sent"].tolist(), data["threads"].tolist(), strict=True)
        ):  # fmt: skip
            label = label.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
            tag = "sample" if i % 5 == 0 else "httpSample"
            handle.write(
                f'<{tag} t="{elapsed}" it="0" lt="1" ct="0" ts="{ts}" s="{"true" if ok else "false"}" lb="{label}" '
                f'rc="200" rm="OK" tn="TG 1-1" dt="text" by="{received}" sby="{sent}" ng="{threads}" na="{threads}">'
            )
            if i % 3 == 0:
                handle.write(
                    f'<httpSample t="99999" ts="{ts}" s="false" lb="sub" by="1"><sample t="88888" ts="{ts}" s="false" '
                    f'lb="subsub"/><responseData class="java.lang.String">x</responseData></httpSample>'
                )
            handle.write(f"<java.net.URL>https://example.com/</java.net.URL></{tag}>\n")
        handle.write("</testResults>\n")
    return path


def expected_stats(data, mask) -> dict:
    elapsed = data["elapsed"][mask].astype(float)
    starts = data["ts"][mask]
    seconds = ((starts + elapsed).max() - starts.min()) / 1000
    expected = {
        "samples": int(mask.sum()),
        "errors": int((~data["success"][mask]).sum()),
        "min_ms": elapsed.min(),
        "max_ms": elapsed.max(),
        "mean_ms": np.mean(elapsed),
        "stdev_ms": np.std(elapsed),
        "throughput": mask.sum() / seconds,
        "received_kbps": data["bytes"][mask].sum() / 1024 / seconds,
        "sent_kbps": data["sent"][mask].sum() / 1024 / seconds,
    }
    for p in (50, 90, 95, 99):
        expected[f"p{p}_ms"] = np.percentile(elapsed, p, method="weibull")
    expected["error_percent"] = expected["errors"] / expected["samples"] * 100
    return expected


def assert_matches_numpy(result: JMeterResult, data, *, transactions: int = 0) -> None:
    """Every label of `data` and the Total match numpy; `transactions` more labels may follow, not in the Total."""
    names = sorted(set(data["label"].tolist()))
    requests = [stats for stats in result.labels if not stats.is_transaction]
    assert [stats.label for stats in requests] == names
    assert len(result.labels) == len(names) + transactions
    checked = [(stats, data["label"] == stats.label) for stats in requests]
    checked.append((result.total, np.ones(len(data["ts"]), dtype=bool)))
    for stats, mask in checked:
        for field, value in expected_stats(data, mask).items():
            assert getattr(stats, field) == close(value), (stats.label, field)


def assert_buckets_match_numpy(result: JMeterResult, data, width: int) -> None:
    starts = data["ts"]
    first_slot, last_slot = starts.min() // (width * 1000), starts.max() // (width * 1000)
    assert len(result.buckets) == last_slot - first_slot + 1 <= 300
    for i, bucket in enumerate(result.buckets):
        slot = first_slot + i
        mask = starts // (width * 1000) == slot
        elapsed = data["elapsed"][mask].astype(float)
        assert bucket.started_at == utc_ms(slot * width * 1000)
        assert bucket.width_seconds == width
        assert bucket.samples == mask.sum()
        assert bucket.errors == (~data["success"][mask]).sum()
        if mask.any():
            assert bucket.mean_ms == close(elapsed.mean())
            assert bucket.p95_ms == close(np.percentile(elapsed, 95, method="weibull"))
            assert bucket.active_threads == data["threads"][mask].max()
        else:
            assert (bucket.mean_ms, bucket.p95_ms, bucket.active_threads) == (0.0, 0.0, 0)


def test_it_computes_exact_statistics_on_generated_csv(tmp_path, reader):
    data = generate()
    path = write_csv(tmp_path / "run.jtl", generated_rows(data))

    result = parse_jmeter(path)

    assert_matches_numpy(result, data)
    assert_buckets_match_numpy(result, data, width=5)  # 600 s: 1 s would need 601 buckets, 5 s needs 121
    assert result.started_at == utc_ms(int(data["ts"].min()))
    assert result.finished_at == utc_ms(int((data["ts"] + data["elapsed"]).max()))


def test_it_computes_exact_statistics_on_generated_xml_and_ignores_sub_samples(tmp_path):
    data = generate(seed=11, size=20_000)
    result = parse_jmeter(write_generated_xml(tmp_path / "run.xml", data))

    assert result.format == "xml"
    assert_matches_numpy(result, data)
    assert_buckets_match_numpy(result, data, width=5)


def test_it_gives_the_same_numbers_for_csv_and_xml_of_the_same_run(tmp_path):
    data = generate(seed=5, size=5_000)
    from_csv = parse_jmeter(write_csv(tmp_path / "run.csv", generated_rows(data)))
    from_xml = parse_jmeter(write_generated_xml(tmp_path / "run.xml", data))

    assert from_csv.labels == from_xml.labels
    assert from_csv.total == from_xml.total
    assert from_csv.buckets == from_xml.buckets


def test_it_is_exact_when_elapsed_values_are_spread_too_wide_for_counting(tmp_path, reader):
    # Elapsed up to ~10^8 ms over 6 labels: too many cells for the counting sort, the partition path is used.
    data = generate(seed=2, size=20_000, elapsed_scale=14.0)
    assert data["elapsed"].max() * 300 > jmeter._HISTOGRAM_CELLS

    result = parse_jmeter(write_csv(tmp_path / "wide.jtl", generated_rows(data)))

    assert_matches_numpy(result, data)
    assert_buckets_match_numpy(result, data, width=5)


def test_it_is_exact_with_fractional_elapsed_values(tmp_path):
    rng = np.random.default_rng(4)
    elapsed = rng.uniform(0, 500, 3_000).round(3)
    ts = T0 + np.arange(3_000) * 7
    labels = np.array(["a", "b", "c"])[np.arange(3_000) % 3]
    rows = [row(t, e, label) for t, e, label in zip(ts.tolist(), elapsed.tolist(), labels.tolist(), strict=True)]

    result = parse_jmeter(write_csv(tmp_path / "fractions.jtl", rows))

    for stats in result.labels:
        values = elapsed[labels == stats.label]
        assert stats.mean_ms == close(values.mean())
        assert stats.p90_ms == close(np.percentile(values, 90, method="weibull"))
        assert stats.max_ms == values.max()
    assert result.total.p99_ms == close(np.percentile(elapsed, 99, method="weibull"))


def test_it_is_exact_with_more_labels_than_a_group_loop_handles(tmp_path):
    # 70,000 labels of 2 samples each, elapsed spread up to 9,000,000 ms: the one-full-sort path.
    count = 70_000
    elapsed = np.array([10 + (i % 7) * (1 + i % 2) for i in range(2 * count)])
    elapsed[5] = 9_000_000
    labels = np.array([f"url-{i // 2:05d}" for i in range(2 * count)])
    rows = [row(T0 + i, int(e), label) for i, (e, label) in enumerate(zip(elapsed, labels.tolist(), strict=True))]

    result = parse_jmeter(write_csv(tmp_path / "many.jtl", rows))

    assert len(result.labels) == count
    first, third = result.labels[0], result.labels[2]
    # url-00000: elapsed 10 (i=0) and 12 (i=1); url-00002: 14 (i=4) and 9,000,000 (i=5)
    assert (first.label, first.samples, first.min_ms, first.max_ms, first.p50_ms) == ("url-00000", 2, 10.0, 12.0, 11.0)
    assert (third.label, third.min_ms, third.max_ms, third.p50_ms) == ("url-00002", 14.0, 9e6, (14 + 9e6) / 2)
    for p in (50, 90, 95, 99):
        assert getattr(result.total, f"p{p}_ms") == close(np.percentile(elapsed, p, method="weibull"))
    assert result.total.mean_ms == close(elapsed.mean())


def test_it_takes_the_fast_path_for_jmeters_default_csv(tmp_path, fast_path_only):
    data = generate(size=2_000)
    result = parse_jmeter(write_csv(tmp_path / "run.jtl", generated_rows(data)))
    assert result.total.samples == 2_000


# ---------------------------------------------------------------------------------------------------------------
# CSV variants


def simple_rows() -> list[list]:
    return [
        row(T0, 100, "home", received=1000, sent=50, threads=2),
        row(T0 + 500, 300, "home", "false", received=3000, sent=150, threads=3, code="500", message="Oops"),
        row(T0 + 1000, 200, "login", received=2000, sent=100, threads=3),
    ]


def assert_simple(result: JMeterResult) -> None:
    home, login = result.labels
    assert (home.label, home.samples, home.errors, home.mean_ms, home.min_ms, home.max_ms) == (
        "home", 2, 1, 200.0, 100.0, 300.0,
    )  # fmt: skip
    assert home.throughput == exact(2 / 0.8)  # starts T0, T0 + 500; last end T0 + 800
    assert home.received_kbps == exact(4000 / 1024 / 0.8)
    assert home.sent_kbps == exact(200 / 1024 / 0.8)
    assert (login.label, login.samples, login.errors, login.mean_ms) == ("login", 1, 0, 200.0)
    assert (result.total.samples, result.total.errors, result.total.throughput) == (3, 1, exact(3 / 1.2))


def test_it_reads_a_header_less_file_with_the_default_17_columns(tmp_path, reader):
    assert_simple(parse_jmeter(write_csv(tmp_path / "plain.jtl", simple_rows(), header=None)))


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_it_sniffs_the_delimiter(tmp_path, reader, delimiter):
    assert_simple(parse_jmeter(write_csv(tmp_path / "d.jtl", simple_rows(), delimiter=delimiter)))
    assert_simple(parse_jmeter(write_csv(tmp_path / "n.jtl", simple_rows(), header=None, delimiter=delimiter)))


def test_it_reads_quoted_fields_with_delimiters_quotes_and_line_breaks(tmp_path, reader):
    rows = simple_rows()
    rows[0][2] = 'home, "the" page'
    rows[1][2] = 'home, "the" page'
    rows[1][4] = "Internal error:\nstack line 1\r\nstack line 2, with comma"
    rows[2][8] = 'Assertion failed:\n"expected" <> "got"'
    path = write_csv(tmp_path / "quoted.jtl", rows)
    assert path.read_text().count("\n") > 5  # records really span lines

    result = parse_jmeter(path)

    assert [stats.label for stats in result.labels] == ['home, "the" page', "login"]
    assert result.labels[0].samples == 2
    assert result.total.samples == 3


def test_it_reads_multiline_records_without_the_slow_path(tmp_path, fast_path_only):
    rows = [row(T0 + i, 10 + i, "a") for i in range(50_000)]
    for i in range(0, 50_000, 1_000):
        rows[i][4] = "first line\nsecond line"
    result = parse_jmeter(write_csv(tmp_path / "multi.jtl", rows))
    assert result.total.samples == 50_000
    assert result.total.max_ms == 50_009.0


def test_it_reads_records_spanning_a_block_boundary_without_the_slow_path(tmp_path, fast_path_only, monkeypatch):
    monkeypatch.setattr(jmeter, "_ARROW_BLOCK", 4096)  # many block boundaries, most inside a quoted value
    attempts = []
    read_arrow = jmeter._read_csv_arrow

    def spy(*args, **kwargs):
        attempts.append(kwargs["newlines_in_values"])
        return read_arrow(*args, **kwargs)

    monkeypatch.setattr(jmeter, "_read_csv_arrow", spy)
    rows = [row(T0 + i, 10 + i, f"l{i % 5}", message="first line\nsecond, line\nthird") for i in range(5_000)]

    result = parse_jmeter(write_csv(tmp_path / "multi.jtl", rows))

    assert attempts == [False, True]  # line-based splitting failed, then records spanning lines were allowed
    assert (result.total.samples, result.total.max_ms, len(result.labels)) == (5_000, 5_009.0, 5)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("2024/01/31 12:00:00.250", "2024/01/31 12:00:01.750"),
        ("2024-01-31 12:00:00.250", "2024-01-31 12:00:01.750"),
        ("2024-01-31T12:00:00.250", "2024-01-31T12:00:01.750"),
        ("2024-01-31T12:00:00", "2024-01-31T12:00:02"),
    ],
)
def test_it_reads_formatted_timestamps(tmp_path, reader, first, second):
    rows = [row(first, 100, "a"), row(second, 250, "a", "false")]
    result = parse_jmeter(write_csv(tmp_path / "dates.jtl", rows))

    start = datetime(2024, 1, 31, 12, 0, 0, 250000 if "." in first else 0, tzinfo=UTC)
    second_start = datetime.fromisoformat(second.replace("/", "-")).replace(tzinfo=UTC)
    assert result.started_at == start
    assert result.finished_at == second_start + timedelta(milliseconds=250)
    (stats,) = result.labels
    assert (stats.samples, stats.errors) == (2, 1)
    assert stats.throughput == exact(2 / ((result.finished_at - start).total_seconds()))


def test_it_reads_timestamps_with_a_zone_and_without_header(tmp_path, reader):
    rows = [row("2024-01-31T14:00:00.000+02:00", 100, "a"), row("2024-01-31T12:00:01.000Z", 100, "a")]
    result = parse_jmeter(write_csv(tmp_path / "zones.jtl", rows, header=None))
    assert result.started_at == datetime(2024, 1, 31, 12, 0, tzinfo=UTC)
    assert result.finished_at == datetime(2024, 1, 31, 12, 0, 1, 100000, tzinfo=UTC)


def test_it_skips_a_second_header_line_of_an_appended_run(tmp_path, reader):
    rows = simple_rows()
    path = write_csv(tmp_path / "twice.jtl", rows[:2] + [COLUMNS] + rows[2:])
    assert_simple(parse_jmeter(path))


def test_it_follows_a_second_header_that_names_other_columns(tmp_path, reader):
    path = tmp_path / "two-runs.jtl"
    write_csv(path, simple_rows()[:2])
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("timeStamp,label,elapsed,success\n")  # the second run saved fewer columns, in another order
        handle.write(f"{T0 + 1000},login,200,true\n")

    result = parse_jmeter(path)

    assert [(s.label, s.samples, s.mean_ms) for s in result.labels] == [("home", 2, 200.0), ("login", 1, 200.0)]
    assert result.labels[1].received_kbps == 0.0


TRANSACTION_MESSAGE = "Number of samples in transaction : 2, number of failing samples : 1"


def transaction_rows(data) -> list[list]:
    """The generated samples, with a Transaction Controller row after every fourth one (as JMeter writes it
    without "generate parent sample") and an empty transaction now and then."""
    rows = []
    for index, sample in enumerate(generated_rows(data)):
        rows.append(sample)
        if index % 4 == 3:
            ts, elapsed = sample[0], 3 * sample[1] + 7
            failing = index % 3
            message = f"Number of samples in transaction : 4, number of failing samples : {failing}"
            rows.append(row(ts, elapsed, f"TC {index % 3}", "false" if failing else "true", message=message))
            rows[-1][6] = ""  # dataType is empty on transaction rows
        if index % 50 == 0:
            message = "Number of samples in transaction : 0, number of failing samples : 0"
            rows.append(row(sample[0], 0, "TC empty", message=message))
    return rows


def test_it_leaves_transaction_controller_rows_out_of_the_total_as_jmeters_dashboard(tmp_path, reader):
    data = generate(seed=21, size=4_000)
    rows = transaction_rows(data)

    result = parse_jmeter(write_csv(tmp_path / "tc.jtl", rows))

    # The Total, its percentiles, throughput and time series are exactly those of the requests alone.
    assert_matches_numpy(result, data, transactions=3)
    assert_buckets_match_numpy(result, data, width=5)
    transactions = [stats for stats in result.labels if stats.is_transaction]
    assert [stats.label for stats in transactions] == ["TC 0", "TC 1", "TC 2"]
    assert sum(stats.samples for stats in transactions) == result.transaction_samples == 1_000
    # An empty transaction (0 samples) is no sample at all, as in JMeter's dashboard.
    assert "TC empty" not in by_label(result)
    assert result.empty_transactions == 80


def test_it_gives_the_same_total_for_a_transaction_csv_and_its_xml_with_nested_children(tmp_path):
    rows = [
        row(T0, 100, "GET /a"),
        row(T0 + 100, 50, "GET /b", "false", code="404", message="Not Found"),
        row(T0, 150, "TC checkout", "false", message=TRANSACTION_MESSAGE),
        row(T0 + 400, 30, "GET /a"),
    ]
    rows[2][6] = ""  # dataType is empty on parent rows
    from_csv = parse_jmeter(write_csv(tmp_path / "tc.jtl", rows))
    from_xml = parse_jmeter(
        '<?xml version="1.0"?>\n<testResults version="1.2">\n'
        f'<sample t="150" ts="{T0}" s="false" lb="TC checkout" rm="{TRANSACTION_MESSAGE}" by="200" sby="20" na="1">'
        f'<httpSample t="100" ts="{T0}" s="true" lb="GET /a"/><httpSample t="50" ts="{T0 + 100}" s="false" lb="x"/>'
        "</sample>\n"
        f'<httpSample t="100" ts="{T0}" s="true" lb="GET /a" rm="OK" by="100" sby="10" na="1"/>\n'
        f'<httpSample t="50" ts="{T0 + 100}" s="false" lb="GET /b" rm="Not Found" by="100" sby="10" na="1"/>\n'
        f'<httpSample t="30" ts="{T0 + 400}" s="true" lb="GET /a" rm="OK" by="100" sby="10" na="1"/>\n'
        "</testResults>\n".encode()
    )

    for result in (from_csv, from_xml):
        assert [(s.label, s.samples, s.errors, s.is_transaction) for s in result.labels] == [
            ("GET /a", 2, 0, False),
            ("GET /b", 1, 1, False),
            ("TC checkout", 1, 1, True),
        ]
        total = result.total
        assert (total.samples, total.errors, total.max_ms, total.p50_ms) == (3, 1, 100.0, 50.0)
        assert total.throughput == exact(3 / 0.43)  # first start T0, last end T0 + 400 + 30
    assert from_csv.total == from_xml.total
    assert from_csv.buckets == from_xml.buckets


def test_a_total_of_transactions_only_has_no_figures_and_says_why(tmp_path, reader):
    rows = [row(T0 + i * 10, 100 + i, "TC login", message=TRANSACTION_MESSAGE) for i in range(3)]

    result = parse_jmeter(write_csv(tmp_path / "only-tc.jtl", rows))

    (login,) = result.labels
    assert (login.samples, login.is_transaction, login.p50_ms) == (3, True, 101.0)
    total = result.total
    assert (total.samples, total.errors, total.error_percent) == (0, 0, None)
    assert (total.p95_ms, total.throughput) == (None, None)
    assert "Transaction Controller" in total.timing_unavailable
    assert result.buckets == []
    assert result.timing_unavailable == total.timing_unavailable


def test_it_refuses_a_file_of_empty_transactions_only(tmp_path, reader):
    message = "Number of samples in transaction : 0, number of failing samples : 0"
    rows = [row(T0, 0, "TC", message=message), row(T0 + 5, 0, "TC", message=message)]
    assert str(parse_error(write_csv(tmp_path / "empty-tc.jtl", rows))) == (
        "no samples (only 2 empty Transaction Controller samples)"
    )


def test_it_reads_text_response_codes_and_any_case_of_true_false(tmp_path, reader):
    rows = [
        row(T0, 10, "a", "TRUE"),
        row(T0 + 1, 20, "a", "False", code="Non HTTP response code: java.net.UnknownHostException"),
        row(T0 + 2, 30, "a", "tRuE"),
        row(T0 + 3, 40, "a", "fAlSe"),
    ]
    (stats,) = parse_jmeter(write_csv(tmp_path / "case.jtl", rows)).labels
    assert (stats.samples, stats.errors, stats.error_percent) == (4, 2, 50.0)


def test_it_takes_missing_byte_and_thread_columns_as_zero(tmp_path, reader):
    path = tmp_path / "minimal.jtl"
    path.write_text(f"timeStamp,elapsed,label,success\n{T0},100,a,true\n{T0 + 1000},300,a,false\n")

    result = parse_jmeter(path)

    (stats,) = result.labels
    assert (stats.samples, stats.errors, stats.mean_ms) == (2, 1, 200.0)
    assert (stats.received_kbps, stats.sent_kbps) == (0.0, 0.0)
    assert [bucket.active_threads for bucket in result.buckets] == [0, 0]


def test_it_takes_empty_byte_values_as_zero(tmp_path, reader):
    rows = simple_rows()
    rows[0][9] = ""
    rows[0][10] = ""
    rows[0][12] = ""
    result = parse_jmeter(write_csv(tmp_path / "empty-values.jtl", rows))
    assert by_label(result)["home"].received_kbps == exact(3000 / 1024 / 0.8)


def test_it_accepts_a_byte_order_mark_crlf_and_blank_lines(tmp_path, reader):
    lines = [",".join(map(str, line)) for line in [COLUMNS, *simple_rows()]]
    path = tmp_path / "windows.jtl"
    path.write_bytes(b"\xef\xbb\xbf" + ("\r\n".join(lines[:2]) + "\r\n\r\n" + "\r\n".join(lines[2:]) + "\r\n").encode())
    assert_simple(parse_jmeter(path))
    headerless = tmp_path / "windows-headerless.jtl"
    headerless.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines[1:]).encode())
    assert_simple(parse_jmeter(headerless))


def test_it_matches_header_names_case_insensitively(tmp_path, reader):
    header = [name.lower() for name in COLUMNS]
    assert_simple(parse_jmeter(write_csv(tmp_path / "lower.jtl", simple_rows(), header=header)))


# ---------------------------------------------------------------------------------------------------------------
# XML variants


def test_it_ignores_sub_samples_nested_at_any_depth(tmp_path):
    path = tmp_path / "nested.jtl"
    path.write_text(
        '<?xml version="1.0"?>\n<testResults version="1.2">\n'
        f'<sample t="1000" ts="{T0}" s="true" lb="TC" rc="200" by="10" sby="1" na="4">\n'
        f'  <httpSample t="400" ts="{T0}" s="false" lb="child" by="5">\n'
        f'    <httpSample t="300" ts="{T0}" s="false" lb="grandchild">\n'
        f'      <sample t="200" ts="{T0}" s="false" lb="great-grandchild"/>\n'
        "    </httpSample>\n"
        "    <assertionResult><name>a</name><failure>true</failure></assertionResult>\n"
        "  </httpSample>\n"
        "</sample>\n"
        f'<httpSample t="500" ts="{T0 + 2000}" s="false" lb="page" rs="500" by="20" sby="2" na="2"/>\n'
        "</testResults>\n"
    )
    result = parse_jmeter(path)

    assert [(s.label, s.samples, s.errors, s.mean_ms) for s in result.labels] == [
        ("TC", 1, 0, 1000.0),
        ("page", 1, 1, 500.0),
    ]
    assert result.total.throughput == exact(2 / 2.5)
    assert result.total.received_kbps == exact(30 / 1024 / 2.5)
    assert [(b.samples, b.active_threads) for b in result.buckets] == [(1, 4), (0, 0), (1, 2)]


def test_it_reads_xml_in_a_declared_encoding_with_missing_optional_attributes(tmp_path):
    path = tmp_path / "latin1.jtl"
    path.write_bytes(
        f'<?xml version="1.0" encoding="ISO-8859-1"?>\n<testResults version="1.2">\n'
        f'<httpSample t="10" ts="{T0}" s="true" lb="caf\xe9"/>\n</testResults>\n'.encode("latin-1")
    )
    result = parse_jmeter(path)
    assert result.labels[0].label == "café"
    assert (result.total.received_kbps, result.buckets[0].active_threads) == (0.0, 0)


def xml_samples(*attributes: str) -> bytes:
    samples = "".join(f"<httpSample {attrs}/>\n" for attrs in attributes)
    return f'<?xml version="1.0"?>\n<testResults version="1.2">\n{samples}</testResults>\n'.encode()


def test_it_counts_xml_samples_saved_without_elapsed_times_and_marks_their_timing_unavailable():
    result = parse_jmeter(xml_samples(
        f'ts="{T0}" s="true" lb="home" by="100"',
        f'ts="{T0 + 1000}" s="false" lb="home" by="100"',
        f'ts="{T0 + 2000}" s="true" lb="cart" by="100"',
    ))  # fmt: skip

    home, cart = by_label(result)["home"], by_label(result)["cart"]
    assert (home.samples, home.errors, home.error_percent) == (2, 1, 50.0)
    for stats in (home, cart, result.total):
        assert stats.timing_unavailable == "the samples have no elapsed time (XML attribute t)"
        for field in ("min_ms", "max_ms", "mean_ms", "stdev_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms",
                      "throughput", "received_kbps", "sent_kbps"):  # fmt: skip
            assert getattr(stats, field) is None, (stats.label, field)  # not 0: unknown
    assert (result.total.samples, result.total.errors) == (3, 1)
    assert result.buckets == []
    assert result.timing_unavailable == "the samples have no elapsed time (XML attribute t)"
    assert (result.started_at, result.finished_at) == (utc_ms(T0), None)


def test_it_counts_xml_samples_saved_without_start_times_and_keeps_what_their_elapsed_times_give():
    result = parse_jmeter(xml_samples('t="100" s="true" lb="home"', 't="300" s="false" lb="home"'))

    total = result.total
    assert (total.samples, total.errors, total.mean_ms, total.p50_ms, total.max_ms) == (2, 1, 200.0, 200.0, 300.0)
    assert (total.throughput, total.received_kbps, total.sent_kbps) == (None, None, None)
    assert total.timing_unavailable == "the samples have no start time (XML attribute ts)"
    assert (result.buckets, result.started_at, result.finished_at) == ([], None, None)


def test_it_counts_xml_samples_with_neither_time_and_says_both():
    result = parse_jmeter(xml_samples('s="true" lb="a"', 's="false" lb="a"', 's="false" lb="a"'))
    assert (result.total.samples, result.total.errors) == (3, 2)
    assert result.total.timing_unavailable == (
        "the samples have no elapsed time (XML attribute t); the samples have no start time (XML attribute ts)"
    )
    assert (result.total.mean_ms, result.total.throughput, result.buckets) == (None, None, [])


def test_it_marks_only_the_labels_whose_samples_lack_a_time():
    # Two runs appended, saved with different settings: "old" has no elapsed times, "new" has everything.
    result = parse_jmeter(xml_samples(
        f'ts="{T0}" s="true" lb="old"',
        f't="100" ts="{T0 + 1000}" s="true" lb="new"',
        f't="300" ts="{T0 + 2000}" s="true" lb="new"',
    ))  # fmt: skip

    old, new = by_label(result)["old"], by_label(result)["new"]
    assert (old.mean_ms, old.timing_unavailable) == (None, "the samples have no elapsed time (XML attribute t)")
    assert (new.mean_ms, new.throughput, new.timing_unavailable) == (200.0, exact(2 / 1.3), "")
    assert result.total.mean_ms is None
    assert result.total.timing_unavailable == "1 of 3 samples have no elapsed time (XML attribute t)"


# ---------------------------------------------------------------------------------------------------------------
# Buckets


def test_it_picks_the_smallest_bucket_width_giving_at_most_300_buckets():
    width = jmeter._bucket_width
    assert width(0, 0) == 1
    assert width(0, 299_999) == 1  # seconds 0..299: 300 buckets
    assert width(0, 300_000) == 5  # 301 one-second buckets would be too many
    assert width(T0, T0 + 3_600_000) == 30  # an hour: 121 buckets of 30 s (10 s would need 361)
    assert width(T0, T0 + 86_400_000) == 300  # a day
    assert width(0, 299 * 3_600_000) == 3600
    assert width(0, 1000 * 3_600_000) % 3600 == 0  # beyond 300 hours: whole hours
    assert (1000 * 3_600_000) // (width(0, 1000 * 3_600_000) * 1000) + 1 <= 300


def test_it_aligns_buckets_to_the_epoch_and_keeps_empty_ones(tmp_path):
    rows = [
        row(T0 + 3_500, 100, "a", threads=5),  # second T0/1000 + 3
        row(T0 + 3_900, 300, "a", "false", threads=9),
        row(T0 + 6_100, 50, "b", threads=2),  # second + 6; seconds + 4 and + 5 are empty
    ]
    result = parse_jmeter(write_csv(tmp_path / "b.jtl", rows))

    assert [bucket.started_at for bucket in result.buckets] == [utc_ms(T0 + s * 1000) for s in (3, 4, 5, 6)]
    assert [(b.samples, b.errors, b.mean_ms, b.p95_ms, b.active_threads) for b in result.buckets] == [
        (2, 1, 200.0, 300.0, 9),
        (0, 0, 0.0, 0.0, 0),
        (0, 0, 0.0, 0.0, 0),
        (1, 0, 50.0, 50.0, 2),
    ]
    assert all(bucket.width_seconds == 1 for bucket in result.buckets)
    assert result.buckets[0].started_at.tzinfo is UTC


def test_it_gives_no_rate_for_a_label_without_duration(tmp_path):
    result = parse_jmeter(write_csv(tmp_path / "zero.jtl", [row(T0, 0, "instant"), row(T0, 0, "instant")]))
    (stats,) = result.labels
    assert (stats.samples, stats.throughput, stats.received_kbps) == (2, 0.0, 0.0)


# ---------------------------------------------------------------------------------------------------------------
# Sources and progress


class Pipe(io.RawIOBase):
    """A non-seekable stream, like a socket or a pipe."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_it_reads_bytes_paths_file_objects_and_streams_alike(tmp_path, reader):
    path = write_csv(tmp_path / "s.jtl", simple_rows())
    data = path.read_bytes()
    handle = io.BytesIO(data)

    results = [parse_jmeter(data), parse_jmeter(str(path)), parse_jmeter(path), parse_jmeter(handle)]
    results.append(parse_jmeter(Pipe(data)))

    for result in results:
        assert_simple(result)
    assert not handle.closed  # the caller's file object is left open


def test_it_reports_progress_in_bytes_every_few_megabytes(tmp_path):
    rows = [row(T0 + i, 10 + i % 100, f"label {i % 20}") for i in range(120_000)]  # ~12 MB
    path = write_csv(tmp_path / "big.jtl", rows)
    size = path.stat().st_size
    for source in (path, path.read_bytes()):
        calls: list[int] = []
        parse_jmeter(source, progress=calls.append)
        assert calls[-1] == size
        assert calls == sorted(calls)
        assert 2 <= len(calls) <= size // jmeter.PROGRESS_EVERY + 2


def test_it_never_reports_progress_backwards_when_the_file_is_read_twice(tmp_path):
    rows = [row(T0 + i, 10 + i % 100, f"label {i % 20}") for i in range(120_000)]
    path = write_csv(tmp_path / "twice.jtl", rows[:60_000] + [COLUMNS] + rows[60_000:])  # pyarrow gives up
    calls: list[int] = []
    assert parse_jmeter(path, progress=calls.append).total.samples == 120_000
    assert calls == sorted(set(calls))
    assert calls[-1] == path.stat().st_size


def test_it_reports_progress_on_xml(tmp_path):
    data = generate(size=30_000)
    path = write_generated_xml(tmp_path / "big.xml", data)
    calls: list[int] = []
    parse_jmeter(path, progress=calls.append)
    assert calls[-1] == path.stat().st_size
    assert len(calls) >= 2


# ---------------------------------------------------------------------------------------------------------------
# Sniffing


def test_it_sniffs_jmeter_files_and_nothing_else():
    assert looks_like_jmeter(f"{HEADER}\n{T0},1,a,200,OK,t,text,true,,1,1,1,1,u,1,0,0\n".encode())
    assert looks_like_jmeter(f"{T0};1;a;200;OK;t;text;true;;1;1;1;1;u;1;0;0\n".encode())  # no header
    assert looks_like_jmeter(b"timeStamp\telapsed\tlabel\tsuccess\n")
    assert looks_like_jmeter(b'<?xml version="1.0"?>\n<testResults version="1.2">\n<sample')
    assert not looks_like_jmeter(b'{"SchemaVersion": 2, "Results": []}')
    assert not looks_like_jmeter(b"[]")
    assert not looks_like_jmeter(b"")
    assert not looks_like_jmeter(b"name,age,city\nBob,42,Paris\n")
    assert not looks_like_jmeter(b"1,2,3,4,5,6,7,8,9,10\n")  # numbers, but not JMeter's columns
    assert not looks_like_jmeter(b'<?xml version="1.0"?>\n<html><body/></html>')
    assert not looks_like_jmeter(b"\x00\x01\x02garbage\xff")
    assert not looks_like_jmeter(b"hello world\n")


# ---------------------------------------------------------------------------------------------------------------
# Bad input


def parse_error(source, **kwargs) -> ReportParseError:
    with pytest.raises(ReportParseError) as caught:
        parse_jmeter(source, **kwargs)
    return caught.value


def test_it_refuses_an_empty_file(tmp_path):
    assert str(parse_error(b"")) == "the file is empty"
    assert str(parse_error(b"  \n\r\n")) == "the file is empty"
    empty = tmp_path / "empty.jtl"
    empty.write_bytes(b"")
    assert str(parse_error(empty)) == "the file is empty"


def test_it_refuses_binary_garbage():
    garbage = bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8))
    assert "binary data, not a JMeter results file" in str(parse_error(garbage))
    assert "UTF-16" in str(parse_error("timeStamp,elapsed".encode("utf-16")))


def test_it_refuses_text_that_is_not_jmeter():
    assert "does not look like a JMeter results file" in str(parse_error(b"hello world\nfoo bar\n"))
    assert "does not look like a JMeter results file" in str(parse_error(b"name,age\nBob,42\n"))


def test_it_refuses_a_trivy_report():
    error = parse_error(b'{\n  "SchemaVersion": 2,\n  "ArtifactName": "alpine:3.19",\n  "Results": []\n}\n')
    assert str(error) == "this looks like a JSON document, not a JMeter results file"


def test_it_names_the_line_of_an_invalid_utf8_label(tmp_path, reader):
    path = tmp_path / "latin1.jtl"
    path.write_bytes(f"{HEADER}\n".encode() + b"\n".join(
        ",".join(map(str, line)).encode() for line in simple_rows()
    ) + f"\n{T0 + 5},10,caf\xe9,200,OK,t,text,true,,1,1,1,1,u,1,0,0\n".encode("latin-1"))  # fmt: skip

    error = parse_error(path)

    assert error.location == "line 5"
    assert "not valid UTF-8" in error.message


def test_it_names_the_line_of_invalid_utf8_in_xml(tmp_path):
    path = tmp_path / "bad.xml"
    path.write_bytes(b'<?xml version="1.0" encoding="UTF-8"?>\n<testResults>\n<sample lb="caf\xe9"/>\n</testResults>')
    error = parse_error(path)
    assert error.location == "line 3"
    assert "not well-formed" in error.message


def test_it_refuses_a_line_over_a_megabyte_with_bounded_memory(tmp_path, reader):
    path = tmp_path / "long.jtl"
    rows = [",".join(map(str, line)) for line in simple_rows()]
    long_message = "x" * 30_000_000
    path.write_text(f"{HEADER}\n{rows[0]}\n{T0},1,a,200,{long_message},t,text,true,,1,1,1,1,u,1,0,0\n{rows[1]}\n")

    tracemalloc.start()
    try:
        error = parse_error(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert str(error) == f"line 3 is longer than {jmeter.MAX_LINE_CHARS:,} characters"
    assert peak < 16_000_000  # a few MB of Python objects for a 30 MB line


def test_it_refuses_a_first_line_over_a_megabyte(tmp_path):
    path = tmp_path / "long-first.jtl"
    path.write_text("timeStamp,elapsed,label,success," + "y" * 1_100_000 + "\n")
    assert str(parse_error(path)) == f"line 1 is longer than {jmeter.MAX_LINE_CHARS:,} characters"


def test_it_refuses_a_file_over_max_bytes(tmp_path):
    path = write_csv(tmp_path / "s.jtl", simple_rows())
    data = path.read_bytes()
    message = "the file is larger than the 100 bytes allowed"
    assert str(parse_error(data, max_bytes=100)) == message
    assert str(parse_error(path, max_bytes=100)) == message
    assert str(parse_error(io.BytesIO(data), max_bytes=100)) == message
    assert str(parse_error(Pipe(data), max_bytes=100)) == message
    assert parse_jmeter(path, max_bytes=len(data)).total.samples == 3


@pytest.mark.parametrize("missing", ["timeStamp", "elapsed", "label", "success"])
def test_it_names_a_missing_mandatory_column(tmp_path, missing):
    header = [name for name in COLUMNS if name != missing]
    rows = [[value for name, value in zip(COLUMNS, line, strict=True) if name != missing] for line in simple_rows()]
    error = parse_error(write_csv(tmp_path / "m.jtl", rows, header=header))
    assert f"no '{missing}' column" in str(error)


def test_it_refuses_a_header_less_file_with_an_unknown_column_count(tmp_path):
    path = tmp_path / "nine.jtl"
    path.write_text(f"{T0},100,a,200,OK,t,text,true,5\n")
    error = parse_error(path)
    assert "no JMeter default column set" in str(error)
    assert "10, 12, 14, 15, 17" in str(error)


def test_it_refuses_a_file_without_samples(tmp_path, reader):
    header_only = tmp_path / "header.jtl"
    header_only.write_text(HEADER + "\n")
    assert str(parse_error(header_only)) == "no samples"
    assert str(parse_error(b'<?xml version="1.0"?>\n<testResults version="1.2">\n</testResults>\n')) == "no samples"


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        (1, "abc", "line 7: elapsed 'abc' is not a number"),
        (1, "", "line 7: elapsed '' is not a number"),
        (0, "yesterday", "line 7: timeStamp 'yesterday' is neither epoch milliseconds nor a date"),
        (7, "yes", "line 7: success 'yes' is neither true nor false"),
        (9, "lots", "line 7: bytes 'lots' is not a number"),
        (0, "99999999999999999999", "line 7: timeStamp '99999999999999999999' is out of range"),
        (1, "-5", "line 7: elapsed '-5' is out of range"),
        (1, "nan", "line 7: elapsed 'nan' is not a number"),
        (12, "1e30", "line 7: allThreads '1e30' is out of range"),
    ],
)
def test_it_names_the_line_and_field_of_a_bad_value(tmp_path, reader, column, value, message):
    rows = [row(T0 + i, 10, "a") for i in range(8)]
    rows[5][column] = value  # line 7: the header is line 1
    assert str(parse_error(write_csv(tmp_path / "bad.jtl", rows))).startswith(message)


def test_it_counts_lines_of_multiline_records_in_error_messages(tmp_path, reader):
    rows = [row(T0 + i, 10, "a") for i in range(4)]
    rows[0][4] = "two\nlines"
    rows[2][1] = "oops"  # starts on line 5: header, 2 lines, 1 line
    assert str(parse_error(write_csv(tmp_path / "bad.jtl", rows))).startswith("line 5: elapsed 'oops'")


def test_it_refuses_a_row_with_the_wrong_number_of_fields(tmp_path, reader):
    path = write_csv(tmp_path / "ragged.jtl", simple_rows())
    path.write_text(path.read_text() + f"{T0},1,a,true\n")
    assert str(parse_error(path)) == "line 5: expected 17 fields, found 4"


@pytest.mark.parametrize("document", [samples.BILLION_LAUGHS, samples.XXE], ids=["billion-laughs", "xxe"])
def test_it_refuses_xml_entities_quickly_without_expanding_them(document):
    started = time.perf_counter()
    error = parse_error(document)
    assert time.perf_counter() - started < 1
    assert "XML entity declarations are not allowed" in str(error)
    assert error.location == "line 2"


def test_it_names_the_line_of_malformed_xml():
    document = (
        f'<?xml version="1.0"?>\n<testResults version="1.2">\n<httpSample t="1" ts="{T0}" s="true" lb="a">\n'
        "</testResults>\n"
    ).encode()
    error = parse_error(document)
    assert error.location == "line 4"
    assert "mismatched tag" in error.message
    truncated = parse_error(b'<?xml version="1.0"?>\n<testResults version="1.2">\n<sample t="1" ts="1" s="true"/>\n')
    assert "not well-formed" in str(truncated)


def test_it_refuses_xml_that_is_not_testresults():
    error = parse_error(b'<?xml version="1.0"?>\n<html><body/></html>')
    assert "root element is <html>, not <testResults>" in str(error)


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ('t="1" ts="1" lb="a"', "line 3: <httpSample> has no 's' attribute"),
        ('t="x" ts="1" s="true" lb="a"', "line 3: <httpSample> attribute t 'x' is not a number"),
        ('t="1" ts="1" s="maybe" lb="a"', "line 3: success 'maybe' is neither true nor false"),
        ('t="1" ts="1e300" s="true" lb="a"', "line 3: <httpSample> attribute ts '1e300' is out of range"),
    ],
)
def test_it_names_the_line_of_a_bad_xml_sample(attributes, message):
    document = f'<?xml version="1.0"?>\n<testResults>\n<httpSample {attributes}/>\n</testResults>'.encode()
    assert str(parse_error(document)) == message
