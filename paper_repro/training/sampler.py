"""Data order as a pure function of (seed, epoch): resuming mid-epoch replays the same batches.

Each epoch draws one permutation of the training indices from a generator seeded by
``SeedSequence([seed, epoch])`` (independent of every global random state). With ``world_size``
ranks the permutation is cut into ``world_size`` interleaved shards (rank r takes positions
r, r + W, ...); the tail that does not fill a whole global batch is dropped (drop_last).
"""
from __future__ import annotations

import numpy as np
import torch


class EpochSampler:
    def __init__(self, num_items: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        if num_items < batch_size * world_size:
            raise ValueError(f"training set has {num_items} images, fewer than one global batch "
                             f"({batch_size} x {world_size} ranks); lower batch_size or add data")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} out of range for world_size {world_size}")
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.rank, self.world_size = rank, world_size

    @property
    def steps_per_epoch(self) -> int:
        return self.num_items // (self.batch_size * self.world_size)

    def epoch_seed(self, epoch: int) -> int:
        return int(np.random.SeedSequence([self.seed, epoch]).generate_state(1, dtype=np.uint64)[0] >> 1)

    def permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.epoch_seed(epoch))
        return torch.randperm(self.num_items, generator=g)

    def rank_indices(self, epoch: int) -> torch.Tensor:
        """This rank's indices for ``epoch``, shape (steps_per_epoch, batch_size)."""
        n = self.steps_per_epoch * self.batch_size * self.world_size
        perm = self.permutation(epoch)[:n]
        return perm[self.rank::self.world_size].reshape(self.steps_per_epoch, self.batch_size)
