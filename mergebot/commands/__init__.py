"""One module per `mergebot` subcommand (see mergebot.cli)."""
