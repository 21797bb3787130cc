#!/usr/bin/env bash
# Rebalance throughput (issue 5): a 3-node ring holding KEYS objects of SIZE bytes gets a 4th
# node while a GET load runs. It prints, as medians of REPEAT rounds measured in the same run:
#  - the rate the new node filled at (MB it pulled / seconds from its start until it reported
#    itself synced under the new ring), next to fio's sequential write rate on the same
#    filesystem (1 MiB writes, fsync at the end);
#  - the GET p99 during the move, next to the same load's p99 on the idle 3-node ring.
# Targets: rebalance >= 0.5x fio, and GET p99 during it <= 2x idle.
# The GET load starts a second before the new node and is stopped (SIGTERM) when the node
# reports itself synced; its p99 is taken over the requests sent during the move
# (--latency-log), and the idle p99 over seconds 1-5 of a 5 s run, so that neither counts the
# client's own slow first requests (docs/repair.md §8.2). It is an open loop of LOAD_RATE
# GETs/s (latency counted from when each was due, so a stall shows in full); LOAD_RATE=0 makes
# it a closed loop of LOAD_IN_FLIGHT (default 8 then, else a cap of 64). The idle figure is
# taken after a sync of the fill's dirty pages, with no anti-entropy round running
# (REPAIR_INTERVAL s between rounds, default 600; a join starts its rounds itself).
# docs/repair.md §8.1 has the figures and why the load is measured this way.
#   KEYS (default 20000), SIZE (default 16384), RATE (--rebalance-rate MB/s, default the node's),
#   LOAD_RATE (default 5000), LOAD_IN_FLIGHT, REPAIR_INTERVAL,
#   REPEAT (default 3), BIN_DIR, BENCH_DIR (data dirs; default a directory under /work)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
BIN_DIR=${BIN_DIR:-$SCRIPT_DIR/../build}
KEYS=${KEYS:-20000}
SIZE=${SIZE:-16384}
REPEAT=${REPEAT:-3}
RATE=${RATE:-}
LOAD_RATE=${LOAD_RATE:-5000}
REPAIR_INTERVAL=${REPAIR_INTERVAL:-600}
LOAD_IN_FLIGHT=${LOAD_IN_FLIGHT:-$([[ $LOAD_RATE == 0 ]] && echo 8 || echo 64)}
NODE="$BIN_DIR/node/ringstore-node"
CLI="$BIN_DIR/tools/ringstore"
for b in "$NODE" "$CLI"; do
  [[ -x $b ]] || { echo "rebalance_bench: missing $b (build first: make build)" >&2; exit 2; }
done
command -v fio >/dev/null || { echo "rebalance_bench: fio is missing (scripts/install-deps.sh installs it)" >&2; exit 2; }
base=${BENCH_DIR:-$([[ -d /work && -w /work ]] && echo /work || echo "${TMPDIR:-/tmp}")}
WORK=$(mktemp -d "$base/ringstore-rebalance-bench.XXXXXX")
PIDS=()
stop_all() {
  for p in "${PIDS[@]:-}"; do [[ -n $p ]] && kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do [[ -n $p ]] && wait "$p" 2>/dev/null || true; done
  PIDS=()
}
cleanup() { stop_all; rm -rf "$WORK"; }
trap cleanup EXIT

NODE_ARGS=(--repair-interval "$REPAIR_INTERVAL" --probe-interval-ms 300 --suspicion-timeout-ms 1500)
[[ -n $RATE ]] && NODE_ARGS+=(--rebalance-rate "$RATE")

# start_node NAME [ARGS...] -> sets ADDR (not a $(...): the node would hold the pipe open).
start_node() {
  local name=$1; shift
  rm -f "$WORK/$name.addr"
  "$NODE" --data "$WORK/$name" --listen 127.0.0.1:0 --ready-file "$WORK/$name.addr" "${NODE_ARGS[@]}" "$@" \
    >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 200); do [[ -s $WORK/$name.addr ]] && break; sleep 0.05; done
  [[ -s $WORK/$name.addr ]] || { echo "rebalance_bench: $name did not start:" >&2; tail "$WORK/$name.log" >&2; exit 1; }
  ADDR=$(cat "$WORK/$name.addr")
}
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
field() { sed -E "s/.* $1=([0-9.]+).*/\1/" <<<"$2"; }
# p99_of LOG FROM TO: the p99 latency (us) of the requests of a --latency-log sent between FROM
# and TO seconds after the load started (the rank `ringstore bench` reports its own p99 at).
# No request in the window is an error: a p99 of nothing would pass.
p99_of() {
  [[ -s $1 ]] || { echo "rebalance_bench: no latency log $1 (did the load run?)" >&2; return 1; }
  local p
  p=$(awk -v a="$2" -v b="$3" '$1 >= a && $1 <= b {print $2}' "$1" | sort -g |
      awk '{v[NR] = $1} END {if (NR == 0) exit; i = int(NR * 0.99) + 1; if (i > NR) i = NR; printf "%.1f", v[i]}')
  [[ -n $p ]] || { echo "rebalance_bench: no request of $1 was sent between $2 and $3 s" >&2; return 1; }
  echo "$p"
}
# wait_for_line FILE TEXT SECONDS: waits until a line of FILE holds TEXT; fails after SECONDS.
# (tail -f in a process substitution: a pipeline would wait for tail's next write to end.)
wait_for_line() {
  local fd tailpid rc=0
  exec {fd}< <(exec timeout "$3" tail -n +1 -f "$1")
  tailpid=$!
  grep -q -m1 -F -- "$2" <&"$fd" || rc=1
  exec {fd}<&-
  kill "$tailpid" 2>/dev/null || true
  wait "$tailpid" 2>/dev/null || true
  return "$rc"
}
# started_at ERR: the unix time the load's latency log counts from, as `ringstore bench` said.
started_at() { sed -nE 's/.*latency log times count from unix time ([0-9.]+).*/\1/p' "$1" | head -1; }

FIO=() MOVE=() IDLE=() BUSY=()
GET=(--replicas 3 --w 2 --r 2 bench --op get --no-prefill --keys "$KEYS" --size "$SIZE" --in-flight "$LOAD_IN_FLIGHT" --rate "$LOAD_RATE" --connections 1)
echo "rebalance_bench: $(date -u +%FT%TZ), $(nproc) cores, KEYS=$KEYS SIZE=$SIZE REPEAT=$REPEAT, data in $WORK" >&2
for round in $(seq "$REPEAT"); do
  mkdir -p "$WORK/fio"
  fio_out=$(fio --name=seqwrite --directory="$WORK/fio" --rw=write --bs=1M --size=1G --ioengine=psync \
    --end_fsync=1 --output-format=terse --terse-version=3 2>/dev/null)
  rm -rf "$WORK/fio"
  FIO+=("$(awk -F';' '{printf "%.1f", $48 / 1024}' <<<"$fio_out")")  # write bandwidth, KiB/s -> MiB/s

  start_node "r$round-n1"; a1=$ADDR
  start_node "r$round-n2" --join "$a1"
  start_node "r$round-n3" --join "$a1"
  for _ in $(seq 100); do "$CLI" --cluster "$a1" ring 2>/dev/null | grep -q '3 nodes (3 up' && break; sleep 0.1; done
  "$CLI" --cluster "$a1" --replicas 3 --w 2 bench --op fill --keys "$KEYS" --size "$SIZE" --in-flight 32 >/dev/null 2>&1
  sync; sleep 1  # the fill's dirty pages written back before anything is measured
  # Both p99s leave out the load's first second: a new client's first requests (connections,
  # the route table) are slow, and they weighed far more in a move of 1-2 s than in 5 s idle.
  "$CLI" --cluster "$a1" "${GET[@]}" --duration 5 --latency-log "$WORK/idle.lat" >/dev/null 2>"$WORK/idle.err" ||
    { echo "rebalance_bench: the idle load failed:" >&2; tail -3 "$WORK/idle.err" >&2; exit 1; }
  IDLE+=("$(p99_of "$WORK/idle.lat" 1 5)")

  # The move, under the same GET load.
  "$CLI" --cluster "$a1" "${GET[@]}" --duration 3600 --latency-log "$WORK/busy.lat" >"$WORK/busy.out" 2>"$WORK/busy.err" &
  load=$!
  PIDS+=("$load")  # stopped on any exit, too
  sleep 1
  t0=$(date +%s.%N)
  start_node "r$round-n4" --join "$a1"
  new=$(head -c 8 "$WORK/r$round-n4/NODE_ID")
  # The node logs "caught up with its peers" when its first round under the new ring has
  # compared with every peer: the moment `ringstore status` starts to show it synced. Its log
  # is watched rather than `status` polled, since a status call every 0.1 s (a process, and
  # a request to every node) raised the load's p99 on a quiet ring by 3-5x (docs/repair.md
  # §8.2); status is asked once, after the load has stopped. The watch is one `tail -f`
  # (inotify: it wakes when the log grows), not a grep every 50 ms, whose processes took the
  # CPU from the nodes during the move (§8.3).
  synced=""
  wait_for_line "$WORK/r$round-n4.log" "caught up with its peers" 120 && synced=1
  t1=$(date +%s.%N)
  kill -TERM "$load" 2>/dev/null || true  # (a background job of a script ignores SIGINT until it sets a handler)
  wait "$load" 2>/dev/null || true
  keep=(); for p in "${PIDS[@]}"; do [[ $p != "$load" ]] && keep+=("$p"); done; PIDS=("${keep[@]}")  # reaped
  res=$(grep '^RESULT' "$WORK/busy.out" || true)
  failed=$([[ -n $res ]] && field errors "$res" || echo "unknown (no result)")
  [[ -n $synced ]] || { echo "rebalance_bench: the new node did not sync within 120 s:" >&2; tail -5 "$WORK/r$round-n4.log" >&2; exit 1; }
  # The log line comes with the first round that reached every peer, under whatever ring the
  # node had then; status says synced under the current one. (A ring change in between, a
  # peer suspected on a busy machine say, means another round: wait for it, unmeasured.)
  row=""
  for _ in $(seq 300); do
    row=$("$CLI" --cluster "$a1" status 2>/dev/null | grep -E "^$new +[0-9]+\+? +yes " || true)
    [[ -n $row ]] && break
    sleep 0.1
  done
  [[ -n $row ]] || { echo "rebalance_bench: the new node logged that it caught up, but status does not show it synced" >&2; exit 1; }
  pulled=$(awk '{print $6}' <<<"$row")  # (read after t1: may count a little pulled since)
  MOVE+=("$(awk -v mb="$pulled" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", mb / (b - a)}')")
  # The move's window in the load's own clock: from the node's start to when it caught up.
  ts=$(started_at "$WORK/busy.err")
  [[ -n $ts ]] || { echo "rebalance_bench: the load did not say when it started:" >&2; tail -3 "$WORK/busy.err" >&2; exit 1; }
  BUSY+=("$(p99_of "$WORK/busy.lat" "$(awk -v a="$ts" -v b="$t0" 'BEGIN {print b - a}')" \
                                    "$(awk -v a="$ts" -v b="$t1" 'BEGIN {print b - a}')")")
  echo "rebalance_bench: round $round: fio ${FIO[-1]} MB/s; moved $pulled MB in $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') s = ${MOVE[-1]} MB/s; GET p99 idle ${IDLE[-1]} us, during ${BUSY[-1]} us; GETs failed: $failed" >&2
  stop_all
  rm -rf "$WORK"/r"$round"-*
done

f=$(median "${FIO[*]}"); m=$(median "${MOVE[*]}"); i=$(median "${IDLE[*]}"); b=$(median "${BUSY[*]}")
echo
echo "metric (medians of $REPEAT)              | value    | baseline | ratio | target"
echo "----------------------------------------|----------|----------|-------|-------"
awk -v m="$m" -v f="$f" 'BEGIN {printf "rebalance MB/s vs fio seq write MB/s    | %8.1f | %8.1f | %5.2f | >= 0.5\n", m, f, m / f}'
awk -v b="$b" -v i="$i" 'BEGIN {printf "GET p99 us during the move vs idle     | %8.0f | %8.0f | %5.2f | <= 2\n", b, i, (i > 0 ? b / i : 0)}'
echo
echo "samples: fio ${FIO[*]}; move ${MOVE[*]}; idle p99 ${IDLE[*]}; busy p99 ${BUSY[*]}"
