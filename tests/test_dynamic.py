import math

import numpy as np
import pytest
import torch

from xapp.model import Encoder, EncoderConfig, Head
from xapp.model.policies import Policy, confident, normalised_entropy, patience_update
from xapp.train.dynamic import SWEEPS, accuracy_at, computed_gflops, pareto, patience_sweep, run_policy

SMALL = EncoderConfig(dim=64, depth=4, heads=4)
CLASSES = ("a", "b", "c", "d", "e")


@pytest.fixture(scope="module")
def setup():
    """A tiny random encoder with heads whose logits are scaled up, so that confidence varies widely
    from frame to frame and exit to exit (a random head alone is near-uniform and never sure)."""
    torch.manual_seed(0)
    encoder = Encoder(SMALL).eval().requires_grad_(False)
    heads = {}
    for k in range(1, SMALL.depth + 1):
        head = Head(SMALL.dim, len(CLASSES)).eval().requires_grad_(False)
        head.out.weight.mul_(2.5 * (2.0 + k))
        heads[k] = head
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(96, 1, 1024)) + 1j * rng.normal(size=(96, 1, 1024))).astype(np.complex64)
    x[::2] += np.exp(2j * np.pi * 0.05 * np.arange(1024)).astype(np.complex64) * 3  # two kinds of frame
    y = rng.integers(0, len(CLASSES), len(x))
    return encoder, heads, x, y


def run(setup, policy, heads=None, batch=32):
    encoder, all_heads, x, y = setup
    return run_policy(encoder, "t", CLASSES, heads or all_heads, policy, x, y, batch)


def test_policy_criteria_on_crafted_probabilities():
    probs = torch.tensor([[0.97, 0.01, 0.01, 0.01], [0.25, 0.25, 0.25, 0.25], [0.6, 0.4, 0.0, 0.0]])
    assert normalised_entropy(probs)[1] == pytest.approx(1.0)
    assert confident(Policy("confidence", threshold=0.9), probs).tolist() == [True, False, False]
    assert confident(Policy("confidence", threshold=0.5), probs).tolist() == [True, False, True]
    assert confident(Policy("entropy", threshold=0.2), probs).tolist() == [True, False, False]
    assert confident(Policy("entropy", threshold=0.5), probs).tolist() == [True, False, True]
    with pytest.raises(ValueError, match="not a per-exit confidence criterion"):
        confident(Policy("patience"), probs)
    with pytest.raises(ValueError, match="unknown exit policy"):
        Policy("random")


def test_patience_counts_consecutive_agreeing_exits():
    streak, last = torch.zeros(3, dtype=torch.long), torch.full((3,), -1)
    for labels in ([1, 2, 0], [1, 3, 0], [1, 3, 1]):
        streak, last = patience_update(streak, last, torch.tensor(labels))
    assert streak.tolist() == [3, 2, 1]


@pytest.mark.parametrize("kind", ["entropy", "confidence", "patience"])
def test_looser_thresholds_spend_fewer_mean_flops(setup, kind):
    settings = patience_sweep(SMALL.depth) if kind == "patience" else SWEEPS[kind]
    policies = [Policy(kind, patience=p) if kind == "patience" else Policy(kind, threshold=t) for t in settings
                for p in [t]]
    costs = [run(setup, p).mean_gflops for p in policies]
    assert all(b <= a + 1e-12 for a, b in zip(costs, costs[1:])), costs
    assert costs[-1] < costs[0]


def test_rows_leave_the_batch_so_later_blocks_process_fewer_rows(setup):
    encoder, heads, x, _ = setup
    dynamic = run(setup, Policy("confidence", threshold=0.8))
    exits = np.array(dynamic.exits)
    assert 0 < (exits < SMALL.depth).sum() < len(x)  # some, not all, rows left early
    # rows_per_block comes from hooks on the blocks: what the trunk really computed
    assert dynamic.rows_per_block == [int((exits >= k).sum()) for k in range(1, SMALL.depth + 1)]
    assert dynamic.rows_per_block[-1] < dynamic.rows_per_block[0] == len(x)
    assert computed_gflops(encoder, dynamic, heads, 65) == pytest.approx(dynamic.mean_gflops)
    fixed = run(setup, Policy("fixed"), {SMALL.depth: heads[SMALL.depth]})
    assert fixed.rows_per_block == [len(x)] * SMALL.depth
    assert computed_gflops(encoder, fixed, {SMALL.depth: heads[SMALL.depth]}, 65) == pytest.approx(fixed.mean_gflops)
    assert dynamic.mean_gflops < fixed.mean_gflops


def test_a_policy_that_is_never_sure_matches_the_fixed_last_exit(setup):
    _, heads, _, _ = setup
    never = run(setup, Policy("confidence", threshold=1.5))
    fixed = run(setup, Policy("fixed"), {SMALL.depth: heads[SMALL.depth]})
    assert set(never.exits) == {SMALL.depth}
    assert never.pred == fixed.pred
    assert never.mean_gflops > fixed.mean_gflops  # it also paid for reading every earlier head


def test_results_do_not_depend_on_the_batch_size(setup):
    a = run(setup, Policy("entropy", threshold=0.3), batch=7)
    b = run(setup, Policy("entropy", threshold=0.3), batch=96)
    assert a.exits == b.exits and a.pred == b.pred
    assert sum(a.rows_per_block) == sum(b.rows_per_block)


def test_pareto_front_and_interpolation_at_equal_cost():
    points = [(1.0, 0.5), (2.0, 0.7), (1.5, 0.4), (3.0, 0.9), (2.5, 0.6)]
    assert pareto(points) == [(1.0, 0.5), (2.0, 0.7), (3.0, 0.9)]
    assert accuracy_at(points, 2.5) == pytest.approx(0.8)
    assert accuracy_at(points, 5.0) == pytest.approx(0.9)
    assert accuracy_at(points, 0.5) is None
    assert math.isclose(accuracy_at(points, 1.0), 0.5)
