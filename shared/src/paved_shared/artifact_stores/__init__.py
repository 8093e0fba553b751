"""Cloud adapters of :mod:`paved_shared.artifacts` (the only modules importing the cloud SDKs).

Use :func:`paved_shared.artifacts.store_for`; it imports these on demand.
"""
