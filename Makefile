# TrackSOP: `make run` to try it, `make test` to test it. See README.md.
SHELL := /bin/bash
PORT ?= 8000
SHIPMENTS ?= 2000
VENV := .venv/bin
# Test processes (pytest-xdist): each gets its own database, Redis databases
# and cache prefix (tracksop/settings/test.py), so the suite runs side by side.
WORKERS ?= 2
# The embedded defaults for trying it on one machine; set DATABASE_URL,
# REDIS_URL, EMAIL_URL (see .env.example) to use real services instead.
# The demo's carrier tracking sync asks the local fake carrier (Procfile.dev's
# `carrier`), never the carriers' servers.
CARRIER_PORT ?= 8790
CARRIER_FAKE := http://127.0.0.1:$(CARRIER_PORT)
RUN_ENV := DJANGO_DEBUG=$${DJANGO_DEBUG:-true} TRACKSOP_PUBLIC_URL=$${TRACKSOP_PUBLIC_URL:-http://127.0.0.1:$(PORT)} \
	TRACKSOP_CARRIER_API_URLS=$${TRACKSOP_CARRIER_API_URLS:-ups=$(CARRIER_FAKE)/ups,fedex=$(CARRIER_FAKE)/fedex,usps=$(CARRIER_FAKE)/usps,dhl_express=$(CARRIER_FAKE)/dhl_express}

.PHONY: run test test-future install bench lint check-deploy clean

install:
	@scripts/bootstrap.sh

run: install
	@mkdir -p var/broker var/broker-control var/mail var/sms
	@# A local, git-ignored .env so plain `manage.py` commands work after trying it;
	@# never overwritten (production copies .env.example, which is not debug).
	@[ -f .env ] || printf '# Written by make run for this machine only.\nDJANGO_DEBUG=true\n' > .env
	@$(RUN_ENV) $(VENV)/python manage.py migrate --no-input -v 0
	@$(RUN_ENV) $(VENV)/python manage.py seed_demo --shipments $(SHIPMENTS)
	@$(RUN_ENV) $(VENV)/python manage.py seed_demo_notifications
	@$(RUN_ENV) $(VENV)/python manage.py seed_demo_exceptions
	@$(RUN_ENV) $(VENV)/python manage.py seed_demo_reports
	@$(RUN_ENV) $(VENV)/python manage.py seed_demo_desk > var/demo-links.txt
	@$(RUN_ENV) $(VENV)/python manage.py seed_demo_api >> var/demo-links.txt
	@$(RUN_ENV) $(VENV)/python manage.py seed_demo_carriers >> var/demo-links.txt
	@echo
	@echo "  TrackSOP is starting at http://127.0.0.1:$(PORT)/"
	@echo "  Demo logins (password: tracksop-demo):"
	@echo "    logistics   Logistics staff: enter, check, dispatch, scan"
	@echo "    cs          Customer service: search, timelines, messages, exceptions"
	@echo "    supervisor  Supervisor: everything above, corrections, escalation queue"
	@echo "    manager     Manager: as supervisor, gets level-2 escalations"
	@echo "    admin       Django admin for carriers, carrier accounts, hubs and users"
	@cat var/demo-links.txt
	@echo "  Email and SMS are printed below (console backends). Ctrl-C stops web, worker and beat."
	@echo
	@$(RUN_ENV) PORT=$(PORT) CARRIER_PORT=$(CARRIER_PORT) $(VENV)/honcho start -f Procfile.dev

test: install
	@scripts/test-services.sh
	@$(VENV)/python manage.py check --fail-level WARNING --settings tracksop.settings.test
	@$(VENV)/python manage.py makemigrations --check --dry-run --settings tracksop.settings.test >/dev/null || { echo "Models changed without a migration: run manage.py makemigrations."; exit 1; }
	@$(VENV)/ruff check .
	@$(VENV)/ruff format --check . >/dev/null || { echo "ruff format would change files: run $(VENV)/ruff format ."; exit 1; }
	@$(VENV)/mypy . --no-error-summary
	@$(VENV)/pytest -p no:cacheprovider --create-db -n $(WORKERS) $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory test-future

# The suite again with the clock of every process it starts (web, worker, the
# SMTP sink) moved 13 months ahead by libfaketime: no test may depend on the
# day it was written. The monotonic clock moves too: libfaketime refuses
# sleeps that mix a real monotonic clock with a moved wall clock.
FUTURE ?= +395d
# Left out of this second run, to keep `make test` near 15 minutes: the
# Chromium tests (the browser keeps the real clock in both runs; the pages they
# click through are tested by the test client in both) and the `clock_free`
# tests (process faults, deploy checks: no date asserted).
FUTURE_MARKS ?= not browser and not clock_free
test-future: install
	@scripts/test-services.sh
	@echo "The suite again, with the clock moved $(FUTURE) (libfaketime):"
	@faketime -f "$(FUTURE)" $(VENV)/pytest -p no:cacheprovider --create-db -q -n $(WORKERS) -m "$(FUTURE_MARKS)" $(PYTEST_ARGS)

bench: install
	@scripts/test-services.sh --bench
	@$(VENV)/python -m bench

lint: install
	@$(VENV)/ruff check . && $(VENV)/ruff format --check . && $(VENV)/mypy .

clean:
	rm -rf var .venv
