# Set-up is two commands on a fresh clone: `make demo` and `make test`. Both create .venv and install the
# project into it when needed; nothing else has to be installed by hand.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

export DBT_SEND_ANONYMOUS_USAGE_STATS := false

.PHONY: install chromium demo docs-images test fuzz lint bench bench-ingest bench-views bench-dashboards bench-router bench-report clean \
	java spark-install spark-start spark-stop spark-cluster spark-demo

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

## The main job: simulated router traffic -> export files -> warehouse -> dbt build -> the five views.
demo: $(STAMP)
	$(BIN)/autopicker demo

## The screenshots of docs/report.md, from the report of the demo's warehouse.
docs-images: $(STAMP) chromium
	$(BIN)/autopicker demo >/dev/null
	$(BIN)/python -m tests.support.screenshots .autopicker/report/index.html docs/images

## The report's browser tests drive Debian's Chromium (a browser download of Playwright's own cannot work
## behind a firewall); it is installed when missing, with sudo unless we are root.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
chromium:
	@command -v chromium >/dev/null || { echo "installing Debian's chromium for the report's browser tests"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

## Apache Spark for the warehouse's `spark` target (docs/spark.md): Java 17 (Debian's package, when `java` is
## missing or older) and the optional extra `[spark]` (pyspark, dbt-spark). The PostgreSQL path needs neither.
SPARK_STAMP := $(VENV)/.spark-installed

spark-install: $(SPARK_STAMP)

$(SPARK_STAMP): pyproject.toml $(STAMP)
	@$(MAKE) --no-print-directory java
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,spark]'
	@touch $@

java:
	@java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])' || { \
	  echo "installing Debian's openjdk-17-jre-headless for Spark"; \
	  $(SUDO) mkdir -p /usr/share/man/man1 && $(SUDO) apt-get update -qq \
	    && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless; }

## The local Spark Thrift server (started once, reused by later builds) and its stop.
spark-start: $(SPARK_STAMP)
	$(BIN)/autopicker spark start

spark-stop: $(SPARK_STAMP)
	$(BIN)/autopicker spark stop

## The demo on Spark: the simulated export built in place on the local Spark, its views and report.
spark-demo: $(SPARK_STAMP)
	$(BIN)/autopicker demo --target spark

## A standalone Spark cluster on 127.0.0.1 (a master, two workers), the project built on it, all stopped.
SPARK_EXPORT ?= tests/fixtures/ingest/export
spark-cluster: $(SPARK_STAMP)
	$(BIN)/autopicker spark cluster $(SPARK_EXPORT)

## The test suite (a real PostgreSQL: embedded, or DATABASE_URL's server; Redis at REDIS_URL; a local Spark).
## --dist loadgroup: each module that runs dbt (marked xdist_group) keeps its dbt stages on one worker, and
## the Spark modules share one worker and so one Spark.
test: $(SPARK_STAMP) chromium
	$(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

## The property tests with many examples (FUZZ_EXAMPLES each, hypothesis profile "fuzz") and the crash test
## with many kills (CRASH_ITERATIONS); the last line is the summary (docs/reliability.md quotes it).
FUZZ_EXAMPLES ?= 500
CRASH_ITERATIONS ?= 20
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) CRASH_ITERATIONS=$(CRASH_ITERATIONS) $(BIN)/python -m tests.support.fuzz $(PYTEST_ARGS)

## Lint, format check, types, and the import contracts between the parts (pyproject.toml, [tool.importlinter]).
lint: $(STAMP)
	$(BIN)/ruff check autopicker ingest router tests benchmarks
	$(BIN)/ruff format --check autopicker ingest router tests benchmarks
	$(BIN)/mypy autopicker ingest router
	$(BIN)/lint-imports

## Benchmarks (not part of the tests): each prints its figure on the last line. BENCH_ROWS=N to resize
## (the ingest's: BENCH_STORED_ROWS=N, the rows it stores of the export's lines).
BENCH_ROWS ?= 1000000
BENCH_STORED_ROWS ?= 250000
# LiteLLM, the router benchmark's baseline, pins versions of packages the project shares, so it gets a
# virtual environment of its own.
LITELLM_VENV := .venv-litellm
LITELLM_VERSION ?= 1.110.2

bench: bench-ingest bench-views bench-dashboards bench-router bench-report

bench-ingest: $(STAMP)
	$(BIN)/python benchmarks/ingest_real.py --stored-rows $(BENCH_STORED_ROWS)

bench-views: $(STAMP)
	$(BIN)/python benchmarks/views.py --rows $(BENCH_ROWS)

bench-dashboards: $(STAMP)
	$(BIN)/python benchmarks/dashboards.py --rows $(BENCH_ROWS)

bench-report: $(STAMP)
	$(BIN)/python benchmarks/report.py --rows $(BENCH_ROWS)

$(LITELLM_VENV)/bin/litellm:
	$(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check 'litellm==$(LITELLM_VERSION)'

bench-router: $(STAMP) $(LITELLM_VENV)/bin/litellm
	LITELLM_PYTHON=$(LITELLM_VENV)/bin/python $(BIN)/python benchmarks/router.py

clean:
	rm -rf target logs .pytest_cache
