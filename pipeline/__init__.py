"""mobile-deploy: from a trained image classifier to verified, benchmarked mobile artifacts."""

__version__ = "0.1.0"
