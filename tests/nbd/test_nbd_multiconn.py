#!/usr/bin/python3
"""Many requests in flight on several NBD connections to one volume, checked against a model.

Four libnbd handles (Python bindings, module `nbd`: Debian's python3-libnbd, so this runs under
/usr/bin/python3) issue a few thousand asynchronous writes, WRITE_ZEROES, reads and flushes
with random, mostly unaligned offsets and lengths (1 byte to 200 KB) inside a 2 MiB region of
a volume with 64 KiB chunks, up to 16 in flight per handle. The gateway runs with the
smallest cache (--cache-mb 1 --dirty-mb 2), so chunks are evicted and loaded again while
requests queue on them, and writes are throttled by writeback.

What makes the expected result exact. NBD itself orders nothing among requests in flight:
two overlapping writes in flight at once may land in either order, or mixed per chunk. So:
  * Overlap ACROSS connections is only allowed in time: a request is not issued while a
    request on ANOTHER handle overlapping it is in flight (unless both are reads). Once the
    earlier one is answered it is ordered before the later one by the protocol itself.
  * Overlap on the SAME connection is allowed while in flight -- that is the case this test
    is after: overlapping writes (and reads after them) queued together on one chunk, often
    behind a pending chunk load. libnbd sends a handle's requests in issue order on its one
    socket, and ringstore-block promises (volume_cache.h) that operations on a chunk apply in
    the order they arrived, "so overlapping writes end as they would on a local file".
Hence every pair of overlapping requests is ordered by issue order, and applying the writes
to a local bytearray in issue order gives the one right answer; each read must return the
model's bytes at the time it was issued. The test counts how often same-connection
overlaps and cross-connection sharing of a chunk happened and requires plenty of both.

At the end, every request answered: one handle reads the whole region (the cache as seen by
another connection), one FLUSH is sent on handle 0 only, and the gateway is killed with
SIGKILL right after its reply (no writeback at exit). A new gateway then must show the model
exactly -- through a new libnbd connection and through nbdcopy to a file, and zeros outside
the region: a FLUSH on one connection covered the writes of all (CAN_MULTI_CONN). Likewise a
FUA write and a FUA WRITE_ZEROES survive a SIGKILL right after their replies.

Run: /usr/bin/python3 tests/nbd/test_nbd_multiconn.py --bin-dir build
"""

import os
import select
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nbd_common import *  # noqa: E402,F401,F403
import nbd_common as nc  # noqa: E402

try:
    import nbd  # python3-libnbd
except ImportError:
    nbd = None

KiB, MiB = 1 << 10, 1 << 20
VOL_SIZE = 16 * MiB
CHUNK = 64 * KiB
REGION_OFF = 3 * MiB + 777       # unaligned on purpose
REGION_LEN = 2 * MiB
HANDLES = 4
PER_HANDLE = 16                  # requests in flight per handle
OPS = 10000
LOOP_DEADLINE_S = 150


class Op:
    __slots__ = ("h", "kind", "start", "end", "buf", "expect", "fua", "err", "done", "seq")

    def __init__(self, h, kind, start, end, seq):
        self.h, self.kind, self.start, self.end, self.seq = h, kind, start, end, seq
        self.buf = self.expect = None
        self.fua = False
        self.err = None
        self.done = False


def overlaps(a_start, a_end, b_start, b_end):
    return a_start < b_end and b_start < a_end


def chunks_of(start, end):
    return set(range((REGION_OFF + start) // CHUNK, (REGION_OFF + end - 1) // CHUNK + 1))


def random_length(rnd):
    x = rnd.random()
    if x < 0.6:
        return rnd.randint(1, 4096)
    if x < 0.85:
        return rnd.randint(4097, 70000)
    return rnd.randint(70001, 200000)


def connect(gw, vol):
    h = nbd.NBD()
    h.set_export_name(vol)
    h.connect_tcp(*gw.addr.rsplit(":", 1))
    check(h.can_multi_conn(), "the export does not offer CAN_MULTI_CONN")
    return h


def run_workload(gw, vol, rnd):
    handles = [connect(gw, vol) for _ in range(HANDLES)]
    model = bytearray(REGION_LEN)
    inflight = [[] for _ in range(HANDLES)]  # ops in flight per handle
    stats = {"write": 0, "zero": 0, "read": 0, "flush": 0, "fua": 0, "same_conn_overlap": 0,
             "shared_chunk": 0, "deferred": 0}
    failures = []
    issued = 0

    def conflict(h, kind, start, end):
        """A request on another handle, in flight, that overlaps and is not read/read."""
        for other in range(HANDLES):
            if other == h:
                continue
            for op in inflight[other]:
                if op.kind == "flush" or (kind == "read" and op.kind == "read"):
                    continue
                if overlaps(start, end, op.start, op.end):
                    return True
        return False

    def completion(op):
        def cb(err):
            op.err = err.value
            op.done = True
            return 1  # retire the command
        return cb

    def pick_range(h):
        n = random_length(rnd)
        mine = [op for op in inflight[h] if op.kind in ("write", "zero")]
        if mine and rnd.random() < 0.4:  # aim at one of this handle's writes in flight
            t = rnd.choice(mine)
            start = rnd.randint(max(0, t.start - n + 1), min(t.end - 1, REGION_LEN - 1))
        else:
            start = rnd.randrange(REGION_LEN)
        return start, min(REGION_LEN, start + n)

    def issue(h):
        nonlocal issued
        x = rnd.random()
        kind = "write" if x < 0.65 else "read" if x < 0.87 else "zero" if x < 0.96 else "flush"
        if kind == "flush":
            op = Op(h, "flush", 0, 0, issued)
            handles[h].aio_flush(completion=completion(op))
        else:
            start, end = pick_range(h)
            if conflict(h, kind, start, end):
                stats["deferred"] += 1
                return False
            op = Op(h, kind, start, end, issued)
            if kind != "read":
                if any(o.kind in ("write", "zero") and overlaps(start, end, o.start, o.end) for o in inflight[h]):
                    stats["same_conn_overlap"] += 1
            mine = chunks_of(start, end)
            if any(o.kind != "flush" and mine & chunks_of(o.start, o.end)
                   for other in range(HANDLES) if other != h for o in inflight[other]):
                stats["shared_chunk"] += 1
            off = REGION_OFF + start
            flags = 0
            if kind == "write":
                data = rnd.randbytes(end - start)
                model[start:end] = data
                op.buf = nbd.Buffer.from_bytearray(bytearray(data))
                if rnd.random() < 0.05:
                    flags, op.fua = nbd.CMD_FLAG_FUA, True
                    stats["fua"] += 1
                handles[h].aio_pwrite(op.buf, off, completion=completion(op), flags=flags)
            elif kind == "zero":
                model[start:end] = bytes(end - start)
                handles[h].aio_zero(end - start, off, completion=completion(op))
            else:
                op.expect = bytes(model[start:end])
                op.buf = nbd.Buffer(end - start)
                handles[h].aio_pread(op.buf, off, completion=completion(op))
        stats[kind] += 1
        inflight[h].append(op)
        issued += 1
        return True

    def reap():
        for h in range(HANDLES):
            keep = []
            for op in inflight[h]:
                if not op.done:
                    keep.append(op)
                    continue
                if op.err != 0:
                    failures.append(f"{op.kind} #{op.seq} on handle {h} [{op.start}, {op.end}): errno {op.err}")
                elif op.kind == "read":
                    got = bytes(op.buf.to_bytearray())
                    if got != op.expect:
                        bad = next(i for i in range(len(got)) if got[i] != op.expect[i])
                        failures.append(f"read #{op.seq} on handle {h} of region [{op.start}, {op.end}) differs "
                                        f"from the model first at region offset {op.start + bad}")
            inflight[h] = keep

    deadline = now() + LOOP_DEADLINE_S
    t0 = now()
    while issued < OPS or any(inflight):
        check(now() < deadline, f"requests still in flight after {LOOP_DEADLINE_S}s ({issued} issued)")
        # Issue what the limits and the ordering rule allow; a few tries per round.
        for _ in range(HANDLES * 4):
            if issued >= OPS:
                break
            h = rnd.randrange(HANDLES)
            if len(inflight[h]) < PER_HANDLE:
                issue(h)
        fds_r, fds_w = [], []
        for hd in handles:
            d = hd.aio_get_direction()
            if d & nbd.AIO_DIRECTION_READ:
                fds_r.append(hd.aio_get_fd())
            if d & nbd.AIO_DIRECTION_WRITE:
                fds_w.append(hd.aio_get_fd())
        r, w, _ = select.select(fds_r, fds_w, [], 1.0)
        for hd in handles:
            fd = hd.aio_get_fd()
            if fd in r:
                hd.aio_notify_read()
            if fd in w:
                hd.aio_notify_write()
        reap()
        check(len(failures) == 0, "; ".join(failures[:5]))
    took = now() - t0
    log(f"{issued} requests on {HANDLES} connections in {took:.1f}s: {stats}")
    check(stats["same_conn_overlap"] >= 100,
          f"only {stats['same_conn_overlap']} same-connection overlaps happened; the test did not exercise them")
    check(stats["shared_chunk"] >= 100,
          f"only {stats['shared_chunk']} requests shared a chunk with another connection's in flight")
    return handles, model, stats, took


def check_volume(ctx, gw, vol, model, what):
    h = connect(gw, vol)
    got = h.pread(REGION_LEN, REGION_OFF)
    check(got == bytes(model), f"{what}: a new connection reads the region other than the model "
                               f"({sum(1 for a, b in zip(got, model) if a != b)} bytes differ)")
    h.shutdown()
    out = ctx.path("volume.img")
    nc.tool(["nbdcopy", gw.uri(vol), out], f"nbdcopy ({what})", timeout=120)
    with open(out, "rb") as f:
        img = f.read()
    os.unlink(out)
    check(len(img) == VOL_SIZE, f"{what}: nbdcopy wrote {len(img)} bytes")
    check(img[REGION_OFF:REGION_OFF + REGION_LEN] == bytes(model), f"{what}: nbdcopy's image differs from the model")
    outside = img[:REGION_OFF] + img[REGION_OFF + REGION_LEN:]
    check(outside.count(0) == len(outside), f"{what}: non-zero bytes outside the region")
    log(f"{what}: a new connection and nbdcopy both match the model")


def test(ctx, args):
    harness.need(nbd is not None, f"the libnbd Python module `nbd` is not importable by {sys.executable} "
                                  f"(Debian: python3-libnbd; run with /usr/bin/python3)")
    require_tools("nbdcopy")
    rnd = random.Random(args.seed)
    nodes, gw = cluster(ctx, gateway_args=["--cache-mb", "1", "--dirty-mb", "2"])
    vol = "mc"
    create_volume(ctx, nodes[0], vol, "16M", chunk_size="64K")

    handles, model, stats, took = run_workload(gw, vol, rnd)
    # Another connection sees every connection's writes (from the gateway's cache).
    got = handles[HANDLES - 1].pread(REGION_LEN, REGION_OFF)
    check(got == bytes(model), "after the workload, handle 3 reads the region other than the model")
    # Last writes on handles 1..3 only, each inside one chunk and short of its end, so the
    # gateway has no reason to write them back before its 1 s writeback delay: only the
    # FLUSH on handle 0 makes them durable before the SIGKILL.
    used = set()
    for h in range(1, HANDLES):
        for _ in range(4):
            while True:
                start = rnd.randrange(REGION_LEN - 5000)
                end = start + rnd.randint(1, 4000)
                c = chunks_of(start, end)
                if len(c) == 1 and (REGION_OFF + end) % CHUNK != 0 and not c & used:
                    break
            used |= c
            data = rnd.randbytes(end - start)
            model[start:end] = data
            handles[h].pwrite(data, REGION_OFF + start)
    # One FLUSH on handle 0, then SIGKILL: nothing more is written back.
    t0 = now()
    if os.environ.get("RINGSTORE_TEST_SKIP_FLUSH") != "1":  # set only to see that the check can fail
        handles[0].flush()
    gw.kill9()
    log(f"FLUSH on handle 0 answered in {now() - t0:.3f}s; gateway killed -9 right after")
    del handles

    gw.start(extra_args=[])
    check_volume(ctx, gw, vol, model, "a new gateway after FLUSH and kill -9")

    # FUA: a write and a WRITE_ZEROES with FUA are durable when answered, without any FLUSH.
    h = connect(gw, vol)
    start = CHUNK - (REGION_OFF % CHUNK) + 1000  # inside a chunk, well short of its end
    data = rnd.randbytes(3000)
    h.pwrite(data, REGION_OFF + start, nbd.CMD_FLAG_FUA)
    model[start:start + len(data)] = data
    zstart = start + 5 * CHUNK + 17
    h.zero(2000, REGION_OFF + zstart, nbd.CMD_FLAG_FUA)
    model[zstart:zstart + 2000] = bytes(2000)
    gw.kill9()
    del h
    gw.start()
    check_volume(ctx, gw, vol, model, "a new gateway after FUA writes and kill -9")
    check(gw.stop() == 0, "ringstore-block did not exit 0 after SIGTERM")
    for n in nodes:
        check(n.stop() == 0, f"{n.name} did not exit cleanly on SIGTERM")
    return (f"{sum(stats[k] for k in ('write', 'zero', 'read', 'flush'))} requests on {HANDLES} connections in "
            f"{took:.1f}s ({stats['same_conn_overlap']} same-connection overlaps, {stats['shared_chunk']} shared "
            f"chunks); one FLUSH covered all connections")


if __name__ == "__main__":
    harness.run(test, "test_nbd_multiconn", __doc__)
