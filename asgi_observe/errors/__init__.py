"""Errors: the Sentry layer, its event and policy helpers, framework error hooks.

sentry-sdk is an optional extra: nothing here imports it until `errors.sentry` is used.
"""
