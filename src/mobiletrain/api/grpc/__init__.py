"""The gRPC transport: servicers, error mapping and protobuf conversions over the core services.

Entry point: :func:`mobiletrain.api.grpc.server.build_grpc_server`.
"""
