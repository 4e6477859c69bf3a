"""Generated gRPC/protobuf code for the mobiletrain wire API.

Everything under this folder is written by ``scripts/gen_proto.py`` from ``proto/``;
do not edit it by hand. Run ``python scripts/gen_proto.py`` after changing a .proto file
(``--check`` verifies that the committed code is up to date).

Import the modules from ``mobiletrain._proto.mobiletrain.v1``, e.g.
``from mobiletrain._proto.mobiletrain.v1 import datasets_pb2, datasets_pb2_grpc``.
"""
