"""Optimisers used by the methods: Ranger (RAdam + Lookahead + gradient centralisation; pSp / e4e / HyperStyle)
and Adam + Lookahead (GradStyle), plus a name-based factory for configs.

Lookahead (Zhang et al. 2019) keeps "slow" weights; every ``k`` inner steps they move ``alpha`` of the way to
the fast weights, which are then reset to them. Its state (slow weights, step counter) lives in the optimiser's
per-parameter state, so ``state_dict()`` / ``load_state_dict()`` resume it exactly.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import torch


def centralize_gradients(parameters: Iterable[torch.Tensor]) -> None:
    """Gradient centralisation (Yong et al. 2020): subtract, from each weight's gradient, its mean over all
    dimensions but the first (only for tensors with more than one dimension)."""
    for p in parameters:
        if p.grad is not None and p.grad.dim() > 1:
            p.grad.sub_(p.grad.mean(dim=tuple(range(1, p.grad.dim())), keepdim=True))


class _Lookahead:
    """Mixin for a ``torch.optim`` class: Lookahead around its ``step``."""

    def _init_lookahead(self, k: int, alpha: float, centralize: bool) -> None:
        if k < 1 or not 0.0 <= alpha <= 1.0:
            raise ValueError(f"Lookahead needs k >= 1 and 0 <= alpha <= 1, got k={k}, alpha={alpha}")
        for group in self.param_groups:
            group.setdefault("lookahead_k", k)
            group.setdefault("lookahead_alpha", alpha)
            group.setdefault("centralize_gradients", centralize)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # slow weights start at the weights before the first update (added to the state after the inner step:
        # the inner optimiser initialises its own state only while the state is empty)
        first_seen = {}
        for group in self.param_groups:
            if group["centralize_gradients"]:
                centralize_gradients(group["params"])
            for p in group["params"]:
                if p.grad is not None and "lookahead_slow" not in self.state[p]:
                    first_seen[p] = p.detach().clone()
        super().step()  # type: ignore[misc]
        for p, initial in first_seen.items():
            self.state[p]["lookahead_slow"] = initial
            self.state[p]["lookahead_count"] = 0
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                if p.grad is None or "lookahead_slow" not in state:
                    continue
                state["lookahead_count"] += 1
                if state["lookahead_count"] % group["lookahead_k"] == 0:
                    slow = state["lookahead_slow"]
                    slow.add_(p.detach() - slow, alpha=group["lookahead_alpha"])
                    p.copy_(slow)
        return loss


class Ranger(_Lookahead, torch.optim.RAdam):
    """RAdam + Lookahead (k=6, alpha=0.5) + gradient centralisation, with the defaults of the Ranger optimiser
    used by pSp / e4e / HyperStyle (betas 0.95 / 0.999, eps 1e-5)."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.95, 0.999), eps: float = 1e-5,
                 weight_decay: float = 0.0, k: int = 6, alpha: float = 0.5, centralize: bool = True):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        self._init_lookahead(k, alpha, centralize)


class AdamLookahead(_Lookahead, torch.optim.Adam):
    """Adam wrapped in Lookahead (GradStyle's optimiser)."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, k: int = 5, alpha: float = 0.5, centralize: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        self._init_lookahead(k, alpha, centralize)


OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "radam": torch.optim.RAdam,
    "ranger": Ranger,
    "adam_lookahead": AdamLookahead,
}


def build_optimizer(name: str, params, lr: float, **kwargs: Any) -> torch.optim.Optimizer:
    """An optimiser by name (``adam``, ``adamw``, ``radam``, ``ranger``, ``adam_lookahead``)."""
    try:
        cls = OPTIMIZERS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {sorted(OPTIMIZERS)}") from None
    params = [p for p in params if p.requires_grad] if not isinstance(params, (list, tuple)) or (
        params and isinstance(params[0], torch.Tensor)) else params
    if not params:
        raise ValueError("no trainable parameters were given to the optimizer")
    return cls(params, lr=lr, **kwargs)
