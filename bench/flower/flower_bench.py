"""Flower side of bench/flower.mjs: a gRPC server and NumPy clients as separate processes on loopback.

  python flower_bench.py server --address 127.0.0.1:PORT --shapes '[[5,5,1,32],[32],...]' --rounds 10 --clients 10
  python flower_bench.py client --address 127.0.0.1:PORT --shapes '...' --examples 9

The server runs Flower's standard `start_server` (gRPC) with `FedAvg` (weighted by num_examples, no evaluation
rounds). Clients hold nothing but the arrays they are sent: `fit` returns the received parameters plus a tiny
change, with num_examples = 9, so FedAvg averages 10 full-size float32 updates per round, as fedge does.
The server prints one JSON line at the end: per-round start/end times (configure_fit to the end of aggregate_fit)
and its own peak RSS (VmHWM).
"""

import argparse
import json
import sys
import time

import numpy as np


def shapes_arg(text):
    return [tuple(int(d) for d in s) for s in json.loads(text)]


def vm_hwm_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def run_server(args):
    import flwr
    from flwr.server import ServerConfig, start_server
    from flwr.server.strategy import FedAvg
    from flwr.common import ndarrays_to_parameters

    shapes = shapes_arg(args.shapes)
    rng = np.random.default_rng(0)
    initial = [rng.standard_normal(s, dtype=np.float32) * np.float32(0.05) for s in shapes]
    n_params = int(sum(a.size for a in initial))
    starts, ends = {}, {}

    class TimedFedAvg(FedAvg):
        def configure_fit(self, server_round, parameters, client_manager):
            # Round 1's sampling waits until all clients have connected: the round starts once they are chosen.
            out = super().configure_fit(server_round, parameters, client_manager)
            starts[server_round] = time.time()
            return out

        def aggregate_fit(self, server_round, results, failures):
            out = super().aggregate_fit(server_round, results, failures)
            ends[server_round] = time.time()
            if failures:
                print(f"round {server_round}: {len(failures)} failures", file=sys.stderr)
            print(f"round {server_round}: {ends[server_round] - starts[server_round]:.3f}s, {len(results)} results", file=sys.stderr, flush=True)
            return out

    strategy = TimedFedAvg(
        fraction_fit=1.0,
        fraction_evaluate=0.0,  # no evaluation rounds: fedge's run is configured without central evaluation too
        min_fit_clients=args.clients,
        min_evaluate_clients=0,
        min_available_clients=args.clients,
        initial_parameters=ndarrays_to_parameters(initial),
    )
    del initial
    t0 = time.time()
    start_server(server_address=args.address, config=ServerConfig(num_rounds=args.rounds), strategy=strategy)
    rounds = [{"round": r, "start": starts[r], "end": ends[r], "seconds": ends[r] - starts[r]} for r in sorted(ends)]
    print(json.dumps({
        "framework": "flower",
        "flwr": flwr.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "params": n_params,
        "clients": args.clients,
        "rounds": rounds,
        "serverWallSeconds": time.time() - t0,
        "serverPeakRssKiB": vm_hwm_kib(),
    }), flush=True)


def run_client(args):
    import flwr
    from flwr.client import NumPyClient, start_client

    delta = np.float32(1e-6)

    class Client(NumPyClient):
        def get_parameters(self, config):
            return [np.zeros(s, dtype=np.float32) for s in shapes_arg(args.shapes)]

        def fit(self, parameters, config):
            # No training: the received model plus a tiny change, weighted by 9 examples.
            return [p + delta for p in parameters], args.examples, {}

        def evaluate(self, parameters, config):
            return 0.0, args.examples, {}

    start_client(server_address=args.address, client=Client().to_client(), insecure=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=["server", "client"])
    p.add_argument("--address", required=True)
    p.add_argument("--shapes", required=True, help="JSON list of tensor shapes")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--examples", type=int, default=9)
    args = p.parse_args()
    if args.role == "server":
        run_server(args)
    else:
        run_client(args)


if __name__ == "__main__":
    main()
