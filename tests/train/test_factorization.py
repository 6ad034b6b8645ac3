"""The batched matrix-factorization trainer (`phenolab.train.factorization`): agreement with autograd
on `MatrixFactorization`, batching, divergence, bad input, and the pilot checks of
docs/specs/matrix-completion.md (arXiv:2405.13721)."""

import numpy as np
import pytest
import torch

from phenolab.models.matrix_factorization import MatrixFactorization, all_positions
from phenolab.tasks.matrix_completion import (
    best_rank_k_fit,
    block_mask,
    block_nuclear_norm,
    low_rank_target,
    min_nuclear_norm_completion,
    missing_entries_mask,
    nuclear_norm,
    random_mask,
    relative_error,
    singular_values,
    star_mask,
)
from phenolab.train.factorization import train_factorizations

pytestmark = pytest.mark.usefixtures("one_thread")

TWO_BLOCKS = [([0, 1], [0, 1]), ([2, 3], [2, 3])]


# ----------------------------------------------------------------------------------------------
# the trainer

def autograd_run(m, mask, *, depth, width, init_std, lr, steps, seed, reduction="sum"):
    """One run with phenolab's MatrixFactorization module, autograd and a plain GD update."""
    d1, d2 = m.shape
    model = MatrixFactorization(d1, d2, depth=depth, width=width, init_std=init_std,
                                generator=torch.Generator().manual_seed(seed))
    positions = all_positions(d1, d2)[torch.as_tensor(mask).reshape(-1)]
    values = torch.as_tensor(m)[torch.as_tensor(mask)][:, None]
    for _ in range(steps):
        model.zero_grad()
        loss = 0.5 * ((model(positions) - values) ** 2).sum()
        if reduction == "mean":
            loss = loss / len(values)
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= lr * p.grad
    return model


@pytest.mark.parametrize("depth, width, reduction", [(1, None, "sum"), (2, None, "sum"), (2, None, "mean"),
                                                     (2, 5, "sum"), (3, 2, "sum")])
def test_trainer_matches_autograd_on_the_model(depth, width, reduction):
    targets = np.stack([low_rank_target(4, 3, 2, s) for s in range(3)])
    masks = np.stack([random_mask(4, 3, 8, s) for s in range(3)])
    kw = dict(depth=depth, width=width, init_std=0.4, lr=0.05, steps=150, seed=11, reduction=reduction)
    out = train_factorizations(targets, masks, **kw)
    for b in range(3):
        model = autograd_run(targets[b], masks[b], **{**kw, "seed": 11 + b})
        assert np.allclose(out["W"][b], model.matrix().detach().numpy(), rtol=0, atol=1e-10)
        for f, p in zip(out["factors"], model.factors):
            assert np.allclose(f[b], p.detach().numpy(), rtol=0, atol=1e-10)
    assert not out["diverged"].any()
    assert out["loss"][:, -1] == pytest.approx(out["final_loss"], rel=1e-12)
    assert np.all(out["loss"][:, -1] < out["loss"][:, 0])


def test_batched_training_equals_single_runs():
    targets = np.stack([low_rank_target(4, 4, 1 + s % 3, s) for s in range(4)])
    masks = np.stack([random_mask(4, 4, 10, s) for s in range(4)])
    kw = dict(init_std=1e-3, lr=0.05, steps=3000, record_steps=range(0, 3001, 500))
    out = train_factorizations(targets, masks, seed=5, **kw)
    assert out["singular_values"].shape == (4, 7, 4) and out["loss"].shape == (4, 7)
    assert out["rank_A"].shape == (4, 7) and out["sv_aug"].shape == (4, 7, 4)
    for b in range(4):
        one = train_factorizations(targets[b:b + 1], masks[b:b + 1], seed=5 + b, **kw)
        for key in ("W", "loss", "singular_values", "sv_A", "sv_Bt", "sv_aug", "grad_norm"):
            assert np.allclose(out[key][b], one[key][0], rtol=0, atol=1e-10), key
        for key in ("rank_A", "rank_Bt", "rank_aug"):
            assert np.array_equal(out[key][b], one[key][0])


def test_per_run_init_std_equals_separate_calls():
    m = low_rank_target(4, 4, 2, 0)
    mask = random_mask(4, 4, 12, 0)
    out = train_factorizations(m, np.stack([mask] * 2), init_std=[1e-1, 1e-4], lr=0.05, steps=500, seed=3)
    for b, std in enumerate([1e-1, 1e-4]):
        one = train_factorizations(m, mask[None], init_std=std, lr=0.05, steps=500, seed=3 + b)
        assert np.allclose(out["W"][b], one["W"][0], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="init_std"):
        train_factorizations(m, mask[None], init_std=[1e-3, 1e-3], lr=0.05, steps=5, seed=0)


def test_divergence_is_marked_not_raised():
    targets = np.stack([low_rank_target(4, 4, 1, 0), 300 * low_rank_target(4, 4, 1, 1)])
    out = train_factorizations(targets, star_mask(4), init_std=1e-2, lr=0.05, steps=2000, seed=0,
                               record_steps=[0, 1000, 2000])
    assert list(out["diverged"]) == [False, True]
    assert np.isnan(out["loss"][1, -1]) and np.all(out["rank_A"][1, -1] == -1)
    alone = train_factorizations(targets[:1], star_mask(4), init_std=1e-2, lr=0.05, steps=2000, seed=0)
    assert np.allclose(out["W"][0], alone["W"][0], rtol=0, atol=1e-12)


def test_trainer_rejects_bad_input():
    m = low_rank_target(3, 3, 1, 0)
    with pytest.raises(ValueError, match="at least one"):
        train_factorizations(m, star_mask(3), init_std=1e-3, lr=0.05, steps=10, seed=0)
    with pytest.raises(ValueError, match="reduction"):
        train_factorizations(m[None], star_mask(3), init_std=1e-3, lr=0.05, steps=10, seed=0, reduction="max")
    with pytest.raises(ValueError, match="record_steps"):
        train_factorizations(m[None], star_mask(3), init_std=1e-3, lr=0.05, steps=10, seed=0, record_steps=[20])


# ----------------------------------------------------------------------------------------------
# matrix-completion.md pilot checks (d = 4, rank-1 targets, GD lr 0.05, 40k steps, loss (1/2) sum over Omega)

def first_seeds(count, keep):
    """The first `count` seeds whose Gaussian rank-1 4 x 4 target satisfies `keep` (a property of the
    target and mask alone, computed before any training)."""
    seeds, s = [], 0
    while len(seeds) < count:
        if keep(low_rank_target(4, 4, 1, s)):
            seeds.append(s)
        s += 1
    return seeds


def test_calibration_star_connected_finds_min_rank():
    """Check 1: star mask, std 1e-6 -> the rank-1 truth (relative error < 1e-3, sigma_2/sigma_1 < 1e-4).

    Targets: Gaussian u v^T whose truth is close to the minimum nuclear norm completion
    (||M*||_* <= 1.1 min ||X||_*). Over seeds 0..59 (no selection) the check passes for 38 of 60 at std
    1e-6; the failures are targets with a weak hub M*_00, whose rank-1 completion has a much larger
    nuclear norm than the nuclear-norm minimizer, and they recover as the init shrinks (next test)."""
    mask = star_mask(4)
    seeds = first_seeds(5, lambda m: nuclear_norm(m) <= 1.1 * min_nuclear_norm_completion(m, mask)[1]["nuclear_norm"])
    targets = np.stack([low_rank_target(4, 4, 1, s) for s in seeds])
    out = train_factorizations(targets, mask, init_std=1e-6, lr=0.05, steps=40_000, seed=0)
    s = out["singular_values"][:, -1]
    assert not out["diverged"].any()
    assert np.all(relative_error(out["W"], targets) < 1e-3)
    assert np.all(s[:, 1] / s[:, 0] < 1e-4)
    large = train_factorizations(targets, mask, init_std=1.0, lr=0.05, steps=40_000, seed=0)
    assert np.all(relative_error(large["W"], targets) > 0.5)  # init-scale dependence: std 1 misses the truth


def test_calibration_star_small_init_limit():
    """A weak-hub star target (||M*||_* = 1.6 min ||X||_*): the error falls steadily as the init
    shrinks, reaching the rank-1 truth only at std 1e-12, the small-init limit of the claim."""
    m = low_rank_target(4, 4, 1, 19)
    stds = [1e-3, 1e-6, 1e-9, 1e-12]
    out = train_factorizations(np.stack([m] * 4), star_mask(4), init_std=stds, lr=0.05, steps=40_000, seed=0)
    errors = relative_error(out["W"], m)
    assert errors[1] > 1e-2 and errors[-1] < 1e-3
    assert all(a > b for a, b in zip(errors, errors[1:]))


def test_calibration_blocks_find_min_nuclear_norm():
    """Check 2: two complete 2 x 2 blocks, std 1e-3 -> ||W||_* / min nuclear in [0.999, 1.01], rank 2
    (sigma_2/sigma_1 > 0.1) and far from the rank-1 truth (relative error > 0.3).

    The norm claim is checked on 20 unselected targets. The rank-2 and error claims need targets where
    the two answers differ visibly; they are checked on targets with balanced blocks
    (sigma_1 ratio of the two observed blocks in [0.5, 2]). Unselected (seeds 0..59) they held for
    48 (sigma_2/sigma_1 > 0.1) and 53 (error > 0.3) of the 60 targets, the norm claim for all 60."""
    mask = block_mask(4, TWO_BLOCKS)
    targets = np.stack([low_rank_target(4, 4, 1, s) for s in range(20)])
    out = train_factorizations(targets, mask, init_std=1e-3, lr=0.05, steps=40_000, seed=0)
    ratio = nuclear_norm(out["W"]) / np.array([block_nuclear_norm(m, mask) for m in targets])
    assert not out["diverged"].any()
    assert np.all((ratio >= 0.999) & (ratio <= 1.01))

    def balanced(m):
        top, bottom = singular_values(m[:2, :2])[0], singular_values(m[2:, 2:])[0]
        return 0.5 <= top / bottom <= 2

    seeds = first_seeds(5, balanced)
    targets = np.stack([low_rank_target(4, 4, 1, s) for s in seeds])
    out = train_factorizations(targets, mask, init_std=1e-3, lr=0.05, steps=40_000, seed=0)
    s = out["singular_values"][:, -1]
    mins = np.array([min_nuclear_norm_completion(m, mask)[1]["nuclear_norm"] for m in targets])
    assert np.all(np.abs(nuclear_norm(out["W"]) / mins - 1) <= 0.01)
    assert np.all(s[:, 1] / s[:, 0] > 0.1)
    assert np.all(relative_error(out["W"], targets) > 0.3)


def test_plateaus_sit_at_best_rank_k_fits():
    """Check MC-4 (not piloted): rank-3 target, one entry missing, std 1e-8. The loss rests
    at the best rank-1 and rank-2 fits to the observed entries, W is then that fit, and the learned
    rank climbs 1 -> 2 -> 3; after the initial alignment rank(A) = rank(B^T) = rank([A; B^T])."""
    m = low_rank_target(4, 4, 3, 0)
    mask = missing_entries_mask(4, 4, [(0, 0)])
    fits = {k: best_rank_k_fit(m, mask, k) for k in (1, 2)}
    steps = 10_000
    out = train_factorizations(m[None], mask[None], init_std=1e-8, lr=0.05, steps=steps, seed=0,
                               record_steps=range(0, steps + 1, 10))
    loss, t = out["loss"][0], out["steps"]
    ranks = np.sum(out["singular_values"][0] > 1e-3 * out["singular_values"][0][:, :1], axis=1)
    for k, (x_k, res) in fits.items():
        on = np.flatnonzero(np.abs(loss - 0.5 * res ** 2) <= 1e-2 * 0.5 * res ** 2)
        assert on.size >= 10  # a plateau of at least 100 steps
        mid = int(t[on[on.size // 2]])
        assert ranks[on[on.size // 2]] == k
        w_mid = train_factorizations(m[None], mask[None], init_std=1e-8, lr=0.05, steps=mid, seed=0)["W"][0]
        assert np.linalg.norm(w_mid - x_k) < 1e-2
    assert ranks[-1] == 3 and loss[-1] < 1e-6
    late = t >= 200
    assert np.all(out["rank_A"][0, late] == out["rank_Bt"][0, late])
    assert np.all(out["rank_Bt"][0, late] == out["rank_aug"][0, late])
