#!/usr/bin/env python3
"""Centralized reference metrics for the example federations, written to scripts/examples/reference-metrics.json.

Reads the committed example data (examples/*/) and each example's run.json, and measures on 90/10 train/test splits
(10 seeds; stratified for classification):

  centralMlp       scikit-learn MLP with the run's hidden layers (ReLU), Adam at the run's learning rate, the run's
                   batch size, trained for rounds x epochs epochs (the same epoch budget as the federation) on the 90%,
                   no L2 penalty, no early stopping. MLPRegressor's loss is squared error (the run may use Huber).
  centralLinear    a linear model on the same features (ridge regression / logistic regression, sklearn defaults).
  fedavgSimulation a NumPy re-implementation of what `fedge demo --agents 4` does with the run config: 10% held out
                   centrally for evaluation, the rest split IID over 4 agents, each keeping 10% of its share for its
                   own evaluation, FedAvg weighted by examples, local Adam (tfjs defaults) restarted every round, the
                   task's loss, Glorot-uniform kernels and zero biases; 5 seeds. It reports the metrics after the last
                   round and the first round at which the run's stopAt was met. It is a model of fedge, not fedge.

Preprocessing is what the run config asks fedge to do: missing cells replaced by the training mean (--missing mean),
string columns one-hot encoded, numeric columns z-scored with the training statistics (the fleet's, in the
simulation); image pixels scaled to [0, 1] and not normalized further. Regression targets are left in their units.

Needs the packages named in make_examples.py (scikit-learn, pillow; numpy comes with scikit-learn). Run from the
repository root:  python3 scripts/examples/reference_metrics.py   (about a minute on 2 cores)
"""
from __future__ import annotations

import csv
import json
import math
import platform
import sys
import warnings
from pathlib import Path

import numpy as np
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, mean_squared_error, r2_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
OUT = Path(__file__).resolve().parent / "reference-metrics.json"
SPLIT_SEEDS = range(10)
SIM_SEEDS = range(10)
AGENTS = 4

# ---------------------------------------------------------------------------------------------------- loading


def load_csv(path: Path, target: str):
    """Rows of a CSV with a header: (feature names, raw feature columns as lists of str, target values as str)."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    t = header.index(target)
    names = [h for i, h in enumerate(header) if i != t]
    cols = [[r[i] for r in body] for i in range(len(header)) if i != t]
    return names, cols, [r[t] for r in body]


def load_images(folder: Path):
    from PIL import Image

    xs, ys = [], []
    for cls in sorted(p for p in folder.iterdir() if p.is_dir()):
        for f in sorted(cls.glob("*.png")):
            xs.append(np.asarray(Image.open(f).convert("L"), dtype=np.float64).reshape(-1) / 255.0)
            ys.append(cls.name)
    return np.stack(xs), ys


class Encoder:
    """Mean imputation, one-hot for string columns, z-score for numeric ones; fitted on training rows only."""

    def __init__(self, cols: list[list[str]], normalization: str):
        self.normalization = normalization
        self.kinds = []
        for c in cols:
            vals = [v for v in c if v != ""]
            try:
                [float(v) for v in vals]
                self.kinds.append("numeric")
            except ValueError:
                self.kinds.append("categorical")
        self.cols = cols

    def fit_transform(self, train_idx, idx_sets):
        out = [[] for _ in idx_sets]
        for kind, c in zip(self.kinds, self.cols):
            if kind == "categorical":
                vocab = sorted({c[i] for i in train_idx if c[i] != ""})
                for o, idx in zip(out, idx_sets):
                    o.append(np.array([[1.0 if c[i] == v else 0.0 for v in vocab] for i in idx]))
                continue
            x = np.array([float(v) if v != "" else math.nan for v in c])
            tr = x[train_idx]
            mean = np.nanmean(tr)
            x = np.where(np.isnan(x), mean, x)
            if self.normalization == "zscore":
                shift, scale = mean, np.std(x[train_idx]) or 1.0
            elif self.normalization == "minmax":
                shift, scale = x[train_idx].min(), (x[train_idx].max() - x[train_idx].min()) or 1.0
            else:
                shift, scale = 0.0, 1.0
            for o, idx in zip(out, idx_sets):
                o.append(((x[idx] - shift) / scale)[:, None])
        return [np.hstack(o) for o in out]


def load_example(name: str):
    cfg = json.loads((EXAMPLES / name / "run.json").read_text())
    task = cfg["task"]
    if name == "digits-images":
        x, ys = load_images(EXAMPLES / name / "images")
        classes = sorted(set(ys), key=int)
        y = np.array([classes.index(v) for v in ys])
        enc = lambda tr, sets: [x[s] for s in sets]  # noqa: E731  pixels in [0, 1], normalization none
        n, feats = len(y), 64
    else:
        names, cols, ys = load_csv(EXAMPLES / name / f"{name}.csv", task["target"])
        if task["type"] == "regression":
            y = np.array([float(v) for v in ys])
            classes = None
        else:
            classes = sorted(set(ys))  # binary: the positive class is the second (malignant after benign)
            y = np.array([classes.index(v) for v in ys])
        e = Encoder(cols, task.get("normalization", "zscore"))
        enc = e.fit_transform
        n, feats = len(y), len(names)
    return cfg, enc, y, classes, n, feats


# ---------------------------------------------------------------------------------------------------- metrics


def metrics(task_type: str, y, pred_out, classes) -> dict[str, float]:
    """pred_out: regression values, P(positive) for binary, class probabilities for classification."""
    if task_type == "regression":
        return {
            "rmse": float(math.sqrt(mean_squared_error(y, pred_out))),
            "mae": float(mean_absolute_error(y, pred_out)),
            "r2": float(r2_score(y, pred_out)),
        }
    if task_type == "binary":
        hard = (pred_out >= 0.5).astype(int)
        return {
            "accuracy": float(accuracy_score(y, hard)),
            "auc": float(roc_auc_score(y, pred_out)),
            "f1": float(f1_score(y, hard)),
        }
    hard = pred_out.argmax(1)
    return {"accuracy": float(accuracy_score(y, hard)), "f1": float(f1_score(y, hard, average="macro", labels=list(range(len(classes)))))}


def summary(runs: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    out = {}
    for k in runs[0]:
        v = np.array([r[k] for r in runs])
        out[k] = {"mean": round(float(v.mean()), 4), "std": round(float(v.std()), 4), "min": round(float(v.min()), 4), "max": round(float(v.max()), 4)}
    return out


# ---------------------------------------------------------------------------------------------------- central


def central(name, cfg, enc, y, classes):
    task = cfg["task"]
    ttype = task["type"]
    hidden = tuple(cfg["model"]["hidden"])
    lr = task["optimizer"]["learningRate"]
    epochs = cfg["rounds"] * cfg["epochs"]
    mlp_runs, lin_runs = [], []
    idx = np.arange(len(y))
    for s in SPLIT_SEEDS:
        tr, te = train_test_split(idx, test_size=0.1, random_state=s, stratify=None if ttype == "regression" else y)
        xtr, xte = enc(tr, [tr, te])
        common = dict(hidden_layer_sizes=hidden, activation="relu", solver="adam", learning_rate_init=lr, batch_size=cfg["batchSize"],
                      max_iter=epochs, alpha=0.0, n_iter_no_change=epochs + 1, tol=0.0, random_state=s)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            if ttype == "regression":
                m = MLPRegressor(**common).fit(xtr, y[tr])
                mlp_runs.append(metrics(ttype, y[te], m.predict(xte), classes))
                lin = Ridge().fit(xtr, y[tr])
                lin_runs.append(metrics(ttype, y[te], lin.predict(xte), classes))
                continue
            m = MLPClassifier(**common).fit(xtr, y[tr])
            lin = LogisticRegression(max_iter=5000).fit(xtr, y[tr])
        p, pl = m.predict_proba(xte), lin.predict_proba(xte)
        if ttype == "binary":
            p, pl = p[:, 1], pl[:, 1]
        mlp_runs.append(metrics(ttype, y[te], p, classes))
        lin_runs.append(metrics(ttype, y[te], pl, classes))
    loss = {"regression": "squared error", "binary": "log loss", "classification": "log loss"}[ttype]
    return (
        {"model": f"sklearn {'MLPRegressor' if ttype == 'regression' else 'MLPClassifier'} hidden={list(hidden)} relu, adam lr {lr}, "
                  f"batch {cfg['batchSize']}, {epochs} epochs, {loss}", "splits": len(SPLIT_SEEDS), "metrics": summary(mlp_runs)},
        {"model": "sklearn Ridge()" if ttype == "regression" else "sklearn LogisticRegression()", "splits": len(SPLIT_SEEDS), "metrics": summary(lin_runs)},
    )


# ---------------------------------------------------------------------------------------------------- FedAvg model


class MLP:
    """Dense ReLU layers and a task-shaped output, with the gradient of the task's loss and tfjs's Adam."""

    def __init__(self, sizes, rng):
        self.params = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            lim = math.sqrt(6.0 / (a + b))
            self.params += [rng.uniform(-lim, lim, (a, b)), np.zeros(b)]

    def forward(self, x):
        acts = [x]
        h = x
        layers = len(self.params) // 2
        for i in range(layers):
            z = h @ self.params[2 * i] + self.params[2 * i + 1]
            h = np.maximum(z, 0) if i < layers - 1 else z
            acts.append(h)
        return acts

    def grads(self, acts, dz):
        g = [None] * len(self.params)
        layers = len(self.params) // 2
        for i in reversed(range(layers)):
            g[2 * i] = acts[i].T @ dz
            g[2 * i + 1] = dz.sum(0)
            if i:
                dz = (dz @ self.params[2 * i].T) * (acts[i] > 0)
        return g


def output(ttype, z):
    if ttype == "regression":
        return z[:, 0]
    if ttype == "binary":
        return 1 / (1 + np.exp(-z[:, 0]))
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def dloss(task, z, y):
    """Gradient of the mean loss over the batch with respect to the output layer's pre-activation."""
    n = len(y)
    if task["type"] == "regression":
        r = z[:, 0] - y
        loss = task.get("loss", "mse")
        if loss == "huber":
            d = task.get("huberDelta", 1.0)
            g = np.clip(r, -d, d)
        elif loss == "mae":
            g = np.sign(r)
        else:
            g = 2 * r
        return (g / n)[:, None]
    if task["type"] == "binary":
        return ((1 / (1 + np.exp(-z[:, 0])) - y) / n)[:, None]
    p = output("classification", z)
    p[np.arange(n), y] -= 1
    return p / n


def local_train(model, task, x, y, epochs, batch, lr, rng):
    b1, b2, eps = 0.9, 0.999, 1e-7  # tfjs Adam defaults
    m = [np.zeros_like(p) for p in model.params]
    v = [np.zeros_like(p) for p in model.params]
    t = 0
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for s in range(0, len(y), batch):
            bi = order[s:s + batch]
            acts = model.forward(x[bi])
            g = model.grads(acts, dloss(task, acts[-1], y[bi]))
            t += 1
            for k, p in enumerate(model.params):
                m[k] = b1 * m[k] + (1 - b1) * g[k]
                v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
                p -= lr * (m[k] / (1 - b1 ** t)) / (np.sqrt(v[k] / (1 - b2 ** t)) + eps)


def fedavg(name, cfg, enc, y, classes):
    task = cfg["task"]
    ttype = task["type"]
    stop = cfg.get("stopAt")
    lower = stop and stop["metric"] in ("rmse", "mae", "loss")
    finals, reached = [], []
    for s in SIM_SEEDS:
        rng = np.random.default_rng(1000 + s)
        perm = rng.permutation(len(y))
        n_eval = round(0.1 * len(y))
        ev, rest = perm[:n_eval], perm[n_eval:]
        shares = np.array_split(rest, AGENTS)
        train_parts = [sh[: len(sh) - round(0.1 * len(sh))] for sh in shares]  # each agent keeps 10% back
        train_all = np.concatenate(train_parts)
        encoded = enc(train_all, [ev, *train_parts])  # fleet statistics = statistics of the union of training data
        xev, xparts = encoded[0], encoded[1:]
        outputs = 1 if ttype in ("regression", "binary") else len(classes)
        glob = MLP([xev.shape[1], *cfg["model"]["hidden"], outputs], rng)
        first = None
        for r in range(1, cfg["rounds"] + 1):
            updates, weights = [], []
            for xp, part in zip(xparts, train_parts):
                local = MLP.__new__(MLP)
                local.params = [p.copy() for p in glob.params]
                local_train(local, task, xp, y[part], cfg["epochs"], cfg["batchSize"], task["optimizer"]["learningRate"], rng)
                updates.append(local.params)
                weights.append(len(part))
            w = np.array(weights, dtype=np.float64) / sum(weights)
            glob.params = [sum(wi * u[k] for wi, u in zip(w, updates)) for k in range(len(glob.params))]
            met = metrics(ttype, y[ev], output(ttype, glob.forward(xev)[-1]), classes)
            if stop and first is None and (met[stop["metric"]] <= stop["value"] if lower else met[stop["metric"]] >= stop["value"]):
                first = r
        finals.append(met)
        reached.append(first)
    got = [r for r in reached if r is not None]
    return {
        "model": f"NumPy FedAvg, {AGENTS} IID agents, hidden={cfg['model']['hidden']} relu, {task['loss']}, adam lr {task['optimizer']['learningRate']} "
                 f"restarted each round, {cfg['rounds']} rounds x {cfg['epochs']} epochs, batch {cfg['batchSize']}, evaluated on the 10% central holdout",
        "seeds": len(SIM_SEEDS),
        "metricsAfterLastRound": summary(finals),
        "stopAt": stop,
        "stopAtReachedInSeeds": f"{len(got)}/{len(reached)}",
        "firstRoundReachingStopAt": {"min": min(got), "max": max(got)} if got else None,
    }


def main() -> int:
    names = sys.argv[1:] or ["auto-mpg", "breast-cancer", "digits-images", "wine"]
    report = {
        "generatedBy": "scripts/examples/reference_metrics.py",
        "versions": {"python": platform.python_version(), "scikit-learn": sklearn.__version__, "numpy": np.__version__},
        "protocol": "90/10 train/test splits (stratified for classification), z-scored features (training statistics), missing cells "
                    "replaced by the training mean, one-hot string columns, pixels / 255; mean, std, min, max over seeds",
        "examples": {},
    }
    if OUT.exists() and sys.argv[1:]:
        report["examples"] = json.loads(OUT.read_text()).get("examples", {})
    for name in names:
        cfg, enc, y, classes, n, feats = load_example(name)
        mlp, lin = central(name, cfg, enc, y, classes)
        sim = fedavg(name, cfg, enc, y, classes)
        report["examples"][name] = {
            "rows": n, "features": feats, "task": cfg["task"]["type"], "classes": classes,
            "centralMlp": mlp, "centralLinear": lin, "fedavgSimulation": sim,
        }
        print(name, json.dumps({"centralMlp": mlp["metrics"], "centralLinear": lin["metrics"], "fedavg": sim["metricsAfterLastRound"],
                                "stopAt": sim["stopAtReachedInSeeds"], "round": sim["firstRoundReachingStopAt"]}), flush=True)
    report["examples"] = dict(sorted(report["examples"].items()))
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
