#!/usr/bin/env bash
# Side by side, interleaved: several sluice configurations and the naive server on mlp over REST JSON,
# open loop (sluice loadtest's driver process), each server in its own process, CPU per request from
# /proc. Prints medians over the repeats. For quick A/B experiments; the suite (npm run bench) is the
# reference.
#   loadtest/bench/side-by-side.sh RATES REPEATS 'name|ENV=1 ...|sluice serve flags' ...
#   loadtest/bench/side-by-side.sh 250,1000,2000 3 'inline|-|--worker-isolation inline' 'thread|-|--worker-isolation thread'
set -euo pipefail
cd "$(dirname "$0")/../.."
RATES=$1 REPEATS=$2; shift 2
work=$(mktemp -d); trap 'kill $(cat "$work"/*.pid 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
python3 -c "
import json, random
random.seed(1)
print(json.dumps({'inputs': [{'name': 'INPUT0', 'shape': [1, 784], 'datatype': 'FP32', 'data': [round(random.random(), 4) for _ in range(784)]}]}))" > "$work/body.json"
names=() port=18000
declare -A url
for spec in "$@"; do
  IFS='|' read -r name envs flags <<< "$spec"
  [ "$envs" = - ] && envs=
  # shellcheck disable=SC2086
  env $envs node --import tsx loadtest/bench/child.ts sluice --host 127.0.0.1 --http-port $port --grpc-port 0 --metrics-port 0 --model-repository models --log-level warn $flags > "$work/$name.out" &
  echo $! > "$work/$name.pid"; names+=("$name"); url[$name]=http://127.0.0.1:$port; port=$((port + 100))
done
node --import tsx loadtest/bench/child.ts naive --model-file models/mlp/1/model.onnx --model mlp --input-name INPUT0 > "$work/naive.out" &
echo $! > "$work/naive.pid"; names+=(naive)
for _ in $(seq 120); do
  ready=1; for n in "${names[@]}"; do [ -s "$work/$n.out" ] || ready=0; done
  [ $ready = 1 ] && break; sleep 0.5
done
url[naive]=http://127.0.0.1:$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['ports']['http'])" "$work/naive.out")
load() { node --import tsx src/cli.ts loadtest --url "${url[$1]}" --model mlp --input "$work/body.json" --no-check --no-metrics --quiet "${@:2}"; }
# V8 keeps optimizing sluice's request path for about 15 s of load (docs/performance.md).
for n in "${names[@]}"; do load "$n" --rate 1000 --duration 10s --warmup 1s > /dev/null; done
for r in $(seq "$REPEATS"); do
  for n in "${names[@]}"; do load "$n" --rate "$RATES" --duration 5s --warmup 1s --server-pid "$(cat "$work/$n.pid")" --json "$work/$n-$r.json" > /dev/null; done
done
python3 - "$work" "$REPEATS" "${names[@]}" <<'PY'
import json, statistics as st, sys
work, repeats, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rows = {}
for n in names:
    for r in range(1, repeats + 1):
        for s in json.load(open(f'{work}/{n}-{r}.json'))['steps']:
            rows.setdefault((s['spec']['rate'], n), []).append((s['latencyMs']['p50'], s['latencyMs']['p99'], (s.get('serverCpu') or {}).get('usPerRequest', 0), s.get('late', 0)))
print('| req/s | server | P50 ms | P99 ms | CPU us/req | late (max) | P50s | P99s |')
print('| ---: | --- | ---: | ---: | ---: | ---: | --- | --- |')
for (rate, n), v in sorted(rows.items()):
    print(f"| {rate} | {n} | {st.median(x[0] for x in v):.2f} | {st.median(x[1] for x in v):.2f} | {st.median(x[2] for x in v):.0f} | {max(x[3] for x in v)} | {', '.join(f'{x[0]:.2f}' for x in v)} | {', '.join(f'{x[1]:.1f}' for x in v)} |")
PY
