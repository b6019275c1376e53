"""latsep: music source separation with latent generative methods."""

__version__ = "0.1.0"
