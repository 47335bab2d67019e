"""Non-saturating logistic GAN losses and the R1 gradient penalty (StyleGAN2; also e4e's latent discriminator)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def g_nonsaturating_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator loss ``softplus(-D(G(z)))``, averaged."""
    return F.softplus(-fake_logits).mean()


def d_logistic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator loss ``softplus(D(fake)) + softplus(-D(real))``, averaged."""
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def r1_penalty(real_logits: torch.Tensor, real_inputs: torch.Tensor) -> torch.Tensor:
    """``E ||grad_x D(x)||^2`` over real inputs (which must require grad); differentiable (create_graph) so the
    penalty trains D. Multiply by ``gamma / 2`` (and the lazy-regularisation interval) yourself."""
    (gradient,) = torch.autograd.grad(real_logits.sum(), real_inputs, create_graph=True)
    return gradient.pow(2).reshape(gradient.shape[0], -1).sum(1).mean()
