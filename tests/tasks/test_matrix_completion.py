"""Matrix completion: targets, masks, connectivity, the minimum nuclear norm completion and the
measurements of a learned matrix (arXiv:2405.13721). The trainer's tests, with the pilot
checks of docs/specs/matrix-completion.md, are in tests/train/test_factorization.py."""

import numpy as np
import pytest
import torch

from phenolab.tasks.matrix_completion import (
    best_rank_k_fit,
    bipartite_components,
    block_mask,
    block_nuclear_norm,
    connectivity,
    learned_rank,
    low_rank_target,
    min_nuclear_norm_completion,
    min_observed_per_line,
    missing_entries_mask,
    nuclear_norm,
    random_mask,
    relative_error,
    singular_values,
    star_mask,
)

pytestmark = pytest.mark.usefixtures("one_thread")

TWO_BLOCKS = [([0, 1], [0, 1]), ([2, 3], [2, 3])]


# ----------------------------------------------------------------------------------------------
# targets and masks

@pytest.mark.parametrize("d1, d2, r", [(4, 4, 1), (4, 4, 3), (5, 3, 2), (6, 6, 6)])
@pytest.mark.parametrize("kind", ["gaussian", "orthogonal"])
def test_low_rank_target_exact_rank(d1, d2, r, kind):
    m = low_rank_target(d1, d2, r, 7, kind=kind)
    assert m.shape == (d1, d2) and m.dtype == np.float64
    assert np.linalg.matrix_rank(m) == r
    assert 0.05 < np.mean(m ** 2) < 20  # entries of order one
    assert np.array_equal(m, low_rank_target(d1, d2, r, 7, kind=kind))
    assert not np.allclose(m, low_rank_target(d1, d2, r, 8, kind=kind))
    if kind == "orthogonal":
        s = singular_values(m)
        assert np.allclose(s[:r], np.sqrt(d1 * d2 / r)) and np.all(s[r:] < 1e-12)


def test_low_rank_target_factors_are_independent():
    # U and V come from one stream: a square rank-1 target is not symmetric (u != v)
    m = low_rank_target(4, 4, 1, 0)
    assert not np.allclose(m, m.T)
    gen = torch.Generator().manual_seed(3)
    assert np.linalg.matrix_rank(low_rank_target(4, 5, 2, gen)) == 2
    rng = np.random.default_rng(3)
    assert not np.allclose(low_rank_target(4, 4, 1, rng), low_rank_target(4, 4, 1, rng))
    with pytest.raises(ValueError, match="rank"):
        low_rank_target(3, 4, 4, 0)
    with pytest.raises(ValueError, match="kind"):
        low_rank_target(3, 4, 1, 0, kind="uniform")


def test_masks_have_the_promised_sizes():
    for n in (0, 7, 16):
        mask = random_mask(4, 4, n, 1)
        assert mask.dtype == bool and mask.shape == (4, 4) and mask.sum() == n
    assert np.array_equal(random_mask(4, 5, 9, 3), random_mask(4, 5, 9, 3))
    assert random_mask(4, 5, 9, torch.Generator().manual_seed(0)).sum() == 9
    assert star_mask(4).sum() == 7 and star_mask(4)[0].all() and star_mask(4)[:, 0].all()
    assert star_mask(3, 5).sum() == 7
    assert block_mask(4, TWO_BLOCKS).sum() == 8
    assert block_mask((3, 5), [([0], [1, 2, 3])]).shape == (3, 5)
    mask = missing_entries_mask(4, 4, [(0, 0)])
    assert mask.sum() == 15 and not mask[0, 0]
    with pytest.raises(ValueError, match="n"):
        random_mask(2, 2, 5, 0)


def test_connectivity_hand_made_cases():
    blocks = block_mask(4, TWO_BLOCKS)
    assert connectivity(star_mask(4)) == "connected"
    assert connectivity(blocks) == "disconnected_complete"
    joined = blocks.copy()
    joined[0, 2] = True  # a stray entry joins the two blocks
    assert connectivity(joined) == "connected"
    no_row = np.ones((4, 4), dtype=bool)
    no_row[3] = False  # an unobserved row is an isolated node
    assert connectivity(no_row) == "disconnected"
    holed = blocks.copy()
    holed[1, 1] = False  # still two components, one no longer complete
    assert connectivity(holed) == "disconnected"
    assert connectivity(np.zeros((3, 3), dtype=bool)) == "disconnected"

    n, rows, cols = bipartite_components(blocks)
    assert n == 2 and rows[0] == rows[1] == cols[0] == cols[1] and rows[2] == rows[3] == cols[2] == cols[3]
    assert rows[0] != rows[2]
    assert bipartite_components(no_row)[0] == 2
    assert min_observed_per_line(star_mask(4)) == 1 and min_observed_per_line(blocks) == 2
    assert min_observed_per_line(no_row) == 0 and min_observed_per_line(np.ones((3, 5), dtype=bool)) == 3


# ----------------------------------------------------------------------------------------------
# minimum nuclear norm completion

def check_certificate(m, mask, x, info, tol=1e-9):
    """X agrees with M on the mask; the returned dual is feasible and proves optimality within tol."""
    assert np.array_equal(x[mask], m[mask])
    y = info["dual"]
    assert np.all(y[~mask] == 0) and np.linalg.norm(y, 2) <= 1 + 1e-12
    lower = float(np.sum(y * m))  # <= min ||X||_* for any dual-feasible Y (weak duality)
    assert info["converged"] and info["nuclear_norm"] == pytest.approx(nuclear_norm(x), rel=1e-12)
    assert lower >= (1 - tol) * nuclear_norm(x) - 1e-15


def test_min_nuclear_norm_equals_block_closed_form():
    cases = [(low_rank_target(4, 4, 1, s), block_mask(4, TWO_BLOCKS)) for s in range(3)]
    cases.append((low_rank_target(5, 4, 2, 0), block_mask((5, 4), [([0, 1, 2], [0, 1]), ([3, 4], [2, 3])])))
    cases.append((low_rank_target(4, 5, 2, 1), block_mask((4, 5), [([0, 2], [1, 3, 4])])))  # + unobserved rest
    for m, mask in cases:
        assert connectivity(mask) in ("disconnected_complete", "disconnected")
        x, info = min_nuclear_norm_completion(m, mask)
        check_certificate(m, mask, x, info)
        assert info["nuclear_norm"] == pytest.approx(block_nuclear_norm(m, mask), rel=1e-6)
        assert info["iterations"] < 40
    with pytest.raises(ValueError, match="not a complete"):
        block_nuclear_norm(low_rank_target(4, 4, 1, 0), star_mask(4))


def test_min_nuclear_norm_full_mask_returns_the_matrix():
    for seed, r in [(0, 2), (1, 4)]:
        m = low_rank_target(4, 4, r, seed)
        mask = np.ones_like(m, dtype=bool)
        x, info = min_nuclear_norm_completion(m, mask)
        assert np.array_equal(x, m)
        assert info["nuclear_norm"] == pytest.approx(singular_values(m).sum(), rel=1e-9)
        check_certificate(m, mask, x, info)


def test_min_nuclear_norm_random_masks_and_trivial_cases():
    for seed in range(10):
        d1, d2 = [(4, 4), (6, 6), (3, 5)][seed % 3]
        m = low_rank_target(d1, d2, 1 + seed % 3, seed)
        mask = random_mask(d1, d2, 4 + seed, seed)
        x, info = min_nuclear_norm_completion(m, mask)
        check_certificate(m, mask, x, info)
    x, info = min_nuclear_norm_completion(np.ones((3, 3)), np.zeros((3, 3), dtype=bool))
    assert np.array_equal(x, np.zeros((3, 3))) and info["nuclear_norm"] == 0.0
    scaled = 1e4 * low_rank_target(4, 4, 2, 0)
    x, info = min_nuclear_norm_completion(scaled, star_mask(4))
    check_certificate(scaled, star_mask(4), x, info)


def test_star_mask_rank1_completion_is_unique_but_not_always_min_nuclear():
    """For a rank-1 target and the star mask the rank-1 completion M_ij = M_i0 M_0j / M_00 is
    unique. It is the minimum nuclear norm completion only when the hub row and column dominate;
    with a weak hub the nuclear norm minimizer is a different, higher-rank matrix (the tension
    between low rank and low nuclear norm that section 7 is about)."""
    mask = star_mask(4)
    strong = np.outer([2.0, 1.0, -1.0, 0.5], [2.0, 0.5, 1.0, -1.0])
    weak = np.outer([0.2, 1.0, -1.0, 1.0], [0.2, 1.0, 1.0, -1.0])
    for m in (strong, weak):
        x1, res = best_rank_k_fit(m, mask, 1)
        assert res < 1e-12 and np.allclose(x1, m, atol=1e-8)
    x, info = min_nuclear_norm_completion(strong, mask)
    check_certificate(strong, mask, x, info)
    assert info["nuclear_norm"] == pytest.approx(nuclear_norm(strong), rel=1e-8)
    assert np.allclose(x, strong, atol=1e-4) and learned_rank(x) == 1
    x, info = min_nuclear_norm_completion(weak, mask)
    check_certificate(weak, mask, x, info)
    assert info["nuclear_norm"] < 0.5 * nuclear_norm(weak) and learned_rank(x) >= 2


# ----------------------------------------------------------------------------------------------
# measurements

def test_measurement_helpers():
    w = np.diag([2.0, 1e-2, 1e-4])
    assert np.allclose(singular_values(w), [2.0, 1e-2, 1e-4])
    assert learned_rank(w) == 2 and learned_rank(w, rtol=1e-5) == 3 and learned_rank(np.zeros((3, 3))) == 0
    assert nuclear_norm(w) == pytest.approx(2.0101)
    assert relative_error(2 * w, w) == pytest.approx(1.0)
    stack = np.stack([w, 3 * np.eye(3)])
    assert singular_values(torch.as_tensor(stack)).shape == (2, 3)
    assert list(learned_rank(stack)) == [2, 3] and np.allclose(nuclear_norm(stack), [2.0101, 9.0])
    assert np.allclose(relative_error(stack, stack + 0.0), 0.0)


def test_best_rank_k_fit_is_truncated_svd_on_full_mask():
    m = low_rank_target(4, 5, 3, 2)
    u, s, vt = np.linalg.svd(m)
    full = np.ones_like(m, dtype=bool)
    for k in (1, 2, 3):
        x, res = best_rank_k_fit(m, full, k)
        assert res == pytest.approx(np.sqrt(np.sum(s[k:] ** 2)), rel=1e-9, abs=1e-12)
        assert np.allclose(x, (u[:, :k] * s[:k]) @ vt[:k], atol=1e-7)
