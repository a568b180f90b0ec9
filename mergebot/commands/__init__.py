"""One module per `mergebot` subcommand (listed, in order, by mergebot.main)."""
