"""Action distributions: the Negotiation's tanh-squashed normal (SPEC section 7), and sampling with a generator.

Discrete games use ``torch.distributions.Categorical``; the Negotiation's proposals use
:class:`TanhNormal`. :func:`sample_action` draws from either with an explicit generator
(so a run is reproducible and resumable), :func:`greedy_action` takes the most likely
action and :func:`entropy` gives the entropy the losses regularise.


The actor outputs a mean parameter ``m`` per item; with one learned ``log_std``::

    x ~ Normal(loc = 2 * tanh(m), scale = exp(log_std))      (latent, per item)
    a = 2.5 * tanh(x) + 2.5                                   (proposal in [0, 5])

The density of a proposal follows from the change of variables ``x = atanh(u)``,
``u = (a - 2.5) / 2.5``::

    log p(a) = log N(x; loc, scale) - log|da/dx|
    log|da/dx| = log 2.5 + log(1 - tanh(x)^2) = log 2.5 + 2 * (log 2 - x - softplus(-2x))

summed over the items (last dim).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Normal

__all__ = ["TanhNormal", "SCALE", "LOW", "HIGH", "sample_action", "greedy_action", "entropy"]

#: Half-width and centre of the proposal range: ``a = SCALE * tanh(x) + SCALE``.
SCALE = 2.5
LOW, HIGH = 0.0, 5.0
_LOG_SCALE = math.log(SCALE)
_LOG2 = math.log(2.0)


def _log_abs_det_jacobian(x: Tensor) -> Tensor:
    """``log|da/dx| = log 2.5 + log(1 - tanh(x)^2)``, in the stable softplus form."""
    return _LOG_SCALE + 2.0 * (_LOG2 - x - F.softplus(-2.0 * x))


class TanhNormal:
    """Squashed Normal over proposals in [0, 5] (Negotiation actor, SPEC section 7).

    Args:
        mean_param: ``m``, shaped ``[..., n_items]`` (n_items = 3 in the game). The
            latent mean is ``2 * tanh(m)`` (so it stays in (-2, 2)).
        log_std: ``[n_items]`` (one shared set, broadcast over the batch) or
            ``[..., n_items]``; ``scale = exp(log_std)``.
        eps: proposals are clamped into ``[eps, 5 - eps]`` before ``atanh`` in
            :meth:`log_prob` (exact 0 and 5 are reachable in floating point).

    Attributes: ``loc`` and ``scale`` (both ``[..., n_items]``), ``base`` (the latent
    ``torch.distributions.Normal``), ``batch_shape`` (``m.shape[:-1]``),
    ``event_shape`` (``(n_items,)``).

    Log-probabilities and entropies are summed over the items: shape ``batch_shape``.
    """

    def __init__(self, mean_param: Tensor, log_std: Tensor, eps: float = 1e-6):
        if mean_param.dim() < 1:
            raise ValueError("mean_param must have a trailing items dim: [..., n_items]")
        self.mean_param = mean_param
        loc = 2.0 * torch.tanh(mean_param)
        scale = torch.exp(log_std).to(device=loc.device, dtype=loc.dtype)
        self.loc, self.scale = torch.broadcast_tensors(loc, scale)
        self.base = Normal(self.loc, self.scale, validate_args=False)
        self.eps = float(eps)

    @property
    def batch_shape(self) -> torch.Size:
        return self.loc.shape[:-1]

    @property
    def event_shape(self) -> torch.Size:
        return self.loc.shape[-1:]

    # ---- sampling --------------------------------------------------------------------

    @staticmethod
    def squash(x: Tensor) -> Tensor:
        """Latent to proposal: ``2.5 * tanh(x) + 2.5``."""
        return SCALE * torch.tanh(x) + SCALE

    def unsquash(self, a: Tensor) -> Tensor:
        """Proposal to latent: ``atanh((a - 2.5) / 2.5)`` after clamping ``a`` into
        ``[eps, 5 - eps]``, computed as ``0.5 * (log a - log(5 - a))`` (accurate near
        both bounds)."""
        a = a.to(self.loc.dtype).clamp(LOW + self.eps, HIGH - self.eps)
        return 0.5 * (torch.log(a) - torch.log(HIGH - a))

    def sample(self, sample_shape: tuple[int, ...] = ()) -> Tensor:
        """Proposal ``[*sample_shape, ..., n_items]`` in [0, 5], without gradient."""
        with torch.no_grad():
            return self.squash(self.base.sample(torch.Size(sample_shape)))

    def rsample(self, sample_shape: tuple[int, ...] = ()) -> Tensor:
        """Reparameterised proposal (gradient flows to ``m`` and ``log_std``)."""
        return self.squash(self.base.rsample(torch.Size(sample_shape)))

    def rsample_with_latent(self, sample_shape: tuple[int, ...] = ()) -> tuple[Tensor, Tensor]:
        """``(proposal, latent x)``; use :meth:`log_prob_latent` on ``x`` for an exact
        log-probability that needs no ``atanh``."""
        x = self.base.rsample(torch.Size(sample_shape))
        return self.squash(x), x

    # ---- densities -------------------------------------------------------------------

    def log_prob_latent(self, x: Tensor) -> Tensor:
        """Log-density of the proposal ``squash(x)`` given its latent ``x``, summed over
        the items: ``sum_items [log N(x) - log 2.5 - log(1 - tanh(x)^2)]``."""
        return (self.base.log_prob(x) - _log_abs_det_jacobian(x)).sum(-1)

    def log_prob(self, a: Tensor) -> Tensor:
        """Log-density of a proposal ``a`` in [0, 5] (``[..., n_items]``), summed over the
        items (result ``[...]``). ``a`` is clamped into ``[eps, 5 - eps]`` first, so 0
        and 5 give finite values and finite gradients (the gradient w.r.t. ``a`` is 0
        outside the clamp range)."""
        return self.log_prob_latent(self.unsquash(a))

    def base_entropy(self) -> Tensor:
        """Closed-form entropy of the latent Normal, summed over items (``batch_shape``).
        This is NOT the proposal's entropy (the tanh squashing lowers it); it is the
        usual cheap regulariser on ``log_std``."""
        return self.base.entropy().sum(-1)

    def entropy(self, n_samples: int = 1) -> Tensor:
        """Monte-Carlo estimate of the proposal's entropy, ``-E[log p(a)]``, summed over
        items (``batch_shape``), from ``n_samples`` reparameterised samples (so it is
        differentiable). Uses the latent directly (no clamp, no ``atanh``)."""
        x = self.base.rsample(torch.Size([n_samples]))
        return -self.log_prob_latent(x).mean(0)

    # ---- point estimates -------------------------------------------------------------

    def mode(self) -> Tensor:
        """Deterministic proposal ``2.5 * tanh(2 * tanh(m)) + 2.5`` (the squashed latent
        mean; used for greedy evaluation)."""
        return self.squash(self.loc)

    deterministic = mode

    def __repr__(self) -> str:
        return f"TanhNormal(batch_shape={tuple(self.batch_shape)}, event_shape={tuple(self.event_shape)})"


def sample_action(dist, generator: torch.Generator) -> Tensor:
    """Draw from ``dist`` (a ``Categorical`` or a :class:`TanhNormal`) with an explicit generator."""
    if isinstance(dist, TanhNormal):
        noise = torch.randn(dist.loc.shape, generator=generator, device=dist.loc.device)
        return TanhNormal.squash(dist.loc + dist.scale * noise).detach()
    probs = dist.probs
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).view(probs.shape[:-1])


def greedy_action(dist) -> Tensor:
    """The most likely action: the squashed mean of a :class:`TanhNormal`, the argmax of a ``Categorical``."""
    return dist.mode() if isinstance(dist, TanhNormal) else dist.probs.argmax(-1)


def entropy(dist) -> Tensor:
    """The entropy bonus's entropy: the latent normal's for a :class:`TanhNormal` (closed form,
    see :meth:`TanhNormal.base_entropy`), the exact one for a ``Categorical``."""
    return dist.base_entropy() if isinstance(dist, TanhNormal) else dist.entropy()
