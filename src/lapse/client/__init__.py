"""The client side of `lapse`: configuration, the HTTP API client, and streaming transfers.

Nothing here prints or prompts: `lapse.cli` owns the terminal and hands in callbacks (progress, passwords).
"""
