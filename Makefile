# Two commands do all set-up on a fresh Debian machine with Python 3.11:
#   make demo   creates .venv, installs migkit, runs the main job on the bundled example survey
#   make test   installs what the tests need (Python packages, Java, GNU PSPP) and runs the suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.migkit-installed

.PHONY: demo test system-deps lint bench clean codebooks

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the dependency list changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

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
	@echo "Outputs in demo-out/: export/ (.sav .dta .csv), codebook/, validation/report.html, weights/"

# Questionnaire codebooks (HTML, XLSX, DDI 2.5) of the three templates, committed in codebooks/ for trainers and
# statisticians; rebuild after changing a form.
codebooks: $(STAMP)
	for form in household women domestic_workers; do $(BIN)/migkit codebook forms/$$form.xlsx --out codebooks; done

test: $(STAMP) system-deps
	$(BIN)/ruff check toolkit tests bench forms examples
	$(BIN)/python -m pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check toolkit tests bench forms examples

# Regenerate forms/*.xlsx from their text sources in forms/src/ (the .xlsx are never edited by hand).
.PHONY: forms
forms: $(STAMP)
	$(BIN)/python forms/build_templates.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
