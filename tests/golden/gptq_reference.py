"""GPTQ on one layer, written from the paper (Frantar et al. 2022, Algorithm 1) in numpy, as the
reference tests/suite/gptq.rs compares modelslim's implementation with. Writes
tests/fixtures/gptq_layer.json: weights, the inputs' Gram matrix, the fixed scales, the options
and the integers the reference chooses.

    python tests/golden/gptq_reference.py
"""
import json
import pathlib

import numpy as np


def gptq(W, H, scales, qmax, damp, act_order, block):
    W = W.astype(np.float64).copy()
    H = H.astype(np.float64).copy()
    rows, cols = W.shape
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    perm = np.argsort(-np.diag(H), kind="stable") if act_order else np.arange(cols)
    W, H, S = W[:, perm], H[perm][:, perm], scales[:, perm].astype(np.float64)
    H[np.diag_indices(cols)] += damp * np.mean(np.diag(H))
    Hinv = np.linalg.cholesky(np.linalg.inv(H)).T  # upper: Hinv.T @ Hinv = H^-1
    Q = np.zeros_like(W)
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        Err = np.zeros((rows, i2 - i1))
        for i in range(i1, i2):
            w, d = W[:, i], Hinv[i, i]
            q = np.clip(np.round(w / S[:, i]), -qmax, qmax)  # numpy rounds half to even
            Q[:, i] = q
            err = (w - q * S[:, i]) / d
            W[:, i:i2] -= np.outer(err, Hinv[i, i:i2])
            Err[:, i - i1] = err
        W[:, i2:] -= Err @ Hinv[i1:i2, i2:]
    out = np.zeros_like(Q)
    out[:, perm] = Q
    return out.astype(int)


def main():
    rng = np.random.default_rng(20261129)
    rows, cols, n = 6, 20, 300
    # Correlated inputs (as neighbouring pixels are), one input always zero.
    base = rng.normal(size=(n, cols))
    X = base + 0.8 * np.roll(base, 1, axis=1)
    X[:, 7] = 0
    W = rng.normal(scale=0.5, size=(rows, cols)).astype(np.float32)
    qmax = 7
    scales = np.repeat((np.abs(W).max(axis=1) / qmax)[:, None], cols, axis=1).astype(np.float32)
    H = X.T @ X
    opts = dict(damp=0.01, act_order=True, block=8)
    Q = gptq(W, H, scales, qmax, **opts)
    out = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "gptq_layer.json"
    out.write_text(json.dumps({
        "rows": rows, "cols": cols, "qmax": qmax, **opts,
        "w": W.ravel().tolist(), "h": H.ravel().tolist(),
        "scales": scales.ravel().tolist(), "values": Q.ravel().tolist(),
    }))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
