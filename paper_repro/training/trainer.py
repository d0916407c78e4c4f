"""Train one VQ autoencoder from a ``TrainConfig``: resumable, checked for NaN, DDP-aware.

Objective (paper Sec. 4): ``loss = MSE(recon, x) + quantizer loss`` (the quantizer's own loss: the
codebook / commitment terms of Eq. 3, the NS-VQ kernel term of Eq. 16-17, ... as built by
``paper_repro.quantizers``). Optimiser: Adam (lr 5e-4, paper), ExponentialLR gamma 0.995 per epoch and
gradient-norm clipping at 1.0 (authors' code; the paper does not state them).

Per epoch: ``q.on_epoch_end(epoch)`` (NS-VQ's kernel width decay, 2 sigma^2 <- 0.9 * 2 sigma^2), the
learning-rate step, and, with ``freeze_encoder_at_epoch``, the follow-up paper's stage-wise encoder
freezing (encoder parameters stop receiving gradients from that epoch on).

Usage is measured twice, under explicit names: ``train_epoch_usage`` is the fraction of codes
selected at least once over one epoch's training batches (the authors' CelebA definition);
``eval_usage`` is the fraction selected over the evaluation split after training (the authors'
ImageNet definition, and the one this project reports by default).

Resumption is exact on the CPU: a checkpoint holds the model, optimiser, scheduler, all RNG states,
the data position (epoch, step within the epoch; the epoch's order is a function of (seed, epoch)),
the running epoch accumulators and the history. Checkpoints are written atomically, only after the
losses since the previous check were verified finite, so a NaN never overwrites a good checkpoint.
"""
from __future__ import annotations

import io
import math
import os
import signal
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from . import ddp
from .checkpoint import atomic_torch_save, atomic_write_bytes, atomic_write_json, load_checkpoint, \
    rng_state, set_rng_state
from .config import TrainConfig, config_hash
from .sampler import EpochSampler

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
            "quantizer_loss": qloss, "window_usage": _usage_summary(win.counts)["usage"]}


def _usage_summary(counts: torch.Tensor) -> dict:
    c = counts.double()
    total = c.sum().item()
    used = (c > 0).double().mean().item()
    if total > 0:
        p = c / total
        nz = p[p > 0]
        ppl = math.exp(-(nz * nz.log()).sum().item())
    else:
        ppl = 0.0
    return {"usage": used, "perplexity": ppl, "dead_codes": int((c == 0).sum().item())}


def train(cfg: TrainConfig, run_dir=None, resume: bool = True, deadline: float | None = None,
          data=None, model_factory=None, _stop_after_step: int | None = None,
          _inject_nan_at_step: int | None = None) -> dict:
    """Train (or resume) the run described by ``cfg``; return its record (also written to
    ``run_dir/record.json`` with reconstructions in ``run_dir/samples.png``).

    run_dir: checkpoints and the record go here (None: no checkpoints, nothing written).
    resume: continue from ``run_dir/checkpoint.pt`` when it exists (else start fresh and overwrite).
    deadline: a ``time.time()`` value; past it the run checkpoints and raises ``TrainingInterrupted``.
    data: optional (train, eval) tensors instead of ``load_data(cfg)``.
    model_factory: optional ``cfg -> VQAutoencoder`` instead of ``build_model``.
    _stop_after_step / _inject_nan_at_step: testing hooks (simulate a kill; poison a loss).
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
        return _train(cfg, run_dir, resume, deadline, data, model_factory, _stop_after_step,
                      _inject_nan_at_step)
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


def _train(cfg, run_dir, resume, deadline, data, model_factory, _stop_after_step, _inject_nan_at_step):
    t_wall0 = time.perf_counter()
    chash = config_hash(cfg)
    rank, local_rank, world, own_group = ddp.init_from_env(cfg.device)
    device = torch.device(cfg.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(f"config asks for device {cfg.device!r} but CUDA is not available "
                                         f"here (torch {torch.__version__}); use --device cpu")
        if world > 1:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if cfg.deterministic and device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True      # fixed shapes: let cuDNN pick the fastest kernels
    run_dir = Path(run_dir) if run_dir is not None else None
    ckpt_path = run_dir / CHECKPOINT_NAME if run_dir is not None else None
    is_main = rank == 0

    from ..utils import seed_everything
    seed_everything(cfg.seed)
    model = (model_factory or build_model)(cfg).to(device)
    layout = torch.channels_last if cfg.channels_last else torch.contiguous_format
    if cfg.channels_last:
        model = model.to(memory_format=layout)
    q = _quantizer(model)
    ddp.broadcast_module(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas,
                                 weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=cfg.lr_gamma)
    refiner = None
    if cfg.refine_from_epoch is not None:
        if world > 1:
            raise ValueError("the adversarial refinement stage (refine_from_epoch) runs in one process, not DDP")
        from .refine import Refiner
        refiner = Refiner(cfg, device)

    if is_main:
        preflight_metrics(cfg, device)
    train_x, eval_x = data if data is not None else load_data(cfg)
    data_info = {"dataset": cfg.dataset, "source": "tensors passed to train()"} if data is not None \
        else data_fingerprint(cfg)
    train_x = _check_images(train_x, "training", cfg)
    eval_x = _check_images(eval_x, "evaluation", cfg)
    if device.type == "cuda":
        train_x = train_x.to(device, non_blocking=True)
    sampler = EpochSampler(len(train_x), cfg.batch_size, cfg.seed, rank, world)
    spe = sampler.steps_per_epoch
    total_steps = cfg.epochs * spe if cfg.max_steps is None else min(cfg.max_steps, cfg.epochs * spe)

    acc = _EpochAccumulator(cfg.num_codes, device)
    win = _EpochAccumulator(cfg.num_codes, device)      # since the last trace point
    tracing = set(trace_steps(total_steps))
    st = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "history": [], "train_seconds": 0.0,
          "train_images": 0, "resumes": 0, "trace": []}
    if resume and ckpt_path is not None and ckpt_path.exists():
        ck = load_checkpoint(ckpt_path, map_location=device)
        if ck.get("config_hash") != chash:
            raise ValueError(f"checkpoint {ckpt_path} belongs to config {ck.get('config_hash')}, "
                             f"not {chash}; delete it or use resume=False")
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        if refiner is not None:
            refiner.load_state_dict(ck["refiner"])
        scheduler.load_state_dict(ck["scheduler"])
        acc.load(ck["accumulator"])
        if "trace_window" in ck:
            win.load(ck["trace_window"])
        st.update({k: ck["state"].get(k, st[k]) for k in st})
        st["resumes"] += 1
        set_rng_state(ck["rng"])
        ddp.broadcast_module(model)
    ddp.barrier()

    from ..provenance import git_commit
    commit = git_commit()
    use_amp = cfg.amp == "bf16"
    check_every = cfg.nonfinite_check_every or (1 if device.type == "cpu" else 25)
    pending: list[tuple[int, int, torch.Tensor, torch.Tensor]] = []
    last_good = {"path": None, "step": None}
    if ckpt_path is not None and ckpt_path.exists() and resume:
        last_good = {"path": str(ckpt_path), "step": st["global_step"]}

    def check_finite():
        if not pending:
            return
        vals = torch.stack([torch.stack([r.float(), qq.float()]) for _, _, r, qq in pending])
        ok = torch.isfinite(vals).all(dim=1)
        if bool(ok.all()):
            pending.clear()
            return
        i = int((~ok).nonzero()[0, 0])
        step, epoch, r, qq = pending[i]
        terms = [n for n, v in (("reconstruction (MSE)", r), ("quantizer", qq)) if not torch.isfinite(v)]
        where = _last_good(last_good)
        raise NonFiniteLossError(
            f"non-finite loss at step {step} (epoch {epoch}, step {step - epoch * spe} of {spe}) in the "
            f"{' and '.join(terms)} term(s): reconstruction={r.item()!r}, quantizer={qq.item()!r} "
            f"[quantizer {cfg.quantizer!r}, config {chash}]; {where}",
            step=step, epoch=epoch, terms=terms, checkpoint=last_good["path"])

    def save():
        if ckpt_path is None:
            return
        check_finite()
        if is_main:
            atomic_torch_save({
                "format": RECORD_SCHEMA, "config": cfg.to_dict(), "config_hash": chash,
                "git_commit": commit,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "rng": rng_state(),
                "accumulator": acc.state(), "trace_window": win.state(), "state": dict(st),
                "refiner": refiner.state_dict() if refiner is not None else None,
            }, ckpt_path)
        ddp.barrier()
        last_good.update(path=str(ckpt_path), step=st["global_step"])

    progress = cfg.progress if cfg.progress is not None else sys.stderr.isatty()
    bar = None
    if progress and is_main:
        from tqdm.auto import tqdm
        bar = tqdm(total=total_steps, initial=st["global_step"], desc=f"{cfg.quantizer} {chash}",
                   leave=False)

    t_seg = time.perf_counter()
    seg_images = 0
    stopped = None
    epoch_eval = None            # (global step, metrics, samples) of the last per-epoch evaluation
    try:
        while st["epoch"] < cfg.epochs and st["global_step"] < total_steps:
            epoch = st["epoch"]
            frozen = cfg.freeze_encoder_at_epoch is not None and epoch >= cfg.freeze_encoder_at_epoch
            if cfg.freeze_encoder_at_epoch is not None:
                _encoder(model).requires_grad_(not frozen)
            model.train()
            order = sampler.rank_indices(epoch).to(train_x.device)
            while st["step_in_epoch"] < spe and st["global_step"] < total_steps:
                idx = order[st["step_in_epoch"]]
                x = _to_float(train_x[idx].to(device, non_blocking=True)).contiguous(memory_format=layout)
                try:
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                        out = model(x)
                except (ValueError, RuntimeError) as e:
                    check_finite()   # a NaN loss a few steps back poisoned the weights: report that
                    if "NaN or Inf" in str(e) or not _weights_finite(model):
                        raise NonFiniteLossError(
                            f"training diverged after {st['global_step']} optimiser step(s) (epoch {epoch}): "
                            f"{'the weights' if not _weights_finite(model) else 'the latents'} became "
                            f"NaN or Inf after the last update ({e}) [quantizer {cfg.quantizer!r}, lr "
                            f"{cfg.lr:g}, config {chash}]; {_last_good(last_good)}",
                            step=st["global_step"], epoch=epoch, terms=["latents"],
                            checkpoint=last_good["path"]) from None
                    raise
                qo = out["quantizer_output"]
                recon_loss = F.mse_loss(out["recon"].float(), x)
                q_loss = qo.loss.float()
                if _inject_nan_at_step is not None and st["global_step"] == _inject_nan_at_step:
                    q_loss = q_loss * float("nan")
                loss = recon_loss + q_loss
                refining = refiner is not None and refiner.active(epoch)
                if refining:
                    extra = refiner.generator_terms(x, out["recon"].float())
                    loss = loss + sum(extra.values())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                ddp.allreduce_gradients(model.parameters())
                if cfg.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                if cfg.warmup_steps:
                    for group in optimizer.param_groups:
                        group["lr"] = learning_rate(cfg, st["global_step"], st["epoch"])
                optimizer.step()
                if refining:
                    extra["gan_d"] = refiner.discriminator_step(x, out["recon"].float())
                    for k, v in extra.items():
                        acc.stats[f"refine_{k}"] = acc.stats.get(f"refine_{k}", 0.0) + float(v.detach())
                ddp.broadcast_module(model, buffers_only=True)
                with torch.no_grad():
                    terms = torch.stack([loss.detach(), recon_loss.detach(), q_loss.detach()]).double()
                    hits = torch.bincount(qo.indices.reshape(-1), minlength=cfg.num_codes)
                    acc.loss += terms
                    acc.counts += hits
                    win.loss += terms
                    win.counts += hits
                win.steps += 1
                for k, v in (getattr(qo, "stats", None) or {}).items():
                    if isinstance(v, (int, float)) and not isinstance(v, bool):
                        acc.stats[k] = acc.stats.get(k, 0.0) + float(v)
                acc.steps += 1
                acc.images += x.shape[0]
                seg_images += x.shape[0] * world
                pending.append((st["global_step"], epoch, recon_loss.detach(), q_loss.detach()))
                st["global_step"] += 1
                st["step_in_epoch"] += 1
                if st["global_step"] in tracing:
                    st["trace"].append(_trace_point(st["global_step"], win))
                    win = _EpochAccumulator(cfg.num_codes, device)
                if bar is not None:
                    bar.update(1)
                if len(pending) >= check_every:
                    check_finite()
                if cfg.checkpoint_every and st["global_step"] % cfg.checkpoint_every == 0 \
                        and st["step_in_epoch"] < spe:
                    _account(st, t_seg, seg_images)
                    t_seg, seg_images = time.perf_counter(), 0
                    save()
                if _stop_after_step is not None and st["global_step"] >= _stop_after_step:
                    stopped = "simulated kill"
                    break
                if _STOP_REQUESTED or (deadline is not None and time.time() >= deadline):
                    stopped = "stop requested (SIGTERM)" if _STOP_REQUESTED else "deadline reached"
                    break
            if stopped == "simulated kill":
                return {"status": "killed", "config_hash": chash, "step": st["global_step"]}
            if stopped:
                _account(st, t_seg, seg_images)
                t_seg, seg_images = time.perf_counter(), 0
                save()
                raise TrainingInterrupted(f"run {chash} stopped at step {st['global_step']}/{total_steps} "
                                          f"({stopped}); resume to continue", checkpoint=str(ckpt_path)
                                          if ckpt_path else None, step=st["global_step"])
            check_finite()
            full_epoch = st["step_in_epoch"] >= spe
            # epoch summary (sum the usage counts of all ranks)
            ddp.allreduce_sum_(acc.counts)
            if hasattr(q, "usage") and hasattr(q.usage, "sync") and ddp.is_distributed():
                q.usage.sync()
            _account(st, t_seg, seg_images)
            t_seg, seg_images = time.perf_counter(), 0
            n = max(acc.steps, 1)
            losses = (acc.loss / n).tolist()
            u = _usage_summary(acc.counts)
            entry = {"epoch": epoch, "steps": acc.steps, "images": acc.images * world,
                     "complete": full_epoch, "lr": optimizer.param_groups[0]["lr"],
                     "train_loss": losses[0], "train_recon_loss": losses[1],
                     "train_quantizer_loss": losses[2], "train_epoch_usage": u["usage"],
                     "train_epoch_perplexity": u["perplexity"], "train_epoch_dead_codes": u["dead_codes"],
                     "encoder_frozen": bool(frozen)}
            if refiner is not None:
                entry["refining"] = refiner.active(epoch)
            entry.update({(k if k.startswith("refine_") else f"q_{k}"): v / n for k, v in acc.stats.items()})
            if full_epoch and cfg.eval_every_epoch and is_main:
                entry["eval"], samples = evaluate(model, eval_x, cfg, device)   # no RNG, no training state
                epoch_eval = (st["global_step"], entry["eval"], samples)
                model.train()
                t_seg = time.perf_counter()          # evaluation time is not training time
            st["history"].append(entry)
            acc = _EpochAccumulator(cfg.num_codes, device)
            if full_epoch:
                if hasattr(q, "on_epoch_end"):
                    q.on_epoch_end(epoch)
                scheduler.step()
                st["epoch"] += 1
                st["step_in_epoch"] = 0
            save()
    finally:
        if bar is not None:
            bar.close()

    # -- final evaluation (rank 0) ---------------------------------------------------------------
    record = None
    if is_main:
        if epoch_eval is not None and epoch_eval[0] == st["global_step"]:
            final, samples = dict(epoch_eval[1]), epoch_eval[2]     # same weights: evaluated already
        else:
            final, samples = evaluate(model, eval_x, cfg, device)
        from ..provenance import provenance
        prov = provenance(str(device), seed=cfg.seed)
        prov["git_commit"] = commit      # the code this process imported when it (re)started the run
        prov["deterministic_algorithms"] = bool(cfg.deterministic and device.type == "cuda") or device.type == "cpu"
        prov["world_size"] = world
        record = {
            "schema": RECORD_SCHEMA, "status": "complete", "experiment": cfg.experiment,
            "profile": cfg.profile, "config": cfg.to_dict(), "config_hash": chash,
            "epochs": st["history"], "trace": st["trace"], "final": final, "provenance": prov,
            "data": data_info,
            "steps": st["global_step"], "steps_per_epoch": spe, "train_images_seen": st["train_images"],
            "train_seconds": st["train_seconds"],
            "images_per_s": st["train_images"] / st["train_seconds"] if st["train_seconds"] > 0 else None,
            "wall_time_s": None, "resumes": st["resumes"],
            "parameters": sum(p.numel() for p in model.parameters()),
        }
        record["wall_time_s"] = time.perf_counter() - t_wall0
        if run_dir is not None:
            if samples is not None:
                atomic_write_bytes(run_dir / SAMPLES_NAME, samples)
            atomic_write_json(run_dir / RECORD_NAME, record)
    ddp.barrier()
    if own_group:
        import torch.distributed as dist
        dist.destroy_process_group()
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


def _account(st, t_seg, seg_images):
    st["train_seconds"] += time.perf_counter() - t_seg
    st["train_images"] += seg_images


# -- evaluation ------------------------------------------------------------------------------------
def preflight_metrics(cfg: TrainConfig, device) -> None:
    """Load the perceptual-metric weights before training, so a missing file fails in seconds
    rather than after a long run (LPIPS AlexNet; VGG16 for the FD proxy unless Inception exists)."""
    from .. import metrics as M

    if "lpips" in cfg.eval_metrics:
        M.lpips_model("alex", device)
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
    from .. import metrics as M

    model.eval()
    metrics = set(cfg.eval_metrics)
    counts = torch.zeros(cfg.num_codes, dtype=torch.int64, device=device)
    sums = {"psnr": 0.0, "ssim": 0.0, "lpips": 0.0, "mse": 0.0}
    n = 0
    fd_kind = None
    if "fd" in metrics:
        fd_kind = "inception" if M.inception_weights_path() is not None else "vgg16"
        if fd_kind == "vgg16":
            vgg = M.vgg16_features_model(cfg.fd_resize, device)
            real_stats, fake_stats = M.FeatureStats(512), M.FeatureStats(512)
        else:
            reals, fakes = [], []
    first = None
    use_amp = cfg.amp == "bf16"
    for start in range(0, len(eval_x), cfg.eval_batch_size):
        x = _to_float(eval_x[start:start + cfg.eval_batch_size].to(device))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            out = model(x)
        r = out["recon"].float().clamp(0, 1)
        counts += torch.bincount(out["quantizer_output"].indices.reshape(-1), minlength=cfg.num_codes)
        sums["mse"] += F.mse_loss(r, x, reduction="none").flatten(1).mean(1).double().sum().item()
        if "psnr" in metrics:
            sums["psnr"] += M.psnr(r, x).double().sum().item()
        if "ssim" in metrics:
            sums["ssim"] += M.ssim(r, x).double().sum().item()
        if "lpips" in metrics:
            sums["lpips"] += M.lpips(r, x, net="alex").double().sum().item()
        if fd_kind == "vgg16":
            real_stats.update(vgg(x))
            fake_stats.update(vgg(r))
        elif fd_kind == "inception":
            reals.append((x * 255).round().to(torch.uint8).cpu())
            fakes.append((r * 255).round().to(torch.uint8).cpu())
        if first is None and cfg.num_samples:
            first = (x[:cfg.num_samples].cpu(), r[:cfg.num_samples].cpu())
        n += x.shape[0]
    final: dict = {"eval_images": n, "eval_mse": sums["mse"] / n}
    if "usage" in metrics:
        u = _usage_summary(counts)
        final.update(eval_usage=u["usage"], eval_perplexity=u["perplexity"], eval_dead_codes=u["dead_codes"])
    for k in ("psnr", "ssim", "lpips"):
        if k in metrics:
            final[k] = sums[k] / n
    if fd_kind == "vgg16":
        final["fd"], final["fd_metric"] = float(M.fd_from_stats(real_stats, fake_stats)), \
            M.fd_vgg16_name(cfg.fd_resize)
    elif fd_kind == "inception":
        final["fd"], final["fd_metric"] = float(M.fid(torch.cat(reals).float() / 255, torch.cat(fakes).float() / 255,
                                                allow_download=False)), "rFID"
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
