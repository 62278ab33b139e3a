#!/usr/bin/env bash
# Engine benchmarks: 1,000 independent core.noop steps, a chain of 200, and
# the peak RSS of 10,000 steps, journal on (fsync). Compared with Terraform
# (terraform_data resources) when `terraform` is on PATH: runbook must be at
# least 15x faster on 1,000 independent steps and 8x on a chain of 200, and
# 10,000 steps must stay under 150 MB.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin/runbook}
[ -x "$BIN" ] || go build -o "$BIN" ./cmd/runbook
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

gen_independent() { # N FILE
  for i in $(seq 1 "$1"); do printf 'step "core.noop" "s%d" {\n}\n' "$i"; done > "$2"
}
gen_chain() { # N FILE
  printf 'step "core.noop" "s1" {\n}\n' > "$2"
  for i in $(seq 2 "$1"); do printf 'step "core.noop" "s%d" {\n  depends_on = [step.s%d]\n}\n' "$i" "$((i-1))"; done >> "$2"
}
gen_tf_independent() { # N DIR
  mkdir -p "$2"; printf 'resource "terraform_data" "r" {\n  count = %d\n}\n' "$1" > "$2/main.tf"
}
gen_tf_chain() { # N DIR
  mkdir -p "$2"; printf 'resource "terraform_data" "r1" {}\n' > "$2/main.tf"
  for i in $(seq 2 "$1"); do printf 'resource "terraform_data" "r%d" {\n  input = terraform_data.r%d.id\n}\n' "$i" "$((i-1))"; done >> "$2/main.tf"
}

# wall DIR CMD... : prints the median wall time in seconds of RUNS runs
# (default 5; timed with bash's clock, no process of its own in the way).
RUNS=${RUNS:-5}
wall() {
  local dir=$1; shift
  local t0 t1 i times=()
  for ((i = 0; i < RUNS; i++)); do
    t0=$EPOCHREALTIME
    (cd "$dir" && "$@" >/dev/null 2>&1)
    t1=$EPOCHREALTIME
    times+=("$(echo "$t1 - $t0" | bc -l)")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)]}'
}

# goal NAME RATIO MIN: the ratio to Terraform must be at least MIN.
goal() {
  if (( $(echo "$2 >= $3" | bc -l) )); then echo "  goal for $1 >= ${3}x: ok"; else echo "  goal for $1 >= ${3}x: UNDER"; status=1; fi
}

status=0
mkdir -p "$work/ind" "$work/chain" "$work/big"
gen_independent 1000 "$work/ind/main.hcl"
gen_chain 200 "$work/chain/main.hcl"
gen_independent 10000 "$work/big/main.hcl"

# engine_ms DIR: the run's own duration (without process start) from -json.
engine_ms() { (cd "$1" && "$BIN" apply -auto-approve -json main.hcl | grep '"run_finished"' | grep -o '"duration_ms":[0-9]*' | cut -d: -f2); }

echo "runbook ($BIN), journal on (wall time of the whole command, median of $RUNS runs):"
echo "  1,000 independent core.noop steps: $(wall "$work/ind" "$BIN" apply -auto-approve main.hcl) s"
echo "  chain of 200 core.noop steps: $(wall "$work/chain" "$BIN" apply -auto-approve main.hcl) s"
echo "  (run time without process and plugin start: 1,000 independent $(engine_ms "$work/ind") ms, chain of 200 $(engine_ms "$work/chain") ms)"
rss=$(cd "$work/big" && /usr/bin/time -f '%M' "$BIN" apply -auto-approve -parallelism 50 main.hcl 2>&1 >/dev/null | tail -1)
rss_mb=$((rss / 1024))
if [ "$rss_mb" -le 150 ]; then echo "  10,000 steps: peak RSS ${rss_mb} MB (limit 150 MB) ok"; else echo "  10,000 steps: peak RSS ${rss_mb} MB (limit 150 MB) OVER"; status=1; fi

TF_RUNS=${TF_RUNS:-5}
# once DIR CMD...: the wall time in seconds of one run.
once() {
  local dir=$1; shift
  local t0 t1
  t0=$EPOCHREALTIME
  (cd "$dir" && "$@" >/dev/null 2>&1)
  t1=$EPOCHREALTIME
  echo "$t1 - $t0" | bc -l
}
median() { sort -n | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)]}'; }
# versus NAME RBDIR TFDIR: TF_RUNS rounds of runbook, terraform, runbook.
# This machine's speed drifts by 15% from one minute to the next, so each
# round's ratio compares runs made within seconds of each other; the median
# of the rounds' ratios is the figure.
versus() {
  local name=$1 rbdir=$2 tfdir=$3 i a b tf rbs=() tfs=() ratios=()
  for ((i = 0; i < TF_RUNS; i++)); do
    a=$(once "$rbdir" "$BIN" apply -auto-approve main.hcl)
    tf=$(once "$tfdir" sh -c "$tf_apply")
    b=$(once "$rbdir" "$BIN" apply -auto-approve main.hcl)
    rbs+=("$a" "$b"); tfs+=("$tf")
    ratios+=("$(echo "2 * $tf / ($a + $b)" | bc -l)")
  done
  local r
  r=$(printf '%s\n' "${ratios[@]}" | median)
  echo "  $name: terraform $(printf '%s\n' "${tfs[@]}" | median) s, runbook $(printf '%s\n' "${rbs[@]}" | median) s in the same rounds; runbook is $(printf "%.1f" "$r")x faster (median of $TF_RUNS rounds: $(printf '%.1f ' "${ratios[@]}"))"
  echo "$r"
}

if command -v terraform >/dev/null 2>&1; then
  echo "terraform ($(terraform version 2>/dev/null | head -1)), $TF_RUNS rounds of runbook, terraform, runbook:"
  gen_tf_independent 1000 "$work/tf-ind"; gen_tf_chain 200 "$work/tf-chain"
  (cd "$work/tf-ind" && terraform init -input=false >/dev/null 2>&1) && (cd "$work/tf-chain" && terraform init -input=false >/dev/null 2>&1)
  # Each run starts from empty state (rm is timed too; it takes microseconds).
  tf_apply='rm -f terraform.tfstate terraform.tfstate.backup && exec terraform apply -auto-approve -input=false'
  out=$(versus "1,000 independent" "$work/ind" "$work/tf-ind"); echo "$out" | head -1
  goal "1,000 independent" "$(echo "$out" | tail -1)" 15
  out=$(versus "chain of 200" "$work/chain" "$work/tf-chain"); echo "$out" | head -1
  goal "a chain of 200" "$(echo "$out" | tail -1)" 8
else
  echo "terraform: not on PATH, comparison skipped"
fi
exit $status
