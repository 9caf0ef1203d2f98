#!/bin/sh
# Generates the Python messages and gRPC stubs for exportd's public API
# (proto/exportd/v1/*.proto) and for the standard health and reflection
# protocols (client/python/protos/) into OUTDIR, with Debian's protoc and
# grpc_python_plugin (packages protobuf-compiler and protobuf-compiler-grpc).
#
#   client/python/generate.sh /tmp/exportd-py
#   PYTHONPATH=/tmp/exportd-py /usr/bin/python3 client/python/exportd_example.py ...
#
# Modules: exportd.v1.segment_pb2, exportd.v1.segment_pb2_grpc, ...,
# grpc_health.v1.health_pb2(_grpc), grpc_reflection.v1alpha.reflection_pb2(_grpc).
# Nothing generated is committed.
set -eu

if [ $# -ne 1 ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
out=$1
here=$(cd "$(dirname "$0")" && pwd)
# The API protos: the repository's proto/ by default, or an installed
# <prefix>/share/exportd/proto via EXPORTD_PROTO_DIR.
proto_dir=${EXPORTD_PROTO_DIR:-$here/../../proto}
protoc=${PROTOC:-protoc}
plugin=${GRPC_PYTHON_PLUGIN:-$(command -v grpc_python_plugin || true)}

if ! command -v "$protoc" >/dev/null 2>&1; then
  echo "$0: protoc not found; apt-get install protobuf-compiler" >&2
  exit 1
fi
if [ -z "$plugin" ] || [ ! -x "$plugin" ]; then
  echo "$0: grpc_python_plugin not found; apt-get install protobuf-compiler-grpc" >&2
  exit 1
fi
if [ ! -f "$proto_dir/exportd/v1/segment.proto" ]; then
  echo "$0: no exportd/v1/*.proto under '$proto_dir'; set EXPORTD_PROTO_DIR" >&2
  exit 1
fi

mkdir -p "$out"
cd "$proto_dir"
"$protoc" --proto_path=. --python_out="$out" --grpc_python_out="$out" \
  --plugin=protoc-gen-grpc_python="$plugin" exportd/v1/*.proto
cd "$here/protos"
"$protoc" --proto_path=. --python_out="$out" --grpc_python_out="$out" \
  --plugin=protoc-gen-grpc_python="$plugin" \
  grpc_health/v1/health.proto grpc_reflection/v1alpha/reflection.proto
