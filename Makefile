# housebus: `make demo` runs the gateway against simulated radios, `make test` runs the suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PLUGINS := $(sort $(dir $(wildcard plugins/*/pyproject.toml)))
TEST_PLUGINS := tests/plugins/housebus-example/
STAMP := $(VENV)/.installed

.PHONY: install test faults sites demo mosquitto chromium screenshot bench bench-sites bench-decode soak check mutation clean

install: $(STAMP)

$(STAMP): pyproject.toml $(addsuffix pyproject.toml,$(PLUGINS) $(TEST_PLUGINS))
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]' \
		$(foreach p,$(PLUGINS) $(TEST_PLUGINS),-e ./$(p))
	touch $(STAMP)

# Mosquitto runs the tests' broker and the demo's; openssl makes the TLS test's certificates.
# Debian and Ubuntu get both from apt.
mosquitto:
	@if { command -v mosquitto >/dev/null || test -x /usr/sbin/mosquitto; } && command -v openssl >/dev/null; then exit 0; fi; \
	if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		echo "installing mosquitto with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients openssl >/dev/null; \
	elif command -v apt-get >/dev/null && command -v sudo >/dev/null; then \
		echo "installing mosquitto with sudo apt-get"; \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients openssl >/dev/null; \
	else \
		echo "mosquitto is missing: install the Mosquitto broker (e.g. 'apt-get install mosquitto mosquitto-clients' or 'brew install mosquitto') and run make again" >&2; \
		exit 1; \
	fi

# The web page's tests run in Debian's headless Chromium, driven by selenium through chromedriver.
chromium:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi; \
	if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		echo "installing chromium and chromium-driver with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	elif command -v apt-get >/dev/null && command -v sudo >/dev/null; then \
		echo "installing chromium and chromium-driver with sudo apt-get"; \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else \
		echo "chromium is missing: the web page's tests need Chromium and its chromedriver at /usr/bin (Debian: 'apt-get install chromium chromium-driver')" >&2; \
		exit 1; \
	fi

test: install mosquitto chromium
	$(PY) -m pytest

# The fault-injection suite (tests/faults): prints each case's figure against its target.
faults: install mosquitto
	$(PY) -m pytest -p no:randomly -rA tests/faults

# Two sites bridged to a centre (tests/sites): readings, commands, a 30 s cut, shared Cosm forwarders.
sites: install mosquitto
	$(PY) -m pytest -p no:randomly -rA tests/sites

demo: install mosquitto
	$(VENV)/bin/housebus demo

# The README's pictures of the web page, taken from the demo.
screenshot: install mosquitto chromium
	$(PY) tools/screenshot.py

# Byte-compiled first, as a pip install leaves it: compiling at every start costs the idle gateway 1.5 MB.
bench: install mosquitto
	$(PY) -m compileall -q gateway plugins/*/src tests/plugins
	$(PY) bench/run.py

# A centre and bridged sites from the shipped configs: CPU per message at a site and at the centre, the
# centre's memory, and an estimate for 1000 sites (bench/sites.py --help for the knobs; ~1.5 minutes).
bench-sites: install mosquitto
	$(PY) -m compileall -q gateway plugins/*/src tests/plugins
	$(PY) bench/sites.py

# Per-frame decode time of the RFXtrx decoder against pyRFXtrx's over a seeded corpus of every packet type,
# timed and counted with callgrind (~30 s); exits 1 if housebus is slower overall.
bench-decode: install
	$(PY) -m compileall -q gateway plugins/*/src tests/plugins
	$(PY) bench/decode.py

# Both radios at line rate plus a command a second, sampled every 10 s; exits 1 if a target is missed.
MINUTES ?= 30
soak: install mosquitto
	$(PY) -m compileall -q gateway plugins/*/src tests/plugins
	$(PY) bench/soak.py --minutes $(MINUTES)

# Lint and type-check the core and the plugins (not part of `make test`).
check: install
	$(PY) -m pip install --quiet --disable-pip-version-check ruff mypy
	$(VENV)/bin/ruff check gateway plugins tests bench tools
	$(VENV)/bin/mypy

# Mutation testing with mutmut: kill rate per module (docs/mutation.md). Not part of `make test`: it takes long.
mutation: install mosquitto
	$(PY) -m pip install --quiet --disable-pip-version-check 'mutmut==3.8.1'
	$(PY) tools/mutation.py

clean:
	rm -rf $(VENV) build dist *.egg-info mutants plugins/*/mutants
