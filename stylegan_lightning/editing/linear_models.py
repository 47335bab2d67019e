"""Small full-batch linear models in torch (no scikit-learn): L2-regularised linear SVM, logistic regression
and ridge regression on a design matrix ``x`` [N, D].

Classifiers minimise ``sum_i c_i * loss(y_i * (x_i . coef + bias)) + l2 / 2 * ||coef||^2`` with labels
``y_i`` in {-1, +1} and sample weights ``c_i`` summing to 1 (the bias is not regularised):

- ``"squared_hinge"``: ``max(0, 1 - m)^2`` (L2-SVM, smooth: solved with L-BFGS and a strong-Wolfe line search);
- ``"hinge"``: ``max(0, 1 - m)`` (the classic SVM loss, non-smooth: full-batch Adam with a cosine-decayed
  step size);
- ``"logistic"``: ``log(1 + exp(-m))`` (L-BFGS).

With a weight mean ``l2 = 1 / (C * N)`` this is scikit-learn's ``C``-parametrised objective up to a constant
factor. Everything runs in float64 on the input's device. Small CPU problems (fewer than
``SINGLE_THREAD_NUMEL`` entries in ``x``) run single-threaded: their many tiny iterations are far faster without
thread synchronisation, above all on a loaded machine (the previous thread count is restored afterwards).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

CLASSIFIER_LOSSES = ("squared_hinge", "hinge", "logistic")


def _loss(margin: torch.Tensor, loss: str) -> torch.Tensor:
    if loss == "squared_hinge":
        return (1 - margin).clamp_min(0).square()
    if loss == "hinge":
        return (1 - margin).clamp_min(0)
    return F.softplus(-margin)


def fit_linear_classifier(
    x: torch.Tensor,
    y: torch.Tensor,
    sample_weight: torch.Tensor | None = None,
    l2: float = 1e-4,
    loss: str = "squared_hinge",
    max_iter: int = 500,
) -> tuple[torch.Tensor, float, dict[str, Any]]:
    """Fit ``(coef [D], bias, info)`` of a linear classifier (see the module docs); ``y`` holds -1 / +1.

    ``info`` has the final ``objective``, the number of ``iterations`` and whether the solver ``converged``
    (L-BFGS stopped before ``max_iter``; always ``True`` for the fixed Adam schedule of ``"hinge"``).
    """
    if loss not in CLASSIFIER_LOSSES:
        raise ValueError(f"loss must be one of {CLASSIFIER_LOSSES}, got {loss!r}")
    if l2 < 0:
        raise ValueError(f"l2 must be non-negative, got {l2}")
    x = x.to(torch.float64)
    y = y.to(x)
    weight = torch.full_like(y, 1.0 / len(y)) if sample_weight is None else sample_weight.to(x) / sample_weight.sum()
    theta = torch.zeros(x.shape[1] + 1, dtype=x.dtype, device=x.device, requires_grad=True)

    def objective() -> torch.Tensor:
        margin = y * (x @ theta[:-1] + theta[-1])
        return (weight * _loss(margin, loss)).sum() + 0.5 * l2 * theta[:-1].square().sum()

    with torch.enable_grad():
        if loss == "hinge":
            iterations, converged = _adam(theta, objective, max_iter)
        else:
            iterations, converged = _lbfgs(theta, objective, max_iter)
    with torch.no_grad():
        final = float(objective())
    theta = theta.detach()
    return theta[:-1], float(theta[-1]), {"objective": final, "iterations": iterations, "converged": converged}


def _lbfgs(theta: torch.Tensor, objective, max_iter: int) -> tuple[int, bool]:
    optimizer = torch.optim.LBFGS([theta], lr=1.0, max_iter=max_iter, max_eval=2 * max_iter, history_size=50,
                                  tolerance_grad=1e-10, tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        value = objective()
        value.backward()
        return value

    optimizer.step(closure)
    iterations = int(optimizer.state[theta].get("n_iter", 0))
    return iterations, iterations < max_iter


def _adam(theta: torch.Tensor, objective, steps: int, lr: float = 0.05) -> tuple[int, bool]:
    optimizer = torch.optim.Adam([theta], lr=lr)
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        optimizer.zero_grad()
        objective().backward()
        optimizer.step()
    return steps, True


def fit_ridge(x: torch.Tensor, y: torch.Tensor, l2: float = 1e-4) -> tuple[torch.Tensor, float]:
    """Least squares with an L2 penalty: ``(coef [D], bias)`` minimising
    ``mean_i (x_i . coef + bias - y_i)^2 + l2 * ||coef||^2`` (closed form, float64)."""
    if l2 < 0:
        raise ValueError(f"l2 must be non-negative, got {l2}")
    x = x.to(torch.float64)
    y = y.to(x)
    x_mean, y_mean = x.mean(0), y.mean()
    xc = x - x_mean
    gram = xc.T @ xc / len(x) + l2 * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    rhs = xc.T @ (y - y_mean) / len(x)
    coef = torch.linalg.solve(gram, rhs) if l2 > 0 else torch.linalg.pinv(gram, hermitian=True) @ rhs
    return coef, float(y_mean - x_mean @ coef)
