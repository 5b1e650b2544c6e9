# Two commands do all the set-up on a fresh Debian machine with Python 3.11:
#   make app   - install, build the demo data if missing, serve the app on 127.0.0.1:8501
#   make test  - install (with test extras, Debian chromium and postgresql), run every test
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PORT   ?= 8501
SUDO    = $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: app test install demo chromium postgresql bench clean-runs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install -r requirements.txt
	touch $@

$(VENV)/.test-installed: requirements-test.txt $(VENV)/.installed
	$(BIN)/python -m pip install -r requirements-test.txt
	touch $@

install: $(VENV)/.installed

chromium:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; }

# the server binaries only: the tuning tests start a throwaway cluster of their own
postgresql:
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || command -v postgres >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update && $(SUDO) apt-get install -y postgresql; }

demo: $(VENV)/.installed
	$(BIN)/python -m workbench data build-demo

app: demo
	$(BIN)/python -m streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT) --server.headless true

test: $(VENV)/.test-installed chromium postgresql demo
	$(BIN)/python -m pytest

bench: $(VENV)/.installed
	$(BIN)/python -m workbench bench

clean-runs:
	rm -rf runs
