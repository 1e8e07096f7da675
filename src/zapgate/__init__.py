"""zapgate: a self-hosted, multi-tenant WhatsApp session gateway."""

__all__ = ["__version__"]

__version__ = "0.1.0"
