#!/usr/bin/env bash
# Starts, stops or describes the local ringstore that `make run` brings up under ./run/:
# a 3-node cluster on 127.0.0.1:7401-7403, the filesystem "default" mounted at ./run/mnt
# through FUSE (ringstore-fs), and the NBD block gateway on 127.0.0.1:10809 serving a thin
# 1 GiB volume "disk0".
# Usage: scripts/run-local.sh start|stop|status [BUILD_DIR]
# Environment: RINGSTORE_BASE_PORT (default 7400: nodes on +1..+3), RINGSTORE_NBD (default
# 127.0.0.1:10809), RINGSTORE_MOUNT (default ./run/mnt).
set -euo pipefail
cmd=${1:-start}
build=${2:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
run="$top/run"
node="$top/$build/node/ringstore-node"
cli="$top/$build/tools/ringstore"
block="$top/$build/blockgateway/ringstore-block"
fsgw="$top/$build/fsgateway/ringstore-fs"
mnt=${RINGSTORE_MOUNT:-$run/mnt}
base_port=${RINGSTORE_BASE_PORT:-7400}
nbd_listen=${RINGSTORE_NBD:-127.0.0.1:10809}
NODES=(node1 node2 node3)

running() { [ -f "$run/$1.pid" ] && kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }

# start_proc NAME CMD... : starts CMD in the background with --ready-file run/NAME.addr and
# waits for it; says what went wrong if it does not come up.
start_proc() {
  local name=$1; shift
  if running "$name"; then
    echo "ringstore: $name already running (pid $(cat "$run/$name.pid")) on $(cat "$run/$name.addr")"
    return 0
  fi
  rm -f "$run/$name.addr"
  nohup "$@" --ready-file "$run/$name.addr" >"$run/$name.log" 2>&1 &
  echo $! >"$run/$name.pid"
  for _ in $(seq 150); do
    [ -s "$run/$name.addr" ] && break
    kill -0 "$(cat "$run/$name.pid")" 2>/dev/null || break
    sleep 0.1
  done
  if [ ! -s "$run/$name.addr" ]; then
    echo "ringstore: $name did not start; its log ($run/$name.log) says:" >&2
    tail -n 20 "$run/$name.log" >&2
    exit 1
  fi
  echo "ringstore: started $name (pid $(cat "$run/$name.pid")) on $(cat "$run/$name.addr")"
}

stop_proc() {
  local name=$1
  if running "$name"; then
    local pid
    pid=$(cat "$run/$name.pid")
    kill -TERM "$pid"
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "ringstore: $name ($pid) did not stop in 30 s; sending SIGKILL" >&2
      kill -KILL "$pid"
    fi
    echo "ringstore: stopped $name (pid $pid)"
  fi
  rm -f "$run/$name.pid"
}

case "$cmd" in
start)
  mkdir -p "$run"
  first=127.0.0.1:$((base_port + 1))
  for i in 1 2 3; do
    join=()
    [ "$i" -gt 1 ] && join=(--join "$first")
    start_proc "node$i" "$node" --data "$run/node$i" --listen "127.0.0.1:$((base_port + i))" "${join[@]}"
  done
  cluster=$(cat "$run/node1.addr"),$(cat "$run/node2.addr"),$(cat "$run/node3.addr")
  for _ in $(seq 100); do
    "$cli" --cluster "$cluster" ring 2>/dev/null | grep -q '3 nodes (3 up' && break
    sleep 0.1
  done
  sample="$run/hello.txt"
  echo "hello from ringstore, $(date -u +%FT%TZ)" >"$sample"
  "$cli" --cluster "$cluster" put hello "$sample" >/dev/null
  got=$("$cli" --cluster "$cluster" get hello)
  echo "ringstore: stored 'hello' on 3 replicas and read it back: $got"
  if ! "$cli" --cluster "$cluster" volume ls 2>/dev/null | grep -q '^disk0 '; then
    "$cli" --cluster "$cluster" volume create disk0 1G
  fi
  start_proc block "$block" --cluster "$cluster" --listen "$nbd_listen"
  nbd=$(cat "$run/block.addr")
  fs_line="  filesystem: $mnt  (filesystem 'default'; ringstore fs ls|create|rm)"
  if [ ! -e /dev/fuse ] || [ "$(id -u)" -ne 0 ]; then
    fs_line="  filesystem: not mounted: FUSE needs /dev/fuse and root here (see docs/fsgateway.md)"
  else
    if ! "$cli" --cluster "$cluster" fs ls 2>/dev/null | grep -q '^default '; then
      "$cli" --cluster "$cluster" fs create default
    fi
    mkdir -p "$mnt"
    start_proc fs "$fsgw" "$mnt" --cluster "$cluster" --fs default -o auto_unmount,allow_other
  fi
  echo
  echo "  cluster:  $cluster"
  echo "            data: $run/node{1,2,3}   logs: $run/node{1,2,3}.log"
  echo "            export RINGSTORE_CLUSTER=$cluster; $cli put|get|rm|stat KEY, ring, status"
  echo "  volume:   nbd://$nbd/disk0  (1 GiB, thin; ringstore volume ls|create|rm|resize)"
  echo "            nbdinfo nbd://$nbd/disk0"
  echo "            nbdfuse /mnt/disk0 nbd://$nbd/disk0 &  then: losetup -f --show /mnt/disk0/nbd"
  echo "            log: $run/block.log"
  echo "$fs_line"
  echo "            log: $run/fs.log"
  echo "  stop it:  make stop"
  ;;
stop)
  # The gateways first, so that they write back their caches while the nodes are up.
  stop_proc fs
  stop_proc block
  for n in node3 node2 node1; do stop_proc "$n"; done
  ;;
status)
  for n in "${NODES[@]}" block fs; do
    if running "$n"; then
      echo "ringstore: $n running (pid $(cat "$run/$n.pid")) on $(cat "$run/$n.addr")"
    else
      echo "ringstore: $n not running"
    fi
  done
  ;;
*)
  echo "usage: $0 start|stop|status [BUILD_DIR]" >&2
  exit 2
  ;;
esac
