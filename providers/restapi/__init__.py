"""A DNS provider for any JSON REST API, described in YAML instead of written in Python.

Most DNS hosts offer a REST API that differs from the next one only in paths, field
names and where the records sit in a reply. The ``http`` provider reads that
description (from the plan's ``provider`` settings, or from a file named by
``description:``, taken from the plan's folder; plan settings win key by key) and does what a dedicated provider
does: list, compare ``before`` with the live zone, and write. Two shapes of API fit:

* one entry per record *value* with its own id (Cloudflare, DigitalOcean, Hetzner):
  ``create``/``update``/``delete`` requests, one per value, or one ``apply`` request
  with ``each_record`` templates when the API has a batch endpoint;
* one entry per record *set* (PowerDNS): one ``apply`` request built from every
  change with ``each_set`` templates (``replace``, ``delete``, ``record``).

A description (see ``plans/http/*.yaml`` for two complete ones)::

    service: Cloudflare                  # the API's name in messages
    base_url: https://api.example/v4
    auth: {type: bearer, token: "${TOKEN}"}        # or header (header, value), basic (username, password)
    vars: {server_id: localhost}         # constants usable as placeholders
    zone_id: "{zone}"                    # a template; else zone_lookup finds it
    zone_lookup: {path: /zones, params: {name: "{zone_name}"}, records: result, id: id,
                  nameservers: name_servers}
    list:
      path: /zones/{zone_id}/records
      records: result                    # dotted path to the entries ("" = the reply itself)
      id: id                             # per-value APIs only
      name: name
      type: type
      ttl: ttl
      value: "{content}"                 # per value: a template over the entry's fields
      value_by_type: {MX: "{priority} {content}"}
      values: records[].content          # per set instead: a path ending in a list
      pagination: {style: page, page_param: page, per_page_param: per_page, per_page: 100,
                   total_pages: result_info.total_pages}   # or style: cursor / link / none
    write_value:                         # API fields of one value, merged into record bodies
      MX: {content: "{value.exchange}", priority: "{value.preference}"}
    create: {method: POST, path: ..., body: {name: "{host}", type: "{type}", ttl: "{ttl}"}}
    update: {method: PATCH, path: .../{id}, body: {ttl: "{ttl}"}}
    delete: {method: DELETE, path: .../{id}}

Placeholders are ``{name}``: ``zone`` (with the final dot), ``zone_name`` (without),
``zone_id``, every ``vars`` entry, and per change ``name`` (``www.example.com.``),
``host`` (``www.example.com``), ``relative`` (``www`` or ``@``), ``type``, ``ttl``,
``values`` (canonical strings), ``records`` (``each_set.record`` rendered per value);
per value ``value`` (canonical text), ``value.FIELD`` (dnspython's field of that
type: ``preference``, ``exchange``, ``target``, ``tag``...) and ``id``. A string that
is exactly one placeholder keeps the value's type (a TTL stays a number, ``{values}``
a list); a placeholder inside a longer string is inserted as text.

The check of ``before`` against a fresh read happens before anything is sent; APIs
without a transaction get their changes one by one, and a failure half-way raises
``PartialApplyError`` naming the record sets that fully landed.

The package has one module per part: ``template`` (dotted paths into replies and
``{placeholder}`` templates), ``description`` (the schema above, read with every
problem located), ``provider`` (``HttpProvider``). The HTTP client itself is
``providers.httpclient``, shared with the powerdns and cloudflare providers.
"""

from providers.restapi.provider import HttpProvider

__all__ = ["HttpProvider"]
