"""cutover: move a domain's web and mail service to a new server through DNS, safely."""

__version__ = "0.1.0"
