# The two commands of the README: `make run` and `make test`. Everything they need is set up here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test venv lint clean test-tools test-services shell

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

# Secrets for the local demo are generated once into var/ (never committed).
var/secret_key var/admin_password var/demo_password:
	mkdir -p var
	umask 077 && $(PYTHON) -c "import secrets; print(secrets.token_urlsafe(48 if '$@' == 'var/secret_key' else 12))" > $@

# The workers start once the simulated GitLab answers: the demo's seed queued merge requests for it.
run: venv var/secret_key var/admin_password var/demo_password
	@set -euo pipefail; \
	export SECRET_KEY="$$(cat var/secret_key)" DEBUG="$${DEBUG:-true}"; \
	$(PY) manage.py migrate --no-input -v0; \
	DEMO_PASSWORD="$$(cat var/demo_password)" $(PY) manage.py seed_demo; \
	ADMIN_PASSWORD="$$(cat var/admin_password)" $(PY) manage.py ensure_admin --username admin; \
	echo ""; \
	echo "  Portal:  http://$(HOST):$(PORT)/"; \
	echo "  Admin:   admin / $$(cat var/admin_password)"; \
	echo "  Demo users (developer, techlead, operator): dana.dev, tom.lead, olga.ops / $$(cat var/demo_password)"; \
	export SITE_URL="$${SITE_URL:-http://127.0.0.1:$(PORT)}"; \
	jenkins=""; gitlab=""; workers=""; \
	stop_background() { \
		if [ -n "$$jenkins" ]; then kill "$$jenkins" 2>/dev/null || true; fi; \
		if [ -n "$$gitlab" ]; then kill "$$gitlab" 2>/dev/null || true; fi; \
		for worker in $$workers; do kill -TERM -- "-$$worker" 2>/dev/null || true; done; \
		for _ in 1 2 3 4 5 6 7 8 9 10; do \
			alive=""; for worker in $$workers; do kill -0 -- "-$$worker" 2>/dev/null && alive="$$alive $$worker"; done; \
			workers="$$alive"; [ -n "$$workers" ] || return 0; sleep 1; \
		done; \
		for worker in $$workers; do kill -KILL -- "-$$worker" 2>/dev/null || true; done; return 0; \
	}; \
	trap 'stop_background' EXIT; trap 'exit 0' INT TERM; \
	if [ -z "$${JENKINS_URL:-}" ]; then \
		sim_port="$${JENKINS_SIM_PORT:-8081}"; \
		export JENKINS_URL="http://127.0.0.1:$$sim_port" JENKINS_USER=demo JENKINS_SIMULATED=true \
			JENKINS_TOKEN="$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(24))')"; \
		$(PY) manage.py simulated_jenkins --port "$$sim_port" --portal-url "http://127.0.0.1:$(PORT)" & jenkins=$$!; \
		echo "  Jenkins: simulated ($$JENKINS_URL)"; \
	else \
		echo "  Jenkins: $$JENKINS_URL"; \
	fi; \
	if [ -z "$${GITLAB_URL:-}" ]; then \
		gitlab_port="$${GITLAB_SIM_PORT:-8082}"; \
		export GITLAB_URL="http://127.0.0.1:$$gitlab_port" GITLAB_SIMULATED=true \
			GITLAB_TOKEN="$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(24))')"; \
		$(PY) manage.py simulated_gitlab --port "$$gitlab_port" --portal-url "http://127.0.0.1:$(PORT)" & gitlab=$$!; \
		$(PY) -c "import socket, time; any(socket.socket().connect_ex(('127.0.0.1', $$gitlab_port)) == 0 or time.sleep(0.25) for _ in range(80))"; \
		echo "  GitLab:  simulated ($$GITLAB_URL)"; \
	else \
		echo "  GitLab:  $$GITLAB_URL"; \
	fi; \
	echo ""; \
	setsid $(PY) manage.py qcluster & workers="$$!"; \
	Q_CLUSTER_NAME=ingest setsid $(PY) manage.py qcluster & workers="$$workers $$!"; \
	( sleep 3; $(PY) manage.py check_worker --timeout 60; $(PY) manage.py check_worker --cluster ingest --timeout 60 ) & \
	$(PY) manage.py runserver --noreload $(HOST):$(PORT)

# A Django shell (or any command: `make shell CMD="showmigrations"`) with the settings `make run` uses.
CMD ?= shell
shell: venv var/secret_key
	@SECRET_KEY="$$(cat var/secret_key)" DEBUG="$${DEBUG:-true}" $(PY) manage.py $(CMD)

lint: venv
	$(PY) -m ruff check .

# Tools the tests run, from Debian: Chromium for the browser tests (never a browser Playwright downloads itself),
# Groovy to compile and run the Jenkins shared library, npm; and from the npm registry axe-core, the accessibility
# checker the browser tests put in every page, at the version tests/browser/package-lock.json pins (never a CDN at
# run time). Without them those tests skip and say why.
AXE := tests/browser/node_modules/axe-core/axe.min.js
test-tools:
	@missing=""; command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v groovy >/dev/null 2>&1 || missing="$$missing groovy"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  { apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; } \
	  || echo "could not install$$missing: the tests that need them will be skipped"; \
	fi
	@[ "$(AXE)" -nt tests/browser/package-lock.json ] \
	  || npm ci --prefix tests/browser --no-audit --no-fund --ignore-scripts --loglevel=error \
	  || echo "could not install axe-core: the accessibility tests will be skipped"

# The container engine the deployer's tests run against: podman's Docker API, a loopback registry and the app's
# images, installed from Debian and started once (machine-wide; a second run only checks them). Needs root.
# Then a Python 3.11 base made with debootstrap (once) and the portal's web image built on it (cached layers).
test-services:
	tests/services/container_engine.sh
	tests/services/python_base.sh

test: venv test-tools test-services
	$(PY) -m ruff check .
	DJANGO_SETTINGS_MODULE=portal.test_settings $(PY) manage.py makemigrations --check --dry-run
	$(PY) -m pytest

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
