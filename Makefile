# gencourse: make book | make test | make lab | make exercises
# Each target creates .venv and installs the project into it when missing (or when
# pyproject.toml changed), and is quick when it is already there.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.gencourse-installed

.PHONY: book test lab exercises runtimes clean help

help:
	@echo "make book       train every chapter under the active profile and render _build/html"
	@echo "make test       the whole test suite (library, notebooks under smoke, grading, book build)"
	@echo "make lab        open the notebooks in JupyterLab"
	@echo "make exercises  regenerate exercises/ from solutions/"
	@echo "make runtimes   measure each chapter's run time under the active profile (updates intro.md)"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[book,dev]"
	@touch $(STAMP)

book: $(STAMP)
	$(PY) -m gencourse.book build

# The linter first; then two test workers on two cores: one thread each, or PyTorch's spinning threads
# oversubscribe the CPU. Checkpoints and data go to a temporary cache folder, removed afterwards.
test: $(STAMP)
	$(PY) -m ruff check gencourse tests benchmarks
	cache=$$(mktemp -d) && trap 'rm -rf "$$cache"' EXIT && \
	GENCOURSE_DATA=$$cache GENCOURSE_PROFILE=smoke MPLBACKEND=Agg OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist loadfile \
		--nbval-lax --nbval-current-env tests chapters solutions

lab: $(STAMP)
	$(VENV)/bin/jupyter lab chapters

exercises: $(STAMP)
	$(PY) -m gencourse.grading generate

runtimes: $(STAMP)
	$(PY) -m gencourse.book runtimes

clean:
	rm -rf _build grading-reports
