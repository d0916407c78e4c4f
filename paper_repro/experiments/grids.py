"""Named experiment grids: ``grid(profile) -> list[TrainConfig]``, registered in ``GRIDS``.

A grid fixes *what* is compared; the profile (``paper_repro.profiles``) fixes the *scale*. Configs
are plain data, so a grid's runs are identified by their config hashes and a sweep can skip what
is already stored.
"""
from __future__ import annotations

from typing import Callable

from ..profiles import get_profile
from ..training.config import TrainConfig, config_hash

GRIDS: dict[str, Callable[[str], list[TrainConfig]]] = {}


def register_grid(name: str):
    def deco(fn):
        if name in GRIDS:
            raise ValueError(f"grid {name!r} is already registered")
        GRIDS[name] = fn
        fn.grid_name = name
        return fn
    return deco


def get_grid(name: str, profile: str, device: str | None = None) -> list[TrainConfig]:
    """The configs of grid ``name`` at ``profile`` (``device`` filled in when given)."""
    if name not in GRIDS:
        raise ValueError(f"unknown grid {name!r}; expected one of: {', '.join(sorted(GRIDS))}")
    prof = get_profile(profile).name
    cfgs = GRIDS[name](prof)
    out = [c.replace(experiment=name, profile=prof, **({"device": device} if device else {}))
           for c in cfgs]
    hs = [config_hash(c) for c in out]
    if len(set(hs)) != len(hs):
        raise ValueError(f"grid {name!r} at profile {prof!r} has duplicate configs")
    return out


def _profile_overrides(profile: str) -> dict:
    """Per-profile bookkeeping that is not in ``Profile``: checkpoint interval, determinism."""
    if profile == "ci":   # one CPU thread: as fast for these tiny ops, and robust to shared cores
        return {"checkpoint_every": 200, "deterministic": True, "num_threads": 1}
    return {"checkpoint_every": 1000, "deterministic": False}


@register_grid("first_run")
def first_run(profile: str) -> list[TrainConfig]:
    """Vanilla VQ vs NS-VQ (paper flavour), K = 1024, D = 64, on the profile's data (Fashion-MNIST
    32x32 at ``ci`` / ``gpu``), one run per profile seed."""
    p = get_profile(profile)
    return [TrainConfig.from_profile(p, quantizer=q, num_codes=1024, code_dim=64, seed=s,
                                     **_profile_overrides(p.name))
            for q in ("vq", "nsvq") for s in p.seeds]
