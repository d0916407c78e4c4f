"""Dead-code replacement from a FIFO reservoir of recent latents (the follow-up "NSVQ" paper,
seeds/001; the authors' unused class: reservoir of 16,384 latents, threshold 1, once per epoch).

Usable with any method: ``build_quantizer(name, ..., replacement=dict(threshold=1.0,
reservoir_size=16384, every="epoch"))``. The replacer keeps the last ``reservoir_size`` training
latents and the assignment counts since the last replacement; every ``every`` training forwards
(an int), or at ``on_epoch_end`` (``every="epoch"``; not after the last epoch, where no training
step would follow and only the final evaluation would see the moved codes), codes used fewer than
``threshold`` times are
re-initialised from distinct random reservoir latents and the counts restart (with fewer latents
stored than dead codes, a random subset of the dead codes, one per stored latent, is replaced; the
others wait for the next replacement). The replacement
itself runs at the start of the next training forward (never between a forward and its backward,
which would invalidate saved tensors), or immediately at ``on_epoch_end``. Under torch.distributed
the counts are all-reduced and rank 0's draws are broadcast, so all processes replace alike (the
counts are int64, so the trainer's per-step broadcast of floating buffers leaves each rank's own).

What "replace" means per method (``_replace_codes``):
- vq, nsvq, ema: the code vector is set to the latent (ema also resets its count and sum);
- fc: the low-dim code is set to the normalised projection of the latent (exact in lookup space);
- simvq: the frozen base row is solved for so that W c + b equals the latent (pseudo-inverse);
- transvq: the map mixes all codes, so no base row lands a code on a given latent; the dead code
  copies the base row (and position embedding) of the latent's nearest live code, plus 1% noise.
Optimiser state (e.g. Adam moments) of replaced rows is not reset, here or by the trainer: a revived
code's first updates still carry the moments its dead predecessor left (all committed replacement runs
were trained so).
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from .stats import all_reduce_sum_, distributed_ready


class CodeReplacer(nn.Module):
    def __init__(self, num_codes: int, code_dim: int, *, threshold: float = 1.0,
                 reservoir_size: int = 16384, every="epoch"):
        super().__init__()
        if not (isinstance(threshold, (int, float)) and threshold > 0):
            raise ValueError(f"replacement threshold must be > 0, got {threshold!r}")
        if isinstance(reservoir_size, bool) or not isinstance(reservoir_size, int) or reservoir_size < 1:
            raise ValueError(f"replacement reservoir_size must be an int >= 1, got {reservoir_size!r}")
        if every != "epoch" and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
            raise ValueError(f"replacement every must be 'epoch' or an int >= 1 (training steps), got {every!r}")
        self.num_codes, self.threshold, self.every = num_codes, float(threshold), every
        self.reservoir_size = reservoir_size
        # everything a resumed run needs is a buffer (in the checkpoint): the reservoir, the counts
        # since the last replacement, and (filled, pointer, steps, replacement pending)
        self.register_buffer("reservoir", torch.zeros(reservoir_size, code_dim))
        # int64: each rank's own counts (a floating buffer would be overwritten by rank 0's in the
        # trainer's per-step buffer broadcast, and the all-reduce would then double rank 0's)
        self.register_buffer("counts", torch.zeros(num_codes, dtype=torch.long))
        self.register_buffer("state", torch.zeros(4, dtype=torch.long))

    def _get(self, i: int) -> int:
        return int(self.state[i])

    def _set(self, i: int, v: int) -> None:
        self.state[i] = int(v)

    _filled = property(lambda self: self._get(0), lambda self, v: self._set(0, v))
    _ptr = property(lambda self: self._get(1), lambda self, v: self._set(1, v))
    steps = property(lambda self: self._get(2), lambda self, v: self._set(2, v))
    pending = property(lambda self: bool(self._get(3)), lambda self, v: self._set(3, bool(v)))

    @torch.no_grad()
    def observe(self, z_flat: torch.Tensor, idx: torch.Tensor) -> bool:
        """Push latents into the FIFO and count assignments; True when a replacement is due."""
        x = z_flat.detach().to(self.reservoir.dtype)[-self.reservoir_size:]
        n, r = x.shape[0], self.reservoir_size
        first = min(n, r - self._ptr)
        self.reservoir[self._ptr:self._ptr + first] = x[:first]
        if n > first:
            self.reservoir[: n - first] = x[first:]
        self._ptr = (self._ptr + n) % r
        self._filled = min(r, self._filled + n)
        self.counts += torch.bincount(idx, minlength=self.num_codes).to(self.counts.dtype)
        self.steps += 1
        self.pending = self.every != "epoch" and self.steps % self.every == 0
        return self.pending

    @torch.no_grad()
    def draw(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(dead code indices, one distinct reservoir latent per dead code); resets the counts. With
        fewer latents stored than dead codes, a random subset of the dead codes is returned."""
        counts = all_reduce_sum_(self.counts.clone())
        self.counts.zero_()
        dead = torch.nonzero(counts < self.threshold).reshape(-1)
        filled = self._filled
        if distributed_ready():              # the fewest stored on any rank: every rank draws as many
            f = torch.tensor([filled], device=self.state.device)
            dist.all_reduce(f, op=dist.ReduceOp.MIN)
            filled = int(f)
        if dead.numel() == 0 or filled == 0:
            return dead[:0], self.reservoir[:0]
        dev = self.reservoir.device
        if filled < dead.numel():            # one latent per code: replace as many as are stored
            dead = dead[torch.randperm(dead.numel(), device=dead.device)[:filled]].sort().values
            if distributed_ready():
                dist.broadcast(dead, src=0)
        pick = torch.randperm(filled, device=dev)[: dead.numel()]
        latents = self.reservoir[pick].clone()
        if distributed_ready():
            dist.broadcast(latents, src=0)
        return dead, latents

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}, reservoir_size={self.reservoir_size}, every={self.every!r}"
