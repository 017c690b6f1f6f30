# One-off: reference figures for drift.test.ts (scipy.stats, numpy; prints JSON). python3 -m venv v && v/bin/pip install scipy && v/bin/python drift-reference.py
import json, numpy as np, scipy, scipy.stats as st
out = {'scipy': scipy.__version__, 'numpy': np.__version__}
def psi(e, a, eps=1e-4):
    e = np.asarray(e, float); a = np.asarray(a, float)
    e = np.maximum(e / e.sum(), eps); a = np.maximum(a / a.sum(), eps)
    return float(np.sum((a - e) * np.log(a / e)))
out['psi'] = [
  {'ref': [100, 200, 300, 250, 150], 'live': [80, 150, 320, 300, 150]},
  {'ref': [50, 50, 0, 100], 'live': [10, 60, 30, 100]},
  {'ref': [1000, 1000, 1000, 1000], 'live': [1000, 1000, 1000, 1000]},
  {'ref': [10, 80, 10, 0, 0], 'live': [0, 10, 30, 40, 20]},
]
for c in out['psi']: c['psi'] = psi(c['ref'], c['live'])
out['ks'] = [
  {'a': [5, 10, 20, 30, 20, 10, 5], 'b': [2, 5, 10, 25, 30, 18, 10]},
  {'a': [0, 3, 40, 120, 40, 3, 0], 'b': [0, 3, 40, 120, 40, 3, 0]},
  {'a': [400, 300, 200, 100], 'b': [100, 200, 300, 400]},
  {'a': [1, 0, 0, 2], 'b': [0, 1, 1, 0]},
]
for c in out['ks']:
    ia = np.repeat(np.arange(len(c['a'])), c['a']); ib = np.repeat(np.arange(len(c['b'])), c['b'])
    r = st.ks_2samp(ia, ib, method='asymp')
    en = len(ia) * len(ib) / (len(ia) + len(ib))
    c['d'] = float(r.statistic); c['p'] = float(st.kstwobign.sf(np.sqrt(en) * r.statistic)); c['scipyAsympP'] = float(r.pvalue)
out['kstwobign_sf'] = {str(z): float(st.kstwobign.sf(z)) for z in [0.2, 0.3, 0.5, 0.8, 0.99, 1.0, 1.36, 2.0, 3.0]}
# Raw vs binned: N(0,1) 2000 draws vs N(0.3,1) 2000 draws, fixed seed; the binned D is at most the raw D.
rng = np.random.default_rng(7)
x = rng.normal(0, 1, 2000); y = rng.normal(0.3, 1, 2000)
edges = [-2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2]
bins = [-np.inf] + edges + [np.inf]
hx = np.histogram(x, bins)[0].tolist(); hy = np.histogram(y, bins)[0].tolist()
raw = st.ks_2samp(x, y, method='asymp')
ia = np.repeat(np.arange(len(hx)), hx); ib = np.repeat(np.arange(len(hy)), hy)
b = st.ks_2samp(ia, ib, method='asymp')
out['rawVsBinned'] = {'edges': edges, 'hx': hx, 'hy': hy, 'rawD': float(raw.statistic), 'rawP': float(raw.pvalue), 'binnedD': float(b.statistic), 'binnedP': float(st.kstwobign.sf(np.sqrt(1000) * b.statistic)), 'scipyAsympBinnedP': float(b.pvalue), 'psi': psi(hx, hy)}
print(json.dumps(out, indent=1))
