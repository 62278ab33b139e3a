#!/usr/bin/env bash
# PostgreSQL state vs local state: the same 1,000-step run (independent
# core.noop steps, parallelism 10) journaled to a local PostgreSQL and to a
# local state directory. Both durable: fsync on the journal file, and the
# server's defaults (fsync, synchronous_commit on) on a cluster whose data
# is on disk, not in RAM. Goal: the PostgreSQL run takes at most 2x the
# local one. A chain of 200 steps (nothing to group) is shown too.
#
# Each round runs local, postgres, local within seconds, and its ratio
# compares those; the figure is the median of ROUNDS rounds' ratios, of
# the run's own duration (run_finished's duration_ms: without process and
# plugin start, which both pay alike) and of the whole command.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin/runbook}
[ -x "$BIN" ] || go build -o "$BIN" ./cmd/runbook
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
ROUNDS=${ROUNDS:-5}

pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$pgbin" ]; then
  echo "postgres: not installed (make test-deps), benchmark skipped"
  exit 0
fi
work=$(mktemp -d /var/tmp/runbook-bench-pg.XXXXXX)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() {
  as_pg "$pgbin/pg_ctl" -D "$work/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
as_pg "$pgbin/initdb" -D "$work/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
as_pg "$pgbin/pg_ctl" -D "$work/data" -l "$work/data/server.log" -w -o "-c listen_addresses=127.0.0.1 -p $port -k $work" start >/dev/null
url="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
"$BIN" state migrate -state "$url" >/dev/null

mkdir -p "$work/ind" "$work/chain"
for i in $(seq 1 1000); do printf 'step "core.noop" "s%d" {\n}\n' "$i"; done > "$work/ind/main.hcl"
printf 'step "core.noop" "s1" {\n}\n' > "$work/chain/main.hcl"
for i in $(seq 2 200); do printf 'step "core.noop" "s%d" {\n  depends_on = [step.s%d]\n}\n' "$i" "$((i-1))"; done >> "$work/chain/main.hcl"

# one DIR STATE: "WALL_S ENGINE_MS" of one apply with that -state.
one() {
  local t0 t1 ms
  t0=$EPOCHREALTIME
  ms=$(cd "$1" && RUNBOOK_STATE_KEY_FILE=none "$BIN" apply -auto-approve -json -state "$2" main.hcl | grep '"run_finished"' | grep -o '"duration_ms":[0-9]*' | cut -d: -f2)
  t1=$EPOCHREALTIME
  echo "$(echo "$t1 - $t0" | bc -l) $ms"
}
median() { sort -g | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)]}'; }

status=0
# versus NAME DIR LIMIT
versus() {
  local name=$1 dir=$2 limit=$3 i a p b ratios=() wratios=() loc=() pgs=()
  for ((i = 0; i < ROUNDS; i++)); do
    a=$(one "$dir" "$dir/.local-state"); p=$(one "$dir" "$url"); b=$(one "$dir" "$dir/.local-state")
    set -- $a; local la_w=$1 la_ms=$2; set -- $p; local p_w=$1 p_ms=$2; set -- $b; local lb_w=$1 lb_ms=$2
    loc+=("$la_ms" "$lb_ms"); pgs+=("$p_ms")
    ratios+=("$(echo "2 * $p_ms / ($la_ms + $lb_ms)" | bc -l)")
    wratios+=("$(echo "2 * $p_w / ($la_w + $lb_w)" | bc -l)")
  done
  local r w
  r=$(printf '%s\n' "${ratios[@]}" | median); w=$(printf '%s\n' "${wratios[@]}" | median)
  echo "  $name: run time local $(printf '%s\n' "${loc[@]}" | median | cut -d. -f1) ms, postgres $(printf '%s\n' "${pgs[@]}" | median | cut -d. -f1) ms; postgres/local $(printf '%.2f' "$r")x (rounds: $(printf '%.2f ' "${ratios[@]}")); whole command $(printf '%.2f' "$w")x"
  if [ -n "$limit" ]; then
    if (( $(echo "$r <= $limit" | bc -l) )); then echo "  goal <= ${limit}x: ok"; else echo "  goal <= ${limit}x: OVER"; status=1; fi
  fi
}

echo "PostgreSQL state ($("$pgbin/postgres" --version), fsync on, data on disk) vs local state directory; $ROUNDS rounds of local, postgres, local; load: $(uptime | sed 's/.*load average: //')"
if [ -z "${LIST_ONLY:-}" ]; then # LIST_ONLY=1: only the runs listing below
  versus "1,000 independent core.noop steps" "$work/ind" 2
  versus "chain of 200 core.noop steps (no grouping possible)" "$work/chain" ""
fi
echo "  load after: $(uptime | sed 's/.*load average: //')"

# runs ls with many runs in the database: one real 3-step run copied (its
# journal lines as they are) to LIST_RUNS runs, 1 in 100 left unfinished.
# `runs ls` lists the newest 50 (a query for one page); -all reads every
# run, which is what runs ls did before it had a limit; BIN_BEFORE=path
# times that earlier build's runs ls too.
LIST_RUNS=${LIST_RUNS:-10000}
mkdir -p "$work/list"
printf 'runbook "small" {\n  lock = "small"\n}\nstep "core.noop" "a" {\n}\nstep "core.noop" "b" {\n}\nstep "core.noop" "c" {\n}\n' > "$work/list/main.hcl"
(cd "$work/list" && RUNBOOK_STATE_KEY_FILE=none "$BIN" apply -auto-approve -state "$url" main.hcl >/dev/null)
# The copies are made as a writer would: each its own id (and lock key
# small-N) in its run_started record, each line with its checksum
# (CRC-32C) computed again.
"$pgbin/psql" -X -q -t -A -d "$url" -c "SELECT r.id, x.seq, x.line FROM runbook.runs r JOIN runbook.records x ON x.run_id = r.id WHERE r.runbook = 'small' ORDER BY x.seq" > "$work/list/one.txt"
python3 - "$LIST_RUNS" "$work/list" <<'PY'
import sys, json
n, d = int(sys.argv[1]), sys.argv[2]
T = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    T.append(c)
def crc32c(b):
    c = 0xFFFFFFFF
    for x in b:
        c = T[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF
rows = [l.rstrip("\n").split("|", 2) for l in open(d + "/one.txt") if l.strip()]
orig = rows[0][0]
esc = lambda v: v.replace("\\", "\\\\").replace("\t", "\\t")
with open(d + "/runs.tsv", "w") as runs, open(d + "/records.tsv", "w") as recs:
    for g in range(1, n):
        rid = orig[:16] + "%010d" % g
        runs.write("%s\tsmall\tsmall-%d\t2026-01-01 00:00:00+00\n" % (rid, g))
        for _, seq, line in rows:
            j = line[9:]
            if g % 100 == 0 and '"type":"run_state"' in j:
                continue  # 1 in 100 unfinished
            k = j.replace('"id":"%s"' % orig, '"id":"%s"' % rid).replace('"lock":"small"', '"lock":"small-%d"' % g)
            if k != j:
                line = "%08x %s" % (crc32c(k.encode()), k)
            recs.write("%s\t%s\t%s\n" % (rid, seq, esc(line)))
PY
"$pgbin/psql" -X -q -d "$url" -v ON_ERROR_STOP=1 >/dev/null <<SQL
\\copy runbook.runs (id, runbook, lock_key, started) FROM '$work/list/runs.tsv'
\\copy runbook.records (run_id, seq, line) FROM '$work/list/records.tsv'
ANALYZE runbook.runs; ANALYZE runbook.records;
SQL
# timed LABEL ARGS...: the median wall time of 3 runs of the command
# ($TBIN, default $BIN).
timed() {
  local label=$1 i t0 t1 ts=() out bin=${TBIN:-$BIN}; shift
  for i in 1 2 3; do
    t0=$EPOCHREALTIME
    out=$(cd "$work/list" && RUNBOOK_STATE_KEY_FILE=none "$bin" "$@" -state "$url" 2>&1 || true)
    t1=$EPOCHREALTIME
    ts+=("$(echo "$t1 - $t0" | bc -l)")
  done
  printf '  %-52s %6.3f s  (%s lines of output, the last: %.50s)\n' "$label" "$(printf '%s\n' "${ts[@]}" | median)" "$(printf '%s\n' "$out" | wc -l)" "$(printf '%s\n' "$out" | tail -1)"
}
echo "runs in the database: $LIST_RUNS ($((LIST_RUNS / 100)) unfinished); median of 3; load: $(uptime | sed 's/.*load average: //')"
timed "runs ls (newest 50)" runs ls
timed "runs ls -lock small-5000" runs ls -lock small-5000
timed "runs ls -status interrupted -limit 20" runs ls -status interrupted -limit 20
timed "runs ls -all (every run: as before -limit)" runs ls -all
if [ -n "${BIN_BEFORE:-}" ]; then
  TBIN=$BIN_BEFORE timed "runs ls of BIN_BEFORE (an earlier build)" runs ls
fi
timed "resume without a run id (the newest unfinished)" resume
timed "rollback without a run id (the newest of ./main.hcl)" rollback -auto-approve
echo "  load after: $(uptime | sed 's/.*load average: //')"
exit $status
