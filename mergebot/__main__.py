"""Allows `python -m mergebot`, identical to the console script."""

from mergebot.main import main

raise SystemExit(main())
