#!/usr/bin/env bash
# Generates the Python gRPC stubs for contracts/*.proto into
# messaging/_generated/ (gitignored; `make venv` runs this).
# Import them as `from messaging._generated import metadata_pb2`.
# Safe to run any number of times: the folder is rebuilt from scratch.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-.venv/bin/python}"
out=messaging/_generated
# Built beside the target and swapped in, so an interrupted run leaves the old stubs.
tmp="$(mktemp -d "${out}.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

"$PYTHON" -m grpc_tools.protoc \
  --proto_path=contracts \
  --python_out="$tmp" --pyi_out="$tmp" --grpc_python_out="$tmp" \
  contracts/*.proto

# grpc_tools writes `import metadata_pb2 as ...`, which only works with the
# output folder on sys.path; make it relative to the package instead.
sed -i -E 's/^import ([A-Za-z0-9_]+_pb2) as /from . import \1 as /' "$tmp"/*_pb2_grpc.py

echo '"""Generated from contracts/*.proto by scripts/gen_protos.sh. Do not edit."""' \
  >"$tmp/__init__.py"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
chmod 755 "$out"
