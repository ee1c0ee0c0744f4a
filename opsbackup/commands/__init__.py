"""One module per command; each exports ``command`` and is listed in ``opsbackup.cli.COMMANDS``.

The CLI imports a module only when its command is used, so ``COMMANDS`` also holds each
command's name and one-line help (tests/cli/test_cli_lazy.py checks them against the module).
"""
