"""Federated learning: strategies, update checks, privacy and the round state machine.

Plain Python and numpy: no transport, storage or TensorFlow. ``core.federated`` runs sessions
on top of this package; ``api`` adapts it to gRPC and REST.
"""
