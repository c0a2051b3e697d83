// Uploads a report file of this run (Trivy JSON, Gauntlt cucumber JSON, JMeter JTL) to the portal, which stores it
// at once (202 Accepted) and parses it in the background.
import org.deliveryportal.Portal

/**
 * portalReport(file: 'reports/trivy-app.json', kind: 'trivy')
 * portalReport('reports/jmeter.jtl')           kind is optional: the portal then detects it from the content
 * kind: trivy | gauntlt | jmeter. A missing file is a warning, not an error.
 */
def call(Map args) {
    portalCall(path: 'runs/{build}/reports/', file: args.file, kind: args.kind)
}

def call(String file, String kind = null) {
    call(file: file, kind: kind)
}
