// Wraps the body of a stage: reports it running, runs it, reports how it ended (duration, and on failure the
// error and the end of the log). The stage's own error is rethrown untouched; only the callbacks are guarded.
import org.deliveryportal.Portal

/**
 * stage('Build images') { steps { portalStage(order: 4) { sh '...' } } }
 *   name   defaults to the enclosing stage's name (env.STAGE_NAME); order: the stage's position in the chain
 * portalStage(name: 'Deploy production', order: 11, status: 'skipped')   a status-only report, no body
 */
def call(Map args = [:], Closure body = null) {
    String name = args.name ?: env.STAGE_NAME
    if (body == null) {
        report(name, args.order, [status: Portal.stageStatus(args.status ?: 'skipped')])
        return
    }
    String startedAt = Portal.now()
    long started = System.currentTimeMillis()
    String resultBefore = currentBuild.currentResult
    report(name, args.order, [status: 'running', started_at: startedAt])

    String status = 'failed'
    String excerpt = null
    try {
        body()
        boolean madeUnstable = currentBuild.currentResult == 'UNSTABLE' && resultBefore != 'UNSTABLE'
        status = madeUnstable ? 'unstable' : 'success'
    } catch (err) {
        status = Portal.errorStatus(err)
        excerpt = failureExcerpt(err)
        throw err
    } finally {
        long duration = System.currentTimeMillis() - started
        report(name, args.order, [status: status, started_at: startedAt, finished_at: Portal.now(),
                                  duration_ms: duration, log_excerpt: excerpt])
    }
}

private void report(String name, Object order, Map fields) {
    portalCall(path: 'runs/{build}/stages/', payload: { ->
        [
            name         : name,
            status       : fields.status,
            order        : Portal.optionalNumber(order),
            started_at   : fields.started_at,
            finished_at  : fields.finished_at,
            duration_ms  : fields.duration_ms,
            log_excerpt  : fields.log_excerpt,
        ]
    })
}

/** The error and the tail of the console log; never throws (it runs while the stage's error propagates). */
private String failureExcerpt(Throwable err) {
    try {
        String tail = Portal.consoleTail(currentBuild, 60)
        return Portal.excerpt(tail ? "${tail}\n${err}" : "${err}")
    } catch (Exception ignored) {
        return "${err}"
    }
}
