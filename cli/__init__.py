"""The `taskplane` command line (see `cli.main`)."""
