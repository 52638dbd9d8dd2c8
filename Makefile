# WikiStreams: every entry point a person or CI needs. Native (no Docker) by default.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON  ?= python3
VENV    ?= .venv
VPY     := $(VENV)/bin/python
NATIVE  := $(VENV)/bin/wikistreams-native
WITH_STACK := $(VPY) -m wikistreams.native.with_stack
# What `make up` starts: the whole pipeline (druid-supervisor: the one-shot Druid supervisor
# submit, run once Druid is up). `make up SERVICES="kafka druid"` narrows it.
PIPELINE := zookeeper kafka druid druid-supervisor producer trends superset observability
SERVICES ?= $(PIPELINE)
# How many producer copies `make up` runs: 1, or 2 for a hot standby (`make up PRODUCERS=2` adds
# the producer-standby service: one copy holds the Kafka lease and writes, the other takes over
# in ~6-10 s when it dies; /health on :8095 and :8096 shows each one's `role`).
PRODUCERS ?= 1
UP_SERVICES := $(SERVICES) $(if $(and $(filter 2,$(PRODUCERS)),$(filter producer,$(SERVICES))),producer-standby)
# How long `make up` waits for the producer's first event before saying why none came.
FIRST_EVENT_WAIT ?= 30
# Producer settings given on the command line (make up SSE_URL=file://...) reach the services.
PASS_THROUGH := SSE_URL USER_AGENT_CONTACT REPLAY_SPEED REPLAY_AT_END WIKIDATA_API_URL DRUID_RETENTION_PERIOD
$(foreach v,$(PASS_THROUGH),$(if $(filter command line,$(origin $(v))),$(eval export $(v))))
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="-m 'not e2e'"`.
PYTEST_ARGS ?=

.PHONY: help venv up compose-up down status clean logs tools compose-check superset-install superset-init superset-export prereq test test-unit test-smoke lint fmt bench trends-bench capacity trends-eval

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

$(VPY): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[dev]'
	@touch $(VPY)

venv: $(VPY) ## create the virtualenv and install the project

up: $(VPY) ## start the whole pipeline natively (downloads pinned jars on first run); PRODUCERS=2 adds a hot-standby producer
	@# A bad producer setting (e.g. a placeholder USER_AGENT_CONTACT) stops here, in one line,
	@# not minutes later once Kafka, Druid and Superset are up.
	@case "$(PRODUCERS)" in 1|2) ;; *) echo "make up: PRODUCERS must be 1 or 2 natively (got '$(PRODUCERS)')" >&2; exit 2;; esac
	$(if $(filter producer,$(SERVICES)),$(VPY) -m wikistreams.producer --check-config)
	@bash tools/exposure-check.sh --native
	$(NATIVE) up $(UP_SERVICES)
	@# "Ready" is not "receiving": wait FIRST_EVENT_WAIT s for the producer's first event, else
	@# one line with the cause (DNS, TLS, HTTP status, from /health or its log) and the offline command.
	$(if $(filter producer,$(SERVICES)),@$(VPY) -m wikistreams.producer.backfill --first-event-seconds $(FIRST_EVENT_WAIT) $(if $(filter 2,$(PRODUCERS)),--health-url http://127.0.0.1:8095/health --health-url http://127.0.0.1:8096/health))
	@# A first start backfills BACKFILL_HOURS of history: one line, printed when it is over.
	$(if $(filter producer,$(SERVICES)),@$(VPY) -m wikistreams.producer.backfill --timeout 1800 &)

compose-up: ## docker compose up -d, after warning about ports opened beyond loopback (.env)
	bash tools/exposure-check.sh .env
	docker compose up -d

down: $(VPY) ## stop everything `make up` started (or only SERVICES="producer" ...)
	$(NATIVE) down $(if $(filter command line,$(origin SERVICES)),$(SERVICES))

status: $(VPY) ## show what runs and where it listens
	$(NATIVE) status

logs: ## where the logs are
	@ls -1 var/log/ 2>/dev/null || echo "no logs yet (var/log/)"

clean: $(VPY) ## stop everything and wipe data under var/ (keeps downloaded jars)
	$(NATIVE) clean

tools: ## build the Go tools the tests use (log store, collector) into var/bin
	bash logs/build.sh

superset-install: ## native Superset 6.1.0 into var/superset-venv (pinned by superset/constraints.txt)
	bash superset/native.sh install

superset-init: ## migrate, admin from .env, (re)import the dashboard YAML (overwrite by UUID)
	bash superset/native.sh init

superset-export: ## write the dashboard from Superset back into superset/dashboards/ (normalised YAML)
	bash superset/export.sh

prereq: ## check what `make test` needs (java, mvn, go, python3, redis-server, chromium, ...): one message naming all that is missing
	@command -v $(PYTHON) >/dev/null || { echo "make test: $(PYTHON) not found; install: apt-get install python3 python3-venv" >&2; exit 1; }
	@$(PYTHON) src/wikistreams/native/prereq.py --python $(PYTHON)

test: prereq $(VPY) tools superset-install ## unit + integration + E2E tests on the real native stack (prereq first: nothing starts when something is missing)
	$(WITH_STACK) -- $(VPY) -m pytest tests/unit tests/integration $(PYTEST_ARGS)

test-unit: $(VPY) ## unit tests only (no servers)
	$(VPY) -m pytest tests/unit $(PYTEST_ARGS)

test-smoke: $(VPY) ## everything but the slow E2E tests, plus one smoke E2E
	$(MAKE) test PYTEST_ARGS="-m 'not e2e or smoke' $(PYTEST_ARGS)"

lint: $(VPY) compose-check ## black --check, flake8, mypy --strict (src/), gofmt, compose file against the Compose Spec, actionlint
	$(VPY) -m black --check .
	$(VPY) -m flake8
	$(VPY) -m mypy
	test -z "$$(gofmt -l tools logs)"
	bash tools/actionlint.sh

compose-check: ## validate docker-compose.yml against the Compose Specification (no Docker needed)
	bash tools/compose-check/build.sh
	var/bin/compose-check -f docker-compose.yml -env-file .env.example -skip-env-resolution >/dev/null

fmt: $(VPY) ## format the code
	$(VPY) -m black .

bench: $(VPY) ## producer latency + throughput benchmarks (~15 min), report in docs/benchmarks.md
	STACK_SERVICES=kafka $(WITH_STACK) -- $(VPY) -m benchmarks --report docs/benchmarks.md $(BENCH_ARGS)

trends-bench: $(VPY) ## trends processor: throughput, RSS, state size, Wikidata requests/h (~5 min; docs/trends-processor.md)
	STACK_SERVICES=kafka $(WITH_STACK) -- $(VPY) -m benchmarks.trends_bench --json var/log/trends-bench.json $(TRENDS_BENCH_ARGS)

trends-eval: $(VPY) ## the trend detector against both published rules on labelled scenarios + a quiet day (~20 min, no servers) -> docs/trends.md
	$(VPY) -m benchmarks.trends_eval --out docs/trends.md $(TRENDS_EVAL_ARGS)

capacity: $(VPY) superset-install ## 1 and 7 days of live-shaped data through Druid and Superset, measured (~75 min; REPLACES the datasource) -> docs/capacity.md
	$(VPY) -m pip install -q -e '.[bench]'
	STACK_SERVICES="zookeeper kafka druid superset" $(WITH_STACK) -- $(VPY) -m benchmarks.capacity --report docs/capacity.md --json var/log/capacity.json $(CAPACITY_ARGS)
