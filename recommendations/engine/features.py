"""Helpers over item/user feature matrices and history vectors shared by the model-based recipes."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = [
    "binary_user_item",
    "feature_centroid_factors",
    "l2_normalize_rows",
    "orthonormal_columns",
    "prune_rows",
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


def orthonormal_columns(block: np.ndarray) -> np.ndarray:
    """An orthonormal basis of a tall block's column space (Cholesky-QR done twice via a small eigh)."""
    basis = block
    for _ in range(2):
        gram = (basis.T @ basis).astype(np.float64)
        values, vectors = np.linalg.eigh(gram)
        floor = max(float(values[-1]), 1e-30) * 1e-10
        scale = vectors / np.sqrt(np.maximum(values, floor))[None, :]
        basis = basis @ scale.astype(basis.dtype)
    return basis


def randomized_svd(
    matrix: sp.csr_matrix, rank: int, *, seed: int, oversample: int = 10, power_iterations: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Top-`rank` singular values and right singular vectors (n_cols, rank) of a sparse matrix (Halko).

    Empty columns do not change the result for the other columns (their rows of the vectors are zero).
    """
    n_rows, n_cols = matrix.shape
    rank = max(1, min(rank, n_rows, n_cols))
    width = min(rank + oversample, n_rows, n_cols)
    rng = np.random.default_rng(seed)
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    transposed = sp.csr_matrix(matrix.T)
    # The random test matrix is drawn for the non-empty columns only, so adding items nobody
    # interacted with (a catalogue's new items, a holdout's test-only items) leaves the draw, and
    # hence the factors of every other item, unchanged.
    active = np.flatnonzero(np.bincount(matrix.indices, minlength=n_cols))
    test = np.zeros((n_cols, width), dtype=np.float32)
    test[active] = rng.standard_normal((len(active), width), dtype=np.float32)
    basis = orthonormal_columns(matrix @ test)
    for _ in range(power_iterations):
        basis = orthonormal_columns(transposed @ basis)
        basis = orthonormal_columns(matrix @ basis)
    small = np.asarray(transposed @ basis)  # (n_cols, width) = A^T Q
    values, vectors = np.linalg.eigh((small.T @ small).astype(np.float64))
    order = np.argsort(values)[::-1][:rank]
    singular = np.sqrt(np.maximum(values[order], 0.0))
    safe = np.where(singular > 0, singular, 1.0)
    right = small @ (vectors[:, order] / safe[None, :]).astype(np.float32)
    right[:, singular <= 0] = 0.0
    return singular, np.ascontiguousarray(right, dtype=np.float32)


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


def prune_rows(matrix: sp.csr_matrix, keep: int) -> sp.csr_matrix:
    """The `keep` largest entries of each CSR row (ties: lower column first); others dropped."""
    matrix = sp.csr_matrix(matrix)
    lengths = np.diff(matrix.indptr)
    if keep <= 0 or lengths.max(initial=0) <= keep:
        return matrix
    rows = np.repeat(np.arange(matrix.shape[0]), lengths)
    order = np.lexsort((matrix.indices, -matrix.data, rows))
    rank = np.arange(len(order)) - np.repeat(matrix.indptr[:-1], lengths)
    chosen = order[rank < keep]
    chosen.sort()
    return sp.csr_matrix(
        (matrix.data[chosen], (rows[chosen], matrix.indices[chosen])), shape=matrix.shape, dtype=matrix.dtype
    )
