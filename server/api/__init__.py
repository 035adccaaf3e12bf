"""Composition root: the aiohttp application (routes, middleware, lifecycle)."""
