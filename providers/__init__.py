"""DNS provider plugins. The interface is in ``providers.base``, discovery in ``providers.registry``."""

from providers.base import ApplyReceipt, Provider

__all__ = ["ApplyReceipt", "Provider"]
