"""The adversarial refinement stage (follow-up paper, training/refine.py): discriminator shapes,
hinge losses on known inputs, LPIPS as a loss has gradients, the stage's config fields, and an
exact resume across the stage boundary."""
import pytest
import torch

from paper_repro.training import config_hash, load_checkpoint, train
from paper_repro.training.trainer import Callbacks, StopAfter, build_model
from paper_repro.training.refine import PatchDiscriminator, Refiner, hinge_d_loss, hinge_g_loss

from ._helpers import tiny_config, tiny_data


@pytest.mark.parametrize("layers, size, out", [(3, 32, 2), (2, 32, 6), (1, 16, 6)])
def test_patch_discriminator_gives_one_logit_per_patch(layers, size, out):
    d = PatchDiscriminator(channels=8, layers=layers)
    y = d(torch.randn(2, 3, size, size))
    assert y.shape == (2, 1, out, out)


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_the_configs_least_image_size_is_the_discriminators(layers):
    # 3 * 2**layers is the smallest image the discriminator maps to a logit; one less is refused early
    from paper_repro.training import TrainConfig
    least = 3 * 2 ** layers
    assert PatchDiscriminator(channels=8, layers=layers)(torch.randn(2, 3, least, least)).shape[-1] == 1
    with pytest.raises(RuntimeError):
        PatchDiscriminator(channels=8, layers=layers)(torch.randn(2, 3, least - 2 ** layers, least - 2 ** layers))
    TrainConfig(image_size=least, refine_from_epoch=0, disc_layers=layers)
    with pytest.raises(ValueError, match="at least"):
        TrainConfig(image_size=least - 4, refine_from_epoch=0, disc_layers=layers)
    TrainConfig(image_size=least - 4, refine_from_epoch=0, disc_layers=layers, refine_gan_weight=0.0)  # no GAN


def test_hinge_losses_on_known_logits():
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-2.0, 0.0, 1.0])
    # relu(1 - real) = 0, 0.5, 2 -> mean 0.8333; relu(1 + fake) = 0, 1, 2 -> mean 1
    assert hinge_d_loss(real, fake).item() == pytest.approx(0.5 * (2.5 / 3 + 1.0))
    assert hinge_g_loss(fake).item() == pytest.approx(1 / 3)
    assert hinge_d_loss(torch.full((4,), 5.0), torch.full((4,), -5.0)).item() == 0.0


def test_lpips_as_a_loss_has_gradients_to_the_reconstruction_only():
    from paper_repro.metrics import lpips_model
    net = lpips_model("alex")
    x = torch.rand(2, 3, 32, 32)
    r = torch.rand(2, 3, 32, 32, requires_grad=True)
    loss = net(2 * r - 1, 2 * x - 1).mean()
    loss.backward()
    assert r.grad is not None and r.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())


def test_stage_fields_are_hashed_but_absent_ones_keep_old_hashes():
    base = tiny_config()
    staged = tiny_config(refine_from_epoch=1, disc_layers=2)      # 16 x 16 images: 2 layers at most
    assert config_hash(base) != config_hash(staged)
    assert config_hash(tiny_config(refine_gan_weight=0.1)) == config_hash(base)     # the default
    assert config_hash(tiny_config(refine_from_epoch=1, disc_layers=2, refine_gan_weight=0.5)) != config_hash(staged)
    for bad in ({"refine_from_epoch": -1}, {"refine_gan_weight": float("inf")}, {"disc_layers": 0}):
        with pytest.raises(ValueError):
            tiny_config(**bad)


def test_the_stage_trains_its_discriminator_and_reports_its_losses():
    rec = train(tiny_config(refine_from_epoch=1, disc_channels=8, disc_layers=2), data=tiny_data())
    first, second = rec["epochs"]
    assert not first["refining"] and second["refining"]
    assert "refine_gan_d" in second and "refine_lpips" in second and "refine_gan_d" not in first
    plain = train(tiny_config(), data=tiny_data())
    assert plain["epochs"][0]["train_loss"] == first["train_loss"]   # before the stage: the same run


@pytest.mark.parametrize("kill_at", [6, 11])       # before and after the stage boundary (step 8)
def test_resume_across_the_stage_boundary_is_exact(tmp_path, kill_at):
    cfg = tiny_config(refine_from_epoch=1, disc_channels=8, disc_layers=2, checkpoint_every=3)
    data = tiny_data()
    straight = train(cfg, run_dir=tmp_path / "a", data=data)
    train(cfg, run_dir=tmp_path / "b", data=data, callbacks=StopAfter(kill_at))
    resumed = train(cfg, run_dir=tmp_path / "b", data=data, resume=True)
    assert resumed["resumes"] == 1
    assert straight["final"] == resumed["final"] and straight["epochs"] == resumed["epochs"]
    a, b = load_checkpoint(tmp_path / "a" / "checkpoint.pt"), load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    for k, v in a["refiner"]["disc"].items():
        assert torch.equal(v, b["refiner"]["disc"][k]), k


class _FirstStep(Callbacks):
    """Keeps the first step's reconstruction term as the trainer computed it."""
    def loss_terms(self, run, recon_loss, q_loss):
        self.__dict__.setdefault("recon_loss", float(recon_loss.detach()))
        return recon_loss, q_loss


@pytest.mark.parametrize("kind", ["mse", "l1"])
def test_the_reconstruction_term_is_the_configured_loss(kind):
    # recon_loss="l1" (the authors' ImageNet code) trains on the mean absolute error; recomputed from
    # the first step's input and reconstruction, captured by a hook on the model
    seen = {}

    def factory(cfg):
        m = build_model(cfg)
        def hook(mod, inp, out):
            seen.setdefault("xr", (inp[0].detach(), out["recon"].detach()))
        m.register_forward_hook(hook)
        return m

    cb = _FirstStep()
    train(tiny_config(recon_loss=kind, epochs=1, max_steps=1), data=tiny_data(), model_factory=factory, callbacks=cb)
    x, r = seen["xr"]
    want = ((r.float() - x) ** 2).mean() if kind == "mse" else (r.float() - x).abs().mean()
    assert cb.recon_loss == pytest.approx(float(want), rel=1e-6)
    other = (r.float() - x).abs().mean() if kind == "mse" else ((r.float() - x) ** 2).mean()
    assert cb.recon_loss != pytest.approx(float(other), rel=1e-3)


def test_the_stage_uses_the_configured_lpips_network():
    from paper_repro.metrics import lpips_model
    x, r = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    got = {net: float(Refiner(tiny_config(refine_from_epoch=0, refine_gan_weight=0.0, refine_lpips_net=net),
                              torch.device("cpu")).generator_terms(x, r)[0]["lpips"]) for net in ("alex", "vgg")}
    for net, v in got.items():
        assert v == pytest.approx(float(lpips_model(net)(2 * r - 1, 2 * x - 1).mean()), rel=1e-6)
    assert got["alex"] != pytest.approx(got["vgg"], rel=1e-3)


@pytest.mark.parametrize("where", ["generator", "discriminator"])
def test_a_non_finite_refinement_term_stops_the_run_before_a_checkpoint_keeps_it(tmp_path, monkeypatch, where):
    """The refinement terms are checked with the other losses: a NaN in LPIPS / the GAN (or in the
    discriminator's loss) raises NonFiniteLossError naming the term, and the last good checkpoint is
    one from before it (finite weights)."""
    from paper_repro.training.trainer import NonFiniteLossError

    if where == "generator":
        orig = Refiner.generator_terms
        def nan_terms(self, *args):
            terms, stats = orig(self, *args)
            return {k: v * float("nan") for k, v in terms.items()}, stats
        monkeypatch.setattr(Refiner, "generator_terms", nan_terms)
    else:
        monkeypatch.setattr(Refiner, "discriminator_step", lambda self, x, recon: torch.tensor(float("nan")))
    cfg = tiny_config(refine_from_epoch=1, disc_channels=8, disc_layers=2, checkpoint_every=1)
    with pytest.raises(NonFiniteLossError, match="refinement") as ei:
        train(cfg, run_dir=tmp_path, data=tiny_data())
    assert ei.value.step == 8                                    # the stage's first step (8 steps an epoch)
    ck = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ck["state"]["global_step"] <= 8
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())


# -- VQGAN's adaptive GAN weight (refine_gan_weighting="adaptive") ---------------------------------
def test_the_adaptive_weight_is_the_ratio_of_gradient_norms_clamped():
    from paper_repro.training.refine import ADAPTIVE_EPS, ADAPTIVE_MAX, adaptive_weight
    w = torch.tensor([1.0, -2.0, 0.5, 3.0], requires_grad=True)
    # grad of a.w is a: ||(3, 4, 0, 0)|| = 5 and ||(0, 0, 1, 0)|| = 1
    rec, adv = (w * torch.tensor([3.0, 4.0, 0.0, 0.0])).sum(), (w * torch.tensor([0.0, 0.0, 1.0, 0.0])).sum()
    lam = adaptive_weight(rec, adv, w)
    assert lam.item() == pytest.approx(5.0 / (1.0 + ADAPTIVE_EPS), rel=1e-6)
    assert not lam.requires_grad
    assert adaptive_weight((w ** 2).sum(), w.sum() * 0.0, w).item() == ADAPTIVE_MAX   # no GAN gradient: clamped
    assert adaptive_weight(w.sum() * 0.0, w.sum(), w).item() == 0.0


def test_the_last_layer_is_the_decoders_output_convolution():
    from paper_repro.training.refine import last_layer_weight
    model = build_model(tiny_config())
    w = last_layer_weight(model.decoder)
    convs = [m for m in model.decoder.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert w is convs[-1].weight and convs[-1].out_channels == 3     # the layer that outputs the image
    from paper_repro.backbones.taming import TamingDecoder
    for factor in (4, 8):       # its post-quant 1x1 conv comes first in the forward pass, not last
        dec = TamingDecoder(width=0.25, factor=factor)
        assert last_layer_weight(dec) is dec.net[-2].weight and dec.net[-2].out_channels == 3
    with pytest.raises(ValueError, match="no convolution"):
        last_layer_weight(torch.nn.Sequential(torch.nn.Tanh()))


def test_adaptive_weighting_holds_the_gan_gradient_at_the_weight_times_the_reconstructions():
    """At the decoder's last layer, the adversarial term's gradient norm is gan_weight times that of
    the reconstruction loss plus LPIPS (up to the 1e-4 in the denominator); fixed weighting is not."""
    from paper_repro.training.refine import last_layer_weight
    torch.manual_seed(0)
    cfg = tiny_config(refine_from_epoch=0, disc_channels=8, disc_layers=2, refine_gan_weight=0.8,
                      refine_gan_weighting="adaptive")
    model = build_model(cfg)
    x = torch.rand(4, 3, cfg.image_size, cfg.image_size)
    recon = model(x)["recon"].float()
    rec = ((recon - x) ** 2).mean()
    w = last_layer_weight(model.decoder)
    refiner = Refiner(cfg, torch.device("cpu"), decoder=model.decoder)
    assert refiner.last_weight is w
    terms, stats = refiner.generator_terms(x, recon, rec)
    g_rec = torch.autograd.grad(rec + terms["lpips"], w, retain_graph=True)[0].norm()
    g_gan = torch.autograd.grad(terms["gan_g"], w, retain_graph=True)[0].norm()
    assert g_gan.item() == pytest.approx(0.8 * g_rec.item(), rel=1e-3)
    assert stats["adaptive_weight"].item() > 0
    fixed_terms, fixed_stats = Refiner(tiny_config(refine_from_epoch=0, disc_channels=8, disc_layers=2,
                                                   refine_gan_weight=0.8), torch.device("cpu")).generator_terms(x, recon)
    assert fixed_stats == {}
    g_fixed = torch.autograd.grad(fixed_terms["gan_g"], w, retain_graph=True)[0].norm()
    assert g_fixed.item() != pytest.approx(0.8 * g_rec.item(), rel=1e-2)
    with pytest.raises(ValueError, match="adaptive"):
        refiner.generator_terms(x, recon)                  # no reconstruction loss to weigh against
    with pytest.raises(ValueError, match="adaptive"):
        Refiner(cfg, torch.device("cpu"))                  # no decoder to find the last layer in


def test_adaptive_weighting_is_a_hashed_field_that_keeps_old_hashes_and_is_logged():
    from paper_repro.training import TrainConfig
    base = tiny_config(refine_from_epoch=1, disc_channels=8, disc_layers=2)
    assert config_hash(base) == config_hash(tiny_config(refine_from_epoch=1, disc_channels=8, disc_layers=2,
                                                        refine_gan_weighting="fixed"))
    adaptive = tiny_config(refine_from_epoch=1, disc_channels=8, disc_layers=2, refine_gan_weighting="adaptive")
    assert config_hash(adaptive) != config_hash(base)
    with pytest.raises(ValueError, match="refine_gan_weighting"):
        TrainConfig(refine_gan_weighting="vqgan")
    rec = train(adaptive, data=tiny_data())
    assert "refine_adaptive_weight" not in rec["epochs"][0]                 # before the stage
    lam = rec["epochs"][1]["refine_adaptive_weight"]
    assert 0 < lam < 1e4 and torch.isfinite(torch.tensor(lam))
