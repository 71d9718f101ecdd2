#!/usr/bin/env bash
# GPU checks for the lent device machine, in one run and one table (benchmarks/gpu_check.py says what each row proves).
#
#   bash benchmarks/gpu_check.sh --prepare   # here, with network to the registries: wheels into .whl/ (git-ignored)
#   bash benchmarks/gpu_check.sh             # on the GPU machine (device tool: run with carry [".whl"])
#   bash benchmarks/gpu_check.sh --dry-run   # every row on this CPU with tiny sizes (tests/test_gpu_check.py)
#
# The device machine has Python 3.12, torch, transformers, accelerate and peft, but no trl, deepspeed, flash-attn,
# decord or vLLM, and receives at most 64 MiB (working tree + carried paths). --prepare downloads the cp312 wheels the
# checks need and prints their sizes against that limit; the run installs them offline (--no-index --no-deps).
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=.whl
LIMIT_MIB=64
# pure-Python or cp312 wheels the checks import on the device machine (DeepSpeed is an sdist: its wheel is built here)
DOWNLOAD=(trl==1.16.0 rouge-score==0.1.2 nltk hjson py-cpuinfo ninja msgpack av)

mode="${1:-run}"
case "$mode" in
  --prepare)
    rm -rf "$WHEELS" && mkdir -p "$WHEELS"
    for spec in "${DOWNLOAD[@]}"; do
      python -m pip download -q --only-binary=:all: --no-deps --python-version 3.12 \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$WHEELS" "$spec" 2>/dev/null || python -m pip wheel -q --no-deps -w "$WHEELS" "$spec"
    done
    DS_BUILD_OPS=0 python -m pip wheel -q --no-deps -w "$WHEELS" "deepspeed>=0.16,<0.20"
    tree_kib=$(git ls-files -z | xargs -0 du -ck 2>/dev/null | tail -n 1 | cut -f1)
    echo "wheel                                                     KiB"
    du -k "$WHEELS"/*.whl | awk '{n=split($2,p,"/"); printf "%-56s %6d\n", p[n], $1}'
    whl_kib=$(du -ck "$WHEELS"/*.whl | tail -n 1 | cut -f1)
    printf "total: wheels %d KiB + working tree %d KiB = %.1f MiB of the %d MiB limit\n" \
      "$whl_kib" "$tree_kib" "$(echo "($whl_kib + $tree_kib) / 1024" | bc -l)" "$LIMIT_MIB"
    exit 0
    ;;
  --dry-run)
    exec python benchmarks/gpu_check.py --dry-run
    ;;
  run)
    export HF_HUB_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
    if [ -d "$WHEELS" ]; then
      python -m pip install -q --no-index --no-deps "$WHEELS"/*.whl
    fi
    python -m pip install -q --no-index --no-deps --no-build-isolation -e . \
      || echo "editable install failed; the checks import the package from the working tree"
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
    exec python benchmarks/gpu_check.py
    ;;
  *)
    echo "usage: $0 [--prepare | --dry-run]" >&2
    exit 2
    ;;
esac
