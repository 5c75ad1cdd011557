"""aecourse.estimators: gradient estimators for a discrete choice, against
closed forms and exact enumeration."""

import math

import pytest
import torch

from aecourse import estimators

K, D, N = 5, 2, 40_000


def problem(seed):
    """Random logits (K,), codes E (K, D), target x (D,) and the loss
    f(y) = ||E^T y - x||^2 with its gradient in y, both for (n, K)."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(K, generator=g, dtype=torch.float64)
    codes = torch.randn(K, D, generator=g, dtype=torch.float64)
    x = torch.randn(D, generator=g, dtype=torch.float64)

    def f(y):
        return (y @ codes - x).square().sum(-1)

    def grad_f(y):  # (n, K)
        return 2 * (y @ codes - x) @ codes.T

    return logits, codes, x, f, grad_f


def softmax_jacobian(p):
    """d softmax / d logits at probabilities p (n, K): diag(p) - p p^T."""
    return torch.diag_embed(p) - p[:, :, None] * p[:, None, :]


def gen(seed=1):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_gradient_matches_autograd_on_the_enumerated_expectation(seed):
    logits, codes, x, f, _ = problem(seed)
    eta = logits.clone().requires_grad_(True)
    # E[f] by enumeration, written without the package
    values = torch.stack([((c - x) ** 2).sum() for c in codes])
    (auto,) = torch.autograd.grad((eta.softmax(-1) * values).sum(), eta)
    assert torch.allclose(estimators.exact_gradient(logits, f), auto)


def test_gumbel_max_draws_follow_the_softmax():
    logits = torch.tensor([1.0, -0.5, 0.0, 2.0], dtype=torch.float64)
    noise = estimators.gumbel(200_000, logits, gen(3))
    assert noise.shape == (200_000, 4) and noise.dtype == torch.float64
    # the Gumbel CDF exp(-exp(-t)) at t = 0 and t = 1
    for t in (0.0, 1.0):
        assert abs((noise <= t).double().mean() - math.exp(-math.exp(-t))) < 0.005
    counts = torch.bincount((logits + noise).argmax(-1), minlength=4)
    assert torch.allclose(counts.double() / 200_000, logits.softmax(-1), atol=0.005)


def mean_and_error(estimates):
    """Mean (K,) and its standard error (K,) over the draws."""
    return estimates.mean(0), estimates.std(0) / math.sqrt(len(estimates))


def score_variance(logits, f, c):
    """Total variance of one REINFORCE estimate with baseline c, by
    enumerating the K choices: sum_k pi_k |(f_k - c)(onehot_k - pi)|^2
    minus the squared norm of its mean."""
    pi = logits.softmax(-1)
    eye = torch.eye(K, dtype=torch.float64)
    rows = (f(eye) - c)[:, None] * (eye - pi)  # (K, K): one row per k
    mean = (pi[:, None] * rows).sum(0)
    return float((pi * rows.square().sum(1)).sum() - mean.square().sum())


@pytest.mark.parametrize("seed", [0, 1])
def test_score_function_is_unbiased_for_any_baseline(seed):
    logits, _, _, f, _ = problem(seed)
    exact = estimators.exact_gradient(logits, f)
    pi = logits.softmax(-1)
    values = f(torch.eye(K, dtype=torch.float64))
    expected_f = float((pi * values).sum())
    # the constant that minimises the total variance:
    # E[f |grad log pi|^2] / E[|grad log pi|^2]
    weights = pi * (torch.eye(K, dtype=torch.float64) - pi).square().sum(1)
    best = float((weights * values).sum() / weights.sum())
    variances = {}
    for c in (0.0, expected_f, best):
        g = estimators.score_function(logits, f, N, gen(), baseline=c)
        mean, error = mean_and_error(g)
        assert ((mean - exact).abs() <= 5 * error + 1e-12).all()
        variances[c] = score_variance(logits, f, c)
        assert abs(float(g.var(0).sum()) / variances[c] - 1) < 0.05
    assert variances[best] <= min(variances.values())
    # one draw by hand: (f(y) - c) (onehot_k - pi), here c = 0
    g = estimators.score_function(logits, f, 1, gen())
    k = (logits + estimators.gumbel(1, logits, gen())).argmax(-1)[0]
    y = torch.nn.functional.one_hot(k, K).double()
    assert torch.allclose(g[0], f(y[None])[0] * (y - pi))


@pytest.mark.parametrize("hard", [False, True])
@pytest.mark.parametrize("tau", [0.3, 1.0])
def test_gumbel_softmax_per_draw_matches_the_chain_rule(tau, hard):
    logits, _, _, f, grad_f = problem(4)
    got = estimators.gumbel_softmax(logits, f, 1000, tau, gen(), hard=hard)
    soft = ((logits + estimators.gumbel(1000, logits, gen())) / tau).softmax(-1)
    # where f is evaluated: y_tau, or its one-hot vector when hard
    at = soft
    if hard:
        at = torch.nn.functional.one_hot(soft.argmax(-1), K).double()
    # d f / d logits = (1 / tau) J(y_tau)^T grad f
    expected = (softmax_jacobian(soft) @ grad_f(at)[:, :, None])[:, :, 0] / tau
    assert torch.allclose(got, expected, atol=1e-10)


def test_gumbel_softmax_bias_shrinks_as_the_temperature_falls():
    logits, _, _, f, _ = problem(5)
    exact = estimators.exact_gradient(logits, f)
    bias, spread = [], []
    for tau in (2.0, 0.5, 0.1):
        g = estimators.gumbel_softmax(logits, f, N, tau, gen())
        bias.append((g.mean(0) - exact).norm())
        spread.append(g.var(0).sum())
    assert bias[0] > bias[1] > bias[2]
    assert spread[0] < spread[1] < spread[2]
    # and at a moderate temperature it is biased: far beyond its error
    g = estimators.gumbel_softmax(logits, f, N, 1.0, gen())
    mean, error = mean_and_error(g)
    assert ((mean - exact).abs() > 10 * error).any()


@pytest.mark.parametrize("seed", [0, 3])
def test_straight_through_is_the_gradient_of_the_loss_at_the_mean(seed):
    logits, _, _, f, grad_f = problem(seed)
    got = estimators.straight_through(logits, f, N, gen())
    # per draw: J_pi^T grad f(onehot_k)
    k = (logits + estimators.gumbel(N, logits, gen())).argmax(-1)
    y = torch.nn.functional.one_hot(k, K).double()
    pi = logits.softmax(-1).expand(N, -1)
    per_draw = (softmax_jacobian(pi) @ grad_f(y)[:, :, None])[:, :, 0]
    assert torch.allclose(got, per_draw, atol=1e-10)
    # on average, the gradient of f(pi), not of E[f]: biased
    eta = logits.clone().requires_grad_(True)
    (at_mean,) = torch.autograd.grad(f(eta.softmax(-1)[None])[0], eta)
    mean, error = mean_and_error(got)
    assert ((mean - at_mean).abs() <= 5 * error + 1e-12).all()
    exact = estimators.exact_gradient(logits, f)
    assert ((mean - exact).abs() > 10 * error).any()


def test_straight_through_is_exact_for_a_linear_loss():
    logits = torch.tensor([0.2, -1.0, 0.7], dtype=torch.float64)
    a = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    got = estimators.straight_through(logits, lambda y: y @ a, 100, gen())
    exact = estimators.exact_gradient(logits, lambda y: y @ a)
    assert torch.allclose(got, exact.expand(100, -1))


def test_bad_arguments_raise():
    f = lambda y: y.sum(-1)  # noqa: E731
    with pytest.raises(ValueError, match="shape"):
        estimators.score_function(torch.zeros(2, 3), f, 10)
    with pytest.raises(ValueError, match="n must be"):
        estimators.straight_through(torch.zeros(3), f, 0)
    with pytest.raises(ValueError, match="tau"):
        estimators.gumbel_softmax(torch.zeros(3), f, 10, tau=0.0)
    with pytest.raises(ValueError, match=r"\(n,\) losses"):
        estimators.gumbel_softmax(torch.zeros(3), lambda y: y, 10, tau=1.0)
