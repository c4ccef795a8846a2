"""The censoring formulas (docs/censoring.md) and PCGrad in plain NumPy: the
independent reference the tests of every backend compare with."""

import numpy as np


def np_censor(a, m, mode):
    """Reference G(a, m) on flat numpy vectors, written from docs/censoring.md."""
    a = np.asarray(a, np.float64)
    m = np.asarray(m, np.float64)
    if mode == "single_task":
        return np.zeros_like(a)
    if mode == "multitask":
        return a
    na, nm = np.linalg.norm(a), np.linalg.norm(m)
    if na == 0 or nm == 0:
        return a
    dot = float(a @ m)
    if mode == "unweighted_cosine":
        return a if dot > 0 else np.zeros_like(a)
    if mode == "weighted_cosine":
        return max(dot, 0.0) * a / (na * nm)
    if mode == "projection":
        return a - min(dot, 0.0) * m / nm**2
    if mode == "parameter_wise":
        return a * (np.sign(a * m) + 1) / 2
    raise AssertionError(mode)


def np_combine(p, tasks, lams, mode, granularity, reference=None):
    """Reference combine on lists of numpy arrays (None allowed)."""
    reference = p if reference is None else reference
    out = [None if g is None else np.array(g, np.float64) for g in p]
    for a_list, lam in zip(tasks, lams):
        shared = [i for i in range(len(p)) if p[i] is not None and a_list[i] is not None]
        censored = {}
        if granularity == "global" and shared:
            flat_a = np.concatenate([a_list[i].ravel() for i in shared])
            flat_m = np.concatenate([reference[i].ravel() for i in shared])
            g = np_censor(flat_a, flat_m, mode)
            offset = 0
            for i in shared:
                size = a_list[i].size
                censored[i] = g[offset : offset + size].reshape(a_list[i].shape)
                offset += size
        else:
            for i in shared:
                g = np_censor(a_list[i].ravel(), reference[i].ravel(), mode)
                censored[i] = g.reshape(a_list[i].shape)
        for i, a in enumerate(a_list):
            if a is None:
                continue
            c = lam * censored.get(i, a)
            out[i] = c if out[i] is None else out[i] + c
    return out


def np_pcgrad_rows(j):
    """PCGrad (Yu et al. 2020, Algorithm 1) on the rows of ``j``, each projected
    against the other rows in index order; returns the sum."""
    j = np.asarray(j, np.float64)
    out = np.zeros(j.shape[1])
    for i in range(len(j)):
        g = j[i].copy()
        for k in range(len(j)):
            if k != i and g @ j[k] < 0:
                g = g - (g @ j[k]) / (j[k] @ j[k]) * j[k]
        out += g
    return out
