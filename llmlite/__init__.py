"""llmlite: a small, fast local runner for GGUF language models."""
__version__ = "0.1.0"
