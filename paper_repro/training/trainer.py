"""Train one VQ autoencoder from a ``TrainConfig``: resumable, checked for NaN, DDP-aware.

Objective (paper Sec. 4): ``loss = MSE(recon, x) + quantizer loss`` (the quantizer's own loss: the
codebook / commitment terms of Eq. 3, the NS-VQ kernel term of Eq. 16-17, ... as built by
``paper_repro.quantizers``); ``recon_loss="l1"`` swaps the MSE for the mean absolute error (the
authors' ImageNet code, Table 6), and the refinement stage (``training/refine.py``) adds LPIPS and
GAN terms. Optimiser: Adam (lr 5e-4, paper), ExponentialLR gamma 0.995 per epoch and
gradient-norm clipping at 1.0 (authors' code; the paper does not state them).

Per epoch: ``q.on_epoch_end(epoch, final)`` (NS-VQ's kernel width decay, 2 sigma^2 <- 0.9 * 2 sigma^2; an
epoch-end dead-code replacement, except after the last epoch, where no training step would follow), the
learning-rate step, and, with ``freeze_encoder_at_epoch``, the follow-up paper's stage-wise encoder
freezing (encoder parameters stop receiving gradients from that epoch on).

Usage is measured twice, under explicit names: ``train_epoch_usage`` is the fraction of codes
selected at least once over one epoch's training batches (the authors' CelebA definition);
``eval_usage`` is the fraction selected over the evaluation split after training (the authors'
ImageNet definition, and the one this project reports by default).

Structure: :func:`train` builds one ``_Run`` and calls its phases in order, setup (device, model and
optimiser, data) -> ``restore`` -> ``fit`` (``fit_epoch`` -> ``training_step`` per batch, then
``end_epoch``) -> ``record``; what has been done lives in one :class:`RunState`. Tests reach into a
run through :class:`Callbacks` (``StopAfter`` simulates a kill, ``InjectNaN`` poisons a loss).

Resumption is exact on the CPU: a checkpoint holds the model, optimiser, scheduler, all RNG states,
the data position (epoch, step within the epoch; the epoch's order is a function of (seed, epoch)),
the running epoch accumulators and the history. Checkpoints are written atomically, only after the
losses since the previous check were verified finite, so a NaN never overwrites a good checkpoint.
"""
from __future__ import annotations

import dataclasses
import io
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from . import ddp
from .checkpoint import atomic_torch_save, atomic_write_bytes, atomic_write_json, load_checkpoint, \
    rng_state, set_rng_state
from .config import RECON_LOSSES, TrainConfig, config_hash
from .sampler import EpochSampler
from ..quantizers.stats import usage_summary

RECORD_SCHEMA = "paper_repro.run/1"
CHECKPOINT_NAME = "checkpoint.pt"
RECORD_NAME = "record.json"
SAMPLES_NAME = "samples.png"


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or Inf. The last good checkpoint (if any) is left untouched."""

    def __init__(self, message, step=None, epoch=None, terms=None, checkpoint=None):
        super().__init__(message)
        self.step, self.epoch, self.terms, self.checkpoint = step, epoch, terms or [], checkpoint


class DeviceUnavailableError(ValueError):
    """The config names a device this machine does not have."""


class TrainingInterrupted(RuntimeError):
    """The run stopped early (deadline or SIGTERM) after saving a resumable checkpoint."""

    def __init__(self, message, checkpoint=None, step=None):
        super().__init__(message)
        self.checkpoint, self.step = checkpoint, step


# -- stop requests (SIGTERM / deadline) ----------------------------------------------------------
_STOP_REQUESTED = False


def request_stop(*_args) -> None:
    global _STOP_REQUESTED
    _STOP_REQUESTED = True


def install_signal_handlers() -> None:
    """SIGTERM / SIGINT: finish the current step, checkpoint, exit (used by the CLI worker)."""
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)


# -- model and data ------------------------------------------------------------------------------
def build_model(cfg: TrainConfig) -> torch.nn.Module:
    """``VQAutoencoder(encoder, quantizer, decoder)`` from the config."""
    from ..backbones import VQAutoencoder, build_backbone
    from ..quantizers import build_quantizer

    encoder, decoder = build_backbone(cfg.backbone, cfg.code_dim, width=cfg.width, **cfg.backbone_options)
    quantizer = build_quantizer(cfg.quantizer, num_codes=cfg.num_codes, code_dim=cfg.code_dim,
                                **cfg.quantizer_options)
    return VQAutoencoder(encoder, quantizer, decoder, input_mapping=cfg.input_mapping)


class _AugmentedImages:
    """Training images drawn through an augmenting Dataset, one batch at a time, in this process
    (the transforms draw from torch's global RNG, which checkpoints save: resume stays exact)."""

    def __init__(self, dataset, image_size):
        self.dataset, self.device = dataset, torch.device("cpu")
        self.shape = (len(dataset), 3, image_size, image_size)
        self.dtype = torch.float32

    def dim(self):
        return 4

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, idx):
        return torch.stack([self.dataset[int(i)] for i in idx])

    def to(self, *args, **kwargs):
        return self


def load_data(cfg: TrainConfig):
    """(train, eval) image sets: uint8 tensors (N, 3, H, W), whole splits held in memory. With
    ``augment="official"`` the training set is an augmenting Dataset read batch by batch."""
    from ..data import build_dataset, load_tensor_dataset

    if cfg.augment == "none":
        train = load_tensor_dataset(cfg.dataset, "train", root=cfg.data_root, image_size=cfg.image_size,
                                    limit=cfg.train_images, seed=cfg.data_seed)
    else:
        train = _AugmentedImages(build_dataset(cfg.dataset, "train", root=cfg.data_root,
                                               image_size=cfg.image_size, augment=cfg.augment,
                                               limit=cfg.train_images, seed=cfg.data_seed), cfg.image_size)
    evals = load_tensor_dataset(cfg.dataset, cfg.eval_split, root=cfg.data_root,
                                image_size=cfg.image_size, limit=cfg.eval_images, seed=cfg.data_seed)
    return train, evals


def data_fingerprint(cfg: TrainConfig) -> dict:
    """Where the run's data come from and their fingerprint (``paper_repro.data.fingerprint``)."""
    from ..data import fingerprint

    return fingerprint(cfg.dataset, cfg.data_root)


def _check_images(t, what: str, cfg: TrainConfig):
    if not isinstance(t, (torch.Tensor, _AugmentedImages)) or t.dim() != 4 or t.shape[1] != 3:
        raise ValueError(f"{what} images must be a tensor of shape (N, 3, H, W), got "
                         f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
    if t.shape[-2:] != (cfg.image_size, cfg.image_size):
        raise ValueError(f"{what} images are {tuple(t.shape[-2:])}, config says image_size={cfg.image_size}")
    if len(t) == 0:
        raise ValueError(f"{what} split is empty")
    return t


def _to_float(batch: torch.Tensor) -> torch.Tensor:
    return batch.float().div_(255.0) if batch.dtype == torch.uint8 else batch.float()


def _quantizer(model):
    q = getattr(model, "quantizer", None)
    if q is None:
        raise AttributeError("model has no .quantizer (expected a VQAutoencoder)")
    return q


def _encoder(model):
    enc = getattr(model, "encoder", None)
    if enc is None:
        raise AttributeError("model has no .encoder; freeze_encoder_at_epoch needs one")
    return enc


# -- the loop ------------------------------------------------------------------------------------
class _EpochAccumulator:
    """Running sums of one epoch (device tensors, no host sync per step)."""

    def __init__(self, num_codes: int, device):
        self.loss = torch.zeros(3, dtype=torch.float64, device=device)  # total, recon, quantizer
        self.counts = torch.zeros(num_codes, dtype=torch.int64, device=device)
        self.steps = 0
        self.images = 0
        self.stats: dict[str, float] = {}

    def state(self) -> dict:
        return {"loss": self.loss.cpu(), "counts": self.counts.cpu(), "steps": self.steps,
                "images": self.images, "stats": dict(self.stats)}

    def load(self, s: dict) -> None:
        self.loss.copy_(s["loss"])
        self.counts.copy_(s["counts"])
        self.steps, self.images, self.stats = int(s["steps"]), int(s["images"]), dict(s["stats"])


def trace_steps(total_steps: int) -> list[int]:
    """Global steps at which a run's short trace is taken: 1, 2, 5, 10, 20, 50, ... (1-2-5 per
    decade) up to ``total_steps``, and ``total_steps`` itself. Each point holds the means over the
    steps since the previous point, so the trace is the run's loss curve in a dozen numbers; the
    reproduction test compares a re-run against it (early points agree across float kernels to
    ~1e-5, late ones drift as training amplifies last-bit differences)."""
    out, decade = [], 1
    while decade <= total_steps:
        out += [m * decade for m in (1, 2, 5) if m * decade <= total_steps]
        decade *= 10
    if total_steps > 0 and (not out or out[-1] != total_steps):
        out.append(total_steps)
    return out


def _trace_point(step: int, win: "_EpochAccumulator") -> dict:
    n = max(win.steps, 1)
    loss, recon, qloss = (win.loss / n).tolist()
    return {"step": step, "window_steps": win.steps, "loss": loss, "recon_loss": recon,
            "quantizer_loss": qloss, "window_usage": usage_summary(win.counts)["usage"]}


def train(cfg: TrainConfig, run_dir=None, resume: bool = True, deadline: float | None = None,
          data=None, model_factory=None, callbacks: "Callbacks | None" = None) -> dict:
    """Train (or resume) the run described by ``cfg``; return its record (also written to
    ``run_dir/record.json`` with reconstructions in ``run_dir/samples.png``).

    run_dir: checkpoints and the record go here (None: no checkpoints, nothing written).
    resume: continue from ``run_dir/checkpoint.pt`` when it exists (else start fresh and overwrite).
    deadline: a ``time.time()`` value; past it the run checkpoints and raises ``TrainingInterrupted``.
    data: optional (train, eval) tensors instead of ``load_data(cfg)``.
    model_factory: optional ``cfg -> VQAutoencoder`` instead of ``build_model``.
    callbacks: optional :class:`Callbacks` (tests: :class:`StopAfter` simulates a kill,
    :class:`InjectNaN` poisons a loss).
    """
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"train() needs a TrainConfig, got {type(cfg).__name__}")
    # cfg.num_threads applies for this run only (restored after): small CPU runs are far faster,
    # and immune to oversubscription when other processes share the cores, with one thread.
    previous_threads = torch.get_num_threads()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    # one lock per run folder, held by rank 0 (all DDP ranks share the folder)
    lock = RunLock(run_dir) if run_dir is not None and int(os.environ.get("RANK", "0")) == 0 else None
    try:
        if lock is not None:
            lock.acquire()
        return _train(cfg, run_dir, resume, deadline, data, model_factory, callbacks)
    finally:
        if lock is not None:
            lock.release()
        torch.set_num_threads(previous_threads)


class RunLockedError(RuntimeError):
    """Another live process is training in this run folder."""


class RunLock:
    """``run_dir/.lock`` holding the owner's pid, created exclusively: two processes (two sweeps
    on one store) never train in one run folder at once. A lock whose process is gone is stale and
    taken over."""

    def __init__(self, run_dir):
        self.path = Path(run_dir) / ".lock"
        self.held = False

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    pid = int(self.path.read_text().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid and pid != os.getpid() and _alive(pid):
                    raise RunLockedError(f"run folder {self.path.parent} is in use by process {pid} "
                                         f"(lock {self.path}); wait for it, or stop it") from None
                self.path.unlink(missing_ok=True)      # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            self.held = True
            return
        raise RunLockedError(f"could not take the lock {self.path}")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- run state and hooks -----------------------------------------------------------------------------
@dataclass
class RunState:
    """What a run has done so far; checkpointed (as a dict) and restored with the weights."""
    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    history: list = field(default_factory=list)    # one summary per epoch (and per partial epoch)
    train_seconds: float = 0.0
    train_images: int = 0
    resumes: int = 0
    trace: list = field(default_factory=list)      # the short loss trace (trace_steps)
    probes: list = field(default_factory=list)     # training probes (probe_every; training/probes.py)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunState":
        base = cls()
        return cls(**{f.name: d.get(f.name, getattr(base, f.name)) for f in dataclasses.fields(cls)})


class Callbacks:
    """Hooks into a run, all no-ops here; tests subclass them to simulate faults."""

    def loss_terms(self, run: "_Run", recon_loss: torch.Tensor, q_loss: torch.Tensor):
        """The (reconstruction, quantizer) loss terms of the step about to be taken."""
        return recon_loss, q_loss

    def stop_now(self, run: "_Run") -> bool:
        """True: end the process here as a kill would (no checkpoint, status "killed")."""
        return False


class StopAfter(Callbacks):
    """Simulate a kill after optimiser step ``step`` (progress since the last checkpoint is lost)."""

    def __init__(self, step: int):
        self.step = step

    def stop_now(self, run):
        return run.st.global_step >= self.step


class InjectNaN(Callbacks):
    """Poison the quantizer loss of optimiser step ``step`` (0-based) with NaN."""

    def __init__(self, step: int):
        self.step = step

    def loss_terms(self, run, recon_loss, q_loss):
        return recon_loss, (q_loss * float("nan") if run.st.global_step == self.step else q_loss)


class _Killed(Exception):
    """A simulated kill (Callbacks.stop_now)."""


# -- one run, in phases: setup, restore, fit (epochs of steps), end of epoch, record ------------------
class _Run:
    def __init__(self, cfg: TrainConfig, run_dir, resume: bool, deadline, data, model_factory, callbacks):
        self.cfg, self.resume, self.deadline, self.model_factory = cfg, resume, deadline, model_factory
        self.callbacks = callbacks or Callbacks()
        self.t_wall0 = time.perf_counter()
        self.chash = config_hash(cfg)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.ckpt_path = self.run_dir / CHECKPOINT_NAME if self.run_dir is not None else None
        self.st = RunState()
        # losses not yet checked: (step, epoch, reconstruction, quantizer, refinement terms incl. the
        # discriminator's, 0 outside the refinement stage)
        self.pending: list[tuple[int, int, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.last_good = {"path": None, "step": None}
        self.epoch_eval = None       # (global step, metrics, samples) of the last per-epoch evaluation
        self._setup_device()
        self._setup_model()
        self._setup_data(data)

    # -- setup ------------------------------------------------------------------------------------
    def _setup_device(self) -> None:
        cfg = self.cfg
        self.rank, local_rank, self.world, self.own_group = ddp.init_from_env(cfg.device)
        device = torch.device(cfg.device)
        if device.type == "cuda":
            if not torch.cuda.is_available():
                raise DeviceUnavailableError(f"config asks for device {cfg.device!r} but CUDA is not available "
                                             f"here (torch {torch.__version__}); use --device cpu")
            if self.world > 1:
                device = torch.device("cuda", local_rank)
            elif device.index is None:      # plain "cuda": the current device, by index (set_device
                device = torch.device("cuda", torch.cuda.current_device())  # refuses an index-less one)
            torch.cuda.set_device(device)
        if cfg.deterministic and device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
            torch.use_deterministic_algorithms(True, warn_only=True)
        elif device.type == "cuda":
            torch.backends.cudnn.benchmark = True      # fixed shapes: let cuDNN pick the fastest kernels
        self.device, self.is_main = device, self.rank == 0
        self.layout = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.use_amp = cfg.amp == "bf16"
        self.check_every = cfg.nonfinite_check_every or (1 if device.type == "cpu" else 25)

    def _setup_model(self) -> None:
        cfg = self.cfg
        from ..utils import seed_everything
        seed_everything(cfg.seed)
        model = (self.model_factory or build_model)(cfg).to(self.device)
        if cfg.channels_last:
            model = model.to(memory_format=self.layout)
        self.model, self.q = model, _quantizer(model)
        ddp.broadcast_module(model)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas,
                                          weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, gamma=cfg.lr_gamma)
        self.refiner = None
        if cfg.refine_from_epoch is not None:
            if self.world > 1:
                raise ValueError("the adversarial refinement stage (refine_from_epoch) runs in one process, not DDP")
            from .refine import Refiner
            self.refiner = Refiner(cfg, self.device, decoder=getattr(model, "decoder", None))

    def _setup_data(self, data) -> None:
        cfg = self.cfg
        if self.is_main:
            preflight_metrics(cfg, self.device)
        train_x, eval_x = data if data is not None else load_data(cfg)
        self.data_info = {"dataset": cfg.dataset, "source": "tensors passed to train()"} if data is not None \
            else data_fingerprint(cfg)
        train_x = _check_images(train_x, "training", cfg)
        self.eval_x = _check_images(eval_x, "evaluation", cfg)
        if self.device.type == "cuda":
            train_x = train_x.to(self.device, non_blocking=True)
        self.train_x = train_x
        self.sampler = EpochSampler(len(train_x), cfg.batch_size, cfg.seed, self.rank, self.world)
        self.spe = self.sampler.steps_per_epoch
        self.total_steps = cfg.epochs * self.spe if cfg.max_steps is None else min(cfg.max_steps, cfg.epochs * self.spe)
        self.acc = _EpochAccumulator(cfg.num_codes, self.device)
        self.win = _EpochAccumulator(cfg.num_codes, self.device)      # since the last trace point
        self.tracing = set(trace_steps(self.total_steps))
        self.probe = None
        if cfg.probe_every and self.is_main:
            from .probes import LatentProbe
            self.probe = LatentProbe(self.eval_x[:cfg.probe_images], cfg.probe_every, self.device)

    # -- restore / checkpoint -----------------------------------------------------------------------
    def restore(self) -> None:
        """Continue from ``run_dir/checkpoint.pt`` when resuming and it exists."""
        if self.resume and self.ckpt_path is not None and self.ckpt_path.exists():
            ck = load_checkpoint(self.ckpt_path, map_location=self.device)
            if ck.get("config_hash") != self.chash:
                raise ValueError(f"checkpoint {self.ckpt_path} belongs to config {ck.get('config_hash')}, "
                                 f"not {self.chash}; delete it or use resume=False")
            self.model.load_state_dict(ck["model"])
            self.optimizer.load_state_dict(ck["optimizer"])
            if self.refiner is not None:
                self.refiner.load_state_dict(ck["refiner"])
            self.scheduler.load_state_dict(ck["scheduler"])
            self.acc.load(ck["accumulator"])
            if "trace_window" in ck:
                self.win.load(ck["trace_window"])
            if self.probe is not None:
                self.probe.load(ck.get("probe"))
            self.st = RunState.from_dict(ck["state"])
            self.st.resumes += 1
            set_rng_state(ck["rng"])
            ddp.broadcast_module(self.model)
            self.last_good = {"path": str(self.ckpt_path), "step": self.st.global_step}
        ddp.barrier()
        from ..provenance import git_commit
        self.commit = git_commit()      # the code this process imported when it (re)started the run

    def check_finite(self) -> None:
        """Raise NonFiniteLossError naming the first step since the last check whose loss is not finite."""
        if not self.pending:
            return
        vals = torch.stack([torch.stack([r.float(), qq.float(), rf.float().to(r.device)])
                            for _, _, r, qq, rf in self.pending])
        ok = torch.isfinite(vals).all(dim=1)
        if bool(ok.all()):
            self.pending.clear()
            return
        step, epoch, r, qq, rf = self.pending[int((~ok).nonzero()[0, 0])]
        terms = [n for n, v in (("reconstruction (MSE)", r), ("quantizer", qq), ("refinement (LPIPS / GAN)", rf))
                 if not torch.isfinite(v)]
        raise NonFiniteLossError(
            f"non-finite loss at step {step} (epoch {epoch}, step {step - epoch * self.spe} of {self.spe}) in the "
            f"{' and '.join(terms)} term(s): reconstruction={r.item()!r}, quantizer={qq.item()!r}, "
            f"refinement={rf.item()!r} "
            f"[quantizer {self.cfg.quantizer!r}, config {self.chash}]; {_last_good(self.last_good)}",
            step=step, epoch=epoch, terms=terms, checkpoint=self.last_good["path"])

    def save(self) -> None:
        """Checkpoint atomically, after checking that every loss since the last one is finite."""
        if self.ckpt_path is None:
            return
        self.check_finite()
        if self.is_main:
            atomic_torch_save({
                "format": RECORD_SCHEMA, "config": self.cfg.to_dict(), "config_hash": self.chash,
                "git_commit": self.commit,
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "rng": rng_state(),
                "accumulator": self.acc.state(), "trace_window": self.win.state(), "state": self.st.to_dict(),
                "refiner": self.refiner.state_dict() if self.refiner is not None else None,
                "probe": self.probe.state() if self.probe is not None else None,
            }, self.ckpt_path)
        ddp.barrier()
        self.last_good.update(path=str(self.ckpt_path), step=self.st.global_step)

    def _account(self) -> None:
        """Add the training time and images since the last call to the run state."""
        now = time.perf_counter()
        self.st.train_seconds += now - self.t_seg
        self.st.train_images += self.seg_images
        self.t_seg, self.seg_images = now, 0

    # -- fit ----------------------------------------------------------------------------------------
    def fit(self) -> None:
        """Train epoch by epoch to ``total_steps``, checkpointing; raise TrainingInterrupted when told
        to stop, _Killed on a simulated kill."""
        cfg = self.cfg
        progress = cfg.progress if cfg.progress is not None else sys.stderr.isatty()
        self.bar = None
        if progress and self.is_main:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=self.total_steps, initial=self.st.global_step,
                            desc=f"{cfg.quantizer} {self.chash}", leave=False)
        self.t_seg, self.seg_images = time.perf_counter(), 0
        if self.st.global_step == 0 and (n_init := self.q.data_init_images()):
            self._data_init(n_init)
        if self.probe is not None and not self.st.probes and bool(getattr(self.q, "initialized", True)):
            self.take_probe(self.st.epoch)          # the state at initialisation (step 0)
        try:
            while self.st.epoch < cfg.epochs and self.st.global_step < self.total_steps:
                self.fit_epoch(self.st.epoch)
            if self.acc.steps > 0:       # resumed after a stop on the run's last step, before its epoch summary:
                self.fit_epoch(self.st.epoch)   # no step is left, so this only ends the epoch
        finally:
            if self.bar is not None:
                self.bar.close()

    @torch.no_grad()
    def _data_init(self, n: int) -> None:
        """k-means initialisation on the untrained encoder's latents of the first ``n`` training images
        (dataset order: no random state is used to choose them)."""
        if n > len(self.train_x):
            raise ValueError(f"kmeans_images={n} but the training set has {len(self.train_x)} images")
        model = getattr(self.model, "module", self.model)
        bs = self.cfg.eval_batch_size
        latents = [model.encode(_to_float(self.train_x[i:i + bs].to(self.device))) for i in range(0, n, bs)]
        self.q.init_kmeans(torch.cat(latents))

    def fit_epoch(self, epoch: int) -> None:
        cfg, st = self.cfg, self.st
        frozen = cfg.freeze_encoder_at_epoch is not None and epoch >= cfg.freeze_encoder_at_epoch
        if cfg.freeze_encoder_at_epoch is not None:
            _encoder(self.model).requires_grad_(not frozen)
        self.model.train()
        order = self.sampler.rank_indices(epoch).to(self.train_x.device)
        while st.step_in_epoch < self.spe and st.global_step < self.total_steps:
            x = _to_float(self.train_x[order[st.step_in_epoch]].to(self.device, non_blocking=True))
            self.training_step(x.contiguous(memory_format=self.layout), epoch)
            stopped = self._after_step()
            if stopped:
                self._account()
                self.save()
                raise TrainingInterrupted(
                    f"run {self.chash} stopped at step {st.global_step}/{self.total_steps} ({stopped}); "
                    f"resume to continue", checkpoint=str(self.ckpt_path) if self.ckpt_path else None,
                    step=st.global_step)
        self.end_epoch(epoch, frozen)

    def _forward(self, x: torch.Tensor, epoch: int) -> dict:
        try:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_amp):
                return self.model(x)
        except (ValueError, RuntimeError) as e:
            self.check_finite()   # a NaN loss a few steps back poisoned the weights: report that
            weights_ok = _weights_finite(self.model)
            if "NaN or Inf" in str(e) or not weights_ok:
                raise NonFiniteLossError(
                    f"training diverged after {self.st.global_step} optimiser step(s) (epoch {epoch}): "
                    f"{'the latents' if weights_ok else 'the weights'} became NaN or Inf after the last "
                    f"update ({e}) [quantizer {self.cfg.quantizer!r}, lr {self.cfg.lr:g}, config "
                    f"{self.chash}]; {_last_good(self.last_good)}",
                    step=self.st.global_step, epoch=epoch, terms=["latents"],
                    checkpoint=self.last_good["path"]) from None
            raise

    def training_step(self, x: torch.Tensor, epoch: int) -> None:
        """One optimiser step on batch ``x``: loss, backward, (all-reduce), clip, warm-up, step; then
        the running sums (on the device: no host sync)."""
        cfg, model, opt = self.cfg, self.model, self.optimizer
        out = self._forward(x, epoch)
        qo = out["quantizer_output"]
        recon_loss, q_loss = self.callbacks.loss_terms(self, RECON_LOSSES[cfg.recon_loss](out["recon"].float(), x),
                                                       qo.loss.float())
        loss = recon_loss + q_loss
        refining = self.refiner is not None and self.refiner.active(epoch)
        if refining:
            extra, logged = self.refiner.generator_terms(x, out["recon"].float(), recon_loss)
            loss = loss + sum(extra.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        ddp.allreduce_gradients(model.parameters())
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        if cfg.warmup_steps:
            for group in opt.param_groups:
                group["lr"] = learning_rate(cfg, self.st.global_step, self.st.epoch)
        opt.step()
        refine = torch.zeros((), device=loss.device)
        if refining:
            extra["gan_d"] = self.refiner.discriminator_step(x, out["recon"].float())
            refine = sum(v.detach().float() for v in extra.values())   # checked for finiteness with the rest
            for k, v in {**extra, **logged}.items():
                self.acc.stats[f"refine_{k}"] = self.acc.stats.get(f"refine_{k}", 0.0) + float(v.detach())
        ddp.broadcast_module(model, buffers_only=True)
        self._accumulate(x, qo, loss, recon_loss, q_loss, epoch, refine)

    def _accumulate(self, x, qo, loss, recon_loss, q_loss, epoch, refine=None) -> None:
        acc, win, st = self.acc, self.win, self.st
        with torch.no_grad():
            terms = torch.stack([loss.detach(), recon_loss.detach(), q_loss.detach()]).double()
            hits = torch.bincount(qo.indices.reshape(-1), minlength=self.cfg.num_codes)
            acc.loss += terms
            acc.counts += hits
            win.loss += terms
            win.counts += hits
        win.steps += 1
        for k, v in (qo.stats or {}).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                acc.stats[k] = acc.stats.get(k, 0.0) + float(v)
        acc.steps += 1
        acc.images += x.shape[0]
        self.seg_images += x.shape[0] * self.world
        self.pending.append((st.global_step, epoch, recon_loss.detach(), q_loss.detach(),
                             torch.zeros((), device=recon_loss.device) if refine is None else refine))
        st.global_step += 1
        st.step_in_epoch += 1

    def take_probe(self, epoch: int) -> None:
        """One training-probe measurement (no RNG, no training state), unless this step has one."""
        st = self.st
        if st.probes and st.probes[-1]["step"] == st.global_step:
            return
        t0 = time.perf_counter()
        st.probes.append(self.probe.measure(self.model, st.global_step, epoch, _to_float))
        self.t_seg += time.perf_counter() - t0          # probe time is not training time

    def _after_step(self) -> str | None:
        """Trace point, probe, progress, NaN check, periodic checkpoint; the reason to stop, if any."""
        cfg, st = self.cfg, self.st
        if st.global_step in self.tracing:
            st.trace.append(_trace_point(st.global_step, self.win))
            self.win = _EpochAccumulator(cfg.num_codes, self.device)
        if self.probe is not None and self.probe.due(st.global_step):
            self.take_probe(st.epoch)
        if self.bar is not None:
            self.bar.update(1)
        if len(self.pending) >= self.check_every:
            self.check_finite()
        if cfg.checkpoint_every and st.global_step % cfg.checkpoint_every == 0 and st.step_in_epoch < self.spe:
            self._account()
            self.save()
        if self.callbacks.stop_now(self):
            raise _Killed()
        if _STOP_REQUESTED:
            return "stop requested (SIGTERM)"
        if self.deadline is not None and time.time() >= self.deadline:
            return "deadline reached"
        return None

    def end_epoch(self, epoch: int, frozen: bool) -> None:
        """The epoch's summary (and evaluation with ``eval_every_epoch``); at a full epoch's end the
        quantizer's epoch hook and the learning-rate step; then a checkpoint."""
        cfg, st = self.cfg, self.st
        self.check_finite()
        full_epoch = st.step_in_epoch >= self.spe
        ddp.allreduce_sum_(self.acc.counts)        # sum the usage counts of all ranks
        if ddp.is_distributed():
            self.q.usage.sync()
        self._account()
        entry = self._epoch_summary(epoch, full_epoch, frozen)
        if full_epoch and cfg.eval_every_epoch and self.is_main:
            entry["eval"], samples = evaluate(self.model, self.eval_x, cfg, self.device)  # no RNG, no training state
            self.epoch_eval = (st.global_step, entry["eval"], samples)
            self.model.train()
            self.t_seg = time.perf_counter()          # evaluation time is not training time
        st.history.append(entry)
        self.acc = _EpochAccumulator(cfg.num_codes, self.device)
        if full_epoch and self.probe is not None:
            self.take_probe(epoch)                     # before the epoch hook (the scale just used)
        if full_epoch:
            self.q.on_epoch_end(epoch, final=st.epoch + 1 >= cfg.epochs or st.global_step >= self.total_steps)
            self.scheduler.step()
            st.epoch += 1
            st.step_in_epoch = 0
        self.save()

    def _epoch_summary(self, epoch: int, full_epoch: bool, frozen: bool) -> dict:
        acc = self.acc
        n = max(acc.steps, 1)
        losses = (acc.loss / n).tolist()
        u = usage_summary(acc.counts)
        entry = {"epoch": epoch, "steps": acc.steps, "images": acc.images * self.world,
                 "complete": full_epoch, "lr": self.optimizer.param_groups[0]["lr"],
                 "train_loss": losses[0], "train_recon_loss": losses[1],
                 "train_quantizer_loss": losses[2], "train_epoch_usage": u["usage"],
                 "train_epoch_perplexity": u["perplexity"], "train_epoch_dead_codes": u["dead_codes"],
                 "encoder_frozen": bool(frozen)}
        if self.refiner is not None:
            entry["refining"] = self.refiner.active(epoch)
        entry.update({(k if k.startswith("refine_") else f"q_{k}"): v / n for k, v in acc.stats.items()})
        return entry

    # -- record ---------------------------------------------------------------------------------------
    def record(self) -> dict | None:
        """Final evaluation and the run's record (rank 0; None on the others), written to run_dir."""
        if not self.is_main:
            return None
        cfg, st = self.cfg, self.st
        if self.epoch_eval is not None and self.epoch_eval[0] == st.global_step:
            final, samples = dict(self.epoch_eval[1]), self.epoch_eval[2]     # same weights: evaluated already
        else:
            final, samples = evaluate(self.model, self.eval_x, cfg, self.device)
        from ..provenance import provenance
        prov = provenance(str(self.device), seed=cfg.seed)
        prov["git_commit"] = self.commit
        prov["deterministic_algorithms"] = bool(cfg.deterministic and self.device.type == "cuda") \
            or self.device.type == "cpu"
        prov["world_size"] = self.world
        record = {
            "schema": RECORD_SCHEMA, "status": "complete", "experiment": cfg.experiment,
            "profile": cfg.profile, "config": cfg.to_dict(), "config_hash": self.chash,
            "epochs": st.history, "trace": st.trace, "final": final, "provenance": prov,
            **({"probes": st.probes} if cfg.probe_every else {}),
            "data": self.data_info,
            "steps": st.global_step, "steps_per_epoch": self.spe, "train_images_seen": st.train_images,
            "train_seconds": st.train_seconds,
            "images_per_s": st.train_images / st.train_seconds if st.train_seconds > 0 else None,
            "wall_time_s": None, "resumes": st.resumes,
            "parameters": sum(p.numel() for p in self.model.parameters()),
        }
        record["wall_time_s"] = time.perf_counter() - self.t_wall0
        if self.run_dir is not None:
            if samples is not None:
                atomic_write_bytes(self.run_dir / SAMPLES_NAME, samples)
            atomic_write_json(self.run_dir / RECORD_NAME, record)
        return record

    def close(self) -> None:
        ddp.barrier()
        if self.own_group:
            import torch.distributed as dist
            dist.destroy_process_group()


def _train(cfg, run_dir, resume, deadline, data, model_factory, callbacks):
    run = _Run(cfg, run_dir, resume, deadline, data, model_factory, callbacks)
    run.restore()
    try:
        run.fit()
    except _Killed:
        return {"status": "killed", "config_hash": run.chash, "step": run.st.global_step}
    record = run.record()
    run.close()
    return record


def learning_rate(cfg: TrainConfig, step: int, epoch: int) -> float:
    """The learning rate of optimiser step ``step`` (0-based) in ``epoch``: ``lr * lr_gamma**epoch``
    (ExponentialLR, once per epoch), times ``(step + 1) / warmup_steps`` during the warm-up."""
    lr = cfg.lr * cfg.lr_gamma ** epoch
    if cfg.warmup_steps and step < cfg.warmup_steps:
        lr *= (step + 1) / cfg.warmup_steps
    return lr


def _last_good(last_good: dict) -> str:
    return (f"last good checkpoint kept at {last_good['path']} (step {last_good['step']})"
            if last_good["path"] else "no checkpoint had been written")


def _weights_finite(model) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


# -- evaluation ------------------------------------------------------------------------------------
def preflight_metrics(cfg: TrainConfig, device) -> None:
    """Load the perceptual-metric weights before training, so a missing file fails in seconds
    rather than after a long run (LPIPS AlexNet; VGG16 for the FD proxy unless Inception exists; the
    refinement stage's LPIPS network, which a run would otherwise first load at the stage's first step)."""
    from .. import metrics as M

    if "lpips" in cfg.eval_metrics:
        M.lpips_model("alex", device)
    if cfg.refine_from_epoch is not None and cfg.refine_lpips_weight:
        M.lpips_model(cfg.refine_lpips_net, device)
    if "fd" in cfg.eval_metrics and M.inception_weights_path() is None:
        M.vgg16_features_model(cfg.fd_resize, device)


@torch.no_grad()
def evaluate(model, eval_x: torch.Tensor, cfg: TrainConfig, device) -> tuple[dict, bytes | None]:
    """Eval-set metrics after training, and a PNG of the first ``cfg.num_samples`` reconstructions.

    usage: fraction of the K codes selected over the evaluation split (``eval_usage``), perplexity
    exp(H(p)) of the selection frequencies, dead codes (never selected). psnr / ssim / lpips (AlexNet):
    per-image means (``paper_repro.metrics``; reconstructions clamped to [0, 1]). fd: Frechet distance
    between the evaluation images and their reconstructions, streamed: the real rFID (Inception-v3)
    when its weights are available, else the labelled proxy on VGG16 features (``FD-VGG16``, or
    ``FD-VGG16@native`` with ``fd_resize=None``); the name is stored in ``fd_metric``.
    """
    from ..metrics import ReconstructionMeter

    model.eval()
    meter = ReconstructionMeter(cfg.eval_metrics, cfg.num_codes, fd_resize=cfg.fd_resize, device=device)
    first = None
    use_amp = cfg.amp == "bf16"
    for start in range(0, len(eval_x), cfg.eval_batch_size):
        x = _to_float(eval_x[start:start + cfg.eval_batch_size].to(device))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            out = model(x)
        r = out["recon"].float().clamp(0, 1)
        meter.update(x, r, out["quantizer_output"].indices)
        if first is None and cfg.num_samples:
            first = (x[:cfg.num_samples].cpu(), r[:cfg.num_samples].cpu())
    final = meter.compute()
    for k, v in final.items():
        if isinstance(v, float) and not math.isfinite(v):
            raise NonFiniteLossError(f"evaluation metric {k} is {v} for config {config_hash(cfg)}")
    return final, (_samples_png(*first) if first is not None else None)


def _samples_png(x: torch.Tensor, r: torch.Tensor) -> bytes:
    """Two rows (originals, reconstructions) as PNG bytes."""
    from PIL import Image

    rows = [torch.cat(list(t), dim=2) for t in (x, r)]          # (3, H, k*W)
    grid = torch.cat(rows, dim=1)                                 # (3, 2H, k*W)
    arr = (grid.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()
