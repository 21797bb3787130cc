#!/usr/bin/env bash
# tls_bench.sh: what TLS costs. One ringstore node is run plaintext and then with --tls-dir
# (mutual TLS, ECDSA P-256 certificates from `ringstore cert`), alternately, REPEAT rounds,
# and `ringstore bench` measures on each:
#   1 KiB GET ops/s      64 in flight over 4 connections, 10000 keys
#   1 MiB PUT MB/s        8 in flight over 4 connections, 64 keys
#   1 MiB GET MB/s        8 in flight over 4 connections, 64 keys
# The baseline is the plaintext node of the same run on the same machine; the script prints
# the medians and TLS / plaintext ratios (issue 8's targets: 1 MiB PUT and GET >= 0.7,
# 1 KiB GET >= 0.8). The node runs with --durability async, so that the disk does not hide
# the cost of encryption; client and node share this machine's cores.
#
# Environment: DURATION (s per run, default 5), REPEAT (rounds, default 3), BIN_DIR (build
# dir, default ../build; this script never builds), BENCH_DIR (parent of the temp dir).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DURATION=${DURATION:-5}
REPEAT=${REPEAT:-3}
BIN_DIR=${BIN_DIR:-$SCRIPT_DIR/../build}

log() { echo "tls_bench: $*" >&2; }
die() { echo "tls_bench: error: $*" >&2; exit 1; }

[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || die "REPEAT must be a positive integer (got '$REPEAT')"
[[ $DURATION =~ ^[0-9]+([.][0-9]+)?$ ]] || die "DURATION must be a number of seconds (got '$DURATION')"
[[ -d $BIN_DIR ]] || die "BIN_DIR does not exist: $BIN_DIR"
BIN_DIR=$(cd "$BIN_DIR" && pwd)
NODE_BIN=$BIN_DIR/node/ringstore-node
CLI_BIN=$BIN_DIR/tools/ringstore
for b in "$NODE_BIN" "$CLI_BIN"; do
  [[ -x $b ]] || die "$b not found; build ringstore first or set BIN_DIR (this script does not build)"
done

WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/ringstore-tls-bench.XXXXXX") || die "cannot create a temp dir"
NODE_PID=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $NODE_PID ]]; then kill -TERM "$NODE_PID" 2>/dev/null || true; wait "$NODE_PID" 2>/dev/null || true; fi
  rm -rf -- "$WORK"
  exit "$rc"
}
trap cleanup EXIT INT TERM

"$CLI_BIN" cert init-ca "$WORK/ca" >/dev/null
"$CLI_BIN" cert issue node bench-node --ca "$WORK/ca" --out "$WORK/node" >/dev/null
"$CLI_BIN" cert issue client bench --role read-write --ca "$WORK/ca" --out "$WORK/client" >/dev/null

# start_node MODE: a fresh node, plaintext or tls; sets NODE_PID and ADDR.
start_node() {
  local mode=$1 tls=()
  [[ $mode == tls ]] && tls=(--tls-dir "$WORK/node")
  rm -rf "$WORK/data" "$WORK/ready"
  "$NODE_BIN" --data "$WORK/data" --listen 127.0.0.1:0 --durability async --ready-file "$WORK/ready" "${tls[@]}" \
    >"$WORK/node.log" 2>&1 &
  NODE_PID=$!
  local i
  for ((i = 0; i < 200; i++)); do [[ -s $WORK/ready ]] && break; sleep 0.05; done
  [[ -s $WORK/ready ]] || die "the node did not start: $(tail -5 "$WORK/node.log")"
  ADDR=$(head -1 "$WORK/ready")
}
stop_node() {
  kill -TERM "$NODE_PID" 2>/dev/null || true
  wait "$NODE_PID" 2>/dev/null || true
  NODE_PID=
}
# bench MODE FIELD ARGS...: prints FIELD of the RESULT line.
bench() {
  local mode=$1 field=$2 tls=()
  shift 2
  [[ $mode == tls ]] && tls=(--tls-dir "$WORK/client")
  "$CLI_BIN" --cluster "$ADDR" "${tls[@]}" bench --duration "$DURATION" "$@" 2>/dev/null |
    awk -v f="$field" '/^RESULT/{for(i=1;i<=NF;i++){split($i,kv,"="); if(kv[1]==f) print kv[2]}}'
}

declare -A S
for ((round = 1; round <= REPEAT; round++)); do
  for mode in plain tls; do
    start_node "$mode"
    S[$mode.get1k]+="$(bench "$mode" ops_per_s --op get --size 1024 --keys 10000 --in-flight 64 --connections 4) "
    S[$mode.put1m]+="$(bench "$mode" mb_per_s --op put --size 1048576 --keys 64 --in-flight 8 --connections 4) "
    S[$mode.get1m]+="$(bench "$mode" mb_per_s --op get --size 1048576 --keys 64 --in-flight 8 --connections 4) "
    stop_node
    log "round $round/$REPEAT $mode done"
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{if(NR==0){print "nan"; exit} print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
printf '%-22s %14s %14s %8s %8s\n' "measure" "plaintext" "TLS" "ratio" "target"
row() {
  local key=$1 label=$2 target=$3 p t
  p=$(echo "${S[plain.$key]}" | median)
  t=$(echo "${S[tls.$key]}" | median)
  printf '%-22s %14s %14s %8s %8s\n' "$label" "$p" "$t" "$(awk -v p="$p" -v t="$t" 'BEGIN{printf "%.2f", t/p}')" ">= $target"
}
row get1k "1 KiB GET ops/s" 0.8
row put1m "1 MiB PUT MB/s" 0.7
row get1m "1 MiB GET MB/s" 0.7
for key in get1k put1m get1m; do
  echo "samples $key: plaintext ${S[plain.$key]}| TLS ${S[tls.$key]}"
done
