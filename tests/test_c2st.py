"""Tests of the classifier two-sample test (C2ST)."""

from __future__ import annotations

import pytest
import torch

from sbikit.diagnostics import c2st


def normal(n, d, shift=0.0, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=generator) + shift


def test_one_distribution_gives_one_half():
    # 2000 held-out predictions per fold: the accuracy's standard error is about 0.005.
    assert abs(c2st(normal(5000, 3, seed=1), normal(5000, 3, seed=2), steps=300) - 0.5) < 0.03


def test_separated_distributions_give_one():
    assert c2st(normal(2000, 3, seed=1), normal(2000, 3, 4.0, seed=2), steps=300) > 0.99


def test_a_small_shift_is_detected_in_between():
    # N(0, 1) against N(0.5, 1) in one coordinate: the Bayes accuracy is Φ(0.25) ≈ 0.599.
    p, q = normal(5000, 2, seed=1), normal(5000, 2, seed=2)
    q[:, 0] += 0.5
    assert 0.57 < c2st(p, q, steps=500) < 0.62


def test_a_difference_in_shape_is_detected():
    # Same mean and variance, different shape: a linear classifier could not tell them apart.
    p = normal(4000, 1, seed=1)
    q = torch.where(normal(4000, 1, seed=2) > 0, 1.0, -1.0) + 0.1 * normal(4000, 1, seed=3)
    assert c2st(p, q / q.std(), steps=500) > 0.7


def test_the_reference_sets_the_scale():
    # z-scored with the first set's statistics: scaling both sets changes nothing.
    p, q = normal(2000, 2, seed=1), normal(2000, 2, 0.5, seed=2)
    assert c2st(p, q, steps=100) == c2st(1000 * p, 1000 * q, steps=100)


def test_seeded_and_deterministic():
    p, q = normal(1000, 2, seed=1), normal(1000, 2, 0.3, seed=2)
    assert c2st(p, q, steps=100, seed=3) == c2st(p, q, steps=100, seed=3)
    assert c2st(p, q, steps=100, seed=3) != c2st(p, q, steps=100, seed=4)


@pytest.mark.parametrize(
    ("p", "q", "error", "match"),
    [
        (torch.zeros(10), torch.zeros(10, 1), ValueError, r"\(N, d\)"),
        (torch.zeros(10, 2), torch.zeros(10, 3), ValueError, "one dimension"),
        (torch.zeros(3, 2), torch.zeros(3, 2), ValueError, "at least 10"),
        (torch.full((10, 2), float("nan")), torch.zeros(10, 2), ValueError, "finite"),
        ([[0.0]] * 10, torch.zeros(10, 1), TypeError, "torch.Tensor"),
    ],
)
def test_bad_input_is_rejected(p, q, error, match):
    with pytest.raises(error, match=match):
        c2st(p, q)


def test_works_under_no_grad_and_with_samples_that_carry_a_graph():
    p = normal(2000, 2, seed=1).requires_grad_()
    q = normal(2000, 2, 4.0, seed=2)
    with torch.no_grad():
        assert c2st(p, q, steps=200) > 0.99
    assert c2st(p * 1.0, q, steps=200) > 0.99  # p * 1.0 is part of a graph
