#!/usr/bin/env bash
# Plugin host benchmarks: cold start of a builtin plugin process (launch,
# go-plugin handshake with AutoMTLS, GetSchema; target <= 30 ms) and one
# no-op Apply round trip to a running plugin (target <= 200 us), alone and
# from 10 goroutines at once.
# cpu-ns/op is the CPU time (user+sys) per op, which stays meaningful on a
# loaded machine where wall time does not: of the engine and the plugin
# process for the cold start, of the engine side only for the calls (the
# plugin process is reaped after the measurement).
set -euo pipefail
cd "$(dirname "$0")/../.."
go test -run '^$' -bench 'BenchmarkColdStart|BenchmarkNoopApply' -benchtime "${BENCHTIME:-3s}" -count "${COUNT:-3}" ./engine/pluginhost
