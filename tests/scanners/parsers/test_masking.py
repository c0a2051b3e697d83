"""Masking a raw report in place: every reported secret whole and every token shape, across chunk boundaries, at
any depth, and a clear refusal when the file cannot be proven clean."""

import json
from pathlib import Path

import orjson
import pytest

from scanners.parsers import masking
from scanners.parsers.masking import SecretsNotMasked, mask_file, mask_tokens, mask_tokens_apart

TOKEN = "ghp_" + "A1b2C3d4E5" * 3 + "f6G7h8"
SECRET = "s3cr3t-Wh1ch-N0-Pattern-Kn0ws"


def written(tmp_path, content: bytes) -> Path:
    path = tmp_path / "report"
    path.write_bytes(content)
    return path


def masked(tmp_path, content: bytes, **options) -> bytes:
    path = written(tmp_path, content)
    mask_file(path, **options)
    return path.read_bytes()


def report_with_match(match: str, **extra) -> bytes:
    return json.dumps({"Results": [{"Target": "a", "Secrets": [{"RuleID": "r", "Match": match, **extra}]}]}).encode()


def test_it_stars_a_reported_secret_whole_and_every_copy_of_it(tmp_path):
    content = report_with_match(f"{SECRET}: x", Code={"Lines": [{"Content": f"  {SECRET}: x # a copy"}]})
    result = masked(tmp_path, content + f"\n{SECRET}: x".encode())
    assert SECRET.encode() not in result
    assert len(result) == len(content) + len(SECRET) + 4  # starred in place: the size stays
    assert orjson.loads(result.split(b"\n")[0])["Results"][0]["Secrets"][0]["Match"] == "*" * (len(SECRET) + 3)


def test_it_stars_every_known_token_shape_in_any_file(tmp_path):
    tokens = [TOKEN, "github_pat_" + "x1" * 20, "glpat-" + "a1B2" * 5, "AKIAIOSFODNN7EXAMPLE", "xoxb-1234-abcdEFGH",
              "sk_live_" + "a1" * 12, "AIza" + "S" * 35, "eyJhbGciOiJI.eyJzdWIiOiIx.c2lnbmF0dXJl"]
    content = ",".join(f"label {token} end" for token in tokens).encode()
    result = masked(tmp_path, content)
    assert all(token.encode() not in result for token in tokens), result
    assert result.count(b"label ") == len(tokens) and len(result) == len(content)


def test_it_stars_a_private_key_block_whole(tmp_path):
    key = "-----BEGIN RSA PRIVATE KEY-----\\nMIIEpAIBAAKCAQEA1b2c3\\nd4e5f6==\\n-----END RSA PRIVATE KEY-----"
    result = masked(tmp_path, b'{"Content": "' + key.encode() + b'"}')
    assert result == b'{"Content": "' + b"*" * len(key) + b'"}'


def test_it_masks_the_lines_of_sarif_messages(tmp_path):
    message = f"Artifact: deploy.sh\nType: \nSecret GitHub Personal Access Token\nMatch: export TOKEN={SECRET}\nok"
    result = masked(tmp_path, json.dumps({"runs": [{"results": [{"message": {"text": message}}]}]}).encode())
    text = orjson.loads(result)["runs"][0]["results"][0]["message"]["text"]
    assert SECRET not in text and text.endswith("\nok") and "Match: *" in text


@pytest.mark.parametrize("boundary", ["chunk", "window"])
def test_it_finds_secrets_cut_by_a_chunk_boundary(tmp_path, boundary):
    end = masking.CHUNK_BYTES + (masking.OVERLAP_BYTES if boundary == "window" else 0)
    head = report_with_match(f"KEY={SECRET}") + b"\n"
    for cut in range(1, 50, 7):
        padding = b"x" * (end - len(head) - cut)
        content = head + padding + f" {TOKEN}{'x' * 20} KEY={SECRET} ".encode() + b"y" * 99
        result = masked(tmp_path, content)
        assert b"ghp_" not in result and b" " + b"*" * (len(TOKEN) + 20) + b" " in result, cut
        assert SECRET.encode() not in result, cut
        assert len(result) == len(content)


def test_it_masks_a_report_nested_deeper_than_any_recursion_limit(tmp_path):
    deep = b'{"a": ' * 100_000 + b"1" + b"}" * 100_000
    content = report_with_match(f"KEY={TOKEN}")[:-1] + b', "Extra": ' + deep + b"}"
    result = masked(tmp_path, content, reported_at_least=1)
    assert TOKEN.encode() not in result and deep in result


def test_it_masks_a_short_secret_only_where_it_is_reported(tmp_path):
    content = report_with_match("abc", Other="abc")
    result = masked(tmp_path, content)
    assert b'"Match": "***"' in result and b'"Other": "abc"' in result


def test_it_leaves_a_file_without_secrets_as_it_was(tmp_path, shared_fixture):
    content = shared_fixture("trivy/alpine-310.json").read_bytes()
    path = written(tmp_path, content)
    assert mask_file(path) == 0
    assert path.read_bytes() == content


def test_it_masks_the_real_trivy_secrets_report_and_keeps_it_valid_json(tmp_path, shared_fixture):
    content = shared_fixture("trivy/secrets.json").read_bytes()
    assert b"ghp_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ" in content  # a code line around a finding, left by Trivy
    result = masked(tmp_path, content, reported_at_least=2)
    assert b"ghp_0123456789" not in result and len(result) == len(content)
    document = orjson.loads(result)
    assert document["Results"][0]["Secrets"][0]["RuleID"] == "aws-access-key-id"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (report_with_match("x" * (masking.MAX_SECRET_BYTES + 1)), "longer than"),
        # the parser reads "\u004datch" as Match; this scan does not, so it cannot account for the secret
        (report_with_match(f"KEY={SECRET}").replace(b'"Match"', b'"\\u004datch"'), "only 0 could be located"),
    ],
)
def test_it_refuses_a_file_it_cannot_prove_clean(tmp_path, content, reason):
    with pytest.raises(SecretsNotMasked, match=reason) as refused:
        mask_file(written(tmp_path, content), reported_at_least=1)
    assert SECRET not in str(refused.value)


def test_it_refuses_more_distinct_secrets_than_it_can_search_for(tmp_path, monkeypatch):
    monkeypatch.setattr(masking, "MAX_SEARCH_BYTES", 10_000)
    content = json.dumps({"Secrets": [{"Match": f"KEY={SECRET}{index}"} for index in range(100)]}).encode()
    with pytest.raises(SecretsNotMasked, match="too many distinct secrets"):
        mask_file(written(tmp_path, content))


def test_it_masks_tokens_in_text():
    assert mask_tokens(f"this is SARIF from 'scanner {TOKEN}'") == f"this is SARIF from 'scanner {'*' * len(TOKEN)}'"
    assert mask_tokens("nothing to hide") == "nothing to hide"


def test_its_memory_stays_a_few_chunks_whatever_the_file_size(tmp_path):
    import tracemalloc

    entry = json.dumps({"RuleID": "r", "Match": f"KEY={SECRET}", "Code": {"Lines": [{"Content": f"KEY={SECRET}"}]}})
    filler = json.dumps({"VulnerabilityID": "CVE-2024-0001", "Description": "a long description " * 40})
    path = written(tmp_path, b'{"Secrets": [' + b",".join([entry.encode(), filler.encode() * 10] * 2_000) + b"]}")
    window = masking.CHUNK_BYTES + masking.OVERLAP_BYTES
    assert path.stat().st_size > 10 * window
    tracemalloc.start()
    try:
        mask_file(path, reported_at_least=2_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * window, f"peak {peak:,} bytes"
    assert SECRET.encode() not in path.read_bytes()


def test_it_keeps_texts_that_differ_by_their_token_apart():
    other = TOKEN[:-1] + "Z"
    one, two = mask_tokens_apart(f"GET /?t={TOKEN}"), mask_tokens_apart(f"GET /?t={other}")
    assert TOKEN not in one and other not in two and one != two
    assert one == mask_tokens_apart(f"GET /?t={TOKEN}") and one.startswith("GET /?t=" + "*" * len(TOKEN) + "#")
