#!/usr/bin/env bash
# ringstore-fs (the FUSE gateway) against a local ext4 directory, in the same run, beside the
# GlusterFS figures of the issue (distribute for N=1, replica 2 for N=2):
#   - fio, psync, one job: 1 MiB sequential write of SIZE_MB (--end_fsync=1), then a
#     sequential read of it with cold caches; 4 KiB random write and random read, O_DIRECT,
#     on a RAND_MB file for FIO_SECONDS each,
#   - small files (bench/fs_smallfiles.py): create+write 4 KiB, stat, read, unlink of FILES
#     files, each phase timed on its own (caches are cold from stat on),
#   - dbench DBENCH_CLIENTS clients for DBENCH_SECONDS (its MB/sec),
#   - bonnie++ -s BONNIE_SIZE_MB -r BONNIE_RAM_MB -n BONNIE_FILES (BONNIE=0 skips it).
# "Cold caches": for ext4, sync and echo 3 > /proc/sys/vm/drop_caches; for the mount, also
# stop ringstore-fs (it writes back and unmounts) and mount again, so neither its chunk cache
# nor the kernel's pages hold the data. This is done before the sequential read, before the
# random read and before the small-file stat phase.
# ringstore runs a local 3-node cluster (127.0.0.1, port 0, data under the work dir); its
# filesystem is N=1 (W=1 R=1) and then N=2 (W=2 R=$R2, default R=1). Each figure is the
# median of REPEAT rounds; "ratio" is ringstore / ext4. MB = 2^20 bytes (fio's MiB/s).
#   SIZE_MB (512), RAND_MB (256), FIO_SECONDS (20), FILES (10000), FILES_PER_DIR (0: all in
#   one directory), DBENCH_SECONDS (30), DBENCH_CLIENTS (2), BONNIE (1), BONNIE_SIZE_MB (1024),
#   BONNIE_RAM_MB (512), BONNIE_FILES (4, in units of 1024 files), JOBS (the job groups to run,
#   "fio small dbench bonnie"; the others print "-"), REPEAT (1), CHUNK_SIZE
#   (filesystem chunk size, 256K), R2 (read quorum of the N=2 filesystem, 1), GW_ARGS (extra
#   ringstore-fs arguments), BONNIE_ARGS (extra bonnie++ arguments, e.g. -f to skip the
#   per-char tests), JOB_TIMEOUT (s, 3600: a job that takes longer fails the bench), KEEP (1:
#   keep the work dir with its logs), BIN_DIR (build dir), BENCH_DIR (where data goes; default
#   a directory under /work, or $TMPDIR). Needs root, /dev/fuse, fio, dbench, bonnie++,
#   fusermount3, python3.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
BIN_DIR=${BIN_DIR:-$SCRIPT_DIR/../build}
SIZE_MB=${SIZE_MB:-512}
RAND_MB=${RAND_MB:-256}
FIO_SECONDS=${FIO_SECONDS:-20}
FILES=${FILES:-10000}
FILES_PER_DIR=${FILES_PER_DIR:-0}
DBENCH_SECONDS=${DBENCH_SECONDS:-30}
DBENCH_CLIENTS=${DBENCH_CLIENTS:-2}
DBENCH_LOADFILE=${DBENCH_LOADFILE:-/usr/share/dbench/client.txt}
BONNIE=${BONNIE:-1}
BONNIE_SIZE_MB=${BONNIE_SIZE_MB:-1024}
BONNIE_RAM_MB=${BONNIE_RAM_MB:-512}
BONNIE_FILES=${BONNIE_FILES:-4}
BONNIE_ARGS=${BONNIE_ARGS:-}
KEEP=${KEEP:-0}
REPEAT=${REPEAT:-1}
CHUNK_SIZE=${CHUNK_SIZE:-256K}
R2=${R2:-1}
GW_ARGS=${GW_ARGS:-}
JOB_TIMEOUT=${JOB_TIMEOUT:-3600}
JOBS=${JOBS:-fio small dbench bonnie}
NODE="$BIN_DIR/node/ringstore-node"
CLI="$BIN_DIR/tools/ringstore"
FSGW="$BIN_DIR/fsgateway/ringstore-fs"
SMALL="$SCRIPT_DIR/fs_smallfiles.py"

die() { echo "fs_bench: $*" >&2; exit 2; }
for b in "$NODE" "$CLI" "$FSGW"; do
  [[ -x $b ]] || die "missing $b (build first: make build)"
done
[[ -r $SMALL ]] || die "missing $SMALL"
for t in fio dbench bonnie++ fusermount3 python3 timeout; do
  command -v "$t" >/dev/null || die "needs $t (scripts/install-deps.sh installs it)"
done
[[ $(id -u) == 0 ]] || die "needs root (FUSE mounts, drop_caches, bonnie++ -u root); running as uid $(id -u)"
[[ -e /dev/fuse ]] || die "needs /dev/fuse for ringstore-fs"
[[ -w /proc/sys/vm/drop_caches ]] || die "cannot write /proc/sys/vm/drop_caches (needed for cold reads)"
[[ -r $DBENCH_LOADFILE ]] || die "dbench loadfile $DBENCH_LOADFILE missing (set DBENCH_LOADFILE; Debian: /usr/share/dbench/client.txt)"
for j in $JOBS; do
  [[ $j =~ ^(fio|small|dbench|bonnie)$ ]] || die "unknown job group '$j' in JOBS (fio, small, dbench, bonnie)"
done
wants() { [[ " $JOBS " == *" $1 "* ]]; }
wants bonnie || BONNIE=0
if [[ $BONNIE == 1 ]] && ((BONNIE_SIZE_MB < 2 * BONNIE_RAM_MB)); then
  die "bonnie++ needs BONNIE_SIZE_MB ($BONNIE_SIZE_MB) >= 2 * BONNIE_RAM_MB ($BONNIE_RAM_MB)"
fi

base=${BENCH_DIR:-$([[ -d /work && -w /work ]] && echo /work || echo "${TMPDIR:-/tmp}")}
WORK=$(mktemp -d "$base/ringstore-fs-bench.XXXXXX")
NODE_PIDS=()
GW_PID=""   # the one ringstore-fs running (if any)
MNT=""      # its mountpoint
FSNAME=""   # the filesystem it serves
CLUSTER=""  # a node's address
JOB_PID=""  # the benchmark job running (timeout(1), which passes signals on to the job)

mounted() { grep -qs " $1 fuse" /proc/mounts; }
# stop_gw: SIGTERM ringstore-fs (it writes back, then unmounts), wait up to 120 s, then
# SIGKILL; if the mount is still there (killed), unmount it.
stop_gw() {
  if [[ -n $GW_PID ]]; then
    kill -TERM "$GW_PID" 2>/dev/null || true
    for _ in $(seq 1200); do kill -0 "$GW_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$GW_PID" 2>/dev/null; then
      echo "fs_bench: ringstore-fs (pid $GW_PID) did not exit 120 s after SIGTERM; killing it" >&2
      kill -KILL "$GW_PID" 2>/dev/null || true
    fi
    local rc=0
    wait "$GW_PID" 2>/dev/null || rc=$?
    ((rc == 0)) || echo "fs_bench: ringstore-fs (pid $GW_PID) exited with status $rc (log: $WORK/gw-$FSNAME.log)" >&2
    GW_PID=""
  fi
  if [[ -n $MNT ]] && mounted "$MNT"; then
    fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT" 2>/dev/null || true
  fi
}
stop_nodes() {
  for p in "${NODE_PIDS[@]:-}"; do [[ -n $p ]] && kill -TERM "$p" 2>/dev/null || true; done
  for p in "${NODE_PIDS[@]:-}"; do [[ -n $p ]] && wait "$p" 2>/dev/null || true; done
  NODE_PIDS=()
}
cleanup() {
  if [[ -n $JOB_PID ]]; then
    kill -TERM "$JOB_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$JOB_PID" 2>/dev/null || break; sleep 0.1; done
  fi
  stop_gw
  [[ -n $JOB_PID ]] && { wait "$JOB_PID" 2>/dev/null || true; }
  stop_nodes
  if [[ -n $MNT ]] && mounted "$MNT"; then
    echo "fs_bench: $MNT is still mounted; leaving $WORK in place" >&2
  elif [[ $KEEP == 1 ]]; then
    echo "fs_bench: kept $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_file() {  # FILE LOG WHAT
  for _ in $(seq 300); do [[ -s $1 ]] && return 0; sleep 0.05; done
  echo "fs_bench: $3 did not start:" >&2
  tail "$2" >&2
  exit 1
}
start_node() {  # NAME [ARGS...] -> ADDR
  local name=$1; shift
  "$NODE" --data "$WORK/$name" --listen 127.0.0.1:0 --ready-file "$WORK/$name.addr" "$@" >"$WORK/$name.log" 2>&1 &
  NODE_PIDS+=($!)
  wait_file "$WORK/$name.addr" "$WORK/$name.log" "node $name"
  ADDR=$(cat "$WORK/$name.addr")
}
start_gw() {  # FSNAME: mounts it at $WORK/mnt-FSNAME
  FSNAME=$1
  MNT="$WORK/mnt-$FSNAME"
  mkdir -p "$MNT"
  rm -f "$WORK/gw.ready"
  # shellcheck disable=SC2086
  "$FSGW" "$MNT" --cluster "$CLUSTER" --fs "$FSNAME" -o auto_unmount --ready-file "$WORK/gw.ready" $GW_ARGS \
    >>"$WORK/gw-$FSNAME.log" 2>&1 &
  GW_PID=$!
  wait_file "$WORK/gw.ready" "$WORK/gw-$FSNAME.log" "ringstore-fs $FSNAME"
  mounted "$MNT" || { echo "fs_bench: ringstore-fs $FSNAME is ready but $MNT is not mounted" >&2; exit 1; }
}
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
cold() {  # LABEL: empty the caches in front of LABEL's directory
  if [[ $1 != ext4 ]]; then
    stop_gw
    drop_caches
    start_gw "$FSNAME"
  else
    drop_caches
  fi
}
# job LABEL WHAT CMD...: runs CMD under JOB_TIMEOUT with its output in $WORK/LABEL-WHAT.out;
# a failure ends the bench with the output and the gateway's log.
job() {
  local label=$1 what=$2; shift 2
  local out="$WORK/$label-$what.out" rc=0 t0=$SECONDS
  # In the background, so that a signal to this script is handled at once (the trap stops it).
  timeout -k 30 "$JOB_TIMEOUT" "$@" >"$out" 2>&1 &
  JOB_PID=$!
  wait "$JOB_PID" || rc=$?
  JOB_PID=""
  if ((rc != 0)); then
    local why="status $rc"
    ((rc == 124)) && why="timed out after ${JOB_TIMEOUT} s"
    echo "fs_bench: $label: $what failed ($why): $*" >&2
    tail -n 20 "$out" >&2
    [[ $label != ext4 ]] && { echo "fs_bench: ringstore-fs log:" >&2; tail -n 20 "$WORK/gw-$FSNAME.log" >&2; }
    exit 1
  fi
  JOB_OUT=$out
  JOB_SECS=$((SECONDS - t0))
}
fio_get() {  # JSON-FILE DDIR KEY (bw is KiB/s; printed as MiB/s)
  python3 - "$@" <<'EOF'
import json, sys
text = open(sys.argv[1]).read()
job = json.loads(text[text.index("{"):])["jobs"][0]
if job.get("error", 0):
    sys.exit("fs_bench: fio reported error %s in %s" % (job["error"], sys.argv[1]))
v = job[sys.argv[2]][sys.argv[3]]
print("%.1f" % (v / 1024.0 if sys.argv[3] == "bw" else v))
EOF
}

declare -A SAMPLES
add() { SAMPLES[$1_$2]+="$3 "; }
median() {
  local v
  v=$(tr ' ' '\n' <<<"$1" | grep -v '^$' || true)
  if [[ -z $v ]]; then echo "-"; return; fi
  if grep -qvE '^[-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$' <<<"$v"; then echo "+++++"; return; fi  # bonnie's "too fast"
  sort -g <<<"$v" | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'
}
PROBLEM='^[0-9-]+T[0-9:.]+ +(warn|warning|error|critical|err|crit)\b'  # spdlog lines of those levels
progress() { echo "fs_bench: [$(printf '%5d' "$SECONDS") s] round $round: $*" >&2; }

# measure LABEL DIR: every job on DIR; the samples go under LABEL.
measure() {
  local label=$1 dir=$2 v
  local F=(fio --ioengine=psync --numjobs=1 --output-format=json)
  if wants fio; then
  job "$label" seqw "${F[@]}" --name=seqw --filename="$dir/seq.dat" --rw=write --bs=1M --size="${SIZE_MB}M" \
    --end_fsync=1 --output="$WORK/$label-seqw.json"
  v=$(fio_get "$WORK/$label-seqw.json" write bw); add "$label" seqw "$v"
  progress "$label: fio seq write ${SIZE_MB} MiB: $v MB/s (in ${JOB_SECS} s)"
  cold "$label"
  job "$label" seqr "${F[@]}" --name=seqr --filename="$dir/seq.dat" --rw=read --bs=1M --size="${SIZE_MB}M" \
    --output="$WORK/$label-seqr.json"
  v=$(fio_get "$WORK/$label-seqr.json" read bw); add "$label" seqr "$v"
  progress "$label: fio seq read (cold): $v MB/s (in ${JOB_SECS} s)"
  rm -f "$dir/seq.dat"

  local R=(--filename="$dir/rand.dat" --bs=4k --direct=1 --size="${RAND_MB}M" --time_based --runtime="$FIO_SECONDS")
  job "$label" randw "${F[@]}" --name=randw --rw=randwrite "${R[@]}" --output="$WORK/$label-randw.json"
  v=$(fio_get "$WORK/$label-randw.json" write iops); add "$label" randw "$v"
  progress "$label: fio 4k randwrite O_DIRECT: $v IOPS (in ${JOB_SECS} s)"
  cold "$label"
  job "$label" randr "${F[@]}" --name=randr --rw=randread "${R[@]}" --output="$WORK/$label-randr.json"
  v=$(fio_get "$WORK/$label-randr.json" read iops); add "$label" randr "$v"
  progress "$label: fio 4k randread O_DIRECT (cold start): $v IOPS (in ${JOB_SECS} s)"
  rm -f "$dir/rand.dat"
  fi

  local phase
  wants small && for phase in create stat read unlink; do
    [[ $phase == stat ]] && cold "$label"
    job "$label" "small-$phase" python3 "$SMALL" "$dir" "$FILES" "$phase" "$FILES_PER_DIR"
    v=$(sed -nE 's/.* ops_per_s=([0-9.]+).*/\1/p' "$JOB_OUT"); add "$label" "small_$phase" "$v"
    progress "$label: $FILES small files, $phase: $v /s (in ${JOB_SECS} s)"
  done

  if wants dbench; then
  mkdir -p "$dir/dbench"
  job "$label" dbench dbench -c "$DBENCH_LOADFILE" -D "$dir/dbench" -t "$DBENCH_SECONDS" "$DBENCH_CLIENTS"
  v=$(awk '/^Throughput/ {print $2}' "$JOB_OUT")
  [[ -n $v ]] || { echo "fs_bench: $label: no Throughput line from dbench:" >&2; tail "$JOB_OUT" >&2; exit 1; }
  add "$label" dbench "$v"
  progress "$label: dbench $DBENCH_CLIENTS clients: $v MB/s (in ${JOB_SECS} s)"
  rm -rf "$dir/dbench"
  fi

  if [[ $BONNIE == 1 ]]; then
    mkdir -p "$dir/bonnie"
    # shellcheck disable=SC2086
    job "$label" bonnie bonnie++ -d "$dir/bonnie" -s "$BONNIE_SIZE_MB" -r "$BONNIE_RAM_MB" -n "$BONNIE_FILES" -u root -q \
      $BONNIE_ARGS
    local csv
    csv=$(grep -E '^[0-9.]+,[^,]*,' "$JOB_OUT" | tail -n 1)
    [[ -n $csv ]] || { echo "fs_bench: $label: no CSV line from bonnie++:" >&2; tail "$JOB_OUT" >&2; exit 1; }
    # CSV fields (1-based): 12 block write K/s, 14 rewrite K/s, 18 block read K/s, 20 seeks/s,
    # 27 seq create/s, 29 seq stat/s, 31 seq delete/s, 33 random create/s, 37 random delete/s
    local -a f
    IFS=, read -r -a f <<<"$csv"
    add "$label" bo_wr "${f[11]}"; add "$label" bo_rw "${f[13]}"; add "$label" bo_rd "${f[17]}"
    add "$label" bo_seek "${f[19]}"; add "$label" bo_screate "${f[26]}"; add "$label" bo_sstat "${f[28]}"
    add "$label" bo_sdel "${f[30]}"; add "$label" bo_rcreate "${f[32]}"; add "$label" bo_rdel "${f[36]}"
    progress "$label: bonnie++: block write ${f[11]} K/s, read ${f[17]} K/s, create ${f[26]}/s, delete ${f[30]}/s (in ${JOB_SECS} s)"
    rm -rf "$dir/bonnie"
  fi
}

echo "fs_bench: $(date -u +%FT%TZ), $(nproc) cores, SIZE_MB=$SIZE_MB, RAND_MB=$RAND_MB, FIO_SECONDS=$FIO_SECONDS," \
     "JOBS=\"$JOBS\", FILES=$FILES, DBENCH_SECONDS=$DBENCH_SECONDS, BONNIE=$BONNIE (-s $BONNIE_SIZE_MB -r $BONNIE_RAM_MB" \
     "-n $BONNIE_FILES${BONNIE_ARGS:+ $BONNIE_ARGS}), REPEAT=$REPEAT, CHUNK_SIZE=$CHUNK_SIZE, data in $WORK" \
     "($(findmnt -n -o FSTYPE -T "$WORK" 2>/dev/null || echo '?'))" >&2
for round in $(seq "$REPEAT"); do
  progress "local ext4 directory"
  mkdir -p "$WORK/ext4"
  measure ext4 "$WORK/ext4"
  rm -rf "$WORK/ext4"

  progress "ringstore, 3 nodes"
  start_node "r$round-n1"
  CLUSTER=$ADDR
  start_node "r$round-n2" --join "$CLUSTER"
  start_node "r$round-n3" --join "$CLUSTER"
  for _ in $(seq 100); do "$CLI" --cluster "$CLUSTER" ring 2>/dev/null | grep -q '3 nodes (3 up' && break; sleep 0.1; done
  "$CLI" --cluster "$CLUSTER" ring 2>/dev/null | grep -q '3 nodes (3 up' || { echo "fs_bench: the ring did not form" >&2; exit 1; }
  "$CLI" --cluster "$CLUSTER" --replicas 1 --w 1 --r 1 fs create n1 --chunk-size "$CHUNK_SIZE" >&2
  "$CLI" --cluster "$CLUSTER" --replicas 2 --w 2 --r "$R2" fs create n2 --chunk-size "$CHUNK_SIZE" >&2
  for q in n1 n2; do
    progress "ringstore-fs $q"
    start_gw "$q"
    measure "$q" "$MNT"
    stop_gw
    MNT=""
    n=$(grep -cE "$PROBLEM" "$WORK/gw-$q.log" || true)
    ((n == 0)) || { progress "ringstore-fs $q logged $n warnings/errors:"; grep -E "$PROBLEM" "$WORK/gw-$q.log" | sed -E "s/^[^ ]+ +//" | sort | uniq -c | sort -rn | head -5 >&2; }
  done
  stop_nodes
  for f in "$WORK"/r"$round"-n*.log; do
    n=$(grep -cE "$PROBLEM" "$f" || true)
    ((n == 0)) || progress "$(basename "$f" .log) logged $n warnings/errors (e.g. $(grep -E "$PROBLEM" "$f" | head -1))"
  done
  [[ $KEEP == 1 ]] || rm -rf "$WORK"/r"$round"-n*
done

# row KEY TEXT LABEL GLUSTER
row() {
  local r b
  r=$(median "${SAMPLES[$3_$1]:-}")
  b=$(median "${SAMPLES[ext4_$1]:-}")
  awk -v m="$2" -v r="$r" -v b="$b" -v g="$4" 'function isnum(x) { return x ~ /^[-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$/ }
    function f(x) { return isnum(x) ? sprintf("%10.1f", x) : sprintf("%10s", x) }
    BEGIN { num = (isnum(r) && isnum(b) && b > 0)
            printf "%-44s | %s | %s | %6s | %9s\n", m, f(r), f(b), (num ? sprintf("%6.2f", r / b) : "-"), g }'
}
for q in n1 n2; do
  if [[ $q == n1 ]]; then
    quorum="N=1 W=1 R=1"; gname="distribute"; G=(318 264 3200 2600 563 2800 - 1150 8.1)
  else
    quorum="N=2 W=2 R=$R2"; gname="replica 2"; G=(226 540 2800 2900 253 1900 - 550 8.9)
  fi
  echo
  echo "ringstore-fs, filesystem $q ($quorum, 3-node cluster, chunk $CHUNK_SIZE) vs local ext4; medians of $REPEAT"
  printf "%-44s | %10s | %10s | %6s | %9s\n" "job" "ringstore" "ext4" "ratio" "GlusterFS"
  printf "%-44s | %10s | %10s | %6s | %9s\n" "" "" "" "" "$gname"
  echo "---------------------------------------------|------------|------------|--------|----------"
  row seqw "fio seq write 1 MiB, ${SIZE_MB} MiB, end_fsync, MB/s" "$q" "${G[0]}"
  row seqr "fio seq read 1 MiB, cold, MB/s" "$q" "${G[1]}"
  row randw "fio 4k randwrite O_DIRECT, ${RAND_MB} MiB, IOPS" "$q" "${G[2]}"
  row randr "fio 4k randread O_DIRECT, cold, IOPS" "$q" "${G[3]}"
  row small_create "$FILES files: create+write 4 KiB, /s" "$q" "${G[4]}"
  row small_stat "$FILES files: stat (cold), /s" "$q" "${G[5]}"
  row small_read "$FILES files: read 4 KiB, /s" "$q" "${G[6]}"
  row small_unlink "$FILES files: unlink, /s" "$q" "${G[7]}"
  row dbench "dbench $DBENCH_CLIENTS clients ${DBENCH_SECONDS} s, MB/s" "$q" "${G[8]}"
  if [[ $BONNIE == 1 ]]; then
    row bo_wr "bonnie++ block write, K/s" "$q" -
    row bo_rw "bonnie++ rewrite, K/s" "$q" -
    row bo_rd "bonnie++ block read, K/s" "$q" -
    row bo_seek "bonnie++ random seeks, /s" "$q" -
    row bo_screate "bonnie++ seq create ($BONNIE_FILES*1024 files), /s" "$q" -
    row bo_sstat "bonnie++ seq stat, /s" "$q" -
    row bo_sdel "bonnie++ seq delete, /s" "$q" -
    row bo_rcreate "bonnie++ random create, /s" "$q" -
    row bo_rdel "bonnie++ random delete, /s" "$q" -
  fi
done
echo
echo "(GlusterFS: the issue's reference figures, not measured here. bonnie++ \"+++++\": too fast to measure.)"
if ((REPEAT > 1)); then
  echo "samples:"
  for k in "${!SAMPLES[@]}"; do echo "  $k: ${SAMPLES[$k]}"; done | sort
fi
