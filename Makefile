# The two commands a newcomer needs: `make demo` and `make test` (each installs first).
PYTHON ?= python
PIP ?= $(PYTHON) -m pip
ENV = OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
DEMO_OUT ?= demo_out
# pip extras: `make install EXTRAS=dev,deepspeed` adds DeepSpeed (pure Python: DS_BUILD_OPS=0, ops JIT-compile on use)
EXTRAS ?= dev

.PHONY: install demo test test-slow lint format

install:
	$(PIP) install "torch==2.14.1" "torchvision==0.29.1"
	DS_BUILD_OPS=0 $(PIP) install -e ".[$(EXTRAS)]"

demo: install
	$(ENV) $(PYTHON) recipes/demo.py --out $(DEMO_OUT)

test: install
	$(ENV) $(PYTHON) -m pytest -q

test-slow:
	$(ENV) $(PYTHON) -m pytest -q -m slow

lint:
	$(PYTHON) -m ruff check . && $(PYTHON) -m ruff format --check .

format:
	$(PYTHON) -m ruff check --fix . && $(PYTHON) -m ruff format .
