"""TrainConfig: validation, JSON round trip, and a config hash that is stable and means something."""
import json

import pytest

from paper_repro.training import BOOKKEEPING_FIELDS, TrainConfig, config_hash
from paper_repro.training.config import canonical_json, hashed_fields


def test_default_hash_is_pinned():
    # Pinned: if this changes, every stored record's hash changes (results orphaned). Change it only
    # on purpose (new result-relevant field / new default), and say so in the commit.
    assert config_hash(TrainConfig()) == "027e18cd8eb7" or pytest.fail(
        f"default config hash changed to {config_hash(TrainConfig())}")


def test_fields_added_later_leave_old_hashes_alone_at_their_default():
    from paper_repro.training.config import ADDED_FIELD_DEFAULTS
    other = {"eval_every_epoch": True, "refine_from_epoch": 2, "refine_gan_weight": 0.5,
             "refine_lpips_weight": 0.0, "disc_channels": 32, "disc_layers": 2,
             "warmup_steps": 100, "probe_every": 50, "probe_images": 64, "recon_loss": "l1",
             "refine_lpips_net": "vgg", "refine_gan_weighting": "adaptive"}
    assert set(other) == set(ADDED_FIELD_DEFAULTS), "give each added field another valid value here"
    for k, default in ADDED_FIELD_DEFAULTS.items():
        assert getattr(TrainConfig(), k) == default
        assert k not in hashed_fields(TrainConfig()) and k in hashed_fields(TrainConfig(**{k: other[k]}))


def test_hash_is_sha256_of_canonical_json_of_result_fields():
    import hashlib
    cfg = TrainConfig(quantizer="nsvq", num_codes=512)
    fields = hashed_fields(cfg)
    assert not (set(fields) & BOOKKEEPING_FIELDS)
    assert config_hash(cfg) == hashlib.sha256(canonical_json(fields).encode()).hexdigest()[:12]


def test_hash_ignores_bookkeeping_and_key_order_and_int_float():
    a = TrainConfig(width=1, lr=5e-4)
    b = TrainConfig.from_dict(dict(reversed(list(TrainConfig(width=1.0).to_dict().items()))))
    assert config_hash(a) == config_hash(b)
    c = a.replace(device="cuda:1", checkpoint_every=7, experiment="x", profile="gpu", progress=True,
                  num_threads=2, data_root="/tmp", tag="t", nonfinite_check_every=3)
    assert config_hash(c) == config_hash(a)


@pytest.mark.parametrize("change", [dict(lr=4e-4), dict(seed=1), dict(quantizer="nsvq"),
                                    dict(quantizer_options={"beta": 0.5}), dict(num_codes=512),
                                    dict(eval_metrics=["usage"]), dict(amp="bf16"), dict(betas=[0.5, 0.9]),
                                    dict(eval_every_epoch=True)])
def test_hash_changes_with_result_fields(change):
    assert config_hash(TrainConfig(**change)) != config_hash(TrainConfig())


def test_json_round_trip(tmp_path):
    cfg = TrainConfig(quantizer="nsvq", quantizer_options={"flavor": "official"}, max_steps=10)
    p = tmp_path / "c.json"
    p.write_text(cfg.to_json())
    back = TrainConfig.from_json(p)
    assert back == cfg and config_hash(back) == config_hash(cfg)
    assert json.loads(cfg.to_json())["betas"] == [0.9, 0.999]


@pytest.mark.parametrize("bad, match", [
    (dict(quantizer="vqq"), "unknown quantizer"),
    (dict(num_codes=0), "num_codes"),
    (dict(batch_size=2.5), "batch_size"),
    (dict(lr=-1), "lr"),
    (dict(amp="fp8"), "amp"),
    (dict(eval_metrics=["fid"]), "unknown eval metric"),
    (dict(quantizer_options={"f": object()}), "not JSON"),
    (dict(device="tpu"), "device"),
    (dict(betas=[0.9]), "betas"),
    (dict(backbone="resnet"), "backbone"),
    (dict(recon_loss="huber"), "recon_loss"),
    (dict(refine_lpips_net="squeeze"), "refine_lpips_net"),
    (dict(image_size=16, refine_from_epoch=0), "at least 24x24"),
])
def test_bad_values_raise_named_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**bad)


def test_unknown_field_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="unknown config field"):
        TrainConfig.from_dict({"learning_rate": 1e-3})
    with pytest.raises(FileNotFoundError):
        TrainConfig.from_json(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        TrainConfig.from_json(tmp_path / "bad.json")


def test_from_profile_uses_profile_values():
    from paper_repro.profiles import PROFILES
    p = PROFILES["ci"]
    cfg = TrainConfig.from_profile("ci", quantizer="nsvq")
    assert (cfg.width, cfg.train_images, cfg.epochs, cfg.batch_size, cfg.profile) == \
        (p.backbone_width, p.train_images, p.epochs, p.batch_size, "ci")
    with pytest.raises(ValueError, match="unknown profile"):
        TrainConfig.from_profile("huge")


def test_warmup_steps_is_validated_and_hashed_only_when_used():
    from paper_repro.training.config import TrainConfig, config_hash
    base = TrainConfig()
    assert config_hash(base) == config_hash(base.replace(warmup_steps=0))
    assert config_hash(base) != config_hash(base.replace(warmup_steps=500))
    for bad in (-1, 1.5, True, "500"):
        with pytest.raises(ValueError, match="warmup_steps"):
            base.replace(warmup_steps=bad)
    assert TrainConfig.from_profile("cpu").warmup_steps == 500
    assert TrainConfig.from_profile("ci").warmup_steps == 0 and TrainConfig.from_profile("paper").warmup_steps == 0
