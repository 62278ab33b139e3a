#!/usr/bin/env bash
# for_each at scale: validate and plan (printed) of one step over 100,000
# items, as a set (toset of a list) and as a map. The goal is under 5 s for
# each validate and for the plan of an action without a plugin plan
# (core.exec: the engine's own work); the plan of core.noop, which asks the
# plugin for its own plan of every instance (100,000 round trips to the
# plugin process), is shown without a goal. Wall time depends on the
# machine's load, printed beside the figures.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin/runbook}
[ -x "$BIN" ] || go build -o "$BIN" ./cmd/runbook
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
N=${FOREACH_N:-100000}
RUNS=${RUNS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# gen DIR ACTION FOREACH WITH: a runbook whose local "items" holds N strings
# (or, for a map, N entries) and one step over them.
gen() {
  mkdir -p "$1"
  {
    printf 'locals {\n  prefix = "p"\n'
    if [ "$3" = map ]; then
      printf '  items = {\n'; seq 1 "$N" | awk '{printf "    k%d = \"%d\"\n", $1, $1}'; printf '  }\n'
    else
      printf '  items = [\n'; seq 1 "$N" | awk '{printf "    \"k%d\",\n", $1}'; printf '  ]\n'
    fi
    printf '}\nstep "%s" "each" {\n' "$2"
    if [ "$3" = map ]; then printf '  for_each = local.items\n'; else printf '  for_each = toset(local.items)\n'; fi
    [ -n "$4" ] && printf '  with = %s\n' "$4"
    printf '}\n'
  } > "$1/main.hcl"
}

# measure DIR CMD...: the median wall time and the median CPU time (user
# and system, of runbook itself: plugin processes are not waited for) in
# seconds of RUNS runs, as "WALL CPU".
measure() {
  local dir=$1; shift
  local i walls=() cpus=() out
  for ((i = 0; i < RUNS; i++)); do
    out=$(cd "$dir" && /usr/bin/time -f 'TIME %e %U %S' "$@" 2>&1 >/dev/null | grep '^TIME ') || { echo "failed: $*" >&2; return 1; }
    walls+=("$(echo "$out" | cut -d' ' -f2)")
    cpus+=("$(echo "$out" | awk '{print $3 + $4}')")
  done
  printf '%s %s\n' "$(printf '%s\n' "${walls[@]}" | median)" "$(printf '%s\n' "${cpus[@]}" | median)"
}
median() { sort -n | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]}'; }

status=0
# goal WHAT CMD...: wall time under 5 s, or say so (with the CPU time,
# which a loaded machine does not inflate).
goal() {
  local what=$1; shift
  local m wall cpu
  m=$(measure "$@"); wall=${m% *}; cpu=${m#* }
  if (( $(echo "$wall < 5" | bc -l) )); then
    echo "  $what: $wall s, CPU $cpu s (goal < 5 s) ok"
  else
    echo "  $what: $wall s, CPU $cpu s (goal < 5 s) OVER"; status=1
  fi
}

exec_with='{ command = "echo ${local.prefix} ${each.key}" }'
gen "$work/set" core.exec set "$exec_with"
gen "$work/map" core.exec map "$exec_with"
gen "$work/lookup" core.exec map '{ command = "echo ${local.prefix} ${local.items[each.key]}" }'
gen "$work/noop" core.noop set ""
# apply of local.items[each.key] over APPLY_N instances (core.noop: the
# engine's work and one plugin call each); each instance used to evaluate
# the whole local again (4,000 instances: 76 s of CPU).
APPLY_N=${FOREACH_APPLY_N:-10000}
N=$APPLY_N gen "$work/apply" core.noop map '{ values = "${local.prefix} ${local.items[each.key]}" }'
echo "for_each over $N items (median of $RUNS runs; load average before: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || uptime)):"
goal "validate, toset of a list" "$work/set" "$BIN" validate main.hcl
goal "validate, map" "$work/map" "$BIN" validate main.hcl
goal "plan, toset of a list (core.exec)" "$work/set" "$BIN" plan main.hcl
goal "plan, map (core.exec)" "$work/map" "$BIN" plan main.hcl
goal "plan, map with local.items[each.key] (core.exec)" "$work/lookup" "$BIN" plan main.hcl
m=$(RUNS=1 measure "$work/apply" "$BIN" apply -auto-approve main.hcl)
echo "  apply of $APPLY_N instances reading local.items[each.key] (core.noop): ${m% *} s, CPU ${m#* } s (one run, no goal)"
m=$(RUNS=1 measure "$work/noop" "$BIN" plan main.hcl)
echo "  plan with a plugin plan per instance (core.noop): ${m% *} s, CPU ${m#* } s without the plugin's (one run, no goal)"
echo "  plan output: $(cd "$work/set" && "$BIN" plan main.hcl | wc -c) bytes for the set"
echo "  load average after: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || uptime)"
exit $status
