#!/usr/bin/env bash
# 3-node ring vs one node, measured in the same run on this machine: 1 KiB PUT (N=3 W=2 on
# the ring) and GET (R=2) throughput and p99 with 64 requests in flight. Each figure is the
# median of REPEAT rounds; every round starts fresh nodes.
#   DURATION (s per run, default 5), REPEAT (default 3), BIN_DIR (build dir), BENCH_DIR (where
#   the data dirs go; default a directory under /work, or $TMPDIR)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
BIN_DIR=${BIN_DIR:-$SCRIPT_DIR/../build}
DURATION=${DURATION:-5}
REPEAT=${REPEAT:-3}
NODE="$BIN_DIR/node/ringstore-node"
CLI="$BIN_DIR/tools/ringstore"
for b in "$NODE" "$CLI"; do
  [[ -x $b ]] || { echo "cluster_bench: missing $b (build first: make build)" >&2; exit 2; }
done
base=${BENCH_DIR:-$([[ -d /work && -w /work ]] && echo /work || echo "${TMPDIR:-/tmp}")}
WORK=$(mktemp -d "$base/ringstore-cluster-bench.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [[ -n $p ]] && kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do [[ -n $p ]] && wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# start_node NAME [ARGS...] -> sets ADDR to the node's address. (Not a $(...) substitution:
# the node would hold the substitution's pipe open, and PIDS would be lost in the subshell.)
start_node() {
  local name=$1; shift
  rm -f "$WORK/$name.addr"
  "$NODE" --data "$WORK/$name" --listen 127.0.0.1:0 --ready-file "$WORK/$name.addr" "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 200); do [[ -s $WORK/$name.addr ]] && break; sleep 0.05; done
  [[ -s $WORK/$name.addr ]] || { echo "cluster_bench: $name did not start:" >&2; tail "$WORK/$name.log" >&2; exit 1; }
  ADDR=$(cat "$WORK/$name.addr")
}
stop_all() {
  for p in "${PIDS[@]:-}"; do [[ -n $p ]] && kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do [[ -n $p ]] && wait "$p" 2>/dev/null || true; done
  PIDS=()
}
# run LABEL ADDR QUORUM... BENCH-ARGS: records ops_per_s and p99_us of one bench run
declare -A SAMPLES
run() {
  local label=$1 addr=$2; shift 2
  local out
  out=$("$CLI" --cluster "$addr" "$@" 2>/dev/null | grep '^RESULT') || { echo "cluster_bench: $label failed" >&2; exit 1; }
  [[ $out == *" errors=0"* ]] || { echo "cluster_bench: $label had errors: $out" >&2; exit 1; }
  SAMPLES[${label}_ops]+="$(sed -E 's/.* ops_per_s=([0-9.]+).*/\1/' <<<"$out") "
  SAMPLES[${label}_p99]+="$(sed -E 's/.* p99_us=([0-9.]+).*/\1/' <<<"$out") "
}
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

K=(bench --size 1024 --keys 10000 --duration "$DURATION" --in-flight 64 --connections 2)
echo "cluster_bench: $(date -u +%FT%TZ), $(nproc) cores, DURATION=${DURATION}s, REPEAT=$REPEAT, data in $WORK" >&2
for round in $(seq "$REPEAT"); do
  echo "cluster_bench: round $round: one node" >&2
  start_node "r$round-single"
  a=$ADDR
  run single_get "$a" --replicas 1 --w 1 --r 1 "${K[@]}" --op get
  run single_put "$a" --replicas 1 --w 1 --r 1 "${K[@]}" --op put
  stop_all
  echo "cluster_bench: round $round: three nodes" >&2
  start_node "r$round-n1"
  a1=$ADDR
  start_node "r$round-n2" --join "$a1"
  start_node "r$round-n3" --join "$a1"
  for _ in $(seq 100); do
    "$CLI" --cluster "$a1" ring 2>/dev/null | grep -q '3 nodes (3 up' && break
    sleep 0.1
  done
  run ring_get "$a1" --replicas 3 --w 2 --r 2 "${K[@]}" --op get
  run ring_put "$a1" --replicas 3 --w 2 --r 2 "${K[@]}" --op put
  stop_all
done

row() {  # metric ring single
  awk -v m="$1" -v r="$2" -v s="$3" 'BEGIN { printf "%-34s | %10.0f | %10.0f | %5.2f\n", m, r, s, (s > 0 ? r / s : 0) }'
}
echo
echo "metric (1 KiB, 64 in flight)       | 3-node ring |  one node  | ratio"
echo "-----------------------------------|------------|------------|------"
row "GET ops/s (ring R=2)" "$(median "${SAMPLES[ring_get_ops]}")" "$(median "${SAMPLES[single_get_ops]}")"
row "PUT ops/s (ring N=3 W=2)" "$(median "${SAMPLES[ring_put_ops]}")" "$(median "${SAMPLES[single_put_ops]}")"
row "GET p99 us" "$(median "${SAMPLES[ring_get_p99]}")" "$(median "${SAMPLES[single_get_p99]}")"
row "PUT p99 us" "$(median "${SAMPLES[ring_put_p99]}")" "$(median "${SAMPLES[single_put_p99]}")"
echo
echo "samples:"
for k in "${!SAMPLES[@]}"; do echo "  $k: ${SAMPLES[$k]}"; done | sort
