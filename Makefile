# Two commands do all set-up on a fresh Debian machine with Python 3.11:
#   make demo   creates .venv, installs migkit, runs the main job on the bundled example survey
#   make test   installs what the tests need (Python packages, Java, GNU PSPP) and runs the suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.migkit-installed
TEST_STAMP := $(VENV)/.migkit-test-installed

.PHONY: demo test test-fast system-deps lint bench clean codebooks wheelhouse

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the dependency list changes. `make demo` installs what `pip install migkit` gives (the runtime,
# what a workshop laptop needs); the test oracles and tools (scipy, statsmodels, polars, svy, samplics, pytest, ruff,
# mypy with the pandas, lxml and openpyxl stubs) come only with `make test`. pip shows its progress: the first install
# takes a few minutes.
$(STAMP): pyproject.toml | $(BIN)/python
	@echo "installing migkit and its runtime dependencies into $(VENV) ..."
	$(BIN)/python -m pip install --progress-bar on -e .
	touch $(STAMP)

$(TEST_STAMP): pyproject.toml $(STAMP)
	@echo "installing the test dependencies into $(VENV) ..."
	$(BIN)/python -m pip install --progress-bar on -e ".[test]"
	touch $(TEST_STAMP)

# Java runs ODK Validate and JavaRosa; GNU PSPP reads back every .sav we write; R `survey` is the independent
# implementation the design-based estimates are checked against. Installed with apt when missing and we are root;
# otherwise the tests that need them fail with a message naming the package.
system-deps:
	@missing=""; \
	command -v java >/dev/null 2>&1 || missing="$$missing openjdk-17-jre-headless"; \
	command -v pspp >/dev/null 2>&1 || missing="$$missing pspp"; \
	Rscript -e 'quit(status = !requireNamespace("survey", quietly = TRUE))' >/dev/null 2>&1 || missing="$$missing r-cran-survey"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "warning: missing$$missing (install them with apt-get; the tests that need them will fail)"; \
	  fi; \
	fi

# The main job on the bundled example survey: decrypt -> ingest -> validate -> weights -> export -> codebook.
# `migkit run` exits 1 when the data have problems; the example has some on purpose (examples/survey/EDITS.md).
demo: $(STAMP)
	$(BIN)/migkit forms build --strict
	$(BIN)/migkit run examples/survey/survey.toml --out demo-out || [ $$? -eq 1 ]

# Questionnaire codebooks (HTML, XLSX, DDI 2.5) of the three templates, committed in codebooks/ for trainers and
# statisticians; rebuild after changing a form.
codebooks: $(STAMP)
	for form in household women domestic_workers; do $(BIN)/migkit codebook forms/$$form.xlsx --out codebooks; done

test: $(TEST_STAMP) system-deps
	$(BIN)/ruff check toolkit tests bench forms examples
	$(BIN)/mypy
	$(BIN)/python -m pytest -n 2 -q

# The inner loop: everything but the slow tier (coverage simulations, large JavaRosa differential runs, the R
# comparisons, the templates' JavaRosa checks, whole `migkit run`s; tests/conftest.py), under a minute on 2 cores
# (mypy first: a few seconds once its cache is warm). CI runs `make test`, the whole suite.
test-fast: $(TEST_STAMP)
	$(BIN)/mypy
	$(BIN)/python -m pytest -n 2 -q -m "not slow"

lint: $(TEST_STAMP)
	$(BIN)/ruff check toolkit tests bench forms examples
	$(BIN)/mypy

# Regenerate forms/*.xlsx from their text sources in forms/src/ (the .xlsx are never edited by hand).
.PHONY: forms
forms: $(STAMP)
	$(BIN)/python forms/build_templates.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache build *.egg-info

# A folder of wheels for workshops without internet: migkit itself and every runtime dependency for Linux
# (x86_64, glibc 2.28+), Windows (64-bit) and macOS (Apple silicon, Intel), Python 3.11-3.13. A trainer copies the
# folder to each laptop and installs with `pip install --no-index --find-links wheelhouse migkit`
# (training/README.md). One entry per target machine, its platform tags joined by commas: pip widens a macOS tag
# to the older macOS versions, but not a manylinux_2_x tag to older glibc, so Linux names the tags wheels use.
WHEELHOUSE ?= wheelhouse
WHEEL_PLATFORMS ?= manylinux_2_28_x86_64,manylinux_2_17_x86_64,manylinux2014_x86_64 win_amd64 macosx_14_0_arm64 macosx_14_0_x86_64
WHEEL_PYTHONS ?= 3.11 3.12 3.13
wheelhouse: $(STAMP)
	rm -rf $(WHEELHOUSE).tmp && mkdir -p $(WHEELHOUSE).tmp
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir $(WHEELHOUSE).tmp .
	$(BIN)/python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
	  > $(WHEELHOUSE).tmp/requirements.txt
	for py in $(WHEEL_PYTHONS); do \
	  for platform in $(WHEEL_PLATFORMS); do \
	    echo "wheels for Python $$py on $$platform"; \
	    $(BIN)/python -m pip download --quiet --only-binary=:all: $$(echo ",$$platform" | sed 's/,/ --platform /g') --python-version $$py \
	      --dest $(WHEELHOUSE).tmp -r $(WHEELHOUSE).tmp/requirements.txt || exit 1; \
	  done; \
	done
	rm -rf $(WHEELHOUSE) && mv $(WHEELHOUSE).tmp $(WHEELHOUSE)
	@echo "$(WHEELHOUSE)/: $$(ls $(WHEELHOUSE)/*.whl | wc -l) wheels, $$(du -sh $(WHEELHOUSE) | cut -f1)"
