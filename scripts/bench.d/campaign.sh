#!/usr/bin/env bash
# Campaign throughput on workers: 4 worker processes (capacity 4 each) and
# RUNS (default 1,000) runs of a 5-step core.noop runbook, journaled in a
# local PostgreSQL (fsync on, data on disk) that also holds the queue.
# Prints runs/s (goal >= 50) and, for one worker killed with kill -9 at
# 40% (its plugins with it), the time from the kill to another worker
# taking over the first of the targets the killed one held (its runs in
# progress, resumed, and the jobs it had taken but not started yet, applied
# again with their fixed run ids; goal <= 30 s), and to the first step
# started again. Every run must complete once.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin/runbook}
[ -x "$BIN" ] || go build -o "$BIN" ./cmd/runbook
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
RUNS=${RUNS:-1000}
LEASE=${LEASE:-5s}

pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$pgbin" ]; then
  echo "postgres: not installed (make test-deps), benchmark skipped"
  exit 0
fi
work=$(mktemp -d /var/tmp/runbook-bench-campaign.XXXXXX)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 -- "-$p" 2>/dev/null || true; done
  as_pg "$pgbin/pg_ctl" -D "$work/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
as_pg "$pgbin/initdb" -D "$work/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
as_pg "$pgbin/pg_ctl" -D "$work/data" -l "$work/data/server.log" -w -o "-c listen_addresses=127.0.0.1 -p $port -k $work -c max_connections=200" start >/dev/null
url="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
psql() { "$pgbin/psql" -X -q -t -A "$url" -c "$1"; }
"$BIN" state migrate -state "$url" >/dev/null

mkdir -p "$work/rb"
{
  printf 'runbook "noop5" {\n  lock = "host-${var.host}"\n}\nvariable "host" {\n  type = string\n}\n'
  printf 'step "core.noop" "s1" {\n  with = { values = var.host }\n}\n'
  for i in 2 3 4 5; do printf 'step "core.noop" "s%d" {\n  depends_on = [step.s%d]\n}\n' "$i" "$((i-1))"; done
} > "$work/rb/main.hcl"
{ echo host; for i in $(seq 1 "$RUNS"); do echo "h$i"; done; } > "$work/rb/targets.csv"
# A key file: a passphrase would be stretched (argon2id) by every run.
keyfile="$work/state.key"
head -c 32 /dev/urandom | base64 > "$keyfile"
chmod 600 "$keyfile"
export RUNBOOK_STATE_KEY_FILE=$keyfile RUNBOOK_SELF_EXE=$BIN XDG_CONFIG_HOME=$work/config

echo "campaign: $RUNS runs of a 5-step core.noop runbook on 4 workers (capacity 4), lease $LEASE; load: $(uptime | sed 's/.*load average: //')"
for i in 1 2 3 4; do
  (cd "$work/rb" && exec setsid "$BIN" worker -state "$url" -capacity 4 -lease "$LEASE" 2>"$work/worker$i.log") &
  pids+=($!)
done
sleep 1
commits0=$(psql "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()")
t0=$EPOCHREALTIME
(cd "$work/rb" && "$BIN" campaign start main.hcl -targets targets.csv -name bench -state "$url" >/dev/null)
succeeded() { psql "SELECT count(*) FROM runbook.targets WHERE state = 'succeeded'"; }
killed=""
held=""
while :; do
  n=$(succeeded)
  if [ -z "$killed" ] && [ "$n" -ge $((RUNS * 2 / 5)) ] && [ "$(psql "SELECT count(*) FROM river_job WHERE state = 'running'
      AND attempted_by[cardinality(attempted_by)] LIKE '%-${pids[0]}-%'")" -gt 0 ]; then
    killed=$EPOCHREALTIME
    kill -9 -- "-${pids[0]}"
    # What it held: the jobs River gave it and the targets it was running
    # (a worker's id is host-pid-suffix; setsid kept the pid).
    held=$(psql "SELECT string_agg(DISTINCT t::text, ',') FROM (
      SELECT (args->>'target')::bigint AS t FROM river_job WHERE kind = 'runbook_campaign_run' AND state = 'running'
        AND attempted_by[cardinality(attempted_by)] LIKE '%-${pids[0]}-%'
      UNION SELECT id FROM runbook.targets WHERE state = 'running' AND worker LIKE '%-${pids[0]}-%') s")
  fi
  [ "$n" -ge "$RUNS" ] && break
  state=$(psql "SELECT state FROM runbook.campaigns WHERE name = 'bench'")
  [ "$state" = done ] && break
  if [ "$state" != running ]; then echo "  campaign $state"; exit 1; fi
  sleep 0.2
done
t1=$EPOCHREALTIME
commits=$(( $(psql "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()") - commits0 ))
elapsed=$(echo "$t1 - $t0" | bc -l)
rate=$(echo "$RUNS / $elapsed" | bc -l)
# After the kill, in the runs of the targets the killed worker held:
# the first record another worker wrote (it took the target over: a run
# started again, resumed, or just ended when its steps were all done) or
# the first finish of such a target, and the first step started. The
# killed worker wrote nothing since.
first="" firststep="" firstwhat=""
if [ -n "$held" ]; then
  rec="(substr(r.line, position('{' in r.line))::jsonb)"
  read -r first firstwhat < <(psql "SELECT extract(epoch FROM at), what FROM (
      SELECT ($rec->>'t')::timestamptz AS at, $rec->>'type' AS what FROM runbook.records r JOIN runbook.targets t ON t.run_id = r.run_id
        WHERE t.id IN ($held) AND ($rec->>'t')::timestamptz > to_timestamp($killed)
      UNION ALL SELECT finished_at, 'target_finished' FROM runbook.targets WHERE id IN ($held) AND finished_at > to_timestamp($killed)
    ) s ORDER BY at LIMIT 1" | tr '|' ' ') || true
  firststep=$(psql "SELECT extract(epoch FROM min(($rec->>'t')::timestamptz)) FROM runbook.records r JOIN runbook.targets t ON t.run_id = r.run_id
      WHERE t.id IN ($held) AND $rec->>'type' = 'attempt_started' AND ($rec->>'t')::timestamptz > to_timestamp($killed)")
fi
nheld=$(echo "$held" | tr ',' '\n' | grep -c . || true)
resumed=$(psql "SELECT count(DISTINCT run_id) FROM runbook.records WHERE substr(line, position('{' in line))::jsonb->>'type' = 'run_resumed'")
runs=$(psql "SELECT count(*) FROM runbook.runs")
ok=$(succeeded)
left=$(psql "SELECT count(*) FROM river_job WHERE state <> 'completed'")
status=0
printf '  %d runs in %.1f s: %.1f runs/s (goal >= 50): %s\n' "$RUNS" "$elapsed" "$rate" "$( (( $(echo "$rate >= 50" | bc -l) )) && echo ok || echo UNDER)"
printf '  database transactions: %.1f per run (the workers'"'"' polls and heartbeats included)\n' "$(echo "$commits / $RUNS" | bc -l)"
if [ -n "$first" ]; then
  d=$(echo "$first - $killed" | bc -l)
  step="no step of theirs needed starting again"
  [ -n "$firststep" ] && step=$(printf 'the first step started %.1f s after the kill' "$(echo "$firststep - $killed" | bc -l)")
  printf '  kill -9 of a worker at 40%%: another worker took over the first of the %d targets it held %.1f s later (%s); %s; %d runs resumed from their journals; goal <= 30 s: %s\n' \
    "$nheld" "$d" "$firstwhat" "$step" "$resumed" "$( (( $(echo "$d <= 30" | bc -l) )) && echo ok || { status=1; echo OVER; })"
  echo "  kill at $(date -u -d "@$killed" +%T.%N | cut -c1-12); rescues:"
  grep -h "rescued" "$work"/worker*.log | sed 's/^/    /' || true
else
  status=1
  echo "  kill -9 of a worker at 40%: it held $nheld targets, and no other worker took any of them over: FAILED"
fi
echo "  runs journaled: $runs, succeeded: $ok (want $RUNS each), jobs not completed: $left (want 0)"
[ "$runs" = "$RUNS" ] && [ "$ok" = "$RUNS" ] && [ "$left" = 0 ] || status=1
echo "  load after: $(uptime | sed 's/.*load average: //')"
exit $status
