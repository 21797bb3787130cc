#!/usr/bin/env bash
# ringstore-block against `nbdkit file` (a file on the same disk), in the same run:
#   - nbdcopy sequential write of SIZE_MB of random data (with --flush, so it is durable),
#   - nbdcopy sequential read of it (to null:), as written: nbdkit's file is then in the page
#     cache, while the nodes wrote their chunks around it (O_DIRECT, docs/storage-format.md
#     §2a) and read the disk;
#   - the same read again after dropping the page cache (`sync; echo 3 >
#     /proc/sys/vm/drop_caches`, root only; COLD=0 skips it), so that both sides read the disk,
#   - nbdcopy read (to null:) of a second, thin volume with only its first sixteenth written:
#     a client that asks for block status (base:allocation) skips the rest,
#   - fio 4 KiB random write and read, psync, through nbdfuse (the export as a file).
# Beside each sequential job it counts the servers' CPU (user + system, from /proc/PID/stat):
# nbdkit's, or the three nodes' and ringstore-block's together, in milliseconds per GiB moved
# (lower is better; nbdcopy's own CPU is not counted).
# ringstore runs a local 3-node cluster; its volume is N=1 (W=1 R=1) and then N=3 (W=2 R=2).
# Each figure is the median of REPEAT rounds; the last column is ringstore / nbdkit.
#   SIZE_MB (default 1024), CHUNK_SIZE (volume chunk size, default 256K), FIO_SECONDS (default 10),
#   REPEAT (default 3), COLD (default 1), BIN_DIR (build dir),
#   BENCH_DIR (where data goes; default a directory under /work, or $TMPDIR)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
BIN_DIR=${BIN_DIR:-$SCRIPT_DIR/../build}
SIZE_MB=${SIZE_MB:-1024}
CHUNK_SIZE=${CHUNK_SIZE:-256K}
FIO_SECONDS=${FIO_SECONDS:-10}
REPEAT=${REPEAT:-3}
NODE="$BIN_DIR/node/ringstore-node"
CLI="$BIN_DIR/tools/ringstore"
BLOCK="$BIN_DIR/blockgateway/ringstore-block"
for b in "$NODE" "$CLI" "$BLOCK"; do
  [[ -x $b ]] || { echo "block_bench: missing $b (build first: make build)" >&2; exit 2; }
done
for t in nbdkit nbdcopy nbdfuse fio fusermount3; do
  command -v "$t" >/dev/null || { echo "block_bench: needs $t (scripts/install-deps.sh installs it)" >&2; exit 2; }
done
[[ -e /dev/fuse ]] || { echo "block_bench: needs /dev/fuse for nbdfuse" >&2; exit 2; }
# The cold read drops the page cache (all of it, machine-wide): root only.
DROP_CACHES=
if [[ ${COLD:-1} != 0 ]]; then
  if [[ -w /proc/sys/vm/drop_caches ]]; then DROP_CACHES=1
  else echo "block_bench: not root, so no cold read (it drops the page cache)" >&2; fi
fi
base=${BENCH_DIR:-$([[ -d /work && -w /work ]] && echo /work || echo "${TMPDIR:-/tmp}")}
WORK=$(mktemp -d "$base/ringstore-block-bench.XXXXXX")
PIDS=()
MOUNTS=()
SERVER_PIDS=()  # the processes whose CPU measure counts: nbdkit, or the nodes and the gateway
stop_all() {
  for m in "${MOUNTS[@]:-}"; do [[ -n $m ]] && fusermount3 -u "$m" 2>/dev/null || true; done
  MOUNTS=()
  for p in "${PIDS[@]:-}"; do [[ -n $p ]] && kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do [[ -n $p ]] && wait "$p" 2>/dev/null || true; done
  PIDS=()
}
cleanup() {
  stop_all
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_file() {  # FILE LOG WHAT
  for _ in $(seq 200); do [[ -s $1 ]] && return 0; sleep 0.05; done
  echo "block_bench: $3 did not start:" >&2
  tail "$2" >&2
  exit 1
}
start_node() {  # NAME [ARGS...] -> ADDR
  local name=$1; shift
  "$NODE" --data "$WORK/$name" --listen 127.0.0.1:0 --ready-file "$WORK/$name.addr" "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  wait_file "$WORK/$name.addr" "$WORK/$name.log" "node $name"
  ADDR=$(cat "$WORK/$name.addr")
}
# start_nbdkit IMG -> NBDKIT_URI: nbdkit's file plugin over a new sparse IMG of SIZE_MB.
start_nbdkit() {
  truncate -s "${SIZE_MB}M" "$1"
  local port
  port=$(free_port)
  nbdkit -f -i 127.0.0.1 -p "$port" file "$1" >"$WORK/nbdkit.log" 2>&1 &
  PIDS+=($!)
  SERVER_PIDS=($!)
  NBDKIT_URI="nbd://127.0.0.1:$port"
  for _ in $(seq 100); do nbdinfo "$NBDKIT_URI" >/dev/null 2>&1 && break; sleep 0.05; done
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

declare -A SAMPLES
TICKS=$(getconf CLK_TCK)
# cpu_ticks: user + system ticks of SERVER_PIDS so far.
cpu_ticks() {
  local p s=0
  for p in "${SERVER_PIDS[@]}"; do s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$s"
}
# per_gib TICKS: those ticks as CPU milliseconds per GiB of SIZE_MB.
per_gib() { awk -v t="$1" -v hz="$TICKS" -v s="$SIZE_MB" 'BEGIN{printf "%.0f", t / hz * 1000 * 1024 / s}'; }
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
now() { date +%s.%N; }

# measure_sparse LABEL URI: writes the first sixteenth of an empty export, then times nbdcopy
# reading all of it (MB/s of the export's size).
measure_sparse() {
  local t0 t1
  nbdcopy --flush "$WORK/sparse.src" "$2"
  t0=$(now)
  nbdcopy "$2" null:
  t1=$(now)
  SAMPLES[${1}_sparse]+="$(awk -v s="$SIZE_MB" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", s/(b-a)}') "
}

# measure LABEL URI: nbdcopy write and read (MB/s), then fio randwrite/randread (IOPS) via nbdfuse.
measure() {
  local label=$1 uri=$2 t0 t1 c0 c1
  c0=$(cpu_ticks)
  t0=$(now)
  nbdcopy --flush "$WORK/source.img" "$uri"
  t1=$(now)
  c1=$(cpu_ticks)
  SAMPLES[${label}_seqw]+="$(awk -v s="$SIZE_MB" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", s/(b-a)}') "
  SAMPLES[${label}_cpuw]+="$(per_gib $((c1 - c0))) "
  c0=$(cpu_ticks)
  t0=$(now)
  nbdcopy "$uri" null:
  t1=$(now)
  c1=$(cpu_ticks)
  SAMPLES[${label}_seqr]+="$(awk -v s="$SIZE_MB" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", s/(b-a)}') "
  SAMPLES[${label}_cpur]+="$(per_gib $((c1 - c0))) "
  if [[ -n $DROP_CACHES ]]; then
    # The same read with nothing in the page cache, on either side.
    sync
    echo 3 >/proc/sys/vm/drop_caches
    t0=$(now)
    nbdcopy "$uri" null:
    t1=$(now)
    SAMPLES[${label}_coldr]+="$(awk -v s="$SIZE_MB" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", s/(b-a)}') "
  fi
  local mnt="$WORK/mnt-$label"
  mkdir -p "$mnt"
  nbdfuse "$mnt/disk" "$uri" &
  PIDS+=($!)
  MOUNTS+=("$mnt")
  for _ in $(seq 100); do [[ -e $mnt/disk ]] && break; sleep 0.05; done
  local rw iops
  for rw in randwrite randread; do
    iops=$(fio --name=b --filename="$mnt/disk" --rw=$rw --bs=4k --ioengine=psync --direct=1 --numjobs=1 \
               --size=$((SIZE_MB / 2))M --time_based --runtime="$FIO_SECONDS" --output-format=terse \
               --terse-version=3 2>/dev/null |
           awk -F';' -v rw=$rw '{print (rw == "randread") ? $8 : $49}')
    SAMPLES[${label}_$rw]+="$iops "
  done
  fusermount3 -u "$mnt"
  MOUNTS=()
}

echo "block_bench: $(date -u +%FT%TZ), $(nproc) cores, SIZE_MB=$SIZE_MB, FIO_SECONDS=$FIO_SECONDS, REPEAT=$REPEAT, data in $WORK" >&2
head -c "${SIZE_MB}M" /dev/urandom >"$WORK/source.img"
head -c "$((SIZE_MB * 1024 / 16))K" "$WORK/source.img" >"$WORK/sparse.src"
for round in $(seq "$REPEAT"); do
  echo "block_bench: round $round: nbdkit file" >&2
  start_nbdkit "$WORK/nbdkit.img"
  measure nbdkit "$NBDKIT_URI"
  stop_all
  rm -f "$WORK/nbdkit.img"
  start_nbdkit "$WORK/nbdkit-sparse.img"
  measure_sparse nbdkit "$NBDKIT_URI"
  stop_all
  rm -f "$WORK/nbdkit-sparse.img"

  echo "block_bench: round $round: ringstore, 3 nodes" >&2
  start_node "r$round-n1"
  a1=$ADDR
  start_node "r$round-n2" --join "$a1"
  start_node "r$round-n3" --join "$a1"
  for _ in $(seq 100); do "$CLI" --cluster "$a1" ring 2>/dev/null | grep -q '3 nodes (3 up' && break; sleep 0.1; done
  "$CLI" --cluster "$a1" --replicas 1 volume create n1 "${SIZE_MB}M" --chunk-size "$CHUNK_SIZE" >&2
  "$CLI" --cluster "$a1" --replicas 3 --w 2 --r 2 volume create n3 "${SIZE_MB}M" --chunk-size "$CHUNK_SIZE" >&2
  "$CLI" --cluster "$a1" --replicas 1 volume create s1 "${SIZE_MB}M" --chunk-size "$CHUNK_SIZE" >&2
  "$CLI" --cluster "$a1" --replicas 3 --w 2 --r 2 volume create s3 "${SIZE_MB}M" --chunk-size "$CHUNK_SIZE" >&2
  "$BLOCK" --cluster "$a1" --listen 127.0.0.1:0 --ready-file "$WORK/block.addr" >"$WORK/block.log" 2>&1 &
  PIDS+=($!)
  wait_file "$WORK/block.addr" "$WORK/block.log" "ringstore-block"
  SERVER_PIDS=("${PIDS[@]}")  # the three nodes and the gateway
  baddr=$(cat "$WORK/block.addr")
  rm -f "$WORK/block.addr"
  echo "block_bench: round $round: ringstore N=1" >&2
  measure n1 "nbd://$baddr/n1"
  measure_sparse n1 "nbd://$baddr/s1"
  echo "block_bench: round $round: ringstore N=3" >&2
  measure n3 "nbd://$baddr/n3"
  measure_sparse n3 "nbd://$baddr/s3"
  stop_all
  rm -rf "$WORK"/r"$round"-n*
done

row() {  # metric unit label
  local k b r
  b=$(median "${SAMPLES[nbdkit_$1]}")
  r=$(median "${SAMPLES[$3_$1]}")
  awk -v m="$2" -v r="$r" -v b="$b" 'BEGIN { printf "%-36s | %10.1f | %10.1f | %5.2f\n", m, r, b, (b > 0 ? r / b : 0) }'
}
for q in n1 n3; do
  echo
  echo "ringstore-block, volume $q (3-node cluster) vs nbdkit file; medians of $REPEAT"
  printf "%-36s | %10s | %10s | %5s\n" "job" "ringstore" "nbdkit" "ratio"
  row seqw "nbdcopy seq write ${SIZE_MB} MiB, MB/s" "$q"
  row seqr "nbdcopy seq read ${SIZE_MB} MiB, MB/s" "$q"
  [[ -n $DROP_CACHES ]] && row coldr "  same, page cache dropped, MB/s" "$q"
  row randwrite "fio 4k randwrite (nbdfuse), IOPS" "$q"
  row randread "fio 4k randread (nbdfuse), IOPS" "$q"
  row sparse "nbdcopy read, 1/16 written, MB/s" "$q"
  row cpuw "server CPU, seq write, ms/GiB" "$q"
  row cpur "server CPU, seq read, ms/GiB" "$q"
done
echo
echo "samples, in round order:"
for k in $(tr ' ' '\n' <<<"${!SAMPLES[@]}" | sort); do printf "  %-16s %s\n" "$k" "${SAMPLES[$k]}"; done
