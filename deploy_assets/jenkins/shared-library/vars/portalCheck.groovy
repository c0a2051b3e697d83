// Reports an availability check of an environment. With a body (the check itself, e.g. a script that waits for the
// health URL), it reports whether the body passed, and rethrows the body's own error.
import org.deliveryportal.Portal

/**
 * portalCheck(environment: 'staging', url: env.STAGING_HEALTH_URL) { sh '"$ASSETS/scripts/wait-for-http.sh" ...' }
 * portalCheck(environment: 'staging', url: '...', ok: true, statusCode: 200, latencyMs: 35)   a single report
 * environment: the environment's slug; url: the health URL probed
 */
def call(Map args, Closure body = null) {
    if (body == null) {
        report(args, [ok: args.ok == true, status_code: Portal.optionalNumber(args.statusCode),
                      latency_ms: args.latencyMs, error: args.error])
        return
    }
    boolean interrupted = false
    String failure = null
    try {
        body()
    } catch (err) {
        interrupted = Portal.isInterruption(err)  // the build is being stopped: that says nothing about the service
        failure = Portal.excerpt("${err}", 500)
        throw err
    } finally {
        if (!interrupted) {
            report(args, [ok: failure == null, error: failure])
        }
    }
}

private void report(Map args, Map fields) {
    portalCall(path: 'checks/', payload: { ->
        [
            environment: Portal.environment(args.environment),
            url        : Portal.clean(args.url),
            ok         : fields.ok,
            status_code: fields.status_code,
            latency_ms : fields.latency_ms,
            error      : fields.error,
        ]
    })
}
