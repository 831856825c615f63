"""Answers from probe networks: DNS measured from other people's machines and resolvers.

From one machine, ``watch`` sees one site of each anycast resolver. Probe networks
(Globalping, later RIPE Atlas) ask from thousands of homes and networks through each
probe's own resolver, the caches real users sit behind. Each service's client turns its
results into ordinary ``Answer`` values, classified exactly like a resolver's, with the
probe's vantage carried on the ``Resolver`` (group ``probe``).
"""

from __future__ import annotations

#: ``Resolver.group`` of every probe answer, so that output can show and count them apart.
PROBE = "probe"
