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
  for it, as AlexNet's pooling needs). The weights are fixed numbers (config fields); VQGAN's
  adaptive weight (a ratio of last-layer gradient norms) is not used: a named simplification.

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


class Refiner:
    """The stage's extra losses and its discriminator, for the trainer (inputs in [0, 1])."""

    def __init__(self, cfg, device):
        self.start = cfg.refine_from_epoch
        self.gan_weight, self.lpips_weight = cfg.refine_gan_weight, cfg.refine_lpips_weight
        self.lpips_net = cfg.refine_lpips_net
        with torch.random.fork_rng(devices=[]):      # never moves the seeded stream of the run
            torch.manual_seed(cfg.seed + 7919)
            self.disc = PatchDiscriminator(channels=cfg.disc_channels, layers=cfg.disc_layers).to(device)
        self.opt = torch.optim.Adam(self.disc.parameters(), lr=cfg.lr, betas=(0.5, 0.9))
        self.device = device

    def active(self, epoch: int) -> bool:
        return self.start is not None and epoch >= self.start

    def generator_terms(self, x: torch.Tensor, recon: torch.Tensor) -> dict:
        """Perceptual and adversarial terms for the autoencoder (x, recon in [0, 1])."""
        from ..metrics import lpips_model

        terms = {}
        if self.lpips_weight:
            net = lpips_model(self.lpips_net, self.device)
            a, b = recon, x
            if min(x.shape[-2:]) < LPIPS_MIN_SIZE:     # AlexNet's pooling needs >= 32 x 32 inputs
                a, b = (F.interpolate(t, size=(LPIPS_MIN_SIZE,) * 2, mode="bilinear", align_corners=False)
                        for t in (recon, x))
            terms["lpips"] = self.lpips_weight * net(2 * a - 1, 2 * b - 1).mean()
        if self.gan_weight:
            self.disc.requires_grad_(False)
            terms["gan_g"] = self.gan_weight * hinge_g_loss(self.disc(2 * recon - 1))
            self.disc.requires_grad_(True)
        return terms

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
