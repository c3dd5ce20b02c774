"""Webhook delivery (docs/webhooks.md): legacy and v3 events POSTed to HTTP endpoints, signed.

The component is :class:`relay.webhooks.delivery.WebhookDelivery`; the CLI's
``clever-relay webhooks list|replay|purge`` calls :mod:`relay.webhooks.admin`. How it works and
what it guarantees is in ``docs/webhooks.md``.
"""

from __future__ import annotations

__all__ = ["WebhookDelivery"]


def __getattr__(name: str) -> object:
    """Import the component lazily so ``relay.webhooks.admin`` stays light for the CLI."""
    if name == "WebhookDelivery":
        from relay.webhooks.delivery import WebhookDelivery

        return WebhookDelivery
    raise AttributeError(name)
