#!/bin/sh
# One attempt of one call to the delivery portal's REST API (the shared library's portalCall step runs it once per
# attempt and decides about retries). A resource, not an interpolated Groovy string: the token is only ever read
# from the environment that withCredentials sets, never spliced into the script text.
#
# Environment:
#   PORTAL_TOKEN          project token (secret, bound by withCredentials)
#   PORTAL_ENDPOINT       full URL, e.g. https://portal.example.com/api/v1/projects/shop/runs/12/stages/
#   PORTAL_BODY_FILE      JSON body to POST, or
#   PORTAL_UPLOAD_FILE    a report to POST as multipart "file" (with PORTAL_REPORT_KIND as "kind" when set), or
#                         neither: a GET of PORTAL_ENDPOINT (its query string included)
#   PORTAL_RESPONSE_FILE  where the answer's body goes
#   PORTAL_MAX_TIME       seconds one attempt may take (default 20)
# Prints one line "<exit status> <HTTP status>" on standard output and always exits 0, so that a portal that is down
# never fails the build by itself; the caller reads that line. The exit status is curl's, or 22 (curl's own code for
# an HTTP error) for an answer outside 2xx. No --fail: its body (the portal's reason) is then shown in the log, and
# --fail-with-body is missing from the older curl of some agents.
set -u

if [ -n "${PORTAL_UPLOAD_FILE:-}" ]; then
    set -- -F "file=@${PORTAL_UPLOAD_FILE}"
    if [ -n "${PORTAL_REPORT_KIND:-}" ]; then
        set -- "$@" --form-string "kind=${PORTAL_REPORT_KIND}"
    fi
elif [ -n "${PORTAL_BODY_FILE:-}" ]; then
    set -- -H 'Content-Type: application/json' --data-binary "@${PORTAL_BODY_FILE}"
else
    set --
fi

# The header travels on curl's standard input (printf is a shell builtin): the token never appears in a process
# list, in a command line echoed by "set -x", or in the build log.
code=$(printf 'Authorization: Bearer %s\n' "${PORTAL_TOKEN}" | curl -sS \
    --connect-timeout 5 --max-time "${PORTAL_MAX_TIME:-20}" \
    -H @- -H 'Accept: application/json' -A 'delivery-portal-jenkins-library/1' \
    --create-dirs -o "${PORTAL_RESPONSE_FILE}" -w '%{http_code}' \
    "$@" "${PORTAL_ENDPOINT}")
status=$?
code=${code:-000}
case "${status}:${code}" in
    0:2??) ;;
    0:*) status=22 ;;
esac

if [ "${status}" -ne 0 ] && [ -s "${PORTAL_RESPONSE_FILE}" ]; then
    printf 'portal answered: ' >&2
    head -c 500 "${PORTAL_RESPONSE_FILE}" >&2
    printf '\n' >&2
fi
printf '%s %s\n' "${status}" "${code}"
exit 0
