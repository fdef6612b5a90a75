"""Subcommands of `alpr`, a module per area. Each module has `register(subparsers)`."""
