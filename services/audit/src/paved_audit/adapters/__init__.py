"""Adapters of the audit service's ports (signing keys)."""
