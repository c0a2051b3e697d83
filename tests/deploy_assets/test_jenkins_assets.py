"""The Jenkinsfile and the delivery-portal shared library (deploy_assets/jenkins).

Static checks parse the Groovy (comments and strings masked, see groovy_source.py). Behaviour checks run the real
library steps outside Jenkins through tests/deploy_assets/groovy/harness.groovy, against a loopback imitation of the
portal: they need Debian's `groovy` and are skipped, saying so, without it.
"""

import json
import re
from datetime import datetime
from pathlib import Path

import pytest

from deliveries.models import DELIVERY_CHAIN
from tests.deploy_assets.conftest import JENKINSFILE, LIBRARY, run_groovy
from tests.deploy_assets.groovy_source import GroovySource

EXPECTED_STAGES = list(DELIVERY_CHAIN)  # what the demo and the imitation Jenkins play

# The portal's callback API (base ${PORTAL_URL}/api/v1/projects/<slug>/), as agreed with its implementation.
CONTRACT = {
    "runs/": {
        "build_number", "branch", "commit_sha", "commit_title", "commit_author", "committed_at", "status",
        "started_at", "finished_at", "build_url", "queue_id", "portal_run_id",
    },
    "runs/{build}/stages/": {"name", "status", "order", "started_at", "finished_at", "duration_ms", "log_excerpt"},
    "runs/{build}/artifacts/": {"repository", "tag", "digest", "registry"},
    "runs/{build}/reports/": None,  # multipart: file (+ kind)
    "runs/{build}/deployments/": {"environment", "status", "images", "started_at", "finished_at", "log"},
    "checks/": {"environment", "url", "ok", "status_code", "latency_ms", "error"},
}
# GETs with a query: the deploy permission (portalGate).
QUERIES = {"deploy-permission/": {"environment", "commit"}}
RUN_STATUSES = ["running", "success", "failed", "unstable", "aborted"]
STAGE_STATUSES = ["pending", "running", "success", "failed", "unstable", "aborted", "skipped"]
DEPLOYMENT_STATUSES = ["running", "success", "failed"]
REPORT_KINDS = ["trivy", "gauntlt", "jmeter"]
STEPS = ["portalRun", "portalStage", "portalReport", "portalArtifact", "portalDeployment", "portalCheck", "portalGate"]


@pytest.fixture(scope="module")
def jenkinsfile() -> GroovySource:
    return GroovySource.read(JENKINSFILE)


@pytest.fixture(scope="module")
def library() -> dict[str, GroovySource]:
    sources = {p.stem: GroovySource.read(p) for p in sorted((LIBRARY / "vars").glob("*.groovy"))}
    sources["Portal"] = GroovySource.read(LIBRARY / "src" / "org" / "deliveryportal" / "Portal.groovy")
    return sources


def stages(src: GroovySource) -> list[tuple[str, int, int]]:
    """(name, body start, body end) of every `stage('name') {...}` inside `stages {}`, in order."""
    start, end = src.block("stages")
    found = []
    for m in re.finditer(r"\bstage\s*\(", src.masked[start:end]):
        literal = src.string_at(start + m.end())
        assert literal is not None, "stage names are string literals"
        open_brace = src.masked.index("{", start + m.end())
        found.append((literal.value, open_brace + 1, src.matching(open_brace)))
    # Only direct children of stages {}: a stage nested in another would be counted twice above.
    return [s for s in found if not any(o[1] < s[1] < o[2] for o in found if o is not s)]


def groovy_constant(src: GroovySource, name: str):
    m = re.search(rf"static final [\w<>, ]+ {name} = (.+)", src.text)
    assert m, f"Portal.{name} is not a static final constant"
    value = m.group(1).strip()
    if value.startswith("["):
        return re.findall(r"'([^']*)'", value)
    if value.startswith("'"):
        return value.strip("'")
    return int(value)


# ---- Jenkinsfile ---------------------------------------------------------------------------------------------------


def test_it_declares_the_eleven_stages_in_order(jenkinsfile):
    assert [name for name, _, _ in stages(jenkinsfile)] == EXPECTED_STAGES


def test_it_loads_the_shared_library_first(jenkinsfile):
    first_code = next(line for line in jenkinsfile.masked.splitlines() if line.strip())
    assert first_code.strip().startswith("@Library(")
    literal = jenkinsfile.strings_in(0, len(jenkinsfile.text))[0]
    assert literal.value == "delivery-portal"


def test_it_runs_every_stage_body_inside_portal_stage_with_its_order(jenkinsfile):
    for order, (name, start, end) in enumerate(stages(jenkinsfile), start=1):
        steps = jenkinsfile.block("steps", start, end)
        assert steps, f"stage {name} has no steps block"
        heads = [head for head, _ in jenkinsfile.top_level_heads(*steps)]
        assert heads.count("portalStage") == 1, f"stage {name}: {heads}"
        assert set(heads) <= {"portalStage", "portalRun"}, f"stage {name} runs work outside portalStage: {heads}"
        (args_start, args_end), *_ = jenkinsfile.calls("portalStage", *steps)
        assert jenkinsfile.named_argument(args_start, args_end, "order") == str(order), name
        # The wrapped body spans everything after the call's arguments up to the end of steps {}.
        body = jenkinsfile.block("portalStage", *steps)
        assert body and jenkinsfile.masked[body[1] + 1 : steps[1]].strip() == "", f"stage {name}"


def test_it_guards_the_production_stage_with_the_master_branch(jenkinsfile):
    for name, start, end in stages(jenkinsfile):
        when = jenkinsfile.block("when", start, end)
        guarded = bool(when) and re.search(r"\bbranch\s+'master'", jenkinsfile.text[when[0] : when[1]])
        deploys_production = any(s.value == "production" for s in jenkinsfile.strings_in(start, end))
        assert bool(guarded) == (name == "Deploy production"), name
        assert deploys_production == (name == "Deploy production"), f"{name} mentions production"


def test_it_declares_the_parameters_the_portal_triggers_with(jenkinsfile):
    start, end = jenkinsfile.block("parameters")
    names = [jenkinsfile.named_argument(a, b, "name").value for a, b in jenkinsfile.calls("string", start, end)]
    assert names == ["BRANCH", "COMMIT", "PORTAL_RUN_ID", "PORTAL_URL"]


def test_it_sets_timestamps_a_timeout_and_no_concurrent_builds(jenkinsfile):
    start, end = jenkinsfile.block("options")
    options = jenkinsfile.masked[start:end]
    assert "timestamps()" in options and "disableConcurrentBuilds()" in options
    (a, b), *_ = jenkinsfile.calls("timeout", start, end)
    minutes = int(jenkinsfile.named_argument(a, b, "time"))
    assert jenkinsfile.named_argument(a, b, "unit").value == "MINUTES" and 10 <= minutes <= 180


def test_it_reports_the_final_result_in_every_post_condition(jenkinsfile):
    start, end = jenkinsfile.block("post", jenkinsfile.block("stages")[1])
    for condition, word in [("success", "SUCCESS"), ("failure", "FAILURE"), ("unstable", "UNSTABLE"),
                            ("aborted", "ABORTED")]:
        block = jenkinsfile.block(condition, start, end)
        assert block, f"post {{ {condition} }} is missing"
        calls = jenkinsfile.calls("portalRun", *block)
        assert len(calls) == 1, condition
        assert jenkinsfile.named_argument(*calls[0], "status").value == word
    assert jenkinsfile.block("always", start, end)


def test_it_never_lets_groovy_interpolate_a_shell_script(jenkinsfile, library):
    """Every `sh` script is a single-quoted literal or the library's resource: Groovy never splices values (and so
    never a secret) into shell text; values reach the shell through the environment."""
    for src in [jenkinsfile, *library.values()]:
        for start, end in src.calls("sh", 0):
            script = src.named_argument(start, end, "script")
            if script is None:  # sh('...'): the first positional argument
                script = src.string_at(start + len(src.masked[start:end]) - len(src.masked[start:end].lstrip()))
            if isinstance(script, str):
                # portalCall: sh(script: script) where script = libraryResource(...), a file, not a Groovy string
                assert (src.name, script) == (str(LIBRARY / "vars" / "portalCall.groovy"), "script"), script
                continue
            assert script is not None, f"{src.name}: sh without a literal script at {start}"
            assert script.quote in ("'", "'''"), f"{src.name}: double-quoted sh script {script.value[:60]!r}"
        # Also the shorthand `sh '...'` without parentheses.
        for m in re.finditer(r"\bsh\s+(label:|script:|[\"'])", src.masked):
            literal = src.string_at(m.end() - 1) if m.group(1) in ("'", '"') else None
            if literal:
                assert literal.quote in ("'", "'''"), f"{src.name}: double-quoted sh script {literal.value[:60]!r}"
        for literal in src.strings:
            assert not (literal.interpolated and "PORTAL_TOKEN" in literal.value), f"{src.name}: {literal.value}"
            assert not (literal.interpolated and "REGISTRY_PASSWORD" in literal.value), f"{src.name}"


def test_it_takes_registry_credentials_from_jenkins(jenkinsfile):
    calls = jenkinsfile.calls("usernamePassword")
    assert calls, "docker login needs withCredentials([usernamePassword(...)])"
    for a, b in calls:
        assert jenkinsfile.named_argument(a, b, "credentialsId").value == "gitlab-registry"
    login = next(s for s in jenkinsfile.strings if "docker login --" in s.value)
    assert "--password-stdin" in login.value and '"$REGISTRY"' in login.value


def test_it_uploads_the_files_its_tools_write(jenkinsfile):
    """Each portalReport uploads a file that a command of the same stage writes, with the right kind."""
    producers = {"trivy": r"trivy image .*--format json --output", "gauntlt": r"gauntlt .*--format json --outfile",
                 "jmeter": r"jmeter -n .*-t .*-l "}
    seen = set()
    for name, start, end in stages(jenkinsfile):
        shell = " ".join(s.value.replace("\\\n", " ") for s in jenkinsfile.strings_in(start, end))
        for a, b in jenkinsfile.calls("portalReport", start, end):
            kind = jenkinsfile.named_argument(a, b, "kind").value
            path = jenkinsfile.named_argument(a, b, "file").value
            assert kind in REPORT_KINDS
            assert re.search(producers[kind], shell, re.S), f"{name}: no {kind} command"
            assert f'"$REPORTS/{Path(path).name}"' in shell, f"{name}: nothing writes {path}"
            seen.add(kind)
    assert seen == set(REPORT_KINDS)


def test_it_runs_jmeter_without_gui_with_csv_results_and_a_header(jenkinsfile):
    command = next(s.value for s in jenkinsfile.strings if "jmeter -n" in s.value)
    assert "-Jjmeter.save.saveservice.output_format=csv" in command
    assert "-Jjmeter.save.saveservice.print_field_names=true" in command
    assert re.search(r"-t \S*plan\.jmx", command) and re.search(r"-l \S*\.jtl", command)


def test_it_reports_both_artifacts_with_their_digests(jenkinsfile):
    name, start, end = next(s for s in stages(jenkinsfile) if s[0] == "Push images")
    calls = jenkinsfile.calls("portalArtifact", start, end)
    assert len(calls) == 2
    for a, b in calls:
        for key in ("repository", "tag", "digest", "registry"):
            assert jenkinsfile.named_argument(a, b, key) is not None, key
    digests = {jenkinsfile.named_argument(a, b, "digest").value for a, b in calls}
    assert digests == {"${env.APP_DIGEST}", "${env.NGINX_DIGEST}"}


# ---- shared library: layout and contract ---------------------------------------------------------------------------


def test_every_step_has_help_and_a_call_method(library):
    vars_dir = LIBRARY / "vars"
    names = sorted(p.stem for p in vars_dir.glob("*.groovy"))
    assert set(STEPS + ["portalCall"]) <= set(names)
    for name in names:
        assert (vars_dir / f"{name}.txt").read_text().strip(), f"{name}.txt is missing or empty"
        assert re.search(r"^def call\(", library[name].masked, re.M), f"{name} defines no call()"


def test_every_step_goes_through_portal_call(library):
    """One place talks HTTP (portalCall + its resource script); every reporting step uses it and nothing else."""
    for name in STEPS:
        src = library[name]
        assert src.calls("portalCall"), f"{name} does not use portalCall"
        assert not src.calls("httpRequest") and not any("curl" in s.value for s in src.strings), name
        assert not any("portal_call.sh" in s.value for s in src.strings), name
    resource = [s.value for s in library["portalCall"].strings if s.value.endswith("portal_call.sh")]
    assert resource == ["org/deliveryportal/portal_call.sh"]
    assert (LIBRARY / "resources" / resource[0]).exists()


def test_portal_call_retries_a_bounded_number_of_times_then_warns(library):
    portal, call = library["Portal"], library["portalCall"]
    attempts = groovy_constant(portal, "MAX_ATTEMPTS")
    assert 1 < attempts <= 5
    backoff = [int(x) for x in re.search(r"BACKOFF_SECONDS = \[([^\]]*)\]", portal.text).group(1).split(",")]
    assert len(backoff) == attempts - 1 and backoff == sorted(backoff) and all(0 < b <= 30 for b in backoff)
    assert re.search(r"for \(int attempt = 1; attempt <= Portal\.MAX_ATTEMPTS; attempt\+\+\)", call.masked)
    assert "while" not in call.masked  # no unbounded loop
    # call() wraps everything in try/catch; the catch only rethrows interruptions (aborts) and otherwise warns.
    start, end = call.block("call")
    body = call.masked[start:end]
    assert re.search(r"try\s*\{\s*return send\(args\)\s*\}\s*catch \(err\)", body)
    catch = call.text[start:end][body.index("catch") :]
    assert "Portal.isInterruption(err)" in catch and "WARNING" in catch and "return false" in catch


def test_the_library_speaks_the_portals_contract(library):
    found = {}
    for name, src in library.items():
        for a, b in src.calls("portalCall"):
            path = src.named_argument(a, b, "path")
            assert path is not None and not isinstance(path, str), f"{name}: path must be a literal"
            payload = src.named_argument(a, b, "payload")
            if path.value in QUERIES:
                assert payload is None, name
                map_open = src.masked.index("[", a + src.masked[a:b].index("query"))
                found[path.value] = set(src.map_keys(map_open + 1, src.matching(map_open)))
                continue
            if CONTRACT.get(path.value) is None:
                assert payload is None and src.named_argument(a, b, "file") is not None, name
                found[path.value] = None
                continue
            assert payload is not None, f"{name}: {path.value} sends no payload"
            closure_at = src.masked.index("{", a + src.masked[a:b].index("payload"))
            closure_end = src.matching(closure_at)
            # the payload is the closure's last expression: the map literal that ends it
            map_open = next(i for i in range(closure_at, closure_end) if src.masked[i] == "["
                            and src.masked[src.matching(i) + 1 : closure_end].strip() == "")
            found[path.value] = set(src.map_keys(map_open + 1, src.matching(map_open)))
    assert found == {**CONTRACT, **QUERIES}


def test_the_library_uses_the_contracts_words(library):
    portal = library["Portal"]
    assert groovy_constant(portal, "API_PREFIX") == "api/v1/projects"
    assert groovy_constant(portal, "RUN_STATUSES") == RUN_STATUSES
    assert groovy_constant(portal, "STAGE_STATUSES") == STAGE_STATUSES
    assert groovy_constant(portal, "DEPLOYMENT_STATUSES") == DEPLOYMENT_STATUSES
    assert groovy_constant(portal, "REPORT_KINDS") == REPORT_KINDS
    jenkins = dict(re.findall(r"(\w+): '(\w+)'", re.search(r"JENKINS_RESULTS = \[(.*?)\]", portal.text, re.S)[1]))
    assert jenkins == {"SUCCESS": "success", "FAILURE": "failed", "UNSTABLE": "unstable", "ABORTED": "aborted",
                       "NOT_BUILT": "aborted"}


def test_the_callback_script_sends_the_token_as_a_bearer_header_from_stdin():
    script = (LIBRARY / "resources" / "org" / "deliveryportal" / "portal_call.sh").read_text()
    assert script.startswith("#!/bin/sh\n")  # a shebang: Jenkins then runs it without `-x` tracing
    assert "printf 'Authorization: Bearer %s\\n' \"${PORTAL_TOKEN}\" | curl" in script
    assert "-H @-" in script
    assert script.count("PORTAL_TOKEN}") == 1  # used once, on stdin, never on a command line
    assert "--data-binary \"@${PORTAL_BODY_FILE}\"" in script and "-F \"file=@${PORTAL_UPLOAD_FILE}\"" in script


# ---- Groovy compilation --------------------------------------------------------------------------------------------


def test_the_library_and_the_jenkinsfile_compile():
    """Parses and resolves (Groovy 2.4, Jenkins' own Groovy line) src/, every vars/ step and the Jenkinsfile."""
    done = run_groovy("check", str(LIBRARY), str(JENKINSFILE))
    assert done.returncode == 0, done.stderr
    errors = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(errors) == len(list((LIBRARY / "vars").glob("*.groovy"))) + 2
    assert {path: error for path, error in errors.items() if error} == {}


def test_the_compile_check_catches_a_broken_step(tmp_path):
    """The check above is not vacuous: a syntax error and an unknown import in a copy of the library fail it."""
    import shutil

    copy = tmp_path / "library"
    shutil.copytree(LIBRARY, copy)
    stage = copy / "vars" / "portalStage.groovy"
    stage.write_text(stage.read_text().replace("} finally {", "} finally ("))
    (copy / "vars" / "portalBroken.groovy").write_text("import org.deliveryportal.Nowhere\ndef call() {}\n")
    done = run_groovy("check", str(copy), str(JENKINSFILE))
    errors = {Path(k).name: v for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items() if v}
    assert set(errors) == {"portalStage.groovy", "portalBroken.groovy"}
    assert "unable to resolve class org.deliveryportal.Nowhere" in errors["portalBroken.groovy"]


# ---- behaviour: the library's steps against a loopback portal -----------------------------------------------------

TOKEN = "dp_test_0123456789abcdef"
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64

FULL_RUN = f"""
portalRun(status: 'running')
portalStage(order: 4) {{ echo 'building' }}
portalReport(file: 'reports/trivy-app.json', kind: 'trivy')
portalReport('reports/jmeter.jtl')
portalArtifact(repository: 'registry.example.com/shop/web/app', tag: 'a1b2c3d4', digest: '{DIGEST_A}',
               registry: 'registry.example.com')
portalDeployment(environment: 'staging', logFile: 'reports/deploy-staging.log',
                 images: [[repository: 'registry.example.com/shop/web/app', tag: 'a1b2c3d4',
                           digest: '{DIGEST_A}'],
                          [repository: 'registry.example.com/shop/web/nginx', tag: 'a1b2c3d4',
                           digest: '{DIGEST_B}']]) {{
    writeFile(file: 'reports/deploy-staging.log', text: 'PLAY RECAP ok=9 failed=0')
}}
portalStage(name: 'Deploy production', order: 11, status: 'skipped')
portalRun(status: 'SUCCESS')
"""

SCENARIOS = {
    # slug -> (portal behaviour, scenario script, extra settings)
    "full": ([], FULL_RUN, {}),
    "down": ([503], "portalStage(order: 2) { echo 'the stage itself runs' }\nreturn 'carried on'", {}),
    "flaky": ([503, 201], f"return portalArtifact(repository: 'r/app', tag: 't', digest: '{DIGEST_A}')", {}),
    "refused": ([400], "return portalRun(status: 'running')", {}),
    "stagefail": ([], "thrown = new AbortException('tests failed')\nportalStage(order: 2) { throw thrown }", {}),
    "stagefaildown": ([503], "thrown = new IllegalStateException('boom')\nportalStage(order: 3) { throw thrown }", {}),
    "unstable": ([], "portalStage(order: 9) { unstable('an attack succeeded') }", {}),
    "deployfail": ([], "thrown = new AbortException('unreachable host')\n"
                   "portalDeployment(environment: 'production', images: []) { throw thrown }", {}),
    "check": ([], "portalCheck(environment: 'staging', url: 'http://staging.example.com/healthz') { echo 'up' }\n"
              "portalCheck(environment: 'staging', url: 'http://s.example.com/', ok: true, statusCode: 200,"
              " latencyMs: 35)\n"
              "thrown = new AbortException('not available after 20 attempts')\n"
              "portalCheck(environment: 'staging', url: 'http://staging.example.com/healthz') { throw thrown }", {}),
    "badinput": ([], "portalArtifact(repository: 'r/app', tag: 't', digest: 'latest')\n"
                 "portalReport(file: 'reports/missing.json', kind: 'trivy')\n"
                 "portalReport(file: 'reports/trivy-app.json', kind: 'zap')\n"
                 "portalRun(status: 'sideways')\nreturn 'carried on'", {}),
    "nocreds": ([], "return portalRun(status: 'running')", {"credentials": {}}),
    "unreachable": ([], "portalRun(status: 'running')\nreturn 'carried on'", {"url": "closed"}),
    "unconfigured": ([], "return portalRun(status: 'running')", {"url": ""}),
    "crafted": ([], "return portalRun(status: 'running')", {"url": "evil"}),
}


@pytest.fixture(scope="module")
def library_runs(fake_portal, closed_port_url, tmp_path_factory):
    """Runs every scenario in one JVM (a JVM start costs seconds) and returns {slug: outcome}."""
    base = tmp_path_factory.mktemp("harness")
    scenarios = []
    for slug, (codes, script, extra) in SCENARIOS.items():
        fake_portal.behave(slug, codes)
        workspace = base / slug
        (workspace / "reports").mkdir(parents=True)
        (workspace / "reports" / "trivy-app.json").write_text('{"SchemaVersion": 2, "Results": []}')
        (workspace / "reports" / "jmeter.jtl").write_text("timeStamp,elapsed,label,responseCode,success\n")
        url = {"closed": closed_port_url, "evil": fake_portal.url + "/evil", "": ""}.get(extra.get("url"),
                                                                                       fake_portal.url)
        env = {"BUILD_NUMBER": "42", "BUILD_URL": "https://jenkins.example.com/job/shop/job/dev/42/",
               "BRANCH_NAME": "dev", "GIT_COMMIT": "0123456789abcdef0123456789abcdef01234567",
               "PORTAL_PROJECT": slug, "STAGE_NAME": "Some stage", "PATH": "/usr/bin:/bin"}
        params = {"PORTAL_URL": url, "PORTAL_RUN_ID": "7", "BRANCH": "dev", "COMMIT": ""}
        if extra.get("url") == "evil":
            env["PORTAL_DEFAULT_URL"] = fake_portal.url
        scenarios.append({
            "name": slug, "workspace": str(workspace), "env": env, "params": params, "script": script,
            "credentials": extra.get("credentials", {"portal-token": TOKEN}),
            "startTimeInMillis": 1_767_225_600_000,
        })
    config = base / "config.json"
    output = base / "output.json"
    config.write_text(json.dumps({"output": str(output), "scenarios": scenarios}))
    done = run_groovy("run", str(LIBRARY), str(config))
    assert done.returncode == 0, done.stderr
    return json.loads(output.read_text())


def echoes(outcome) -> list[str]:
    return [e["message"] for e in outcome["events"] if e["step"] == "echo"]


def test_it_reports_a_whole_run(library_runs, fake_portal):
    outcome = library_runs["full"]
    assert outcome["error"] is None, outcome
    requests = fake_portal.for_slug("full")
    assert [r.path for r in requests] == [
        "runs/", "runs/42/stages/", "runs/42/stages/", "runs/42/reports/", "runs/42/reports/",
        "runs/42/artifacts/", "runs/42/deployments/", "runs/42/deployments/", "runs/42/stages/", "runs/",
    ]
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in requests)
    for r in requests:
        if r.path.endswith("reports/"):
            assert r.headers["Content-Type"].startswith("multipart/form-data")
            continue
        assert r.headers["Content-Type"] == "application/json"
        keys = set(r.json)
        assert keys <= CONTRACT[re.sub(r"runs/\d+/", "runs/{build}/", r.path)], r.path

    start, stage_running, stage_done = requests[0].json, requests[1].json, requests[2].json
    assert start == {
        "build_number": 42, "branch": "dev", "commit_sha": "0123456789abcdef0123456789abcdef01234567",
        "status": "running", "started_at": "2026-01-01T00:00:00Z",
        "build_url": "https://jenkins.example.com/job/shop/job/dev/42/", "portal_run_id": 7,
    }
    assert stage_running["name"] == "Some stage" and stage_running["status"] == "running"
    assert stage_running["order"] == 4
    assert stage_done["status"] == "success" and isinstance(stage_done["duration_ms"], int)
    assert stage_done["started_at"] == stage_running["started_at"]
    assert datetime.fromisoformat(stage_done["finished_at"]) >= datetime.fromisoformat(stage_done["started_at"])
    assert "log_excerpt" not in stage_done

    trivy, jmeter = requests[3].body, requests[4].body
    assert b'name="file"; filename="trivy-app.json"' in trivy and b'{"SchemaVersion": 2' in trivy
    assert re.search(rb'name="kind"\r\n\r\ntrivy\r\n', trivy)
    assert b'name="kind"' not in jmeter and b'filename="jmeter.jtl"' in jmeter

    assert requests[5].json == {"repository": "registry.example.com/shop/web/app", "tag": "a1b2c3d4",
                                "digest": DIGEST_A, "registry": "registry.example.com"}
    running, done = requests[6].json, requests[7].json
    assert running["environment"] == "staging" and running["status"] == "running"
    assert [i["digest"] for i in running["images"]] == [DIGEST_A, DIGEST_B]
    assert done["status"] == "success" and done["log"] == "PLAY RECAP ok=9 failed=0" and done["finished_at"]
    assert requests[8].json == {"name": "Deploy production", "status": "skipped", "order": 11}
    final = requests[9].json
    assert final["status"] == "success" and final["finished_at"]


def test_it_never_shows_the_token(library_runs):
    for outcome in library_runs.values():
        text = json.dumps(outcome["events"])
        assert TOKEN not in text  # not in a script, an echo, or what curl printed


def test_it_gives_up_after_three_attempts_and_carries_on(library_runs, fake_portal):
    outcome = library_runs["down"]
    assert outcome["error"] is None and outcome["returned"] == "carried on"
    assert "the stage itself runs" in echoes(outcome)
    # two callbacks (running, success) x 3 attempts each, with 2 s then 5 s pauses
    assert [r.path for r in fake_portal.for_slug("down")] == ["runs/42/stages/"] * 6
    sleeps = [e["time"] for e in outcome["events"] if e["step"] == "sleep"]
    assert sleeps == [2, 5, 2, 5]
    assert sum("WARNING: delivery portal unreachable" in m for m in echoes(outcome)) == 2


def test_it_carries_on_when_nobody_listens(library_runs):
    outcome = library_runs["unreachable"]
    assert outcome["error"] is None and outcome["returned"] == "carried on"
    calls = [e for e in outcome["events"] if e["step"] == "sh" and e["label"] == "portal: POST runs/"]
    assert len(calls) == 3 and all(c["stdout"].startswith("7 000") for c in calls)  # curl: could not connect
    assert any("failed 3 times. The build carries on." in m for m in echoes(outcome))


def test_it_retries_until_the_portal_answers(library_runs, fake_portal):
    assert library_runs["flaky"]["returned"] is True
    assert [r.answered for r in fake_portal.for_slug("flaky")] == [503, 201]


def test_it_does_not_retry_a_refused_call(library_runs, fake_portal):
    outcome = library_runs["refused"]
    assert outcome["returned"] is False and outcome["error"] is None
    assert len(fake_portal.for_slug("refused")) == 1
    assert any("refused POST runs/ (HTTP 400)" in m for m in echoes(outcome))
    shown = [e["stderr"] for e in outcome["events"] if e["step"] == "sh" and e["label"] == "portal: POST runs/"]
    assert "imitated error 400" in shown[0]  # the portal's reason reaches the log


def test_it_rethrows_the_stages_own_error_and_reports_it_failed(library_runs, fake_portal):
    outcome = library_runs["stagefail"]
    assert outcome["error"] == "tests failed" and outcome["sameError"] is True
    running, failed = (r.json for r in fake_portal.for_slug("stagefail"))
    assert running["status"] == "running" and failed["status"] == "failed"
    assert "tests failed" in failed["log_excerpt"] and failed["duration_ms"] >= 0


def test_a_portal_that_is_down_does_not_hide_the_stages_error(library_runs):
    outcome = library_runs["stagefaildown"]
    assert outcome["error"] == "boom" and outcome["sameError"] is True
    assert outcome["errorClass"] == "java.lang.IllegalStateException"


def test_it_reports_a_stage_that_made_the_build_unstable(library_runs, fake_portal):
    running, done = (r.json for r in fake_portal.for_slug("unstable"))
    assert done["status"] == "unstable" and library_runs["unstable"]["error"] is None


def test_it_reports_a_failed_deployment_and_rethrows(library_runs, fake_portal):
    outcome = library_runs["deployfail"]
    assert outcome["error"] == "unreachable host" and outcome["sameError"] is True
    running, failed = (r.json for r in fake_portal.for_slug("deployfail"))
    assert (running["environment"], running["status"], failed["status"]) == ("production", "running", "failed")
    assert "unreachable host" in failed["log"]


def test_it_reports_the_availability_stage_as_a_check_and_rethrows_its_failure(library_runs, fake_portal):
    outcome = library_runs["check"]
    assert outcome["error"] == "not available after 20 attempts" and outcome["sameError"] is True
    requests = fake_portal.for_slug("check")
    assert [r.path for r in requests] == ["checks/"] * 3
    passed, single, failed = (r.json for r in requests)
    assert passed == {"environment": "staging", "url": "http://staging.example.com/healthz", "ok": True}
    assert single == {"environment": "staging", "url": "http://s.example.com/", "ok": True, "status_code": 200,
                      "latency_ms": 35}
    assert failed["ok"] is False and "not available after 20 attempts" in failed["error"]


def test_it_warns_about_bad_input_instead_of_failing(library_runs, fake_portal):
    outcome = library_runs["badinput"]
    assert outcome["error"] is None and outcome["returned"] == "carried on"
    assert fake_portal.for_slug("badinput") == []
    messages = "\n".join(echoes(outcome))
    assert "image digest must be sha256:<64 hex>, got latest" in messages
    assert "reports/missing.json does not exist" in messages
    assert "unknown report kind zap" in messages
    assert "unknown status sideways" in messages


def test_it_warns_when_the_token_credential_is_missing(library_runs, fake_portal):
    outcome = library_runs["nocreds"]
    assert outcome["returned"] is False and outcome["error"] is None
    assert fake_portal.for_slug("nocreds") == []
    assert any("Could not find credentials entry with ID 'portal-token'" in m for m in echoes(outcome))


def test_it_reports_nothing_when_not_configured(library_runs):
    outcome = library_runs["unconfigured"]
    assert outcome["returned"] is False and outcome["error"] is None
    assert not [e for e in outcome["events"] if e["step"] == "withCredentials"]
    assert any("not configured" in m for m in echoes(outcome))


def test_it_does_not_send_the_token_to_a_url_it_was_not_given_by_jenkins(library_runs, fake_portal):
    """A PORTAL_URL parameter that is not the configured portal is ignored (the token would go there)."""
    outcome = library_runs["crafted"]
    assert outcome["returned"] is True
    assert [r.path for r in fake_portal.requests if r.slug == "evil"] == []
    assert [r.path for r in fake_portal.for_slug("crafted")] == ["runs/"]
    assert any("is not in PORTAL_ALLOWED_URLS" in m for m in echoes(outcome))


# ---- behaviour: the whole Jenkinsfile, with its tools imitated ----------------------------------------------------
# harness.groovy imitates declarative semantics (stages in order, `when { branch }`, a failure skips the rest, post
# conditions by result) and answers the tools' commands (docker, trivy, ansible...) from canned rules; the portal
# callbacks run for real against the loopback portal.

SHA = "0123456789abcdef0123456789abcdef01234567"
TOOLS = [
    {"match": "PORTAL_ENDPOINT", "real": True},
    {"match": "git log -1", "stdout": f"{SHA}\u001fAdd the login page\u001fDana Dev <dana@example.com>"
                                      "\u001f2026-11-27T10:15:00+01:00\n"},
    {"match": "git rev-parse HEAD", "stdout": f"{SHA}\n"},
    {"match": r"image-digest\.sh\" \"\$APP_", "stdout": f"{DIGEST_A}\n"},
    {"match": r"image-digest\.sh\" \"\$NGINX_", "stdout": f"{DIGEST_B}\n"},
    {"match": "docker image inspect", "stdout": "sha256:" + "c" * 64 + "\n"},
]
PIPELINES = {
    # slug -> (branch, extra canned rules placed first, portal: "up" or "down")
    "jf-dev": ("dev", [], "up"),
    "jf-master": ("master", [], "up"),
    "jf-testsfail": ("dev", [{"match": "^pytest$", "rc": 1}], "up"),
    "jf-testsfail-down": ("dev", [{"match": "^pytest$", "rc": 1}], "down"),
    "jf-dev-down": ("dev", [], "down"),
    "jf-attacked": ("dev", [{"match": "^gauntlt$", "rc": 1}], "up"),
    "jf-wrongbranch": ("dev", [], "up"),
    "jf-master-refused": ("master", [], "up"),  # the portal refuses the deploy permission (fake_portal.gates)
    "jf-master-down": ("master", [], "down"),
    # Ansible fails in production (it put the previous containers back), which then answers its health URL
    "jf-master-broken": ("master", [{"match": r"ansible-playbook \(production\)", "rc": 2}], "up"),
}


@pytest.fixture(scope="module")
def pipeline_runs(fake_portal, closed_port_url, tmp_path_factory):
    base = tmp_path_factory.mktemp("jenkinsfile")
    fake_portal.gates["jf-master-refused"] = 403
    scenarios = []
    for slug, (branch, rules, portal) in PIPELINES.items():
        workspace = base / slug
        reports = workspace / "reports"
        reports.mkdir(parents=True)
        for name in ("trivy-app.json", "trivy-nginx.json", "gauntlt.json", "jmeter.jtl"):
            (reports / name).write_text("{}")
        scenarios.append({
            "name": slug, "workspace": str(workspace), "jenkinsfile": str(JENKINSFILE),
            "env": {"BUILD_NUMBER": "7", "BRANCH_NAME": branch, "WORKSPACE": str(workspace), "PORTAL_PROJECT": slug,
                    "REGISTRY": "registry.example.com", "IMAGE_NAMESPACE": "shop/web", "PATH": "/usr/bin:/bin",
                    "BUILD_URL": f"https://jenkins.example.com/job/web/job/{branch}/7/",
                    "STAGING_HOST": "staging.example.com", "STAGING_URL": "http://staging.example.com",
                    "STAGING_HEALTH_URL": "http://staging.example.com/healthz",
                    "PRODUCTION_HEALTH_URL": "http://www.example.com/healthz"},
            "params": {"PORTAL_URL": fake_portal.url if portal == "up" else closed_port_url,
                       "BRANCH": "master" if slug == "jf-wrongbranch" else branch, "COMMIT": "", "PORTAL_RUN_ID": "5"},
            "credentials": {"portal-token": TOKEN, "gitlab-registry": {"username": "ci", "password": "registry-pw"},
                            "deploy-ssh": "key"},
            "canned": [*rules, *TOOLS, {"match": ".", "stdout": ""}],
            "startTimeInMillis": 1_767_225_600_000,
        })
    config, output = base / "config.json", base / "output.json"
    config.write_text(json.dumps({"output": str(output), "scenarios": scenarios}))
    done = run_groovy("run", str(LIBRARY), str(config))
    assert done.returncode == 0, done.stderr
    return json.loads(output.read_text())


def stage_events(outcome) -> list[tuple[str, str]]:
    return [(e["step"], e["name"]) for e in outcome["events"] if e["step"].startswith("stage")]


def stage_reports(portal, slug) -> list[tuple[int, str]]:
    return [(r.json["order"], r.json["status"]) for r in portal.for_slug(slug) if r.path.endswith("stages/")]


def test_a_dev_build_runs_ten_stages_and_reports_them(pipeline_runs, fake_portal):
    outcome = pipeline_runs["jf-dev"]
    assert outcome["error"] is None and outcome["returned"] == "SUCCESS"
    assert stage_events(outcome) == [("stage", n) for n in EXPECTED_STAGES[:10]] + [
        ("stage skipped", "Deploy production")]
    expected = [(n, s) for n in range(1, 11) for s in ("running", "success")] + [(11, "skipped")]
    assert stage_reports(fake_portal, "jf-dev") == expected
    requests = fake_portal.for_slug("jf-dev")
    assert [r.path for r in requests].count("runs/7/reports/") == 4
    kinds = [re.search(rb'name="kind"\r\n\r\n(\w+)', r.body).group(1) for r in requests if r.path.endswith("reports/")]
    assert kinds == [b"trivy", b"trivy", b"gauntlt", b"jmeter"]
    artifacts = [r.json for r in requests if r.path.endswith("artifacts/")]
    assert artifacts == [
        {"repository": "registry.example.com/shop/web/app", "tag": SHA[:8], "digest": DIGEST_A,
         "registry": "registry.example.com"},
        {"repository": "registry.example.com/shop/web/nginx", "tag": SHA[:8], "digest": DIGEST_B,
         "registry": "registry.example.com"},
    ]
    deployments = [r.json for r in requests if r.path.endswith("deployments/")]
    assert [(d["environment"], d["status"]) for d in deployments] == [("staging", "running"), ("staging", "success")]
    assert deployments[0]["images"] == [{k: a[k] for k in ("repository", "tag", "digest")} for a in artifacts]
    assert [r.json for r in requests if r.path == "checks/"] == [
        {"environment": "staging", "url": "http://staging.example.com/healthz", "ok": True}]
    first, last = requests[0].json, requests[-1].json
    assert (requests[0].path, first["status"], first["portal_run_id"]) == ("runs/", "running", 5)
    assert (requests[-1].path, last["status"], last["commit_sha"]) == ("runs/", "success", SHA)
    assert (last["commit_title"], last["commit_author"]) == ("Add the login page", "Dana Dev <dana@example.com>")
    assert last["committed_at"] == "2026-11-27T10:15:00+01:00"  # git's %cI, which the runs API validates


def test_a_master_build_deploys_production(pipeline_runs, fake_portal):
    outcome = pipeline_runs["jf-master"]
    assert outcome["returned"] == "SUCCESS"
    assert stage_events(outcome) == [("stage", n) for n in EXPECTED_STAGES]
    assert stage_reports(fake_portal, "jf-master")[-2:] == [(11, "running"), (11, "success")]
    deployments = [r.json for r in fake_portal.for_slug("jf-master") if r.path.endswith("deployments/")]
    assert [d["environment"] for d in deployments] == ["staging", "staging", "production", "production"]
    ansible = [e["label"] for e in outcome["events"] if (e.get("label") or "").startswith("ansible-playbook")]
    assert ansible == ["ansible-playbook (staging)", "ansible-playbook (production)"]
    requests = fake_portal.for_slug("jf-master")
    (gate,) = [r for r in requests if r.path.startswith("deploy-permission/")]
    assert gate.path == f"deploy-permission/?environment=production&commit={SHA}"
    assert gate.headers["Authorization"] == f"Bearer {TOKEN}"
    first_production = next(i for i, r in enumerate(requests) if r.path.endswith("deployments/")
                            and r.json["environment"] == "production")
    assert requests.index(gate) < first_production  # asked before anything is deployed
    assert any("allowed by promotion 12 (merged), approved by tom.lead" in m for m in echoes(outcome))
    # then what production serves is checked and kept with the portal's checks
    checks = [(r.json["environment"], r.json["url"], r.json["ok"]) for r in requests if r.path == "checks/"]
    assert checks[-1] == ("production", "http://www.example.com/healthz", True)


def test_a_failed_production_deployment_still_reports_what_production_serves(pipeline_runs, fake_portal):
    outcome = pipeline_runs["jf-master-broken"]
    assert outcome["returned"] == "FAILURE"
    failed = [e for e in outcome["events"] if e["step"] == "stage failed" and e["name"] == "Deploy production"]
    assert failed[0]["error"] == "script returned exit code 2"  # Ansible's failure, not the check's
    requests = fake_portal.for_slug("jf-master-broken")
    deployments = [(r.json["environment"], r.json["status"]) for r in requests if r.path.endswith("deployments/")]
    assert deployments[-1] == ("production", "failed")
    checks = [(r.json["environment"], r.json["ok"]) for r in requests if r.path == "checks/"]
    assert checks[-1] == ("production", True)  # the previous version, put back, answers: restored


@pytest.mark.parametrize("slug, reason", [
    ("jf-master-refused", "delivery portal refused GET deploy-permission/ (HTTP 403): imitated refusal 403: "
                          "production is frozen"),
    ("jf-master-down", "delivery portal unreachable: GET deploy-permission/ failed 3 times"),
])
def test_a_master_build_deploys_nothing_to_production_without_the_portals_permission(pipeline_runs, fake_portal,
                                                                                      slug, reason):
    outcome = pipeline_runs[slug]
    assert outcome["returned"] == "FAILURE"
    assert ("stage failed", "Deploy production") in stage_events(outcome)
    failed = [e for e in outcome["events"] if e["step"] == "stage failed" and e["name"] == "Deploy production"]
    assert failed[0]["error"] == reason
    ansible = [e["label"] for e in outcome["events"] if (e.get("label") or "").startswith("ansible-playbook")]
    assert ansible == ["ansible-playbook (staging)"]
    assert "production" not in [r.json["environment"] for r in fake_portal.for_slug(slug) if r.path == "checks/"]
    if slug == "jf-master-refused":
        assert stage_reports(fake_portal, slug)[-2:] == [(11, "running"), (11, "failed")]
        assert [r.json["environment"] for r in fake_portal.for_slug(slug) if r.path.endswith("deployments/")] == [
            "staging", "staging"]


def test_a_failing_stage_fails_the_build_and_skips_the_rest(pipeline_runs, fake_portal):
    outcome = pipeline_runs["jf-testsfail"]
    assert outcome["returned"] == "FAILURE"
    assert stage_events(outcome)[:4] == [("stage", "Checkout"), ("stage", "App checks"),
                                         ("stage failed", "App checks"), ("stage skipped", "Infrastructure checks")]
    assert stage_reports(fake_portal, "jf-testsfail")[:4] == [(1, "running"), (1, "success"), (2, "running"),
                                                               (2, "failed")]
    assert fake_portal.for_slug("jf-testsfail")[-1].json["status"] == "failed"


def test_the_portal_being_down_changes_nothing_in_the_build(pipeline_runs, fake_portal):
    for up, down in [("jf-dev", "jf-dev-down"), ("jf-testsfail", "jf-testsfail-down")]:
        assert pipeline_runs[down]["error"] is None
        assert pipeline_runs[down]["returned"] == pipeline_runs[up]["returned"]
        assert stage_events(pipeline_runs[down]) == stage_events(pipeline_runs[up])
        assert fake_portal.for_slug(down) == []
        warnings = [m for m in echoes(pipeline_runs[down]) if "delivery portal unreachable" in m]
        assert len(warnings) == len(fake_portal.for_slug(up))  # every callback gave up, none failed the build


def test_a_successful_attack_makes_the_build_unstable(pipeline_runs, fake_portal):
    outcome = pipeline_runs["jf-attacked"]
    assert outcome["returned"] == "UNSTABLE"
    assert ("stage", "Load test") in stage_events(outcome)
    assert (9, "unstable") in stage_reports(fake_portal, "jf-attacked")
    assert (10, "success") in stage_reports(fake_portal, "jf-attacked")
    assert fake_portal.for_slug("jf-attacked")[-1].json["status"] == "unstable"


def test_a_build_of_another_branch_than_asked_stops_at_checkout(pipeline_runs, fake_portal):
    outcome = pipeline_runs["jf-wrongbranch"]
    assert outcome["returned"] == "FAILURE"
    assert stage_events(outcome)[:2] == [("stage", "Checkout"), ("stage failed", "Checkout")]
    failed = [r.json for r in fake_portal.for_slug("jf-wrongbranch") if r.path.endswith("stages/")][1]
    assert failed["status"] == "failed" and "asked for branch master" in failed["log_excerpt"]
