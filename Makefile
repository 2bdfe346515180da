# Hirfa: `make run` starts the whole stack; `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

# The stack on embedded defaults: SQLite under var/, the embedded broker on 9092; payments' proceeds
# stay pending for one minute (production: ACCOUNTS_PENDING_HOLD_SECONDS, default three days).
# SMS (one-time codes, notifications) go to the SMS-gateway sandbox (sandbox/sms), which sends
# delivery receipts back; read what a phone received at http://127.0.0.1:8012/v1/messages?to=+212….
SMS_SANDBOX_ENV := ONBOARDING_SMS_BACKEND=http ONBOARDING_SMS_PROVIDER_URL=http://127.0.0.1:$${SMS_SANDBOX_PORT:-8012}/v1/messages ONBOARDING_SMS_PROVIDER_API_KEY=sandbox-sms-api-key
RUN_ENV := ONBOARDING_DEMO_CLIENTS=true ONBOARDING_DEMO_STAFF=true LOG_JSON=false ACCOUNTS_PENDING_HOLD_SECONDS=$${ACCOUNTS_PENDING_HOLD_SECONDS:-60} KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$${BROKER_PORT:-9092} $(SMS_SANDBOX_ENV)

.PHONY: install browsers run migrate test test-unit faults lint validate-deploy docs bench clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e ".[dev]"
	touch $(STAMP)

# The message catalogues (fr, ar): gettext .po sources, compiled to .mo here (the .mo are not committed).
LOCALE_SOURCES  := $(wildcard shared/locales/*/LC_MESSAGES/messages.po)
LOCALE_COMPILED := $(LOCALE_SOURCES:.po=.mo)

%.mo: %.po $(STAMP)
	$(BIN)/pybabel compile --statistics -i $< -o $@

install: $(STAMP) $(LOCALE_COMPILED)

# The console's browser tests: Debian's Chromium and its driver (Playwright drives the system
# browser; its own browser download is not used), and axe-core from the npm registry for the
# accessibility checks, kept beside the virtualenv (never in the repository).
AXE_CORE_VERSION := 4.14.1
BROWSERS_STAMP := $(VENV)/.browsers-$(AXE_CORE_VERSION)-stamp

$(BROWSERS_STAMP):
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver)
	command -v npm >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm)
	npm install --silent --no-save --no-package-lock --prefix $(VENV)/node axe-core@$(AXE_CORE_VERSION)
	touch $@

browsers: $(BROWSERS_STAMP)

run: install
	$(RUN_ENV) $(BIN)/hirfa stack init
	PATH="$(CURDIR)/$(BIN):$$PATH" $(RUN_ENV) $(BIN)/honcho -f deploy/Procfile -d . start

migrate: install
	$(BIN)/hirfa onboarding db upgrade
	$(BIN)/hirfa payments db upgrade
	$(BIN)/hirfa accounts db upgrade

# Everything but the fault matrix, which has its own target (CI runs both): the slowest tests are
# listed at the end, so a suite that creeps towards its time budget shows where.
test: install browsers
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -p no:cacheprovider --ignore=tests/faults --durations=15

test-unit: install
	$(BIN)/python -m pytest -q tests/unit

# The fault matrix (see tests/README.md): one stack of the real processes on a PostgreSQL of its
# own, faults injected mid-burst. CI runs it after make test.
faults: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -p no:cacheprovider tests/faults

# Style, layering and types: ruff, the import-linter contracts in pyproject.toml, mypy on shared/
# and every domain/; then the deploy manifests.
lint: install
	$(BIN)/ruff check shared services sandbox tests deploy
	$(BIN)/ruff format --check shared services sandbox tests deploy
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(MAKE) validate-deploy

# The Kubernetes manifests against the Kubernetes schemas, the kustomization against the directory,
# the compose file against the compose specification: offline, the schemas ship in the packages.
validate-deploy: install
	$(BIN)/python deploy/validate_manifests.py

# The documents generated from the code: docs/errors.md, the catalogue of problem codes (a test
# fails when the committed page differs from what this writes).
docs: install
	$(BIN)/hirfa docs errors

bench: install
	$(BIN)/python -m tests.bench

clean:
	rm -rf var .pytest_cache
