"""The web tier: aiohttp application, canonical event API, webhooks, dashboard."""
