// Reports a deployment of this run's images to an environment. With a body, it wraps the deployment: "running"
// first, then "success" or "failed" with the end of the deployment log; the body's own error is rethrown.
import org.deliveryportal.Portal

/**
 * portalDeployment(environment: 'staging', images: [[repository: ..., tag: ..., digest: ...], ...],
 *                  logFile: 'reports/deploy-staging.log') { sh 'ansible-playbook ...' }
 * portalDeployment(environment: 'production', status: 'success', images: [...], log: '...')   a single report
 * environment: the environment's slug (staging, production); status: running | success | failed
 */
def call(Map args, Closure body = null) {
    if (body == null) {
        report(args, [status: args.status ?: 'success', started_at: args.startedAt, finished_at: args.finishedAt,
                      log: args.log])
        return
    }
    String startedAt = Portal.now()
    report(args, [status: 'running', started_at: startedAt])
    String status = 'failed'
    String failure = null
    try {
        body()
        status = 'success'
    } catch (err) {
        failure = "${err}"
        throw err
    } finally {
        String log = logTail(args.logFile as String)
        if (failure) {
            log = Portal.excerpt(log ? "${log}\n${failure}" : failure)
        }
        report(args, [status: status, started_at: startedAt, finished_at: Portal.now(), log: log])
    }
}

private void report(Map args, Map fields) {
    portalCall(path: 'runs/{build}/deployments/', payload: { ->
        [
            environment : Portal.environment(args.environment),
            status      : Portal.deploymentStatus(fields.status),
            images      : Portal.images(args.images),
            started_at  : fields.started_at,
            finished_at : fields.finished_at,
            log         : fields.log,
        ]
    })
}

/** The end of the deployment's log file, or null; never throws. */
private String logTail(String path) {
    if (!path) {
        return null
    }
    try {
        return fileExists(path) ? Portal.excerpt(readFile(file: path, encoding: 'UTF-8')) : null
    } catch (err) {
        if (Portal.isInterruption(err)) {
            throw err
        }
        return null
    }
}
