// The one way this library talks to the delivery portal: every other portal* step goes through here.
// A bounded number of attempts with backoff, then a warning: the portal being down never fails a build, except
// for a strict call (portalGate's deploy permission), which fails it when refused or when the portal is out of reach.
import org.deliveryportal.Portal

/**
 * portalCall(path: 'runs/{build}/stages/', payload: { -> [name: 'Build', status: 'running'] })
 * portalCall(path: 'runs/{build}/reports/', file: 'reports/trivy-app.json', kind: 'trivy')
 *
 * path    relative to ${PORTAL_URL}/api/v1/projects/${PORTAL_PROJECT}/; "{build}" becomes BUILD_NUMBER
 * payload closure returning the JSON body (a Map; null values are left out). A closure, so that an error while
 *         gathering the values is caught here like any other callback error. A plain Map in "body" also works.
 * file    a file of the workspace to upload as multipart "file" instead of a JSON body; kind: optional "kind" field
 * query   a Map: a GET of path with these query parameters instead of a POST
 * strict  true: a refusal, a portal out of reach or not configured fails the build (error) with the portal's words
 *
 * Returns true when the portal accepted the call, false otherwise (not configured, down, refused). Never throws,
 * except when the build itself is being stopped (abort, build timeout), which must propagate, and when strict.
 * A strict call that is accepted returns the answer's body.
 */
def call(Map args) {
    if (args.strict) {
        return send(args)
    }
    try {
        return send(args)
    } catch (err) {
        if (Portal.isInterruption(err)) {
            throw err
        }
        echo "WARNING: delivery portal: ${args?.path} was not reported: ${err}. The build carries on."
        return false
    }
}

private Object send(Map args) {
    List resolved = Portal.resolveBaseUrl(params?.PORTAL_URL ?: env.PORTAL_URL, env.PORTAL_DEFAULT_URL,
        env.PORTAL_ALLOWED_URLS)
    String baseUrl = resolved[0]
    if (resolved[1]) {
        echo "WARNING: delivery portal: ${resolved[1]}"
    }
    if (!baseUrl || !env.PORTAL_PROJECT) {
        if (args.strict) {
            error("delivery portal: not configured (PORTAL_URL and PORTAL_PROJECT): ${args.path} cannot be asked")
        }
        echo "delivery portal: not configured (PORTAL_URL and PORTAL_PROJECT), ${args.path} not reported"
        return false
    }
    String endpoint = Portal.endpoint(baseUrl, env.PORTAL_PROJECT, args.path as String, env.BUILD_NUMBER) +
        Portal.query(args.query as Map)
    String method = args.query != null ? 'GET' : 'POST'
    String kind = Portal.reportKind(args.kind)
    String work = "${pwd(tmp: true)}/delivery-portal/${UUID.randomUUID()}"
    List callEnv = [
        "PORTAL_ENDPOINT=${endpoint}",
        "PORTAL_RESPONSE_FILE=${work}/response",
        "PORTAL_MAX_TIME=${Portal.ATTEMPT_TIMEOUT_SECONDS}",
    ]
    if (method == 'GET') {
        // no body: portal_call.sh GETs the endpoint
    } else if (args.file) {
        if (!fileExists(args.file as String)) {
            echo "WARNING: delivery portal: ${args.file} does not exist, nothing uploaded to ${args.path}"
            return false
        }
        callEnv << "PORTAL_UPLOAD_FILE=${args.file}"
        callEnv << "PORTAL_REPORT_KIND=${kind ?: ''}"
    } else {
        Map body = args.payload instanceof Closure ? args.payload.call() : args.body
        writeFile(file: "${work}/body.json", text: Portal.toJson(body ?: [:]), encoding: 'UTF-8')
        callEnv << "PORTAL_BODY_FILE=${work}/body.json"
    }
    String script = libraryResource('org/deliveryportal/portal_call.sh')
    Object accepted = false
    try {
        withCredentials([string(credentialsId: env.PORTAL_CREDENTIALS_ID ?: 'portal-token', variable: 'PORTAL_TOKEN')]) {
            withEnv(callEnv) {
                accepted = attempts("${method} ${args.path}", script, args.strict ? "${work}/response" : null)
            }
        }
    } finally {
        dir(work) {
            deleteDir()
        }
    }
    return accepted
}

/** Up to Portal.MAX_ATTEMPTS attempts, with Portal.BACKOFF_SECONDS between them; client errors are not retried.
 *  strictResponse: the answer's file of a strict call, which fails the build unless accepted (and then returns the
 *  answer's body). */
private Object attempts(String call, String script, String strictResponse = null) {
    for (int attempt = 1; attempt <= Portal.MAX_ATTEMPTS; attempt++) {
        List answer = sh(script: script, returnStdout: true, label: "portal: ${call}").trim().tokenize(' ')
        int curlExit = (answer.size() > 0 && answer[0] ==~ /[0-9]+/) ? (answer[0] as int) : 1
        String httpCode = answer.size() > 1 ? answer[1] : '000'
        if (curlExit == 0) {
            return strictResponse ? answerBody(strictResponse) : true
        }
        if (!Portal.shouldRetry(curlExit, httpCode)) {
            if (strictResponse) {
                error("delivery portal refused ${call} (HTTP ${httpCode}): " +
                      "${Portal.detail(answerBody(strictResponse)) ?: 'no reason given'}")
            }
            echo "WARNING: delivery portal refused ${call} (HTTP ${httpCode}); not retried. The build carries on."
            return false
        }
        if (attempt < Portal.MAX_ATTEMPTS) {
            int pause = Portal.backoffSeconds(attempt)
            echo "delivery portal: ${call} failed (curl exit ${curlExit}, HTTP ${httpCode}), " +
                "attempt ${attempt}/${Portal.MAX_ATTEMPTS}; retrying in ${pause}s"
            sleep(time: pause, unit: 'SECONDS')
        }
    }
    if (strictResponse) {
        error("delivery portal unreachable: ${call} failed ${Portal.MAX_ATTEMPTS} times")
    }
    echo "WARNING: delivery portal unreachable: ${call} failed ${Portal.MAX_ATTEMPTS} times. The build carries on."
    return false
}

private String answerBody(String path) {
    return fileExists(path) ? readFile(file: path, encoding: 'UTF-8') : ''
}
