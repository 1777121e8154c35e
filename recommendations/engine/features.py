"""Helpers over item/user feature matrices and history vectors shared by the model-based recipes."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = [
    "binary_user_item",
    "feature_centroid_factors",
    "l2_normalize_rows",
    "randomized_svd",
    "recency_weights",
    "user_position_from_end",
]


def l2_normalize_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Rows scaled to unit L2 norm (all-zero rows stay zero), as float32 CSR."""
    matrix = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ matrix)


def recency_weights(n_events: int, half_life: float) -> np.ndarray:
    """Weights for n events ordered oldest first: the newest is 1, halving every `half_life` events."""
    position = np.arange(n_events - 1, -1, -1, dtype=np.float64)
    if half_life <= 0:
        return np.ones(n_events, dtype=np.float32)
    return np.power(0.5, position / half_life).astype(np.float32)


def user_position_from_end(user: np.ndarray, order: np.ndarray) -> np.ndarray:
    """For events sorted by `order` (user, then time), rank from its user's newest (0 = newest)."""
    sorted_user = user[order]
    n = len(sorted_user)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    boundary = np.flatnonzero(np.diff(sorted_user)) + 1
    ends = np.append(boundary, n)  # one past each user's last event
    run_end = np.repeat(ends, np.diff(np.concatenate(([0], ends))))
    return run_end - 1 - np.arange(n)


def binary_user_item(
    user: np.ndarray, item: np.ndarray, value: np.ndarray, n_users: int, n_items: int
) -> sp.csr_matrix:
    """(n_users, n_items) CSR keeping the largest value per (user, item) pair."""
    order = np.lexsort((-value, item, user))
    u, i, v = user[order], item[order], value[order]
    first = np.ones(len(u), dtype=bool)
    first[1:] = (u[1:] != u[:-1]) | (i[1:] != i[:-1])
    matrix = sp.csr_matrix((v[first].astype(np.float32), (u[first], i[first])), shape=(n_users, n_items))
    return matrix


def randomized_svd(
    matrix: sp.csr_matrix, rank: int, *, seed: int, oversample: int = 10, power_iterations: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Top-`rank` singular values and right singular vectors (n_cols, rank) of a sparse matrix (Halko)."""
    n_rows, n_cols = matrix.shape
    rank = max(1, min(rank, n_rows, n_cols))
    width = min(rank + oversample, n_rows, n_cols)
    rng = np.random.default_rng(seed)
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    transposed = sp.csr_matrix(matrix.T)
    sample = matrix @ rng.standard_normal((n_cols, width), dtype=np.float32)
    basis, _ = np.linalg.qr(sample)
    for _ in range(power_iterations):
        basis, _ = np.linalg.qr(transposed @ basis)
        basis, _ = np.linalg.qr(matrix @ basis)
    small = np.asarray((transposed @ basis).T)  # (width, n_cols) = basis^T A
    _, singular, right = np.linalg.svd(small.astype(np.float64), full_matrices=False)
    return singular[:rank], np.ascontiguousarray(right[:rank].T)


def feature_centroid_factors(
    item_features: sp.csr_matrix, factors: np.ndarray, warm: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Factors for every item predicted from its metadata: the mean factor of warm items sharing each feature.

    Returns the predicted factors (n_items, k) and a bool array: True where the item has any known feature.
    """
    features = l2_normalize_rows(item_features)
    warm_features = sp.csr_matrix(sp.diags(warm.astype(np.float32)) @ features)
    mass = np.asarray(warm_features.sum(axis=0)).ravel()
    centroid = np.asarray(warm_features.T @ factors)  # (n_features, k)
    centroid = centroid / np.maximum(mass, 1e-9)[:, None]
    centroid[mass <= 0] = 0.0
    usable = features @ sp.diags((mass > 0).astype(np.float32))
    weight = np.asarray(usable.sum(axis=1)).ravel()
    predicted = np.asarray(features @ centroid)
    predicted = predicted / np.maximum(weight, 1e-9)[:, None]
    has = weight > 0
    predicted[~has] = 0.0
    return predicted.astype(np.float32), has
