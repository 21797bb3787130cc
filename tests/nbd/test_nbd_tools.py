#!/usr/bin/env python3
"""Standard NBD clients against ringstore-block (a 3-node ring, N=3 W=2 R=2).

  * nbdinfo: the export's size and flags (flush, FUA, trim, zero, multi-conn, writable), its
    block size constraints; `nbdinfo --list` lists every volume; `nbdinfo --map` shows the
    written half of a volume as data and the rest as a hole (base:allocation), and a chunk
    zeroed by qemu-io's `write -z` (WRITE_ZEROES with NO_HOLE) as data, one zeroed by
    `write -z -u` as a hole, from the gateway's memory and again through a new gateway.
  * nbdcopy: 256 MiB of random data into a 512 MiB volume and back out: the first 256 MiB
    hash the same, the rest reads zeros.
  * qemu-img: a qcow2 image with patterns written by qemu-io is converted into a volume first
    filled with junk (so qemu-img must zero the image's holes), then back out to qcow2;
    `qemu-img compare` finds the images identical, also comparing directly against nbd://.
  * qemu-io: pattern writes at unaligned offsets, across chunk boundaries and overlapping,
    read back on the same and on a new connection; untouched ranges read zeros; a wrong
    pattern is noticed (the check can fail).
  * Finally the gateway is stopped with SIGTERM and a new one started (empty cache): the
    nbdcopy data and the qemu-io patterns read back from the cluster.

Run: /usr/bin/python3 tests/nbd/test_nbd_tools.py --bin-dir build
"""

import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nbd_common import *  # noqa: E402,F401,F403
import nbd_common as nc  # noqa: E402

MiB = 1 << 20
KiB = 1 << 10
COPY_BYTES = 256 * MiB


def check_info(info, size, what):
    exports = info.get("exports") or []
    check(len(exports) == 1, f"{what}: nbdinfo shows {len(exports)} exports: {info}")
    e = exports[0]
    check(e.get("export-size") == size, f"{what}: export-size {e.get('export-size')}, expected {size}")
    for flag in ("can_flush", "can_fua", "can_trim", "can_zero", "can_multi_conn"):
        check(e.get(flag) is True, f"{what}: {flag} is {e.get(flag)!r}, expected true: {e}")
    check(e.get("is_read_only") is False, f"{what}: is_read_only is {e.get('is_read_only')!r}")
    check(e.get("block_size_minimum") == 1 and e.get("block_size_maximum") == 32 * MiB,
          f"{what}: block sizes {e.get('block_size_minimum')}..{e.get('block_size_maximum')}, expected 1..32M")
    check(info.get("protocol") == "newstyle-fixed", f"{what}: protocol {info.get('protocol')!r}")


# qemu-io commands: (write pattern, offset, length), chosen to be unaligned, to cross the
# 64 KiB chunk boundaries of the volume, and to overlap (later writes win).
QEMU_IO_WRITES = [
    (0x5A, 1234, 5000),
    (0xA5, 65530, 70000),        # crosses two chunk boundaries (64K and 128K)
    (0x33, 66000, 10),           # inside the previous write
    (0x7E, 300001, 199999),      # unaligned start and end, four chunks
    (0xC3, 8 * MiB - 3, 3),      # the last three bytes of the volume
]


def expected_regions():
    """The qemu-io writes flattened into (pattern, offset, length) runs, last write winning,
    plus zero runs for the gaps between them (up to the volume end)."""
    size = 8 * MiB
    owner = {}
    for pat, off, ln in QEMU_IO_WRITES:
        for b in range(off, off + ln):
            owner[b] = pat
    runs = []
    pos = 0
    keys = sorted(owner)
    i = 0
    while pos < size:
        if i < len(keys) and keys[i] == pos:
            pat = owner[pos]
            start = pos
            while i < len(keys) and keys[i] == pos and owner[pos] == pat:
                pos += 1
                i += 1
            runs.append((pat, start, pos - start))
        else:
            nxt = keys[i] if i < len(keys) else size
            runs.append((0, pos, nxt - pos))
            pos = nxt
    return runs


def qemu_io(uri, cmds, what):
    args = ["qemu-io", "-f", "raw", uri]
    for c in cmds:
        args += ["-c", c]
    r = nc.tool(args, what, want=None)
    out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    check(r.returncode == 0 and "Pattern verification failed" not in out and "error" not in out.lower(),
          f"{what}: {r.describe()}")
    return r


def check_zeroed_chunks(gw, volume):
    """Block status of the two chunks zeroed at 4 MiB: the NO_HOLE one is data, the other a hole."""
    extents = json.loads(nc.tool(["nbdinfo", "--map", "--json", gw.uri(volume)], "nbdinfo --map").stdout)

    def type_at(offset):
        for e in extents:
            if e["offset"] <= offset < e["offset"] + e["length"]:
                return e["type"]
        return None
    check(type_at(4 * MiB) == 0, f"a WRITE_ZEROES with NO_HOLE left a hole (type {type_at(4 * MiB)}): {extents}")
    check(type_at(4 * MiB + 64 * KiB) == 3, f"a WRITE_ZEROES that may punch left no hole: {extents}")


def test(ctx, args):
    require_tools("nbdinfo", "nbdcopy", "qemu-img", "qemu-io")
    rnd = random.Random(args.seed)
    nodes, gw = cluster(ctx)
    n1 = nodes[0]
    create_volume(ctx, n1, "copy", "512M")
    create_volume(ctx, n1, "qcow", "64M", chunk_size="64K")
    create_volume(ctx, n1, "qio", "8M", chunk_size="64K")

    # --- nbdinfo
    check_info(nbdinfo(gw.uri("copy")), 512 * MiB, "nbdinfo copy")
    check_info(nbdinfo(gw.uri("qio")), 8 * MiB, "nbdinfo qio")
    listing = json.loads(nc.tool(["nbdinfo", "--list", "--json", f"nbd://{gw.addr}"], "nbdinfo --list").stdout)
    names = sorted(e.get("export-name") for e in listing.get("exports", []))
    check(names == ["copy", "qcow", "qio"], f"nbdinfo --list shows {names}, expected copy, qcow, qio")
    sizes = {e["export-name"]: e.get("export-size") for e in listing["exports"]}
    check(sizes == {"copy": 512 * MiB, "qcow": 64 * MiB, "qio": 8 * MiB}, f"nbdinfo --list sizes: {sizes}")
    text = nc.tool(["nbdinfo", "--list", f"nbd://{gw.addr}"], "nbdinfo --list (text)").stdout.decode()
    for n in ("copy", "qcow", "qio"):
        check(f'export="{n}"' in text, f"nbdinfo --list text does not show {n}:\n{text}")
    log("nbdinfo: size, flags and the export list are right")

    # --- nbdcopy: 256 MiB in and out
    src = ctx.path("random.bin")
    want = random_file(src, COPY_BYTES, rnd)
    t0 = now()
    nc.tool(["nbdcopy", "--flush", src, gw.uri("copy")], "nbdcopy into the volume", timeout=180)
    t_in = now() - t0
    # --- block status (base:allocation): the written half is data, the unwritten half a hole
    extents = json.loads(nc.tool(["nbdinfo", "--map", "--json", gw.uri("copy")], "nbdinfo --map").stdout)
    pos = 0
    for e in extents:
        check(e["offset"] == pos, f"nbdinfo --map: extent at {e['offset']}, expected {pos}: {extents}")
        want_type = 0 if e["offset"] < COPY_BYTES else 3  # data; hole,zero
        check(e["type"] == want_type and (want_type == 3 or e["offset"] + e["length"] <= COPY_BYTES),
              f"nbdinfo --map: {e} (written: the first {COPY_BYTES} bytes)")
        pos += e["length"]
    check(pos == 512 * MiB, f"nbdinfo --map covers {pos} bytes, expected 512 MiB: {extents}")
    log(f"nbdinfo --map: {len(extents)} extents, data up to {COPY_BYTES >> 20} MiB, a hole after")
    out = ctx.path("copy.out")
    t0 = now()
    nc.tool(["nbdcopy", gw.uri("copy"), out], "nbdcopy out of the volume", timeout=180)
    t_out = now() - t0
    check(os.path.getsize(out) == 512 * MiB, f"copied out {os.path.getsize(out)} bytes, expected 512 MiB")
    check(sha256_range(out, 0, COPY_BYTES) == want, "nbdcopy: the data read back differs from what was written")
    check(zero_range(out, COPY_BYTES, 512 * MiB - COPY_BYTES), "nbdcopy: the unwritten half is not zeros")
    os.unlink(out)
    log(f"nbdcopy: 256 MiB in {t_in:.1f}s ({256 / t_in:.0f} MiB/s), 512 MiB out in {t_out:.1f}s; sha256 equal")

    # --- qemu-img convert qcow2 -> volume -> qcow2
    img = ctx.path("src.qcow2")
    nc.tool(["qemu-img", "create", "-q", "-f", "qcow2", img, "64M"], "qemu-img create")
    cmds = []
    for pat, off, ln in [(0xAA, 0, MiB), (0x55, 5 * MiB, 3 * MiB), (0x11, 12345, 67890),
                         (0xEE, 60 * MiB, 4 * MiB), (0x42, 33 * MiB + 777, 100000)]:
        cmds += ["-c", f"write -P {pat:#x} {off} {ln}"]
    nc.tool(["qemu-io", "-f", "qcow2", img] + cmds, "qemu-io writes into the qcow2 image")
    junk = ctx.path("junk.bin")
    random_file(junk, 64 * MiB, rnd)
    nc.tool(["nbdcopy", "--flush", junk, gw.uri("qcow")], "nbdcopy junk into qcow")
    nc.tool(["qemu-img", "convert", "-n", "-f", "qcow2", "-O", "raw", img, gw.uri("qcow")],
            "qemu-img convert qcow2 -> nbd", timeout=120)
    back = ctx.path("back.qcow2")
    nc.tool(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", gw.uri("qcow"), back],
            "qemu-img convert nbd -> qcow2", timeout=120)
    r = nc.tool(["qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", img, back], "qemu-img compare", want=None)
    check(r.returncode == 0, f"qemu-img compare of the image and its round trip: {r.describe()}")
    r = nc.tool(["qemu-img", "compare", "-f", "qcow2", "-F", "raw", img, gw.uri("qcow")],
                "qemu-img compare against nbd://", want=None)
    check(r.returncode == 0, f"qemu-img compare of the image and the volume: {r.describe()}")
    log("qemu-img: qcow2 -> volume -> qcow2 is identical (holes zeroed over junk)")

    # --- qemu-io: unaligned pattern writes and reads
    writes = [f"write -P {p:#x} {o} {n}" for p, o, n in QEMU_IO_WRITES]
    reads = [f"read -P {p:#x} {o} {n}" for p, o, n in expected_regions()]
    qemu_io(gw.uri("qio"), writes + reads, "qemu-io writes then reads on one connection")
    qemu_io(gw.uri("qio"), reads, "qemu-io reads on a new connection")
    # The checker can fail: a wrong pattern is reported.
    r = nc.tool(["qemu-io", "-f", "raw", gw.uri("qio"), "-c", "read -P 0x5b 1234 5000"], "qemu-io wrong pattern",
                want=None)
    check(r.returncode != 0 and b"Pattern verification failed" in r.stdout + r.stderr,
          f"qemu-io did not notice a wrong pattern: {r.describe()}")
    log(f"qemu-io: {len(writes)} unaligned writes, {len(reads)} pattern reads (incl. zeros) match")

    # --- WRITE_ZEROES: qemu-io's `write -z` sends NO_HOLE (the range must stay allocated),
    # `write -z -u` lets the server punch holes. Both chunks were holes; the first must now
    # be stored (data in block status), the second may stay a hole (and does here).
    qemu_io(gw.uri("qio"), [f"write -z {4 * MiB} 64k", f"write -z -u {4 * MiB + 64 * KiB} 64k"],
            "qemu-io write -z, without and with -u")
    check_zeroed_chunks(gw, "qio")
    qemu_io(gw.uri("qio"), [f"read -P 0 {4 * MiB} 128k"], "qemu-io reads the zeroed chunks")
    log("WRITE_ZEROES: with NO_HOLE the chunk is data (zeros), without it a hole; both read zeros")

    # --- a new gateway (empty cache) reads it all back from the cluster
    check(gw.stop() == 0, "ringstore-block did not exit 0 after SIGTERM (writeback failed?)")
    gw.start()
    out = ctx.path("copy.out2")
    nc.tool(["nbdcopy", gw.uri("copy"), out], "nbdcopy out through a new gateway", timeout=180)
    check(sha256_range(out, 0, COPY_BYTES) == want, "through a new gateway: the 256 MiB differ")
    check(zero_range(out, COPY_BYTES, 512 * MiB - COPY_BYTES), "through a new gateway: the unwritten half is not zeros")
    qemu_io(gw.uri("qio"), reads, "qemu-io reads through a new gateway")
    check_zeroed_chunks(gw, "qio")  # now from the cluster's metadata: the zeros were stored
    r = nc.tool(["qemu-img", "compare", "-f", "qcow2", "-F", "raw", img, gw.uri("qcow")],
                "qemu-img compare through a new gateway", want=None)
    check(r.returncode == 0, f"qemu-img compare through a new gateway: {r.describe()}")
    check(gw.stop() == 0, "ringstore-block did not exit 0 after SIGTERM")
    for n in nodes:
        check(n.stop() == 0, f"{n.name} did not exit cleanly on SIGTERM")
    return (f"nbdinfo flags, list and map; nbdcopy 256 MiB in {t_in:.1f}s/out {t_out:.1f}s sha256 equal; "
            f"qemu-img qcow2 round trip identical; qemu-io unaligned patterns; all again via a new gateway")


if __name__ == "__main__":
    harness.run(test, "test_nbd_tools", __doc__)
