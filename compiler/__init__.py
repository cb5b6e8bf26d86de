"""tvc: compile trained neural networks into standalone C for Arm Cortex-M."""

__version__ = "0.1.0"
