"""One module per command; each exports ``command`` and is listed in ``opsbackup.cli.COMMANDS``."""
