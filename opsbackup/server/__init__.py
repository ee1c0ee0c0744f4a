"""The storage server: an HTTP API over TLS (private CA), storage backends, config."""
