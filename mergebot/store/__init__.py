"""Redis adapters: every durable thing mergebot keeps lives behind this package."""
