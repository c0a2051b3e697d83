// Reports one pushed image of this run: repository, tag and the registry's manifest digest.
import org.deliveryportal.Portal

/**
 * portalArtifact(repository: 'registry.gitlab.example.com/shop/app', tag: 'a1b2c3d4',
 *                digest: 'sha256:<64 hex>', registry: 'registry.gitlab.example.com')
 * registry defaults to env.REGISTRY. A digest that is not sha256:<64 hex> is not sent (a warning says why).
 */
def call(Map args) {
    portalCall(path: 'runs/{build}/artifacts/', payload: { ->
        Map image = Portal.image(args)
        [
            repository : image.repository,
            tag        : image.tag,
            digest     : image.digest,
            registry   : args.registry ?: env.REGISTRY,
        ]
    })
}
