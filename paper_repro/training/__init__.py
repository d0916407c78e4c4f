"""Training: config (data, hashed), trainer (resumable, NaN-checked, DDP-aware), atomic checkpoints.

    from paper_repro.training import TrainConfig, train, config_hash
    cfg = TrainConfig.from_profile("ci", quantizer="nsvq", num_codes=1024, code_dim=64)
    record = train(cfg, run_dir="runs/demo")
"""
from .checkpoint import atomic_write_json, atomic_write_text, load_checkpoint
from .config import BOOKKEEPING_FIELDS, TrainConfig, config_hash
from .sampler import EpochSampler
from .trainer import (CHECKPOINT_NAME, RECORD_NAME, RECORD_SCHEMA, SAMPLES_NAME, Callbacks, InjectNaN,
                      NonFiniteLossError, RunState, StopAfter, TrainingInterrupted, build_model, evaluate,
                      load_data, train)

__all__ = ["TrainConfig", "config_hash", "BOOKKEEPING_FIELDS", "train", "evaluate", "build_model",
           "load_data", "Callbacks", "StopAfter", "InjectNaN", "RunState", "NonFiniteLossError", "TrainingInterrupted", "EpochSampler",
           "atomic_write_json", "atomic_write_text", "load_checkpoint", "RECORD_SCHEMA",
           "CHECKPOINT_NAME", "RECORD_NAME", "SAMPLES_NAME"]
