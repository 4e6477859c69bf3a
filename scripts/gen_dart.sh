#!/usr/bin/env bash
# Generate the Dart (Flutter) gRPC client code from proto/mobiletrain/v1/*.proto.
#
# Output: clients/dart/mobiletrain_client/lib/src/generated/
#
# Requirements (not installed by this repository):
#   * protoc, the Protocol Buffers compiler (https://protobuf.dev/installation/),
#     e.g. `apt install protobuf-compiler` or `brew install protobuf`;
#   * protoc-gen-dart from protoc_plugin 25.0.0 exactly:
#     `dart pub global activate protoc_plugin 25.0.0`, with "$HOME/.pub-cache/bin" on PATH.
#
# Why that version: the package depends on protobuf ^6.0.0, which made the `PbList`
# constructor private. protoc_plugin <= 23 generates `PbList<T>()` (createRepeated), which no
# longer compiles; 24 stopped that; 25 (which needs protobuf >= 5.2, and which protobuf 6's
# well-known-type libraries were made for) imports google/protobuf/timestamp.proto as
# `package:protobuf/well_known_types/google/protobuf/timestamp.pb.dart` instead of a local
# copy, so no well-known type is generated here. The script refuses any other version.
#
# Usage: scripts/gen_dart.sh   (from any directory; optional env PROTOC_INCLUDE)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="clients/dart/mobiletrain_client/lib/src/generated"

missing=0
if ! command -v protoc >/dev/null 2>&1; then
  echo "error: protoc not found on PATH." >&2
  echo "  Install it: apt install protobuf-compiler | brew install protobuf" >&2
  echo "  or download a release from https://github.com/protocolbuffers/protobuf/releases" >&2
  missing=1
fi
if ! command -v protoc-gen-dart >/dev/null 2>&1; then
  echo "error: protoc-gen-dart not found on PATH." >&2
  echo "  Install it: dart pub global activate protoc_plugin" >&2
  echo "  and add \"\$HOME/.pub-cache/bin\" to PATH." >&2
  missing=1
fi
if [ "$missing" -ne 0 ]; then
  exit 1
fi

PROTOC_PLUGIN_VERSION="25.0.0"
if command -v dart >/dev/null 2>&1; then
  have="$(dart pub global list 2>/dev/null | awk '$1 == "protoc_plugin" {print $2}')"
  if [ "$have" != "$PROTOC_PLUGIN_VERSION" ]; then
    echo "error: protoc_plugin ${have:-(not activated)} found; this script needs $PROTOC_PLUGIN_VERSION." >&2
    echo "  Run: dart pub global activate protoc_plugin $PROTOC_PLUGIN_VERSION" >&2
    exit 1
  fi
else
  echo "warning: dart not on PATH; cannot check that protoc-gen-dart is protoc_plugin $PROTOC_PLUGIN_VERSION." >&2
fi

cd "$ROOT"
mkdir -p "$OUT"
# google/protobuf/timestamp.proto is read from protoc's own include directory (set
# PROTOC_INCLUDE to the directory that holds google/protobuf/ if protoc cannot find it) and,
# with protoc_plugin 25, imported from package:protobuf: it is not compiled here.
include=(-I proto)
if [ -n "${PROTOC_INCLUDE:-}" ]; then
  include+=(-I "$PROTOC_INCLUDE")
fi
rm -rf "$OUT/google"  # a local copy left by an older protoc_plugin
protoc --dart_out="grpc:$OUT" "${include[@]}" proto/mobiletrain/v1/*.proto
echo "Dart code written to $OUT"
