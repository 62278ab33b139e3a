#!/bin/sh
# Regenerates sdk/proto/pluginv1 from sdk/proto/plugin.proto with pinned
# generator versions. Needs protoc (Debian: apt-get install -y protobuf-compiler).
set -eu
cd "$(dirname "$0")/.."
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.0
BIN="$(pwd)/bin/protoc-plugins"
mkdir -p "$BIN"
GOBIN="$BIN" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
GOBIN="$BIN" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
command -v protoc >/dev/null || { echo "protoc not found: apt-get install -y protobuf-compiler" >&2; exit 1; }
mkdir -p sdk/proto/pluginv1
PATH="$BIN:$PATH" protoc -I sdk/proto \
	--go_out=sdk/proto/pluginv1 --go_opt=paths=source_relative \
	--go-grpc_out=sdk/proto/pluginv1 --go-grpc_opt=paths=source_relative \
	sdk/proto/plugin.proto
