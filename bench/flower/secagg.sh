#!/usr/bin/env bash
# Runs Flower SecAgg+ (secagg_bench.py) one configuration at a time; rows land in /tmp/flower-secagg-*.json.
# Usage: bash bench/flower/secagg.sh [AGENTS...]   (default: 10 50; dropouts 0 and 0.3 each)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ -x "$HERE/.venv/bin/python" ] || bash "$HERE/setup.sh"
"$HERE/.venv/bin/python" -c 'import ray' 2>/dev/null || "$HERE/.venv/bin/python" -m pip install --quiet "flwr[simulation]==1.41.0"
for n in "${@:-10 50}"; do for d in 0 0.3; do
  rm -f "/tmp/flower-secagg-$n-$d.json"   # a failed run must not leave an older row to be collected
  "$HERE/.venv/bin/python" "$HERE/secagg_bench.py" --agents $n --dropout $d --rounds "${ROUNDS:-2}" \
    --out "/tmp/flower-secagg-$n-$d.json"
done; done
# Collect the rows into bench/results/flower-secagg.json (summary per row: median over rounds 2..R, round 1 apart).
"$HERE/.venv/bin/python" - "$HERE/../results/flower-secagg.json" "${@:-10 50}" <<'PY'
import json, os, platform, statistics as st, subprocess, sys, flwr, numpy, ray
out, ns = sys.argv[1], sys.argv[2:]
rows = []
for n in " ".join(ns).split():
    for d in ("0", "0.3"):
        p = f"/tmp/flower-secagg-{n}-{d}.json"
        if not os.path.exists(p):
            rows.append({"agents": int(n), "dropout": float(d), "error": "no result (run failed or timed out)"})
            continue
        r = json.load(open(p))
        later = r["rounds"][1:] or r["rounds"]
        m = lambda f: st.median([f(x) for x in later])
        r["summary"] = {
            "roundsUsed": [x["round"] for x in later],
            "roundWallSMedian": m(lambda x: x["roundWallS"]),
            "unmaskStageWallSMedian": m(lambda x: x["stageWallS"]["unmask"]),
            "unmaskServerComputeSMedian": m(lambda x: x["unmaskServerComputeS"]),
            "unmaskServerCpuSMedian": m(lambda x: x["unmaskServerCpuS"]),
            "aggregateFitSMedian": m(lambda x: x["aggregateFitS"]),
            "maskedStageWallSMedian": m(lambda x: x["stageWallS"]["masked"]),
            "survivors": later[-1]["survivors"],
            "maskedUpBytesPerClient": later[-1]["maskedUpBytesPerClientMedian"],
            "upRatio": later[-1]["upBytesPerClientAllStagesMedian"] / r["plaintextBytes"],
            "maxAbsErrorOfMean": max(x.get("maxAbsErrorOfMean", float("nan")) for x in r["rounds"]),
        }
        rows.append(r)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
json.dump({
    "date": subprocess.check_output(["date", "-u", "+%Y-%m-%dT%H:%M:%SZ"], text=True).strip(),
    "flwr": flwr.__version__, "ray": ray.__version__, "numpy": numpy.__version__, "python": platform.python_version(),
    "cpus": os.cpu_count(), "cpuModel": cpu,
    "command": "bash bench/flower/secagg.sh " + " ".join(ns) + f" (ROUNDS={os.environ.get('ROUNDS', '2')})",
    "engine": "flwr.simulation.run_simulation (Simulation Runtime, ray backend, 1 CPU per client actor, ray num_cpus=2)",
    "workflow": "DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(num_shares=n, reconstruction_threshold=floor(n/2)+1, timeout=300)) + secaggplus_mod, other parameters Flower's defaults (clipping_range 8, quantization_range 2^22, modulus_range 2^32)",
    "dropoutMethod": "the last round(n*dropout) clients raise in fit(), i.e. in the collect-masked-vectors stage (they never send a masked input); Flower has no dropout simulation of its own",
    "notes": "Times from a SecAggPlusWorkflow subclass wrapping each stage (perf_counter / process_time of the server process; clients run in ray worker processes). unmaskServerComputeS = unmask stage wall minus time inside grid.send_and_receive (the server removing masks + dequantizing + FedAvg.aggregate_fit, the latter also timed alone as aggregateFitS). The check against the plaintext mean runs after the simulation, outside every timed stage. Bytes are protobuf sizes of flwr Messages (message_to_proto(m).ByteSize()), per surviving client, summed over the 4 stages; the masked stage's download carries the global model. loadavg1 at start/end is in each row.",
    "rows": rows,
}, open(out, "w"), indent=2)
print("wrote", out)
PY
