"""Allows `python -m mergebot`, identical to the console script."""

from mergebot.cli import main

raise SystemExit(main())
