"""Paved approver: the approval policy, approval cases and e-signatures.

Entry points: ``paved_approver.bootstrap.create_app(settings)`` (ASGI app whose
lifespan runs the service runtime) and ``python -m paved_approver``.
"""
