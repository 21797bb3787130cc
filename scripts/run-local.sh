#!/usr/bin/env bash
# Starts, stops or describes the local ringstore that `make run` brings up under ./run/.
# Usage: scripts/run-local.sh start|stop|status [BUILD_DIR]
set -euo pipefail
cmd=${1:-start}
build=${2:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
run="$top/run"
node="$top/$build/node/ringstore-node"
cli="$top/$build/tools/ringstore"
listen=${RINGSTORE_LISTEN:-127.0.0.1:7400}

running() { [ -f "$run/node1.pid" ] && kill -0 "$(cat "$run/node1.pid")" 2>/dev/null; }

case "$cmd" in
start)
  mkdir -p "$run"
  if running; then
    echo "ringstore: node already running (pid $(cat "$run/node1.pid")) on $(cat "$run/node1.addr")"
  else
    rm -f "$run/node1.addr"
    nohup "$node" --data "$run/node1" --listen "$listen" --ready-file "$run/node1.addr" \
      >"$run/node1.log" 2>&1 &
    echo $! >"$run/node1.pid"
    for _ in $(seq 100); do
      [ -s "$run/node1.addr" ] && break
      kill -0 "$(cat "$run/node1.pid")" 2>/dev/null || break
      sleep 0.1
    done
    if [ ! -s "$run/node1.addr" ]; then
      echo "ringstore: the node did not start; its log ($run/node1.log) says:" >&2
      tail -n 20 "$run/node1.log" >&2
      exit 1
    fi
    echo "ringstore: started node 1 (pid $(cat "$run/node1.pid")) on $(cat "$run/node1.addr")"
  fi
  addr=$(cat "$run/node1.addr")
  sample="$run/hello.txt"
  echo "hello from ringstore, $(date -u +%FT%TZ)" >"$sample"
  "$cli" --cluster "$addr" put hello "$sample" >/dev/null
  echo "ringstore: stored object 'hello' ($(wc -c <"$sample") bytes) with: ringstore --cluster $addr put hello $sample"
  got=$("$cli" --cluster "$addr" get hello)
  echo "ringstore: read it back with: ringstore --cluster $addr get hello"
  echo "           -> $got"
  echo
  echo "  node:     $addr   data: $run/node1   log: $run/node1.log"
  echo "  client:   export RINGSTORE_CLUSTER=$addr; $cli put|get|rm|stat KEY"
  echo "  stop it:  make stop"
  ;;
stop)
  if running; then
    pid=$(cat "$run/node1.pid")
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "ringstore: node $pid did not stop in 10 s; sending SIGKILL" >&2
      kill -KILL "$pid"
    fi
    echo "ringstore: stopped node 1 (pid $pid)"
  else
    echo "ringstore: no local node running"
  fi
  rm -f "$run/node1.pid"
  ;;
status)
  if running; then
    echo "ringstore: node 1 running (pid $(cat "$run/node1.pid")) on $(cat "$run/node1.addr")"
  else
    echo "ringstore: no local node running"
  fi
  ;;
*)
  echo "usage: $0 start|stop|status [BUILD_DIR]" >&2
  exit 2
  ;;
esac
