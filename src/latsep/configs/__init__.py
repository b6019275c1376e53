"""Shipped training configs (package data): tiny.toml, default.toml."""
