# zdt.bluegreen — the two commands: `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
CACHE := .cache
APT_PACKAGES := mariadb-server mariadb-client haproxy wrk percona-toolkit iproute2 rsync systemd dbus python3-pymysql
COLLECTION_LINK := .collections/ansible_collections/zdt/bluegreen
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: all bootstrap demo test unit sanity lint integration molecule clean sandbox-stop build build-check

all: test

# ---- bootstrap: Debian packages, venv, collection link (quick when already there) ----
$(CACHE)/apt.stamp: Makefile
	@mkdir -p $(CACHE)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@touch $@

$(VENV)/.stamp: requirements.txt requirements-dev.txt constraints-dev.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt -c constraints-dev.txt
	@touch $@

$(COLLECTION_LINK):
	@mkdir -p $(dir $@)
	@ln -sfn ../../.. $@

# lab/ (the zdt_lab package) and .collections/ (the collection) on sys.path of every process of the venv's
# python, in network namespaces too: a .pth file in its site-packages, with paths relative to it (the venv
# lives in this checkout, so a moved checkout keeps working). Nothing to build or download.
$(VENV)/.pth.stamp: $(VENV)/.stamp Makefile
	@site=$$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))'); \
	rel=$$(realpath --relative-to="$$site" .); \
	printf '%s\n' "$$rel/lab" "$$rel/.collections" > "$$site/zdt_bluegreen_lab.pth"
	@touch $@

bootstrap: $(CACHE)/apt.stamp $(VENV)/.stamp $(VENV)/.pth.stamp $(COLLECTION_LINK)

# ---- the demo ----
demo: bootstrap
	$(PY) tools/demo.py

# ---- everything CI runs ----
test: bootstrap
	@for stage in unit sanity lint build-check integration molecule; do \
	  echo "== $$(date -u +%T) make $$stage"; \
	  $(MAKE) --no-print-directory $$stage || exit 1; \
	done; echo "== $$(date -u +%T) make test: every stage passed"

unit: bootstrap
	$(BIN)/pytest -q tests/unit

sanity: bootstrap
	$(PY) tools/run_sanity.py

lint: bootstrap
	$(BIN)/ansible-lint --profile production --strict

integration: bootstrap
# Two workers, one test file at a time each: a file keeps its own sandbox (module and session fixtures per worker);
# most of the time is spent waiting on Ansible runs, MariaDB and HAProxy, so two run side by side on two cores.
	$(BIN)/pytest -q -n 2 --dist loadfile --durations=15 tests/integration

molecule: bootstrap
	@for f in molecule/*/molecule.yml; do \
	  s=$$(basename $$(dirname $$f)); \
	  echo "== $$(date -u +%T) molecule scenario $$s"; \
	  $(BIN)/molecule test -s $$s || exit 1; \
	done

build: bootstrap
	@mkdir -p build
	$(BIN)/ansible-galaxy collection build --force --output-path build .

# The artifact holds the collection, never test debris, the lab package, venvs or sandbox state.
build-check: build
	@if tar tzf build/zdt-bluegreen-*.tar.gz | grep -E '(__pycache__|\.pyc$$|^\.(sandbox|venv|cache|collections|ansible)/|^lab/|^report/|^build/|tests/output)'; then \
	  echo "build-check: debris in the collection artifact (see above)"; exit 1; \
	else echo "build-check: artifact clean"; fi

sandbox-stop:
	$(PY) tools/sandbox.py stop

clean: sandbox-stop
	rm -rf build $(CACHE)/sanity .pytest_cache
