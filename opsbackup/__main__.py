from opsbackup.cli import entry_point

entry_point()
