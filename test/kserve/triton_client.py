"""Stock tritonclient (HTTP and gRPC) against a serving fedge-agent, as an edge app would use it.

Client code is the library's documented usage, unchanged: HTTP with its defaults (binary_data=True for inputs,
binary outputs when none are named), the JSON form (binary_data=False), and gRPC (raw_input_contents). Prints one
JSON object with every output and what each call returned, for test/e2e/kserve-clients.test.ts to compare with
fedge's own JSON path.

    python test/kserve/triton_client.py --http 127.0.0.1:8000 --grpc 127.0.0.1:8001 --model mnist --rows 4
"""
import argparse
import json

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

ap = argparse.ArgumentParser()
ap.add_argument("--http", required=True)
ap.add_argument("--grpc", required=True)
ap.add_argument("--model", required=True)
ap.add_argument("--rows", type=int, default=4)
args = ap.parse_args()

# The same rows the test sends over fedge's JSON path: a seeded ramp, exactly representable in float32.
x = (np.arange(args.rows * 784, dtype=np.float32) % 255 / 255.0).reshape(args.rows, 784).astype(np.float32)
out = {}

# ---- HTTP ----
client = httpclient.InferenceServerClient(url=args.http)
out["http_live"] = client.is_server_live()
out["http_ready"] = client.is_server_ready()
out["http_model_ready"] = client.is_model_ready(args.model)
out["http_server_metadata"] = client.get_server_metadata()
meta = client.get_model_metadata(args.model)
out["http_model_metadata"] = meta
out["http_model_config"] = client.get_model_config(args.model)
in_name, in_type = meta["inputs"][0]["name"], meta["inputs"][0]["datatype"]
out_name = meta["outputs"][0]["name"]

# Defaults: binary input, all outputs binary (binary_data_output).
inp = httpclient.InferInput(in_name, list(x.shape), in_type)
inp.set_data_from_numpy(x)
res = client.infer(args.model, [inp])
out["http_binary"] = res.as_numpy(out_name).tolist()
out["http_binary_response"] = res.get_response()

# Named output with the default binary_data=True.
res = client.infer(args.model, [inp], outputs=[httpclient.InferRequestedOutput(out_name)])
out["http_binary_named"] = res.as_numpy(out_name).tolist()

# JSON both ways.
inp_json = httpclient.InferInput(in_name, list(x.shape), in_type)
inp_json.set_data_from_numpy(x, binary_data=False)
res = client.infer(args.model, [inp_json], outputs=[httpclient.InferRequestedOutput(out_name, binary_data=False)])
out["http_json"] = res.as_numpy(out_name).tolist()
out["http_json_response_has_data"] = "data" in res.get_response()["outputs"][0]

# A wrong shape in binary form: the server's 400 message comes back through the client's exception.
bad = httpclient.InferInput(in_name, [args.rows, 783], in_type)
bad.set_data_from_numpy(x[:, :783].copy())
try:
    client.infer(args.model, [bad])
    out["http_bad_shape"] = None
except InferenceServerException as e:
    out["http_bad_shape"] = {"status": e.status(), "message": e.message()}
client.close()

# ---- gRPC ----
g = grpcclient.InferenceServerClient(url=args.grpc)
out["grpc_live"] = g.is_server_live()
out["grpc_ready"] = g.is_server_ready()
out["grpc_model_ready"] = g.is_model_ready(args.model)
out["grpc_server_metadata"] = g.get_server_metadata(as_json=True)
out["grpc_model_metadata"] = g.get_model_metadata(args.model, as_json=True)
ginp = grpcclient.InferInput(in_name, list(x.shape), in_type)
ginp.set_data_from_numpy(x)
gres = g.infer(args.model, [ginp])
out["grpc"] = gres.as_numpy(out_name).tolist()
gres = g.infer(args.model, [ginp], outputs=[grpcclient.InferRequestedOutput(out_name)], request_id="r-7")
out["grpc_named"] = gres.as_numpy(out_name).tolist()
out["grpc_id"] = gres.get_response(as_json=True).get("id")
gbad = grpcclient.InferInput(in_name, [args.rows, 783], in_type)
gbad.set_data_from_numpy(x[:, :783].copy())
try:
    g.infer(args.model, [gbad])
    out["grpc_bad_shape"] = None
except InferenceServerException as e:
    out["grpc_bad_shape"] = {"status": e.status(), "message": e.message()}
try:
    g.infer("nope", [ginp])
    out["grpc_unknown_model"] = None
except InferenceServerException as e:
    out["grpc_unknown_model"] = {"status": e.status(), "message": e.message()}
g.close()

print(json.dumps(out))
