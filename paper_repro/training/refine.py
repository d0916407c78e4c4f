"""The follow-up paper's adversarial refinement stage (seeds/001), as VQGAN does it: from epoch
``refine_from_epoch`` on, the reconstruction loss gains an LPIPS perceptual term and a hinge GAN
term from a small PatchGAN discriminator, trained alongside.

- Discriminator (``PatchDiscriminator``): the pix2pix / VQGAN "NLayer" shape: a 4x4 stride-2
  convolution with LeakyReLU(0.2), ``layers - 1`` more stride-2 blocks (convolution, BatchNorm,
  LeakyReLU) doubling the channels up to 8x, one stride-1 block, and a 4x4 convolution to one logit
  per patch.
- Hinge losses (VQGAN): discriminator ``0.5 * (mean(relu(1 - D(x))) + mean(relu(1 + D(x_hat))))``;
  generator ``-mean(D(x_hat))``.
- Generator objective in the stage: ``MSE + quantizer loss + lpips_weight * LPIPS(x_hat, x)
  + gan_weight * (-mean(D(x_hat)))``; LPIPS is the package's AlexNet LPIPS (``refine_lpips_net="vgg"``:
  its VGG16 LPIPS, as the authors' ImageNet code) with frozen weights
  (gradients flow to the reconstruction only; images smaller than 32 x 32 are upsampled bilinearly
  for it, as AlexNet's pooling needs).
- The GAN term's weight (``refine_gan_weighting``): ``"fixed"`` (the default), ``gan_weight`` alone;
  ``"adaptive"``, VQGAN's rule: ``gan_weight * lambda`` with
  ``lambda = ||grad_W L_rec|| / (||grad_W L_G|| + 1e-4)``, clamped to [0, 1e4] and treated as a
  constant, where W is the decoder's last layer's weight, ``L_rec`` the reconstruction loss plus the
  LPIPS term and ``L_G`` the generator's hinge loss: the adversarial gradient at the decoder's output
  layer is held at ``gan_weight`` times the reconstruction's, however large or small ``L_G``'s own.

The discriminator and its Adam optimiser exist from the start of any run that has a stage (so a
checkpoint always holds them, and a resume across the stage boundary is exact); before the stage
they are not used and do not touch any RNG.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


LPIPS_MIN_SIZE = 32


class PatchDiscriminator(nn.Module):
    """(B, 3, H, W) images in [-1, 1] -> (B, 1, h, w) patch logits."""

    def __init__(self, in_channels: int = 3, channels: int = 64, layers: int = 3):
        super().__init__()
        if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
            raise ValueError(f"discriminator layers must be an int >= 1, got {layers!r}")
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"discriminator channels must be an int >= 1, got {channels!r}")
        seq = [nn.Conv2d(in_channels, channels, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, layers):
            prev, mult = mult, min(2 ** n, 8)
            seq += [nn.Conv2d(channels * prev, channels * mult, 4, 2, 1, bias=False),
                    nn.BatchNorm2d(channels * mult), nn.LeakyReLU(0.2, True)]
        prev, mult = mult, min(2 ** layers, 8)
        seq += [nn.Conv2d(channels * prev, channels * mult, 4, 1, 1, bias=False),
                nn.BatchNorm2d(channels * mult), nn.LeakyReLU(0.2, True),
                nn.Conv2d(channels * mult, 1, 4, 1, 1)]
        self.net = nn.Sequential(*seq)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def hinge_g_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    return -logits_fake.mean()


ADAPTIVE_EPS, ADAPTIVE_MAX = 1e-4, 1e4


def last_layer_weight(decoder: nn.Module) -> torch.Tensor:
    """The weight of the decoder's last convolution or linear layer (where VQGAN's adaptive weight
    compares gradient norms)."""
    layers = [m for m in decoder.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    if not layers:
        raise ValueError("the decoder has no convolution or linear layer for the adaptive GAN weight")
    return layers[-1].weight


def adaptive_weight(rec_loss: torch.Tensor, g_loss: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """VQGAN's ``||grad_W rec_loss|| / (||grad_W g_loss|| + 1e-4)`` clamped to [0, 1e4], detached
    (both graphs are kept for the step's backward pass)."""
    g_rec = torch.autograd.grad(rec_loss, weight, retain_graph=True)[0]
    g_adv = torch.autograd.grad(g_loss, weight, retain_graph=True)[0]
    return (g_rec.norm() / (g_adv.norm() + ADAPTIVE_EPS)).clamp(0.0, ADAPTIVE_MAX).detach()


class Refiner:
    """The stage's extra losses and its discriminator, for the trainer (inputs in [0, 1])."""

    def __init__(self, cfg, device, decoder: nn.Module | None = None):
        """``decoder``: the autoencoder's, whose last layer the adaptive rule weighs (needed then)."""
        self.start = cfg.refine_from_epoch
        self.gan_weight, self.lpips_weight = cfg.refine_gan_weight, cfg.refine_lpips_weight
        self.adaptive = cfg.refine_gan_weighting == "adaptive"
        if self.adaptive and decoder is None:
            raise ValueError("refine_gan_weighting='adaptive' needs the autoencoder's decoder")
        # found once: the parameter object stays the same through training and checkpoint loads
        self.last_weight = last_layer_weight(decoder) if self.adaptive else None
        self.lpips_net = cfg.refine_lpips_net
        with torch.random.fork_rng(devices=[]):      # never moves the seeded stream of the run
            torch.manual_seed(cfg.seed + 7919)
            self.disc = PatchDiscriminator(channels=cfg.disc_channels, layers=cfg.disc_layers).to(device)
        self.opt = torch.optim.Adam(self.disc.parameters(), lr=cfg.lr, betas=(0.5, 0.9))
        self.device = device

    def active(self, epoch: int) -> bool:
        return self.start is not None and epoch >= self.start

    def generator_terms(self, x: torch.Tensor, recon: torch.Tensor,
                        rec_loss: torch.Tensor | None = None) -> tuple[dict, dict]:
        """(terms, stats): the perceptual and adversarial terms for the autoencoder's loss (x, recon in
        [0, 1]), and what is logged but not added (``adaptive_weight``, the adaptive rule's lambda).
        ``rec_loss`` (the reconstruction loss of ``recon``): needed by the adaptive rule."""
        from ..metrics import lpips_model

        terms = {}
        if self.lpips_weight:
            net = lpips_model(self.lpips_net, self.device)
            a, b = recon, x
            if min(x.shape[-2:]) < LPIPS_MIN_SIZE:     # AlexNet's pooling needs >= 32 x 32 inputs
                a, b = (F.interpolate(t, size=(LPIPS_MIN_SIZE,) * 2, mode="bilinear", align_corners=False)
                        for t in (recon, x))
            terms["lpips"] = self.lpips_weight * net(2 * a - 1, 2 * b - 1).mean()
        stats = {}
        if self.gan_weight:
            self.disc.requires_grad_(False)
            g = hinge_g_loss(self.disc(2 * recon - 1))
            self.disc.requires_grad_(True)
            weight = self.gan_weight
            if self.adaptive:
                if rec_loss is None:
                    raise ValueError("refine_gan_weighting='adaptive' needs the reconstruction loss")
                lam = adaptive_weight(rec_loss + terms.get("lpips", 0.0), g, self.last_weight)
                stats["adaptive_weight"] = lam
                weight = weight * lam
            terms["gan_g"] = weight * g
        return terms, stats

    def discriminator_step(self, x: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
        """One Adam step of the discriminator on real x vs the (detached) reconstruction."""
        if not self.gan_weight:
            return torch.zeros(())
        loss = hinge_d_loss(self.disc(2 * x - 1), self.disc(2 * recon.detach() - 1))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach()

    def state_dict(self) -> dict:
        return {"disc": self.disc.state_dict(), "disc_optimizer": self.opt.state_dict()}

    def load_state_dict(self, s: dict) -> None:
        self.disc.load_state_dict(s["disc"])
        self.opt.load_state_dict(s["disc_optimizer"])
