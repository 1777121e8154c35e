# Recsite developer commands. Needs only Python 3.11 (or python3), pip and make.
#
#   make run    set up .venv, migrate the SQLite DB, load the demo data, train and deploy a
#               campaign per recipe, create an admin login, an event tracker and the example
#               filters, print how to try it, and serve on http://127.0.0.1:8000/ with
#               DJANGO_DEBUG=1 (PORT=8011 make run for another port). Each step runs once:
#               later runs print the same summary and serve.
#   make test   set up .venv and run pytest (pass options with PYTEST_ARGS="-k foo -x")
#   make lint   ruff check and ruff format --check
#   make browser-test  install Debian's chromium and chromium-driver (apt, once) and run the
#               browser tests (headless Chromium through Selenium; screenshots in var/test-artifacts/)
#
# The venv is reinstalled only when requirements.txt changes (a copy of it is kept
# in .venv as a stamp). The admin password is generated once and kept in
# var/admin-password (git-ignored) so later runs can print it again.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements.txt
HOST := 127.0.0.1
PORT ?= 8000
ADMIN_PASSWORD_FILE := var/admin-password
PYTEST_ARGS ?=

# First Python found: python3.11, else python3.
BOOTSTRAP_PYTHON := $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)

# pip on these machines warns about a missing local mirror; the warning is harmless.
PIP_QUIET_FILTER := { grep -v "^WARNING: Location '.*' is ignored" || true; }

.PHONY: help venv run test lint migrate seed admin campaigns demo test-js browser-deps browser-test

help:
	@echo "make run    serve the demo on http://$(HOST):$(PORT)/ (SQLite, in-process tasks)"
	@echo "make test   run the test suite (PYTEST_ARGS=... passes options to pytest)"
	@echo "make lint   ruff check and ruff format --check"
	@echo "make browser-test   install chromium + chromium-driver (apt) and run the browser tests"

$(PY):
	@test -n "$(BOOTSTRAP_PYTHON)" || { echo "Python 3.11 (or python3) is required" >&2; exit 1; }
	@echo "Creating $(VENV) with $(BOOTSTRAP_PYTHON)"
	@"$(BOOTSTRAP_PYTHON)" -m venv $(VENV)

# Install only when requirements.txt differs from the copy kept in the venv.
$(STAMP): requirements.txt | $(PY)
	@if cmp -s requirements.txt $(STAMP); then \
		touch $(STAMP); \
	else \
		echo "Installing requirements.txt into $(VENV)"; \
		$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt 2>&1 | $(PIP_QUIET_FILTER); \
		cp requirements.txt $(STAMP); \
	fi

venv: $(STAMP)

migrate: $(STAMP)
	@DJANGO_DEBUG=1 $(PY) manage.py migrate --noinput -v 0

# Only the outcome line of a first load (the inferred schemas are in the admin); nothing later.
seed: migrate
	@DJANGO_DEBUG=1 $(PY) manage.py seed_demo | { grep -E "^Demo shop loaded" || true; }

# Creates the superuser `admin` when no superuser exists; prints the login.
admin: migrate
	@mkdir -p var
	@if DJANGO_DEBUG=1 $(PY) manage.py shell -v 0 -c "import sys; from django.contrib.auth import get_user_model; \
sys.exit(0 if get_user_model().objects.filter(is_superuser=True).exists() else 3)"; then \
		:; \
	else \
		code=$$?; [ $$code -eq 3 ] || exit $$code; \
		if [ ! -s $(ADMIN_PASSWORD_FILE) ]; then \
			( umask 077; $(PY) -c "import secrets; print(secrets.token_urlsafe(12))" > $(ADMIN_PASSWORD_FILE) ); \
		fi; \
		DJANGO_DEBUG=1 DJANGO_SUPERUSER_PASSWORD="$$(cat $(ADMIN_PASSWORD_FILE))" \
			$(PY) manage.py createsuperuser --noinput --username admin --email admin@localhost >/dev/null; \
		echo "Created the admin login (password kept in $(ADMIN_PASSWORD_FILE))"; \
	fi

DEMO_RECIPES := aws-user-personalization aws-personalized-ranking aws-sims aws-similar-items \
	aws-popularity-count aws-trending-now aws-item-affinity aws-item-attribute-affinity

# Trains and deploys one campaign per recipe, named after it, for the recipes whose campaign does
# not serve an ACTIVE version yet (so later runs skip the loop and print nothing).
campaigns: seed
	@missing="$$(DJANGO_DEBUG=1 $(PY) manage.py shell -v 0 -c "from recommendations.models import Campaign; \
recipes = '$(DEMO_RECIPES)'.split(); \
serving = set(Campaign.objects.filter(name__in=recipes, solution_version__status='ACTIVE').values_list('name', flat=True)); \
print(' '.join(r for r in recipes if r not in serving))")"; \
	if [ -n "$$missing" ]; then echo "Training and deploying a campaign per recipe (about a minute, once)..."; fi; \
	for recipe in $$missing; do \
		DJANGO_DEBUG=1 $(PY) manage.py train --recipe $$recipe --deploy --unless-deployed \
			| grep -E "^(Created campaign|Campaign .* now serves)" || exit 1; \
	done

# The event tracker and the filters the GraphiQL examples use (once), then the summary.
demo: campaigns admin
	@DJANGO_DEBUG=1 $(PY) manage.py demo_setup --url http://$(HOST):$(PORT) \
		--admin-password-file $(ADMIN_PASSWORD_FILE)

# No reloader (one process, no "Watching for file changes" lines) and no second system check
# (migrate ran them); Django's development-server warning is hidden: this is the demo.
run: demo
	@echo
	@DJANGO_DEBUG=1 DJANGO_RUNSERVER_HIDE_WARNING=true exec $(PY) manage.py runserver \
		--noreload --skip-checks $(HOST):$(PORT)

test: $(STAMP)
	@$(VENV)/bin/pytest $(PYTEST_ARGS)

# recsite.js's unit tests alone (make test runs them too, through pytest, when node is installed).
test-js:
	@if command -v node >/dev/null; then node --test tests/js/; \
	else echo "node is not installed: recsite.js tests skipped"; fi

lint: $(STAMP)
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .

# Debian's Chromium and ChromeDriver for the `browser` tests: installed with apt when missing
# (quiet; nothing to do when both are there). The tests never download a browser or a driver.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser-deps:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif command -v apt-get >/dev/null; then \
		echo "Installing chromium and chromium-driver with apt (once)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else \
		echo "apt-get not found: install Chromium and ChromeDriver as /usr/bin/chromium and /usr/bin/chromedriver" >&2; \
		exit 1; \
	fi

# Only the browser tests, failing (not skipping) if Chromium is missing.
browser-test: $(STAMP) browser-deps
	@REQUIRE_SERVICES=1 $(VENV)/bin/pytest -m browser $(PYTEST_ARGS)
