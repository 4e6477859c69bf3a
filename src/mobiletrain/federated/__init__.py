"""Federated learning: sessions, the device protocol, strategies, update checks, privacy and
the round state machine.

``service.FederatedService`` runs sessions (its parts: ``device``, ``coordinator``,
``publishing``, ``lifecycle``); ``ports`` names what it needs from storage and TensorFlow, which
``store`` and ``compute`` implement; ``api`` adapts it to gRPC and REST. This package may import
``core`` (errors, types, ports, services); ``core`` never imports it.
"""
