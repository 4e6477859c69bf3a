#!/usr/bin/env bash
# Generate the Dart (Flutter) gRPC client code from proto/mobiletrain/v1/*.proto.
#
# Output: clients/dart/mobiletrain_client/lib/src/generated/
#
# Requirements (not installed by this repository):
#   * protoc, the Protocol Buffers compiler (https://protobuf.dev/installation/),
#     e.g. `apt install protobuf-compiler` or `brew install protobuf`;
#   * protoc-gen-dart: `dart pub global activate protoc_plugin`, with
#     "$HOME/.pub-cache/bin" on PATH.
# The Dart package then depends on `protobuf` and `grpc` from pub.dev.
#
# Usage: scripts/gen_dart.sh   (from any directory; optional env PROTOC_INCLUDE, see below)
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

cd "$ROOT"
mkdir -p "$OUT"
# google/protobuf/timestamp.proto comes from protoc's own include directory; if protoc
# cannot find it, set PROTOC_INCLUDE to the directory that holds google/protobuf/.
include=(-I proto)
if [ -n "${PROTOC_INCLUDE:-}" ]; then
  include+=(-I "$PROTOC_INCLUDE")
fi
protoc --dart_out="grpc:$OUT" "${include[@]}" \
  proto/mobiletrain/v1/*.proto google/protobuf/timestamp.proto
echo "Dart code written to $OUT"
