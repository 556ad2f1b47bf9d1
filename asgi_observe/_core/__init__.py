"""The per-request record, path dispatch, HTTP facts and ASGI types every room shares.

Imports nothing of asgi_observe's own; see docs/architecture.md.
"""
