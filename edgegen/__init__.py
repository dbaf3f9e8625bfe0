"""edgegen: generative models from training to devices."""
__version__ = "0.1.0"
