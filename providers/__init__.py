"""DNS provider plugins. The interface is in ``providers.base``, discovery in ``providers.registry``."""

from providers.base import ApplyReceipt, Provider, ProviderWithIds

__all__ = ["ApplyReceipt", "Provider", "ProviderWithIds"]
