"""Webhooks: the endpoints read model, the delivery ledger and the dispatcher.

- :mod:`.endpoints` — :class:`WebhookEndpointsModel`, the org's endpoints folded with
  the domain's ``webhook.evolve`` (the API lists endpoints from it).
- :mod:`.ledger` — :class:`DeliveryLedger`, what the dispatcher reads: endpoints and the
  last attempt of each delivery, folded from ``events.webhook.>`` only.
- :mod:`.sources` — a lifecycle event rendered as the public resource as of its place
  in the log, with the earlier events of its session that must reach an endpoint first.
- :mod:`.dispatcher` — :class:`Dispatcher`, the process manager that POSTs and appends
  ``webhook.delivery_attempted``; :func:`dispatch_while_holding` keeps one active.
- :mod:`.urls` — where a webhook may be delivered (SSRF checks, a pinned address).
- :mod:`.deliveries` — recent deliveries with their attempts, for the operator dashboard.
"""
