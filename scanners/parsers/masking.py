"""Starring out, in a report's raw bytes, every secret it reveals: whatever its kind, and whether it parsed or not.

Pure: no Django. A file on disk is masked in place: every secret becomes as many `*` as it had bytes, so the file
keeps its size and, for JSON, its shape. What is masked, wherever it occurs in the file:
- every secret Trivy reported, whole: each `"Match": "…"` value (JSON) and each `Match: …` line of a SARIF
  message, and any other copy of that text (the code lines around it, a SARIF snippet);
- every known token shape (GitHub, GitLab, AWS, Slack, Stripe, Google, JWT, private keys), in any kind of file.

The file is read twice in chunks with an overlap (once to learn what Trivy reported, once to mask): memory stays
at a few chunks whatever its size, and nothing recurses, however deep the JSON nests. When the file cannot be
proven clean (a reported secret too long, too many distinct secrets to search for, fewer secrets found than the
parser counted), `SecretsNotMasked` says why, and the caller must not keep the file in clear.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

__all__ = ["SecretsNotMasked", "mask_file", "mask_tokens", "mask_tokens_apart"]

CHUNK_BYTES = 1024 * 1024
MAX_SECRET_BYTES = 64 * 1024  # the longest reported secret (a Trivy Match is one line of code), in characters
# More than any match below can span (an escaped character takes two bytes), so no match is cut at a chunk's end.
OVERLAP_BYTES = 4 * MAX_SECRET_BYTES
MIN_COPY_BYTES = 6  # shorter reported secrets are masked where reported only: "true" must not star every true
# Each distinct reported secret is searched for across the whole file: distinct secrets x file size is bounded,
# so that a worker never spends more than seconds on it (a search runs at several GB/s).
MAX_SEARCH_BYTES = 64 * 1024**3

# Token shapes from the providers' documentation and gitleaks' rules, bounded so a match fits in the overlap.
# Each starts with a literal, so each is its own fast scan (one alternation of them all is several times slower).
TOKEN_SHAPES = (
    rb"gh[pousr]_[A-Za-z0-9]{36,255}",  # GitHub tokens
    rb"github_pat_[A-Za-z0-9_]{22,255}",
    rb"glpat-[A-Za-z0-9_-]{20,255}",  # GitLab personal access token
    rb"(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}",  # AWS access key id
    rb"xox[abposr]-[A-Za-z0-9-]{10,255}",  # Slack
    rb"sk_live_[A-Za-z0-9]{20,255}",  # Stripe secret and restricted keys
    rb"rk_live_[A-Za-z0-9]{20,255}",
    rb"AIza[A-Za-z0-9_-]{35}",  # Google API key
    rb"eyJ[A-Za-z0-9_-]{8,4096}\.eyJ[A-Za-z0-9_-]{8,4096}\.[A-Za-z0-9_-]{8,4096}",  # JWT
    # A private key block, its body included (base64, spaces, JSON's \n), up to its END line if there is one.
    rb"-----BEGIN[ A-Z0-9]{0,40}PRIVATE KEY( BLOCK)?-----(?:[A-Za-z0-9+/=\s:,-]|\\[nr]){0,16384}",
)
_TOKENS = tuple(re.compile(shape) for shape in TOKEN_SHAPES)
_TOKENS_TEXT = re.compile("|".join(shape.decode() for shape in TOKEN_SHAPES))

# What Trivy reports as a secret's match: the JSON field, and a line of a SARIF message (ends at an escaped \n).
_JSON_MATCH = re.compile(rb'"Match"\s*:\s*"((?:[^"\\]|\\.){0,%d})(")?' % MAX_SECRET_BYTES, re.DOTALL)
_SARIF_MATCH = re.compile(rb'Match: ((?:[^"\\]|\\[^n]){0,%d})(\\n|")?' % MAX_SECRET_BYTES)


class SecretsNotMasked(Exception):
    """The file cannot be proven clean; the message says why (and never holds a secret)."""


def mask_tokens(text: str) -> str:
    """text with every known token shape starred out (for what is stored or logged besides raw files)."""
    return _TOKENS_TEXT.sub(lambda match: "*" * len(match.group()), text)


def mask_tokens_apart(text: str) -> str:
    """text with every known token shape starred out but for a short hash of it: for text that is an identity (a
    JMeter label), where two labels that differ by their token must stay two labels, and the same label in the
    next run the same. Eight hex digits of a SHA-256 tell nothing of a token."""
    return _TOKENS_TEXT.sub(
        lambda match: "*" * len(match.group()) + f"#{hashlib.sha256(match.group().encode()).hexdigest()[:8]}", text
    )


def mask_file(path: Path | str, *, reported_at_least: int = 0) -> int:
    """Mask the file in place. Returns how many ranges were starred (0: the file was left as it was).

    `reported_at_least`: how many secrets with a match the parser found; fewer found here means a secret is
    written in a way this scan does not read, and the file cannot be proven clean.
    """
    size = os.path.getsize(path)
    reported = ReportedSecrets.find(path, size)
    if reported.count < reported_at_least:
        raise SecretsNotMasked(
            f"the parser found {reported_at_least} secrets but only {reported.count} could be located in the raw file"
        )
    copies = [secret for secret in reported.secrets if len(secret) >= MIN_COPY_BYTES]
    masked = 0
    descriptor = os.open(path, os.O_RDWR)
    try:
        if reported.short:  # the others are found below with their copies
            for start, end, value in _reported_values(descriptor):
                if value and len(value) < MIN_COPY_BYTES:
                    masked += _star(descriptor, start, end)
        for offset, window, limit in _windows(descriptor):
            ranges = list(_ranges_to_star(window, limit, copies))
            if ranges:  # one write per window: a syscall per secret costs more than the search
                edited = bytearray(window)
                for start, end in ranges:
                    edited[start:end] = b"*" * (end - start)
                os.pwrite(descriptor, memoryview(edited)[: max(end for _, end in ranges)], offset)
                masked += len(ranges)
    finally:
        os.close(descriptor)
    return masked


def _ranges_to_star(window: bytes, limit: int, copies: list[bytes]):
    """(start, end) in the window of every copy of a reported secret and every token that starts before limit."""
    for secret in copies:
        position = window.find(secret, 0, limit + len(secret) - 1)
        while position >= 0:
            yield position, position + len(secret)
            position = window.find(secret, position + len(secret), limit + len(secret) - 1)
    for token in _TOKENS:
        for match in token.finditer(window):
            if match.start() >= limit:
                break  # in the overlap: the next window holds it whole
            yield match.span()


class ReportedSecrets:
    """The distinct secrets Trivy reported, as written in the file (JSON-escaped); how many non-empty ones there
    were in all; whether some are too short to be searched for elsewhere."""

    __slots__ = ("count", "secrets", "short")

    def __init__(self):
        self.secrets: set[bytes] = set()
        self.count = 0
        self.short = False

    @classmethod
    def find(cls, path: Path | str, size: int) -> ReportedSecrets:
        reported = cls()
        descriptor = os.open(path, os.O_RDONLY)
        try:
            for _, _, value in _reported_values(descriptor):
                if value.strip():
                    reported.count += 1
                    reported.secrets.add(value)
                    reported.short |= len(value) < MIN_COPY_BYTES
                    if len(reported.secrets) * size > MAX_SEARCH_BYTES:
                        raise SecretsNotMasked(f"too many distinct secrets to search for in {size:,} bytes")
        finally:
            os.close(descriptor)
        return reported


def _reported_values(descriptor: int):
    """(start, end, value) of every reported secret in the file."""
    for offset, window, limit in _windows(descriptor):
        for pattern in (_JSON_MATCH, _SARIF_MATCH):
            for match in pattern.finditer(window):
                if match.start() >= limit:
                    break  # in the overlap: the next window holds it whole
                if match.group(2) is None and match.end() < len(window):
                    raise SecretsNotMasked(f"a reported secret is longer than {MAX_SECRET_BYTES:,} characters")
                yield offset + match.start(1), offset + match.end(1), match.group(1)


def _star(descriptor: int, start: int, end: int) -> int:
    os.pwrite(descriptor, b"*" * (end - start), start)
    return 1


def _windows(descriptor: int):
    """(offset, bytes, limit) over the file: chunks that overlap by OVERLAP_BYTES. A match that starts before
    `limit` ends inside the window; one that starts after is left to the next window, which holds it whole."""
    offset = 0
    while True:
        window = os.pread(descriptor, CHUNK_BYTES + OVERLAP_BYTES, offset)
        last = len(window) < CHUNK_BYTES + OVERLAP_BYTES
        yield offset, window, len(window) if last else CHUNK_BYTES
        if last:
            return
        offset += CHUNK_BYTES
