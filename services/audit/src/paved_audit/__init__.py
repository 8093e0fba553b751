"""Paved audit: every lifecycle event sealed once into a hash-chained, append-only trail.

Run the worker with ``python -m paved_audit``; verify a chain with ``paved_audit.verify``.
"""
