// Reports the pipeline run itself: call it once when the build starts (status "running") and once in post {}
// with the final result. Idempotent on the portal's side (upsert on the build number): calling it again is harmless.
import org.deliveryportal.Portal

/**
 * portalRun(status: 'running')                       at the start
 * portalRun(status: currentBuild.currentResult)      in post {}: SUCCESS, FAILURE, UNSTABLE, ABORTED are translated
 * Optional: branch, commitSha, commitTitle, commitAuthor, committedAt (ISO 8601; read from the checkout when left out).
 */
def call(Map args = [:]) {
    portalCall(path: 'runs/', payload: { ->
        String status = Portal.runStatus(args.status ?: 'running')
        Map commit = commitInfo(args)
        [
            build_number  : Portal.buildNumber(env.BUILD_NUMBER),
            branch        : args.branch ?: env.BRANCH_NAME ?: params?.BRANCH ?: Portal.branchName(env.GIT_BRANCH),
            commit_sha    : commit.sha,
            commit_title  : commit.title,
            commit_author : commit.author,
            committed_at  : commit.committedAt,
            status        : status,
            started_at    : Portal.iso(currentBuild.startTimeInMillis),
            finished_at   : Portal.isTerminal(status) ? Portal.now() : null,
            build_url     : env.BUILD_URL,
            queue_id      : queueId(),
            portal_run_id : Portal.optionalNumber(params?.PORTAL_RUN_ID) ?: Portal.clean(params?.PORTAL_RUN_ID),
        ]
    })
}

/** The commit being built, from the arguments or the workspace's git checkout; blanks when there is none yet. */
private Map commitInfo(Map args) {
    Map commit = [sha: args.commitSha ?: env.GIT_COMMIT ?: Portal.clean(params?.COMMIT),
                  title: args.commitTitle, author: args.commitAuthor, committedAt: args.committedAt]
    if (commit.title == null || commit.author == null || commit.committedAt == null) {
        // %x1f separates the fields; a commit title may hold anything else. Nothing here is interpolated by Groovy.
        // %cI: the committer date in strict ISO 8601, where the portal's lead time starts.
        String out = sh(script: 'git log -1 --format="%H%x1f%s%x1f%an <%ae>%x1f%cI" 2>/dev/null || true',
            returnStdout: true, label: 'portal: read the commit').trim()
        List fields = out ? out.split('\u001f', -1) as List : []
        if (fields.size() == 4) {
            commit.sha = commit.sha ?: fields[0]
            commit.title = commit.title ?: fields[1]
            commit.author = commit.author ?: fields[2]
            commit.committedAt = commit.committedAt ?: fields[3]
        }
    }
    return commit
}

private Long queueId() {
    try {
        return Portal.optionalNumber(currentBuild.rawBuild?.queueId)
    } catch (err) {
        if (Portal.isInterruption(err)) {
            throw err
        }
        return null
    }
}
