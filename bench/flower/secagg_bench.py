"""Flower SecAgg+ (SecAggPlusWorkflow + secaggplus_mod) timed on fedge's secagg bench parameters (issue 13).

Usage: .venv/bin/python secagg_bench.py --agents 10 --dropout 0.3 [--rounds 2] [--out row.json]
Runs Flower's Simulation Runtime (ray) in this process: the ServerApp's workflow is timed per stage here, the
clients run in ray actors. Dropouts: the chosen clients raise in fit(), which secaggplus_mod calls in the
collect-masked-vectors stage, so they drop after share-keys, before sending a masked input: the same point as
bench/secagg.mjs's default --dropout-stage masked, where the server must rebuild their keys and remove pairwise masks.
Flower's workflow has no dropout simulation of its own.
"""
import argparse
import json
import os
import time

import numpy as np
from flwr.client import ClientApp, NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.common import Context, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.common.serde import message_to_proto
from flwr.server import Grid, LegacyContext, ServerApp, ServerConfig
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.simulation import run_simulation

PARAMS = 1_663_370  # fedge's mnist-cnn, as in bench/secagg.mjs

ap = argparse.ArgumentParser()
ap.add_argument("--agents", type=int, default=10)
ap.add_argument("--dropout", type=float, default=0.0)
ap.add_argument("--rounds", type=int, default=2)
ap.add_argument("--threshold", type=int, default=0, help="default: fedge's, floor(n/2)+1")
ap.add_argument("--num-shares", type=int, default=0, help="default: n (complete graph, like fedge at 10/50)")
ap.add_argument("--out", default="")
args = ap.parse_args()
N = args.agents
THRESHOLD = args.threshold or N // 2 + 1
NUM_SHARES = args.num_shares or N
DROPPED = int(round(N * args.dropout))
# The Simulation Runtime gives each client a partition-id 0..N-1; the last DROPPED ones drop every round.
DROP_IDS = set(range(N - DROPPED, N))

stages = []  # one dict per stage call: name, round, wall, cpu, wait (inside send_and_receive), bytes
rounds = []


class TimedGrid:
    """Wraps the Grid to time send_and_receive and size every message as its protobuf (what goes on the wire)."""

    def __init__(self, grid):
        self._g = grid
        self.cur = None

    def __getattr__(self, k):
        return getattr(self._g, k)

    def send_and_receive(self, messages, timeout=None):
        messages = list(messages)
        down = {m.metadata.dst_node_id: message_to_proto(m).ByteSize() for m in messages}
        t = time.perf_counter()
        replies = list(self._g.send_and_receive(messages, timeout=timeout))
        if self.cur is not None:
            self.cur["wait"] += time.perf_counter() - t
            self.cur["down"].update(down)
            self.cur["up"].update({r.metadata.src_node_id: message_to_proto(r).ByteSize()
                                   for r in replies if not r.has_error()})
            self.cur["errors"] += sum(1 for r in replies if r.has_error())
        return replies


class TimedSecAggPlus(SecAggPlusWorkflow):
    def _timed(self, name, fn, grid, context, state):
        rec = {"stage": name, "wait": 0.0, "down": {}, "up": {}, "errors": 0}
        grid.cur = rec
        t, c = time.perf_counter(), time.process_time()
        ok = fn(grid, context, state)
        rec["wall"], rec["cpu"] = time.perf_counter() - t, time.process_time() - c
        grid.cur = None
        stages.append(rec)
        return ok

    def setup_stage(self, grid, context, state):
        return self._timed("setup", super().setup_stage, grid, context, state)

    def share_keys_stage(self, grid, context, state):
        return self._timed("share_keys", super().share_keys_stage, grid, context, state)

    def collect_masked_vectors_stage(self, grid, context, state):
        return self._timed("masked", super().collect_masked_vectors_stage, grid, context, state)

    def unmask_stage(self, grid, context, state):
        return self._timed("unmask", super().unmask_stage, grid, context, state)

    def __call__(self, grid, context):
        tg = TimedGrid(grid)
        t = time.perf_counter()
        n0 = len(stages)
        super().__call__(tg, context)
        rounds.append({"wall": time.perf_counter() - t, "stages": stages[n0:]})


def fixed_update(pid):
    return np.random.default_rng(pid).uniform(-1, 1, PARAMS).astype(np.float32)


class CheckedFedAvg(FedAvg):
    """Keeps each round's aggregate (checked against the plaintext mean after the run, outside the timed stages)
    and times FedAvg.aggregate_fit, which Flower runs inside the unmask stage."""

    def aggregate_fit(self, server_round, results, failures):
        t = time.perf_counter()
        out = super().aggregate_fit(server_round, results, failures)
        aggregates[server_round] = parameters_to_ndarrays(out[0])[0].copy()
        errors.append({"round": server_round, "aggregateFitS": time.perf_counter() - t})
        return out


aggregates = {}
errors = []
server = ServerApp()


@server.main()
def main(grid: Grid, context: Context) -> None:
    strategy = CheckedFedAvg(
        fraction_fit=1.0, min_fit_clients=N, min_available_clients=N, fraction_evaluate=0.0,
        initial_parameters=ndarrays_to_parameters([np.zeros(PARAMS, dtype=np.float32)]),
    )
    ctx = LegacyContext(context=context, config=ServerConfig(num_rounds=args.rounds), strategy=strategy)
    fit = TimedSecAggPlus(num_shares=NUM_SHARES, reconstruction_threshold=THRESHOLD, timeout=300)
    DefaultWorkflow(fit_workflow=fit)(grid, ctx)


class Fixed(NumPyClient):
    def __init__(self, pid):
        self.pid = pid
        self.update = fixed_update(pid)

    def fit(self, parameters, config):
        if self.pid in DROP_IDS:
            raise RuntimeError(f"client {self.pid} drops out (benchmark)")
        return [self.update], 9, {}


def client_fn(context: Context):
    return Fixed(int(context.node_config["partition-id"])).to_client()


client = ClientApp(client_fn=client_fn, mods=[secaggplus_mod])

if __name__ == "__main__":
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    run_simulation(server_app=server, client_app=client, num_supernodes=N,
                   backend_config={"client_resources": {"num_cpus": 1}, "init_args": {"num_cpus": 2}})
    total = time.perf_counter() - t0
    survivors = [i for i in range(N) if i not in DROP_IDS]
    want = np.mean([fixed_update(i).astype(np.float64) for i in survivors], axis=0)
    for e in errors:
        got = aggregates[e["round"]]
        e["maxAbsErrorOfMean"] = float(np.max(np.abs(got.astype(np.float64) - want)))
        e["aggregateDtype"] = str(got.dtype)
    import statistics as st
    med = lambda xs: st.median(xs) if xs else None
    per = []
    for i, r in enumerate(rounds, 1):
        s = {x["stage"]: x for x in r["stages"]}
        um = s.get("unmask")
        mk = s.get("masked")
        per.append({
            "round": i,
            **next((e for e in errors if e["round"] == i), {}),
            "roundWallS": r["wall"],
            "stagesCompleted": [x["stage"] for x in r["stages"]],
            "stageWallS": {k: v["wall"] for k, v in s.items()},
            "stageServerCpuS": {k: v["cpu"] for k, v in s.items()},
            "stageWaitS": {k: v["wait"] for k, v in s.items()},
            "unmaskServerComputeS": (um["wall"] - um["wait"]) if um else None,
            "unmaskServerCpuS": um["cpu"] if um else None,
            "clientErrors": {k: v["errors"] for k, v in s.items()},
            "survivors": len(mk["up"]) if mk else None,
            # per surviving client (node id), summed over the four stages; protobuf Message sizes
            "maskedUpBytesPerClientMedian": med(list(mk["up"].values())) if mk else None,
            "upBytesPerClientAllStagesMedian": med([sum(v["up"].get(n, 0) for v in s.values())
                                                    for n in mk["up"]]) if mk else None,
            "downBytesPerClientAllStagesMedian": med([sum(v["down"].get(n, 0) for v in s.values())
                                                      for n in mk["up"]]) if mk else None,
        })
    row = {
        "agents": N, "dropout": args.dropout, "dropped": sorted(DROP_IDS), "params": PARAMS,
        "numShares": NUM_SHARES, "threshold": THRESHOLD, "rounds": per,
        "plaintextBytes": PARAMS * 4, "totalWallS": total, "loadavg1Start": load0, "loadavg1End": os.getloadavg()[0],
    }
    print("SECAGG_ROW " + json.dumps(row))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(row, f, indent=2)
