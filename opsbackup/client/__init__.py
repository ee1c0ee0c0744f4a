"""The client side of the storage server: the pinned-CA HTTPS transport (:mod:`.transport`)."""

from __future__ import annotations

from opsbackup.client.transport import PinnedAdapter, Transport, parallel, pinned_ssl_context

__all__ = ["PinnedAdapter", "Transport", "parallel", "pinned_ssl_context"]
