"""opsbackup: client-side encrypted, public-key backup for servers, with its own storage server."""

__version__ = "0.1.0"
