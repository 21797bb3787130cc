#!/usr/bin/env bash
# node_bench.sh: benchmark one ringstore node and print its figures next to baselines
# measured in the same run on the same machine (redis-server / redis-benchmark, fio).
#
# Every measurement is taken REPEAT times and the MEDIAN is reported; the individual
# samples are printed under the table. Rounds are interleaved (redis, fio, ringstore sync,
# ringstore async, then again) so slow drifts of a noisy machine hit all sides alike.
#
# Environment:
#   DURATION            seconds per ringstore bench run (default 5)
#   REPEAT              samples per measurement, median reported (default 3)
#   BENCH_DIR           where the temporary work dir is created (default: the first
#                       disk-backed (not tmpfs/ramfs) one of /work, $TMPDIR, /var/tmp, /tmp).
#                       A fresh mktemp subdirectory is used and removed at exit.
#   BIN_DIR             build directory holding node/ringstore-node and tools/ringstore
#                       (default: ../build relative to this script). This script never builds.
#   REDIS_REQUESTS      requests per redis-benchmark throughput test (default 1000000)
#   REDIS_LAT_REQUESTS  requests for the one-client redis latency test (default 100000)
#   FIO_SIZE            bytes written by the fio sequential write test (default 1G)
#
# Baselines:
#   redis-server --save '' --appendonly no on a free loopback port, then
#     redis-benchmark -c 4 -P 16 -d 1024 -t set,get --csv        -> SET/s, GET/s (64 in flight)
#     redis-benchmark -c 1 -P 1  -d 1024 -t get     --csv        -> one-client GET p50
#   The one-client latency comes from the "p50_latency_ms" column of redis-benchmark 7's
#   --csv output (resolution 1 us). Its GET reads the 1 KiB key "key:__rand_int__" that the
#   throughput run's SET wrote just before (no -r, so the key name is literal).
#   fio --rw=write --bs=1M --direct=1 --ioengine=psync --end_fsync=1 in the bench dir
#     -> sequential write MB/s (the disk under the ringstore data dir)
#   fio --rw=write --bs=4k --fdatasync=1 --ioengine=psync   -> fdatasync'd writes/s (info)
# ringstore (one node, fresh data dir per round):
#   durability sync:  1 KiB PUT and GET, 64 in flight over 4 connections (10000 keys);
#                     one-client GET (1 connection, 1 in flight) p50;
#                     1 MiB PUT and GET, 8 in flight over 4 connections (64 keys)
#   durability async: 1 KiB PUT, 64 in flight over 4 connections
# MB/s is decimal (1e6 bytes/s) on both sides.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DURATION=${DURATION:-5}
REPEAT=${REPEAT:-3}
BIN_DIR=${BIN_DIR:-$SCRIPT_DIR/../build}
REDIS_REQUESTS=${REDIS_REQUESTS:-1000000}
REDIS_LAT_REQUESTS=${REDIS_LAT_REQUESTS:-100000}
FIO_SIZE=${FIO_SIZE:-1G}

log() { echo "node_bench: $*" >&2; }
die() { echo "node_bench: error: $*" >&2; exit 1; }

# ---------------------------------------------------------------- arguments and tools
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || die "REPEAT must be a positive integer (got '$REPEAT')"
if ! [[ $DURATION =~ ^[0-9]+([.][0-9]+)?$ ]] || ! awk -v d="$DURATION" 'BEGIN{exit !(d >= 0.1 && d <= 3600)}'; then
  die "DURATION must be a number of seconds in [0.1, 3600] (got '$DURATION')"
fi
[[ $REDIS_REQUESTS =~ ^[1-9][0-9]*$ ]] || die "REDIS_REQUESTS must be a positive integer"
[[ $REDIS_LAT_REQUESTS =~ ^[1-9][0-9]*$ ]] || die "REDIS_LAT_REQUESTS must be a positive integer"

missing=()
for t in redis-server redis-benchmark redis-cli fio awk sort df mktemp; do
  command -v "$t" >/dev/null 2>&1 || missing+=("$t")
done
if ((${#missing[@]})); then
  die "missing tools: ${missing[*]} (Debian: apt-get install redis-server redis-tools fio; or run scripts/install-deps.sh)"
fi
[[ -d $BIN_DIR ]] || die "BIN_DIR does not exist: $BIN_DIR"
BIN_DIR=$(cd "$BIN_DIR" && pwd)
NODE_BIN=$BIN_DIR/node/ringstore-node
CLI_BIN=$BIN_DIR/tools/ringstore
for b in "$NODE_BIN" "$CLI_BIN"; do
  [[ -x $b ]] || die "$b not found or not executable; build ringstore first or set BIN_DIR (this script does not build)"
done

# ---------------------------------------------------------------- work dir and cleanup
fs_type() { df -PT "$1" 2>/dev/null | awk 'NR==2{print $2}'; }
is_memory_fs() { case $(fs_type "$1") in tmpfs|ramfs|devtmpfs) return 0 ;; *) return 1 ;; esac; }

if [[ -n ${BENCH_DIR:-} ]]; then
  mkdir -p "$BENCH_DIR" || die "cannot create BENCH_DIR $BENCH_DIR"
  base=$BENCH_DIR
else
  base=
  for c in /work "${TMPDIR:-/tmp}" /var/tmp /tmp; do
    if [[ -d $c && -w $c ]] && ! is_memory_fs "$c"; then base=$c; break; fi
  done
  if [[ -z $base ]]; then
    base=${TMPDIR:-/tmp}
    log "warning: no disk-backed temp dir found; using $base"
  fi
fi
WORK=$(mktemp -d "$base/ringstore-bench.XXXXXX") || die "cannot create a temp dir under $base"

PIDS=()  # processes this script started and has not reaped yet
alive() { kill -0 "$1" 2>/dev/null && [[ $(ps -o stat= -p "$1" 2>/dev/null) != Z* ]]; }
untrack() {
  local p keep=()
  for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}
# stop_pid PID: SIGTERM, wait up to 30 s, then SIGKILL. Prints nothing; returns 0.
stop_pid() {
  local pid=$1 i
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then
      log "pid $pid did not stop on SIGTERM within 30 s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
  untrack "$pid"
}
cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do stop_pid "$p"; done
  [[ -n ${WORK:-} && -d $WORK ]] && rm -rf -- "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- helpers
# median of whitespace-separated numbers
median() {
  local -a v
  read -r -a v <<<"$1"
  printf '%s\n' "${v[@]}" | { grep . || true; } | sort -g | awk '{a[NR] = $1}
    END { if (NR == 0) { print "nan"; exit }
          if (NR % 2) printf "%.10g\n", a[(NR + 1) / 2]; else printf "%.10g\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
# kv "LINE" KEY -> value of KEY=value in a RESULT line
kv() { awk -v k="$2" '{for (i = 1; i <= NF; i++) { split($i, p, "="); if (p[1] == k) { print p[2]; exit } }}' <<<"$1"; }
is_num() { [[ $1 =~ ^[0-9]+([.][0-9]+)?([eE][-+]?[0-9]+)?$ ]]; }

declare -A SAMPLES=()
add_sample() {  # add_sample NAME VALUE
  is_num "$2" || die "could not parse a number for $1 (got '$2')"
  SAMPLES[$1]="${SAMPLES[$1]:-} $2"
}

# ---------------------------------------------------------------- redis
REDIS_PID='' REDIS_PORT=''
port_in_use() { (: <>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
start_redis() {
  local try port pid i
  mkdir -p "$WORK/redis"
  for ((try = 0; try < 20; try++)); do
    port=$((20000 + RANDOM % 40000))
    port_in_use "$port" && continue
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
      --dir "$WORK/redis" >"$WORK/redis.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for ((i = 0; i < 100; i++)); do
      if [[ $(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null) == PONG ]]; then
        REDIS_PID=$pid REDIS_PORT=$port
        return 0
      fi
      alive "$pid" || break
      sleep 0.1
    done
    stop_pid "$pid"
  done
  tail -n 20 "$WORK/redis.log" >&2 || true
  die "could not start redis-server on a free loopback port"
}
# csv_col CSV TEST COL -> column COL of the row for TEST in redis-benchmark --csv output
csv_col() { awk -F, -v t="\"$2\"" -v c="$3" '$1 == t { gsub(/"/, "", $c); print $c; exit }' <<<"$1"; }

redis_round() {
  local out
  out=$(redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c 4 -P 16 -d 1024 -t set,get \
        -n "$REDIS_REQUESTS" --csv 2>"$WORK/rb.err") || { cat "$WORK/rb.err" >&2; die "redis-benchmark failed"; }
  add_sample redis_set "$(csv_col "$out" SET 2)"
  add_sample redis_get "$(csv_col "$out" GET 2)"
  out=$(redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c 1 -P 1 -d 1024 -t get \
        -n "$REDIS_LAT_REQUESTS" --csv 2>"$WORK/rb.err") || { cat "$WORK/rb.err" >&2; die "redis-benchmark failed"; }
  local p50_ms
  p50_ms=$(csv_col "$out" GET 5)
  is_num "$p50_ms" || die "could not parse redis GET p50 from: $out"
  add_sample redis_get_p50 "$(awk -v m="$p50_ms" 'BEGIN{printf "%.1f", m * 1000}')"
}

# ---------------------------------------------------------------- fio
fio_round() {
  local out kib iops secs
  out=$(fio --name=seqw --rw=write --bs=1M --size="$FIO_SIZE" --direct=1 --ioengine=psync \
        --end_fsync=1 --filename="$WORK/fio-seq.dat" --output-format=terse 2>&1) \
    || { echo "$out" >&2; die "fio sequential write failed"; }
  rm -f "$WORK/fio-seq.dat"
  kib=$(awk -F';' '/^3;/ {print $48; exit}' <<<"$out")  # terse v3 field 48: write bw, KiB/s
  is_num "$kib" || { echo "$out" >&2; die "could not parse fio output"; }
  add_sample fio_seq_mbs "$(awk -v k="$kib" 'BEGIN{printf "%.1f", k * 1024 / 1e6}')"

  secs=$(awk -v d="$DURATION" 'BEGIN{s = int(d); if (s < d) s++; if (s < 1) s = 1; print s}')
  out=$(fio --name=syncw --rw=write --bs=4k --size=256M --fdatasync=1 --ioengine=psync \
        --runtime="$secs" --filename="$WORK/fio-sync.dat" --output-format=terse 2>&1) \
    || { echo "$out" >&2; die "fio fdatasync write failed"; }
  rm -f "$WORK/fio-sync.dat"
  iops=$(awk -F';' '/^3;/ {print $49; exit}' <<<"$out")  # terse v3 field 49: write IOPS
  add_sample fio_sync_iops "$iops"
}

# ---------------------------------------------------------------- ringstore
NODE_PID='' NODE_ADDR='' NODE_LOG='' NODE_DIR=''
start_node() {  # start_node sync|async
  local mode=$1 dir=$WORK/node-$1 i
  NODE_DIR=$dir
  rm -rf "$dir"
  mkdir -p "$dir"
  NODE_LOG=$WORK/node-$mode.log
  "$NODE_BIN" --data "$dir/data" --listen 127.0.0.1:0 --ready-file "$dir/ready" \
    --durability "$mode" >"$NODE_LOG" 2>&1 &
  NODE_PID=$!
  PIDS+=("$NODE_PID")
  for ((i = 0; i < 300; i++)); do
    [[ -s $dir/ready ]] && break
    alive "$NODE_PID" || { tail -n 20 "$NODE_LOG" >&2; die "ringstore-node ($mode) exited during start"; }
    sleep 0.1
  done
  [[ -s $dir/ready ]] || { tail -n 20 "$NODE_LOG" >&2; die "ringstore-node ($mode) not ready after 30 s"; }
  NODE_ADDR=$(tr -d '[:space:]' <"$dir/ready")
}
stop_node() {
  stop_pid "$NODE_PID"
  rm -rf -- "$NODE_DIR"
  NODE_PID=''
}
# rs_bench NAME ARGS... -> sets RESULT_LINE, records ops_per_s/mb_per_s/p50_us/p99_us samples
RESULT_LINE=
rs_bench() {
  local name=$1 out rc=0
  shift
  out=$("$CLI_BIN" --cluster "$NODE_ADDR" bench --duration "$DURATION" "$@" 2>"$WORK/rs.err") || rc=$?
  RESULT_LINE=$(grep '^RESULT ' <<<"$out" | tail -n 1 || true)
  if ((rc != 0)) || [[ -z $RESULT_LINE ]]; then
    echo "$out" >&2
    cat "$WORK/rs.err" >&2
    echo "--- node log (tail)" >&2
    tail -n 20 "$NODE_LOG" >&2 || true
    die "ringstore bench $name failed (exit $rc)"
  fi
  [[ $(kv "$RESULT_LINE" errors) == 0 ]] || die "ringstore bench $name reported errors: $RESULT_LINE"
  local f
  for f in ops_per_s mb_per_s p50_us p99_us; do add_sample "${name}_$f" "$(kv "$RESULT_LINE" "$f")"; done
  log "  $name: $RESULT_LINE"
}

ringstore_round() {
  local k1=(--size 1024 --keys 10000 --bench-namespace bench1k)
  local m1=(--size 1048576 --keys 64 --bench-namespace bench1m)
  start_node sync
  log " ringstore sync node at $NODE_ADDR (pid $NODE_PID)"
  # GETs first, on the fresh node: otherwise the compactions that the PUT runs leave behind
  # share the two cores with them (redis-benchmark's GET also reads a quiet server).
  rs_bench get1k_sync --op get "${k1[@]}" --in-flight 64 --connections 4  # prefills the 10000 keys
  rs_bench lat1k_sync --op get "${k1[@]}" --in-flight 1 --connections 1 --no-prefill
  rs_bench put1k_sync --op put "${k1[@]}" --in-flight 64 --connections 4
  rs_bench put1m_sync --op put "${m1[@]}" --in-flight 8 --connections 4
  rs_bench get1m_sync --op get "${m1[@]}" --in-flight 8 --connections 4  # prefills the 64 keys
  stop_node
  start_node async
  log " ringstore async node at $NODE_ADDR (pid $NODE_PID)"
  rs_bench put1k_async --op put "${k1[@]}" --in-flight 64 --connections 4
  stop_node
}

# ---------------------------------------------------------------- run
FS_LINE=$(df -PTh "$WORK" | awk 'NR==2{printf "%s (%s, %s free)", $1, $2, $5}')
log "work dir $WORK on $FS_LINE"
is_memory_fs "$WORK" && log "warning: $WORK is on a memory filesystem; disk figures are meaningless"
log "DURATION=$DURATION REPEAT=$REPEAT BIN_DIR=$BIN_DIR"
start_redis
log "redis-server pid $REDIS_PID on 127.0.0.1:$REDIS_PORT"

for ((r = 1; r <= REPEAT; r++)); do
  log "round $r/$REPEAT: redis-benchmark"
  redis_round
  log "round $r/$REPEAT: fio"
  fio_round
  log "round $r/$REPEAT: ringstore"
  ringstore_round
done
stop_pid "$REDIS_PID"

# ---------------------------------------------------------------- report
m() { median "${SAMPLES[$1]}"; }
fmt() {  # fmt VALUE DECIMALS
  awk -v v="$1" -v d="$2" 'BEGIN{ if (v == "nan") print "n/a"; else printf "%.*f\n", d, v }'
}
ROWS=()
# row METRIC RS BASE DECIMALS OP THRESHOLD   (OP: ge, le or - for no target)
row() {
  local metric=$1 rs=$2 base=$3 dec=$4 op=$5 thr=${6:-} ratio target verdict
  ratio=$(awk -v a="$rs" -v b="$base" 'BEGIN{ if (b + 0 == 0) print "n/a"; else printf "%.2f", a / b }')
  case $op in
    ge) target=">= $thr" ;;
    le) target="<= $thr" ;;
    *) target="-" ;;
  esac
  if [[ $op != - && $ratio != n/a ]]; then
    if awk -v r="$ratio" -v t="$thr" -v o="$op" 'BEGIN{exit !((o == "ge") ? r >= t : r <= t)}'; then
      verdict=PASS
    else
      verdict=FAIL
    fi
    target="$target $verdict"
  fi
  ROWS+=("$metric|$(fmt "$rs" "$dec")|$(fmt "$base" "$dec")|$ratio|$target")
}

row "1 KiB GET ops/s, 64 in flight / redis GET" "$(m get1k_sync_ops_per_s)" "$(m redis_get)" 0 ge 0.30
row "1 KiB PUT ops/s, sync / redis SET" "$(m put1k_sync_ops_per_s)" "$(m redis_set)" 0 ge 0.10
row "1 KiB PUT ops/s, async / redis SET" "$(m put1k_async_ops_per_s)" "$(m redis_set)" 0 ge 0.30
row "1-client GET p50 us / redis GET p50 us" "$(m lat1k_sync_p50_us)" "$(m redis_get_p50)" 1 le 2.0
row "1 MiB PUT MB/s, sync / fio seq write MB/s" "$(m put1m_sync_mb_per_s)" "$(m fio_seq_mbs)" 1 -
row "1 MiB GET MB/s / fio seq write MB/s" "$(m get1m_sync_mb_per_s)" "$(m fio_seq_mbs)" 1 -
row "1 KiB PUT ops/s, sync / fio 4K fdatasync w/s" "$(m put1k_sync_ops_per_s)" "$(m fio_sync_iops)" 0 -

echo "ringstore node benchmark: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname), $(nproc) cores, $(uname -r)"
echo "git $(git -C "$SCRIPT_DIR" rev-parse --short HEAD 2>/dev/null || echo '?'); binaries $BIN_DIR"
echo "$(redis-server --version | awk '{print $1, $2, $3}'); $(fio --version)"
echo "bench dir $WORK on $FS_LINE"
echo "DURATION=${DURATION}s per ringstore run, REPEAT=$REPEAT (median shown), redis -n $REDIS_REQUESTS / $REDIS_LAT_REQUESTS, fio $FIO_SIZE"
echo
{
  echo "metric|ringstore|baseline|ratio|target"
  printf '%s\n' "${ROWS[@]}"
} | awk -F'|' '
  { n = NR; for (i = 1; i <= NF; i++) { c[n, i] = $i; if (length($i) > w[i]) w[i] = length($i) } nf = NF }
  END {
    for (r = 1; r <= n; r++) {
      line = ""
      for (i = 1; i <= nf; i++) {
        f = (i == nf) ? "%s" : (i == 1) ? "%-" w[i] "s" : "%" w[i] "s"
        line = line sprintf(f, c[r, i]) (i < nf ? " | " : "")
      }
      print line
      if (r == 1) { sep = ""; for (i = 1; i <= nf; i++) { s = ""; for (j = 0; j < w[i]; j++) s = s "-"; sep = sep s (i < nf ? "-|-" : "") } print sep }
    }
  }'
echo
echo "ratio = ringstore / baseline (for p50 latency: lower is better)."
echo "p99 (median over rounds): ringstore 1-client GET $(fmt "$(m lat1k_sync_p99_us)" 1) us," \
  "1 KiB GET $(fmt "$(m get1k_sync_p99_us)" 1) us, 1 KiB PUT sync $(fmt "$(m put1k_sync_p99_us)" 1) us," \
  "async $(fmt "$(m put1k_async_p99_us)" 1) us"
echo
echo "samples (in round order):"
for k in redis_get redis_set redis_get_p50 fio_seq_mbs fio_sync_iops \
         get1k_sync_ops_per_s put1k_sync_ops_per_s put1k_async_ops_per_s lat1k_sync_p50_us \
         put1m_sync_mb_per_s get1m_sync_mb_per_s; do
  printf '  %-22s %s\n' "$k" "${SAMPLES[$k]# }"
done
