// Asks the delivery portal's permission before deploying: the one step of this library that fails the build on
// the portal's answer. Refused (no promotion approved for exactly this commit, a freeze window), or the portal out
// of reach or not configured: the build fails here and nothing is deployed.
import org.deliveryportal.Portal

/**
 * portalGate(environment: 'production')                   first thing in the production deployment
 * portalGate(environment: 'production', commit: sha)      another commit than the checkout's (GIT_COMMIT)
 * Returns the portal's answer (JSON text) when the deploy is allowed.
 */
def call(Map args = [:]) {
    String environment = Portal.environment(args.environment ?: 'production')
    String commit = Portal.clean(args.commit) ?: Portal.clean(env.GIT_COMMIT)
    if (!commit) {
        error("portalGate: no commit to ask the delivery portal about (give commit:, or check out first)")
    }
    String answer = portalCall(path: 'deploy-permission/', query: [environment: environment, commit: commit],
                               strict: true)
    echo "delivery portal: deploying ${commit} to ${environment} is ${Portal.permission(answer)}"
    return answer
}
