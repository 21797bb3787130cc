#!/usr/bin/env python3
"""Error paths of ringstore-block, over raw sockets, and of the `ringstore volume` CLI.

Handshake (fixed newstyle): GO for a volume that does not exist gets NBD_REP_ERR_UNKNOWN, as
does GO for a malformed or empty name (ERR_INVALID accepted too), and haggling goes on (LIST, INFO, an unsupported option, then a
GO that succeeds); EXPORT_NAME for a missing volume, a bad option magic and unknown client
flags close the connection; ABORT is acknowledged.
Transmission: an out-of-range or overflowing read gets EINVAL, a write past the end ENOSPC,
WRITE_ZEROES past the end ENOSPC, TRIM past the end EINVAL, a 33 MiB read EINVAL, unknown
commands and flags EINVAL -- each time the next request still works, also when pipelined. A
40 MiB write gets EINVAL once its payload has been skipped, the connection still answers and
the data is unchanged. A garbage request magic closes the connection; the server keeps
serving others. DISC closes it.
Read-only (`ringstore-block --read-only`): the export says so, writes, trims, zeroes and a
40 MiB write get EPERM, reads and flushes work.
CLI: create with a bad name, size or chunk size, or a duplicate name exits 2 with a message;
ls lists names, sizes, chunk sizes and quorum; resize grows (a new connection sees the size),
shrinks (data past the end gone: a later grow reads zeros there, the kept part is intact)
and fails for a missing volume (1) or a bad size (2); rm removes (nbdinfo and GO then fail,
ls omits it, rm again exits 1) and a volume created again under the name reads zeros.
Leases: while a client is attached, rm and a shrink wait `--wait` seconds, then exit 4 naming
the gateway, deleting nothing (a new connection reads the data back); a grow goes on; once
the client has left (with unflushed writes) rm goes on; `nbdinfo --list` leaves no lease
behind; `rm --force` of an attached volume goes on, and within two lease renewals the
attached connection gets EIO.

Run: /usr/bin/python3 tests/nbd/test_nbd_errors.py --bin-dir build
"""

import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nbd_common import *  # noqa: E402,F401,F403
import nbd_common as nc  # noqa: E402

MiB = 1 << 20
VOL = "errvol"
VOL_SIZE = 64 * MiB


def expect_err(got, want, what):
    check(got == want, f"{what}: got {nc.errname(got)}, expected {nc.errname(want)}")


def expect_closed(c, what):
    check(c.wait_closed(10), f"{what}: the server did not close the connection")


def handshake_tests(gw):
    addr = gw.addr
    with nc.RawNbd(addr) as c:
        gflags = c.greet()
        check(gflags == 3, f"greeting flags {gflags:#x}, expected FIXED_NEWSTYLE|NO_ZEROES")
        rtype, infos, msg = c.go("nosuch")
        check(rtype == nc.REP_ERR_UNKNOWN and not infos,
              f"GO for a missing volume: reply {rtype:#x} ({msg!r}), expected NBD_REP_ERR_UNKNOWN")
        # A malformed name, or the empty "default export" name (there is none), names no
        # export either. ERR_SHUTDOWN, by contrast, tells the client the server is going away
        # (qemu: "Server shutting down before option 7 (go)").
        for bad in ("bad/name", ""):
            rtype, _, msg = c.go(bad)
            check_later(rtype in (nc.REP_ERR_UNKNOWN, nc.REP_ERR_INVALID),
                        f"GO for the malformed export name {bad!r}: reply {rtype:#x} ({msg!r}), expected "
                        f"NBD_REP_ERR_UNKNOWN (or ERR_INVALID)")
        # Haggling goes on.
        names = c.list()
        check(VOL in names, f"LIST after the failed GOs: {names}")
        c.option(99)
        o, rtype, _ = c.opt_reply()
        check(o == 99 and rtype == nc.REP_ERR_UNSUP, f"unknown option 99: reply {rtype:#x}, expected ERR_UNSUP")
        rtype, infos, _ = c.go(VOL, opt=nc.OPT_INFO)
        check(rtype == nc.REP_ACK and c.size == VOL_SIZE, f"INFO {VOL}: reply {rtype:#x}, size {c.size}")
        rtype, _, msg = c.go(VOL)
        check(rtype == nc.REP_ACK, f"GO {VOL} after all that: reply {rtype:#x} ({msg!r})")
        check(c.size == VOL_SIZE, f"GO: size {c.size}, expected {VOL_SIZE}")
        want_flags = nc.FLAG_HAS_FLAGS | nc.FLAG_SEND_FLUSH | nc.FLAG_SEND_FUA | nc.FLAG_SEND_TRIM | \
            nc.FLAG_SEND_WRITE_ZEROES | nc.FLAG_CAN_MULTI_CONN
        check(c.flags == want_flags, f"transmission flags {c.flags:#x}, expected {want_flags:#x}")
        err, data = c.read(0, 4096)
        check(err == 0 and data == bytes(4096), f"first read after haggling: {nc.errname(err)}")
        c.disconnect()

    with nc.RawNbd(addr) as c:  # EXPORT_NAME has no error reply: the server closes
        c.greet()
        c.option(nc.OPT_EXPORT_NAME, b"nosuch")
        expect_closed(c, "EXPORT_NAME for a missing volume")
    with nc.RawNbd(addr) as c:
        c.greet()
        c.send(b"\x00" * 16)
        expect_closed(c, "an option with a bad magic")
    with nc.RawNbd(addr) as c:
        c.greet(client_flags=0x80)
        expect_closed(c, "unknown client flags")
    with nc.RawNbd(addr) as c:
        c.greet()
        c.option(nc.OPT_ABORT)
        o, rtype, _ = c.opt_reply()
        check(o == nc.OPT_ABORT and rtype == nc.REP_ACK, f"ABORT: reply {rtype:#x}")
        expect_closed(c, "ABORT")
    with nc.RawNbd(addr) as c:  # old-style EXPORT_NAME still attaches
        c.greet()
        c.option(nc.OPT_EXPORT_NAME, VOL.encode())
        size, flags = nc.struct.unpack(">QH", c.recv_exact(10))
        check(size == VOL_SIZE, f"EXPORT_NAME: size {size}")
        err, _ = c.read(VOL_SIZE - 512, 512)
        expect_err(err, 0, "read after EXPORT_NAME")
        c.disconnect()
    log("handshake: unknown/malformed names, LIST, INFO, unsupported option, EXPORT_NAME, ABORT, bad magic")


def transmission_tests(gw, rnd):
    c = nc.RawNbd(gw.addr).attach(VOL)
    pattern = rnd.randbytes(3 * MiB + 17)
    expect_err(c.write(MiB - 5, pattern), 0, "write 3 MiB + 17 at 1 MiB - 5")
    expect_err(c.simple(nc.CMD_FLUSH), 0, "flush")

    def intact(what):
        err, data = c.read(MiB - 5, len(pattern))
        check(err == 0 and data == pattern, f"{what}: the data written before reads back {nc.errname(err)}, "
                                            f"{'equal' if data == pattern else 'different'}")

    cases = [
        ("read crossing the end", lambda: c.read(VOL_SIZE - 10, 20)[0], nc.EINVAL),
        ("read at the end", lambda: c.read(VOL_SIZE, 1)[0], nc.EINVAL),
        ("read with offset+length overflowing", lambda: c.read((1 << 64) - 4096, 8192)[0], nc.EINVAL),
        ("read of 33 MiB", lambda: c.read(0, 33 * MiB)[0], nc.EINVAL),
        ("write past the end", lambda: c.write(VOL_SIZE - 100, b"x" * 200), nc.ENOSPC),
        ("WRITE_ZEROES past the end", lambda: c.simple(nc.CMD_WRITE_ZEROES, VOL_SIZE - 512, 1024), nc.ENOSPC),
        ("TRIM past the end", lambda: c.simple(nc.CMD_TRIM, VOL_SIZE, 4096), nc.EINVAL),
        ("unknown command 99", lambda: c.simple(99, 0, 512), nc.EINVAL),
        ("BLOCK_STATUS (not negotiated)", lambda: c.simple(7, 0, 512), nc.EINVAL),
        ("read with an unknown flag", lambda: c.simple(nc.CMD_READ, 0, 0, flags=0x8000), nc.EINVAL),
    ]
    for what, fn, want in cases:
        expect_err(fn(), want, what)
        err, data = c.read(VOL_SIZE - 4096, 4096)  # the next request still works
        check(err == 0 and data == bytes(4096), f"the read after '{what}': {nc.errname(err)}")
    intact("after the bad requests")

    # Pipelined: a good write, a bad read, a good read, a bad write, a flush -- all answered.
    h_ok_w = c.request(nc.CMD_WRITE, 100, 3, b"abc", flags=nc.CMD_FLAG_FUA)
    h_bad_r = c.request(nc.CMD_READ, VOL_SIZE - 1, 2)
    h_ok_r = c.request(nc.CMD_READ, 98, 7)
    h_bad_w = c.request(nc.CMD_WRITE, VOL_SIZE, 4, b"wxyz")
    h_fl = c.request(nc.CMD_FLUSH)
    want = {h_ok_w: 0, h_bad_r: nc.EINVAL, h_ok_r: 0, h_bad_w: nc.ENOSPC, h_fl: 0}
    got = {}
    for _ in range(len(want)):
        # Only a successful read carries data; a simple reply does not say which request it
        # answers before its handle is read, so read the header first.
        magic, error, handle = nc.struct.unpack(">IIQ", c.recv_exact(16))
        check(magic == nc.SIMPLE_REPLY_MAGIC, f"pipelined: bad reply magic {magic:#x}")
        if handle == h_ok_r and error == 0:
            got["data"] = c.recv_exact(7)
        got[handle] = error
    for h, e in want.items():
        check(got.get(h) == e, f"pipelined request {h}: got {got.get(h)}, expected {nc.errname(e)}")
    check(got.get("data") == b"\0\0abc\0\0", f"pipelined read after the write: {got.get('data')!r}")

    # A 40 MiB write: too large to take, its payload is skipped, then EINVAL.
    big = bytes([0x77]) * (40 * MiB)
    t0 = now()
    h = c.request(nc.CMD_WRITE, 0, len(big), big)
    err, got_h, _ = c.reply()
    check(got_h == h, f"40 MiB write: reply for handle {got_h}, expected {h}")
    expect_err(err, nc.EINVAL, "40 MiB write")
    err, data = c.read(0, 4096)
    check(err == 0 and data[100:103] == b"abc" and data.count(0x77) == 0,
          f"read after the 40 MiB write: {nc.errname(err)}, data changed: {data.count(0x77)} bytes of 0x77")
    intact("after the 40 MiB write")
    log(f"transmission: {len(cases)} bad requests each answered and followed by a good one; pipelined "
        f"errors; 40 MiB write refused with EINVAL in {now() - t0:.1f}s and the connection goes on")

    # Garbage magic: the connection closes; the server serves a new one.
    c.send(b"\xde\xad\xbe\xef" + bytes(24))
    expect_closed(c, "a request with a garbage magic")
    c.close()
    with nc.RawNbd(gw.addr).attach(VOL) as c2:
        err, data = c2.read(MiB - 5, len(pattern))
        check(err == 0 and data[:len(pattern)] == pattern, "a new connection after the garbage one")
        c2.request(nc.CMD_DISC)
        expect_closed(c2, "DISC")
    return pattern


def read_only_tests(ctx, nodes, pattern):
    ro = ctx.gateway(nodes, name="block-ro", extra_args=["--read-only"])
    ro.start()
    info = nbdinfo(ro.uri(VOL))["exports"][0]
    check(info["is_read_only"] is True and info["can_trim"] is False and info["can_zero"] is False,
          f"read-only nbdinfo: {info}")
    with nc.RawNbd(ro.addr).attach(VOL) as c:
        check(c.flags & nc.FLAG_READ_ONLY, f"read-only flags {c.flags:#x}")
        # libnbd-style clients would not send these; the server must still refuse them.
        expect_err(c.write(0, b"nope"), nc.EPERM, "write on a read-only gateway")
        expect_err(c.write(0, b"nope", flags=nc.CMD_FLAG_FUA), nc.EPERM, "FUA write on a read-only gateway")
        expect_err(c.simple(nc.CMD_TRIM, 0, 4096), nc.EPERM, "trim on a read-only gateway")
        expect_err(c.simple(nc.CMD_WRITE_ZEROES, 0, 4096), nc.EPERM, "zeroes on a read-only gateway")
        h = c.request(nc.CMD_WRITE, 0, 40 * MiB, bytes(40 * MiB))
        err, got_h, _ = c.reply()
        check(got_h == h, "40 MiB read-only write: handle")
        expect_err(err, nc.EPERM, "40 MiB write on a read-only gateway")
        expect_err(c.simple(nc.CMD_FLUSH), 0, "flush on a read-only gateway")
        err, data = c.read(MiB - 5, len(pattern))
        check(err == 0 and data == pattern, f"read on the read-only gateway: {nc.errname(err)}")
        c.disconnect()
    check(ro.stop() == 0, "the read-only gateway did not exit 0")
    log("read-only gateway: EPERM for write, FUA write, trim, zeroes and a 40 MiB write; reads work")


def cli(ctx, node, *args, want, what, contains=None):
    r = expect_rc(ctx.cli(*args, cluster=node), want, what)
    if want != 0:
        check(r.stderr.strip().startswith(b"ringstore"), f"{what}: no message on stderr: {r.describe()}")
    if contains is not None:
        text = (r.stdout + r.stderr).decode(errors="replace")
        check(contains in text, f"{what}: output does not mention {contains!r}: {r.describe()}")
    return r


def size_seen(gw, name, size):
    """True once a new connection to the gateway sees the volume at this size."""
    with nc.RawNbd(gw.addr) as c:
        c.greet()
        rtype, _, _ = c.go(name, opt=nc.OPT_INFO)
        return rtype == nc.REP_ACK and c.size == size


def cli_tests(ctx, nodes, gw, rnd):
    n = nodes[1]
    for bad in ["bad/name", ".dot", "-dash", "x" * 65, "sp ace", ""]:
        cli(ctx, n, "volume", "create", "--", bad, "1M", want=2, what=f"create with the name {bad!r}", contains="name")
    for bad in ["12X", "1000", "0", "abc", "2P", "-5"]:
        cli(ctx, n, "volume", "create", "--", "okname", bad, want=2, what=f"create with the size {bad!r}")
    for bad in ["3K", "32M", "1K", "x"]:
        cli(ctx, n, "volume", "create", "okname", "1M", "--chunk-size", bad, want=2,
            what=f"create with the chunk size {bad!r}")
    cli(ctx, n, "volume", "create", VOL, "1G", want=2, what="create a duplicate", contains="exists")
    cli(ctx, n, "volume", "create", "shrinkme", "4M", "--chunk-size", "64K", want=0, what="create shrinkme")
    ls = cli(ctx, n, "volume", "ls", want=0, what="ls").stdout.decode()
    rows = {line.split()[0]: line.split() for line in ls.splitlines()[1:] if line.strip()}
    check(set(rows) == {VOL, "shrinkme"}, f"ls lists {sorted(rows)}, expected {VOL} and shrinkme (and no bad "
                                          f"names):\n{ls}")
    check(rows[VOL][1:5] == ["64", "MiB", "256", "KiB"] and rows[VOL][5] == "3/2/2", f"ls row for {VOL}: {rows[VOL]}")
    check(rows["shrinkme"][1:5] == ["4", "MiB", "64", "KiB"], f"ls row for shrinkme: {rows['shrinkme']}")

    # Grow: a new connection sees the new size.
    cli(ctx, n, "volume", "resize", VOL, "96M", want=0, what="grow errvol")
    wait_until(lambda: size_seen(gw, VOL, 96 * MiB), 10, "a new connection to see errvol at 96 MiB")
    cli(ctx, n, "volume", "resize", "nosuch", "1G", want=1, what="resize a missing volume")
    cli(ctx, n, "volume", "resize", VOL, "1000", want=2, what="resize to a size not a multiple of 512")

    # Shrink then grow: the data past the cut reads zeros, the rest is intact.
    full = rnd.randbytes(4 * MiB)
    with nc.RawNbd(gw.addr).attach("shrinkme") as c:
        expect_err(c.write(0, full), 0, "fill shrinkme")
        expect_err(c.simple(nc.CMD_FLUSH), 0, "flush shrinkme")
        c.disconnect()
    cut = MiB + 1536  # not on a chunk boundary: the kept part of the last chunk must survive
    cli(ctx, n, "volume", "resize", "shrinkme", str(cut), want=0, what="shrink shrinkme")
    wait_until(lambda: size_seen(gw, "shrinkme", cut), 10, "a new connection to see shrinkme shrunk")
    with nc.RawNbd(gw.addr).attach("shrinkme") as c:
        err, data = c.read(0, cut)
        check(err == 0 and data == full[:cut], f"shrunk volume: the kept part reads {nc.errname(err)}, "
                                               f"{'equal' if data == full[:cut] else 'different'}")
        expect_err(c.read(cut, 512)[0], nc.EINVAL, "read past the new end")
        c.disconnect()
    cli(ctx, n, "volume", "resize", "shrinkme", "4M", want=0, what="grow shrinkme back")
    wait_until(lambda: size_seen(gw, "shrinkme", 4 * MiB), 10, "a new connection to see shrinkme grown")
    with nc.RawNbd(gw.addr).attach("shrinkme") as c:
        err, data = c.read(0, 4 * MiB)
        check(err == 0, f"grown volume: read {nc.errname(err)}")
        check(data[:cut] == full[:cut], "grown volume: the kept part changed")
        nz = len(data) - cut - data[cut:].count(0)
        check(nz == 0, f"grown volume: {nz} non-zero bytes past the old end (old data came back)")
        c.disconnect()
    log("CLI: bad names/sizes/chunk sizes and duplicates exit 2; ls; grow; shrink then grow reads zeros")

    # Remove.
    cli(ctx, n, "volume", "rm", "shrinkme", want=0, what="rm shrinkme")
    r = nc.tool(["nbdinfo", gw.uri("shrinkme")], "nbdinfo of a removed volume", want=None, timeout=30)
    check(r.returncode != 0, f"nbdinfo of a removed volume succeeded: {r.describe()}")
    with nc.RawNbd(gw.addr) as c:
        c.greet()
        rtype, _, msg = c.go("shrinkme")
        check(rtype == nc.REP_ERR_UNKNOWN, f"GO for a removed volume: reply {rtype:#x} ({msg!r})")
    ls = cli(ctx, n, "volume", "ls", want=0, what="ls after rm").stdout.decode()
    check("shrinkme" not in ls, f"ls still lists the removed volume:\n{ls}")
    cli(ctx, n, "volume", "rm", "shrinkme", want=1, what="rm a removed volume")
    cli(ctx, n, "volume", "create", "shrinkme", "4M", "--chunk-size", "64K", want=0, what="create shrinkme again")
    with nc.RawNbd(gw.addr).attach("shrinkme") as c:
        err, data = c.read(0, 4 * MiB)
        check(err == 0 and data.count(0) == len(data),
              f"a volume created again under a removed name: {len(data) - data.count(0)} non-zero bytes")
        c.disconnect()
    log("CLI: rm; nbdinfo and GO then fail; ls omits it; rm again exits 1; created again it reads zeros")


def attach_when_let_go(gw, name, timeout=15):
    """A connection to name, once the gateway has let go of the cache of an older one."""
    got = []

    def attached():
        c = nc.RawNbd(gw.addr)
        c.greet()
        rtype, _, _ = c.go(name)
        if rtype != nc.REP_ACK:
            c.close()
            return False
        got.append(c)
        return True
    wait_until(attached, timeout, f"a new connection to {name}")
    return got[0]


def lease_tests(ctx, nodes, gw, rnd):
    n = nodes[2]
    cli(ctx, n, "volume", "create", "leased", "4M", "--chunk-size", "64K", want=0, what="create leased")
    flushed, dirty = rnd.randbytes(MiB), rnd.randbytes(MiB)
    with nc.RawNbd(gw.addr).attach("leased") as c:
        expect_err(c.write(2 * MiB, flushed), 0, "write to leased past 1 MiB")
        expect_err(c.simple(nc.CMD_FLUSH), 0, "flush leased")
        expect_err(c.write(0, dirty), 0, "write to leased (not flushed)")
        t0 = time.monotonic()
        cli(ctx, n, "volume", "rm", "leased", "--wait", "1", want=4, what="rm an attached volume",
            contains="is attached to gateway")
        waited = time.monotonic() - t0
        check(waited >= 1.0, f"rm of an attached volume refused after {waited:.2f}s, before its --wait of 1s")
        cli(ctx, n, "volume", "resize", "leased", "1M", "--wait", "0", want=4, what="shrink an attached volume",
            contains="is attached to gateway")
        cli(ctx, n, "volume", "resize", "leased", "8M", want=0, what="grow an attached volume")
        c.disconnect()
    # The gateway writes back, lets go, and serves the grown volume afresh from the cluster:
    # what the refused rm and shrink would have deleted is there.
    c = attach_when_let_go(gw, "leased")
    try:
        check(c.size == 8 * MiB, f"leased after the grow: size {c.size}")
        err, got = c.read(0, 3 * MiB)
        check(err == 0 and got[:MiB] == dirty and got[2 * MiB:] == flushed,
              f"after a refused rm and shrink the volume reads {nc.errname(err)}, "
              f"{'equal' if err == 0 and got[:MiB] == dirty and got[2 * MiB:] == flushed else 'different'}")
        c.disconnect()
    finally:
        c.close()
    cli(ctx, n, "volume", "rm", "leased", want=0, what="rm once the client has left")
    log("leases: rm and shrink of an attached volume wait, then exit 4 and delete nothing; grow goes on; "
        "rm goes on once the client has left")

    # Looking exports up (LIST, then INFO of each) takes leases for a moment only.
    for v in ("looked-a", "looked-b"):
        cli(ctx, n, "volume", "create", v, "1M", want=0, what=f"create {v}")
    r = nc.tool(["nbdinfo", "--list", f"nbd://{gw.addr}"], "nbdinfo --list", timeout=30)
    check("looked-a" in r.stdout.decode() and "looked-b" in r.stdout.decode(), f"nbdinfo --list: {r.describe()}")
    for v in ("looked-a", "looked-b"):
        cli(ctx, n, "volume", "rm", v, "--wait", "3", want=0, what=f"rm {v} after nbdinfo --list")
    log("leases: nbdinfo --list leaves no lease behind")

    cli(ctx, n, "volume", "create", "forced", "4M", "--chunk-size", "64K", want=0, what="create forced")
    data = flushed
    with nc.RawNbd(gw.addr).attach("forced") as c:
        expect_err(c.write(0, data), 0, "write to forced")
        expect_err(c.simple(nc.CMD_FLUSH), 0, "flush forced")
        t0 = time.monotonic()
        cli(ctx, n, "volume", "rm", "forced", "--force", want=0, what="rm --force an attached volume")
        # The gateway's next renewal (every 10 s) reads the metadata, finds the volume gone,
        # asks again a second later to be sure, and stops serving it.
        while True:
            err = c.write(0, data[:4096])
            if err == nc.EIO:
                break
            expect_err(err, 0, "write to a volume removed with --force, before the gateway notices")
            check(time.monotonic() - t0 < 25, "25 s after rm --force the attached connection still writes")
            time.sleep(0.5)
        expect_err(c.read(0, 4096)[0], nc.EIO, "read from a volume removed with --force")
        expect_err(c.simple(nc.CMD_FLUSH), nc.EIO, "flush of a volume removed with --force")
        c.disconnect()
    log(f"leases: rm --force of an attached volume goes on; {time.monotonic() - t0:.1f}s later its connection "
        f"gets EIO")


def test(ctx, args):
    require_tools("nbdinfo")
    rnd = random.Random(args.seed)
    nodes, gw = cluster(ctx)
    create_volume(ctx, nodes[0], VOL, "64M")
    handshake_tests(gw)
    pattern = transmission_tests(gw, rnd)
    read_only_tests(ctx, nodes, pattern)
    cli_tests(ctx, nodes, gw, rnd)
    lease_tests(ctx, nodes, gw, rnd)
    check(gw.stop() == 0, "ringstore-block did not exit 0 after SIGTERM")
    for n in nodes:
        check(n.stop() == 0, f"{n.name} did not exit cleanly on SIGTERM")
    check_deferred()
    return "handshake and transmission errors, read-only EPERM, volume CLI create/ls/resize/rm, leases"


if __name__ == "__main__":
    harness.run(test, "test_nbd_errors", __doc__)
