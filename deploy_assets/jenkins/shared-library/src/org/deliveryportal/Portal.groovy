package org.deliveryportal

import com.cloudbees.groovy.cps.NonCPS
import groovy.json.JsonOutput
import groovy.json.JsonSlurper

import java.time.Instant

/**
 * Pure helpers of the delivery-portal shared library: configuration, payload shaping, status words, retry policy.
 * No pipeline step is called from here (the vars/ steps do that), so every method is @NonCPS and side-effect free.
 */
class Portal implements Serializable {

    /** How many times one callback is attempted before the library gives up (and only warns). */
    static final int MAX_ATTEMPTS = 3
    /** Pause before the second and third attempts, in seconds: a short exponential backoff. */
    static final List<Integer> BACKOFF_SECONDS = [2, 5]
    /** curl's --max-time for one attempt, in seconds: a hung portal costs at most MAX_ATTEMPTS times this. */
    static final int ATTEMPT_TIMEOUT_SECONDS = 20
    /** Longest log excerpt sent with a stage or a deployment, in characters (the tail is kept). */
    static final int EXCERPT_CHARS = 4000
    static final String API_PREFIX = 'api/v1/projects'
    static final List<String> REPORT_KINDS = ['trivy', 'gauntlt', 'jmeter']
    static final List<String> RUN_STATUSES = ['running', 'success', 'failed', 'unstable', 'aborted']
    static final List<String> STAGE_STATUSES = ['pending', 'running', 'success', 'failed', 'unstable', 'aborted', 'skipped']
    static final List<String> DEPLOYMENT_STATUSES = ['running', 'success', 'failed']
    static final List<String> ENVIRONMENTS = ['staging', 'production']
    static final Map<String, String> JENKINS_RESULTS = [
        SUCCESS: 'success', FAILURE: 'failed', UNSTABLE: 'unstable', ABORTED: 'aborted', NOT_BUILT: 'aborted',
    ]

    private Portal() {}

    /**
     * The portal's base URL. The PORTAL_URL build parameter comes from whoever triggered the build, so it is only
     * trusted when it is one of PORTAL_ALLOWED_URLS (comma separated) or equals PORTAL_DEFAULT_URL; otherwise the
     * configured default is used, so that a crafted parameter cannot send the project token elsewhere.
     * Returns [url, warning]; url is null when nothing is configured (reporting is then off).
     */
    @NonCPS
    static List resolveBaseUrl(Object parameter, Object defaultUrl, Object allowedCsv) {
        String asked = clean(parameter)
        String fallback = clean(defaultUrl)
        List<String> allowed = (clean(allowedCsv) ?: '').split(',').collect { clean(it) }.findAll { it }
        if (fallback) {
            allowed << fallback
        }
        if (asked && (allowed.isEmpty() || allowed.contains(asked))) {
            return [asked, null]
        }
        if (asked) {
            return [fallback, "PORTAL_URL parameter ${asked} is not in PORTAL_ALLOWED_URLS; using ${fallback ?: 'nothing'}"]
        }
        return [fallback, null]
    }

    /** "https://portal.example.com/" + "shop" + "runs/{build}/stages/" -> the full endpoint URL. */
    @NonCPS
    static String endpoint(String baseUrl, String project, String path, Object build) {
        if (!(project ==~ /[A-Za-z0-9][A-Za-z0-9_-]*/)) {
            throw new IllegalArgumentException("PORTAL_PROJECT is not a project slug: ${project}")
        }
        if (path.contains('{build}')) {
            path = path.replace('{build}', String.valueOf(buildNumber(build)))
        }
        return "${baseUrl.replaceAll('/+$', '')}/${API_PREFIX}/${project}/${path}".toString()
    }

    @NonCPS
    static int buildNumber(Object value) {
        String text = clean(value)
        if (!(text ==~ /[0-9]+/)) {
            throw new IllegalArgumentException("BUILD_NUMBER is not a number: ${value}")
        }
        return Integer.parseInt(text)
    }

    /** Integers stay integers in the JSON body (portal_run_id, queue_id); anything else is dropped. */
    @NonCPS
    static Long optionalNumber(Object value) {
        String text = clean(value)
        return (text ==~ /[0-9]{1,18}/) ? Long.valueOf(text) : null
    }

    /** A run status in the portal's words; Jenkins results (SUCCESS, FAILURE, UNSTABLE, ABORTED) are translated. */
    @NonCPS
    static String runStatus(Object value) {
        return status(value, RUN_STATUSES)
    }

    @NonCPS
    static String stageStatus(Object value) {
        return status(value, STAGE_STATUSES)
    }

    @NonCPS
    static String deploymentStatus(Object value) {
        String word = status(value, RUN_STATUSES + DEPLOYMENT_STATUSES)
        return word in DEPLOYMENT_STATUSES ? word : 'failed'
    }

    @NonCPS
    private static String status(Object value, List<String> allowed) {
        String text = clean(value)
        String word = JENKINS_RESULTS[text] ?: text?.toLowerCase()
        if (!(word in allowed)) {
            throw new IllegalArgumentException("unknown status ${value}; expected one of ${allowed}")
        }
        return word
    }

    @NonCPS
    static boolean isTerminal(String runStatus) {
        return runStatus != 'running'
    }

    @NonCPS
    static String reportKind(Object value) {
        String kind = clean(value)
        if (kind && !(kind in REPORT_KINDS)) {
            throw new IllegalArgumentException("unknown report kind ${kind}; expected one of ${REPORT_KINDS}")
        }
        return kind
    }

    @NonCPS
    static String environment(Object value) {
        String slug = clean(value)
        if (!(slug ==~ /[a-z0-9][a-z0-9-]*/)) {
            throw new IllegalArgumentException("environment must be a slug such as ${ENVIRONMENTS}: ${value}")
        }
        return slug
    }

    @NonCPS
    static String digest(Object value) {
        String text = clean(value)
        if (!(text ==~ /sha256:[0-9a-f]{64}/)) {
            throw new IllegalArgumentException("image digest must be sha256:<64 hex>, got ${value}")
        }
        return text
    }

    /** One image of an artifact or a deployment, validated. */
    @NonCPS
    static Map image(Map image) {
        String repository = clean(image?.repository)
        if (!repository) {
            throw new IllegalArgumentException("image without a repository: ${image}")
        }
        return [repository: repository, tag: clean(image.tag), digest: digest(image.digest)]
    }

    @NonCPS
    static List<Map> images(Object images) {
        return (images ?: []).collect { image(it as Map) }
    }

    @NonCPS
    static String now() {
        return Instant.now().toString()
    }

    @NonCPS
    static String iso(Object epochMillis) {
        return epochMillis == null ? null : Instant.ofEpochMilli(epochMillis as long).toString()
    }

    /** The tail of a text, cut at a line start, at most EXCERPT_CHARS long. */
    @NonCPS
    static String excerpt(Object text, int maxChars = EXCERPT_CHARS) {
        if (text == null) {
            return null
        }
        String value = text.toString()
        if (value.length() <= maxChars) {
            return value
        }
        String tail = value.substring(value.length() - maxChars)
        int newline = tail.indexOf('\n')
        return (newline >= 0 && newline < tail.length() - 1) ? tail.substring(newline + 1) : tail
    }

    /** The last lines of this build's console log (already masked by Jenkins), or '' when not readable. */
    @NonCPS
    static String consoleTail(Object currentBuild, int lines = 60) {
        try {
            def log = currentBuild?.rawBuild?.getLog(lines)
            return log ? log.join('\n') : ''
        } catch (Exception ignored) {
            return ''
        }
    }

    /** JSON text of a payload, null values left out. */
    @NonCPS
    static String toJson(Map payload) {
        return JsonOutput.toJson(compact(payload))
    }

    @NonCPS
    static Map compact(Map payload) {
        Map result = [:]
        payload.each { key, value ->
            if (value != null) {
                result[key.toString()] = (value instanceof GString) ? value.toString() : value
            }
        }
        return result
    }

    /** "?environment=production&commit=abc": a query string, each value URL-encoded; "" without values. */
    @NonCPS
    static String query(Map values) {
        List parts = (values ?: [:]).findAll { key, value -> value != null }.collect { key, value ->
            "${URLEncoder.encode(key.toString(), 'UTF-8')}=${URLEncoder.encode(value.toString(), 'UTF-8')}"
        }
        return parts ? "?${parts.join('&')}".toString() : ''
    }

    /** The portal's words in an answer: its JSON "detail", else the start of the body; null for an empty body. */
    @NonCPS
    static String detail(Object body) {
        String text = clean(body)
        if (!text) {
            return null
        }
        try {
            Object parsed = new JsonSlurper().parseText(text)
            if (parsed instanceof Map && parsed.detail) {
                return parsed.detail.toString()
            }
        } catch (Exception ignored) {
            // not JSON: the text itself
        }
        return excerpt(text, 500)
    }

    /** A deploy permission the portal granted, in one line: which promotion, approved by whom, for which commit. */
    @NonCPS
    static String permission(Object body) {
        try {
            Map answer = new JsonSlurper().parseText(clean(body) ?: '{}') as Map
            Map promotion = answer.promotion as Map
            if (!promotion) {
                return "allowed (no promotion needed for ${answer.environment})"
            }
            return "allowed by promotion ${promotion.id} (${promotion.state}), approved by ${promotion.approved_by} " +
                "at ${promotion.approved_at}, tested commit ${promotion.tested_sha}"
        } catch (Exception ignored) {
            return 'allowed'
        }
    }

    /** Whether an answer deserves another attempt: network errors, timeouts, 5xx, 408 and 429 do; other 4xx not. */
    @NonCPS
    static boolean shouldRetry(int curlExit, String httpCode) {
        if (curlExit == 0) {
            return false
        }
        String code = clean(httpCode) ?: '000'
        return !(code ==~ /4[0-9][0-9]/) || code in ['408', '429']
    }

    @NonCPS
    static int backoffSeconds(int attempt) {
        return BACKOFF_SECONDS[Math.min(attempt, BACKOFF_SECONDS.size()) - 1]
    }

    /** The build is being stopped (abort, timeout of the build): that must propagate, never be swallowed. */
    @NonCPS
    static boolean isInterruption(Throwable error) {
        return error instanceof InterruptedException ||
            error.getClass().name == 'org.jenkinsci.plugins.workflow.steps.FlowInterruptedException'
    }

    /** The stage status an exception stands for: an interruption is "aborted" (or its own result), else "failed". */
    @NonCPS
    static String errorStatus(Throwable error) {
        if (isInterruption(error)) {
            try {
                String result = error.hasProperty('result') ? String.valueOf(error.result) : 'ABORTED'
                return JENKINS_RESULTS[result] ?: 'aborted'
            } catch (Exception ignored) {
                return 'aborted'
            }
        }
        return 'failed'
    }

    /** "origin/dev" -> "dev" (GIT_BRANCH of a plain pipeline job). */
    @NonCPS
    static String branchName(Object value) {
        String text = clean(value)
        return text ? text.replaceFirst('^(refs/heads/|origin/)', '') : null
    }

    @NonCPS
    static String clean(Object value) {
        if (value == null) {
            return null
        }
        String text = value.toString().trim()
        return text ? text : null
    }
}
