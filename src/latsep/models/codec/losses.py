"""Codec training losses: waveform L2, multi-resolution STFT, linearization (LQ-VAE)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from latsep.models.codec.quantizer import EMAQuantizer

LOG_EPS = 1e-3  # magnitude floor of the log term: ~−90 dB below a full-scale tone's bin
DEFAULT_RESOLUTIONS: tuple[tuple[int, int], ...] = ((2048, 512), (1024, 256), (512, 128), (256, 64))


def normalized_l2(reference: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ‖x − x̂‖² / (‖x‖² + ε̄); (B, L) inputs. Scale-free, like −SDR.

    ε̄ = 0.1 × the batch's mean energy: a silent or near-silent crop (stems rest a lot)
    must not turn into a huge ratio that swamps the batch; it is judged against the
    batch's typical level instead.
    """
    error = (reference - estimate).pow(2).sum(-1)
    energy = reference.pow(2).sum(-1)
    return (error / (energy + _floor(energy))).mean()


def _floor(energy: torch.Tensor) -> torch.Tensor:
    return 0.1 * energy.mean().detach() + 1e-8


def multi_resolution_stft_loss(
    reference: torch.Tensor,
    estimate: torch.Tensor,
    resolutions: Sequence[tuple[int, int]] = DEFAULT_RESOLUTIONS,
) -> torch.Tensor:
    """Σ over (n_fft, hop) of spectral convergence + L1 of log magnitudes; (B, L) inputs."""
    total = reference.new_zeros(())
    for n_fft, hop in resolutions:
        window = torch.hann_window(n_fft, device=reference.device)
        ref = _magnitude(reference, n_fft, hop, window)  # (B, F, frames)
        est = _magnitude(estimate, n_fft, hop, window)
        energy = ref.pow(2).sum(dim=(1, 2))  # (B,)
        ratio = (ref - est).pow(2).sum(dim=(1, 2)) / (energy + _floor(energy))
        convergence = (ratio + 1e-12).sqrt()
        log_l1 = (torch.log(ref + LOG_EPS) - torch.log(est + LOG_EPS)).abs().mean(dim=(1, 2))
        total = total + convergence.mean() + log_l1.mean()
    return total / len(resolutions)


def _magnitude(x: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor) -> torch.Tensor:
    spec = torch.stft(
        x.float(), n_fft, hop_length=hop, window=window, return_complex=True, center=True
    )
    return spec.abs()


def linearization_loss(
    quantizer: EMAQuantizer,
    latent_a: torch.Tensor,
    latent_b: torch.Tensor,
    latent_mix: torch.Tensor,
) -> torch.Tensor:
    """‖q(½q(z_a) + ½q(z_b)) − q(z_mix)‖² averaged over (B, D, T); latents are (B, D, T).

    z_mix is the encoding of the mean of the two waveforms. q is applied with the
    straight-through estimator, so the gradient pulls the mixture's latent and the
    sources' latents towards a quantised space where "mean of codewords" and
    "code of the mean" agree — the property LQ-VAE's Gaussian likelihood assumes.
    The loss is exactly zero when the two quantised codewords coincide everywhere.
    """
    mean_of_codewords = 0.5 * (
        _quantize_st(quantizer, latent_a) + _quantize_st(quantizer, latent_b)
    )
    return F.mse_loss(
        _quantize_st(quantizer, mean_of_codewords), _quantize_st(quantizer, latent_mix)
    )


def _quantize_st(quantizer: EMAQuantizer, z: torch.Tensor) -> torch.Tensor:
    # Quantise without touching the EMA statistics; straight-through gradient.
    q = quantizer.lookup(quantizer.quantize_codes(z.detach()))
    return z + (q - z).detach()
