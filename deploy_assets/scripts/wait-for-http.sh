#!/bin/sh
# Availability test: waits until a URL answers HTTP 200, a bounded number of times.
# Usage: wait-for-http.sh <url> [attempts (default 20)] [seconds between attempts (default 6)]
set -eu

url="${1:?usage: wait-for-http.sh <url> [attempts] [delay]}"
attempts="${2:-20}"
delay="${3:-6}"

attempt=1
while :; do
    code=$(curl -sS -o /dev/null -w '%{http_code}' --connect-timeout 5 --max-time 10 "${url}" 2>/dev/null) || true
    if [ "${code}" = "200" ]; then
        echo "${url} is up (HTTP 200, attempt ${attempt}/${attempts})"
        exit 0
    fi
    echo "${url} answered HTTP ${code:-000} (attempt ${attempt}/${attempts})"
    if [ "${attempt}" -ge "${attempts}" ]; then
        echo "${url} is not available after ${attempts} attempts" >&2
        exit 1
    fi
    attempt=$((attempt + 1))
    sleep "${delay}"
done
