# strom — every target works on a fresh clone with Python >= 3.11 and the package registries.
PYTHON ?= python3
UV := $(PYTHON) -m uv
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: install browser acme-proxy run demo test bench bench-quick lint fmt clean

# `run` and `demo` need only the Python packages; the tests also need the system tools below.
install: $(STAMP) browser acme-proxy

# The browser tests drive Debian's chromium (Playwright cannot download its own browser here).
browser:
	@command -v chromium >/dev/null 2>&1 || \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

# The TLS tests run a real ACME server (Debian's pebble) and a real reverse proxy (nginx).
acme-proxy:
	@{ command -v pebble && { command -v nginx || test -x /usr/sbin/nginx; }; } >/dev/null 2>&1 || \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q pebble nginx-light; }

# uv is bootstrapped with pip when it is missing; the lock file pins every package.
$(STAMP): pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv>=0.5"
	$(UV) sync --locked --all-groups
	@touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/strom run

demo: $(STAMP)
	$(VENV)/bin/strom demo

# The tests start with the linters (ruff and mypy, ~10 s): main stays typed.
test: install lint
	$(VENV)/bin/python -m pytest -q

# The figures that hold still (pinned cores, strom and baseline in alternating rounds, CPU per
# call; docs/performance.md), then the wide catalogue of single-run figures.
bench: install
	$(VENV)/bin/python -m bench.trials
	$(VENV)/bin/python -m bench

# The developer's inner loop: the same method on a small plan, < 2 min.
bench-quick: install
	$(VENV)/bin/python -m bench.trials --quick

# The code is laid out by hand within 100 columns; ruff checks it (no formatter rewrite).
# mypy then type-checks strom, bots, relay and tui ([tool.mypy] in pyproject.toml).
lint: install
	$(VENV)/bin/ruff check strom bots relay tui tests bench
	$(VENV)/bin/mypy

fmt: install
	$(VENV)/bin/ruff check --fix strom bots relay tui tests bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
