"""Helpers shared by the NBD gateway tests (tests/nbd/test_nbd_*.py).

On top of ../integration/harness.py (imported from there): a ring plus a ringstore-block in
front of it, volume creation, nbdinfo as JSON, random files, a minimal raw-socket NBD client
(stdlib only, so a test can see exact error numbers and framing), and the pieces of a disk
stack -- an nbdfuse file, a loop device, a mount -- each undone by an idempotent close()
that is also registered with harness.on_cleanup, so cleanup undoes them in reverse order
(umount, losetup -d, fusermount3 -u) before any process is killed, even when the test fails.
"""

import json
import os
import random
import shutil
import socket
import struct
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402
from harness import EXIT_OK, TestFailure, check, expect_rc, log, run_tool, start_ring, wait_until  # noqa: E402,F401

TOOL_TIMEOUT_S = 120.0
# Failure detection fast enough for the failover test; harmless elsewhere.
FAST_FD = ["--probe-interval-ms", "300", "--suspicion-timeout-ms", "1500"]
QUORUM = ["--replicas", "3", "--w", "2", "--r", "2"]


# Checks whose failure does not stop the test: the rest still runs (so one run shows every
# problem), and check_deferred() at the end fails the test listing them all.
_DEFERRED = []


def check_later(cond, msg):
    if not cond:
        log(f"FAILED (reported at the end): {msg}")
        _DEFERRED.append(msg)


def check_deferred():
    check(not _DEFERRED, f"{len(_DEFERRED)} check(s) failed:\n  " + "\n  ".join(_DEFERRED))


def require_tools(*names):
    missing = [n for n in names if shutil.which(n) is None]
    harness.need(not missing, f"missing tool(s): {', '.join(missing)} "
                              f"(Debian: libnbd-bin, qemu-utils, fuse3, e2fsprogs, util-linux)")


def require_root(what):
    harness.need(os.geteuid() == 0, f"{what} needs root (running as uid {os.geteuid()})")


def cluster(ctx, gateway_args=(), node_args=FAST_FD):
    """A 3-node ring on 127.0.0.1:0 and a started ringstore-block in front of it."""
    nodes = start_ring(ctx, 3, list(node_args))
    gw = ctx.gateway(nodes, extra_args=list(gateway_args))
    gw.start()
    return nodes, gw


def create_volume(ctx, node, name, size, chunk_size=None):
    args = list(QUORUM) + ["volume", "create", name, size]
    if chunk_size:
        args += ["--chunk-size", chunk_size]
    r = expect_rc(ctx.cli(*args, cluster=node), EXIT_OK, f"volume create {name} {size}")
    log(r.stdout.decode().strip())
    return r


def tool(cmd, what=None, timeout=TOOL_TIMEOUT_S, want=0, **kw):
    """run_tool that fails the test unless the exit status is `want` (None: any)."""
    r = run_tool(cmd, timeout, **kw)
    if want is not None:
        check(r.returncode == want, f"{what or cmd[0]}: expected exit {want}, got: {r.describe()}")
    return r


def nbdinfo(uri):
    r = tool(["nbdinfo", "--json", uri], f"nbdinfo {uri}", timeout=30)
    return json.loads(r.stdout)


def random_file(path, size, rnd):
    """Writes `size` random bytes (from random.Random rnd) to path; returns their sha256."""
    h = harness.hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 << 20)
            block = rnd.randbytes(n)
            h.update(block)
            f.write(block)
            left -= n
    return h.hexdigest()


def sha256_range(path, offset, length):
    h = harness.hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(offset)
        left = length
        while left:
            b = f.read(min(left, 8 << 20))
            check(b, f"{path}: ends before offset {offset + length}")
            h.update(b)
            left -= len(b)
    return h.hexdigest()


def zero_range(path, offset, length):
    """True if path holds only zero bytes in [offset, offset+length)."""
    with open(path, "rb") as f:
        f.seek(offset)
        left = length
        while left:
            b = f.read(min(left, 8 << 20))
            if not b or b.count(0) != len(b):
                return False
            left -= len(b)
    return True


# ---- a raw NBD client ------------------------------------------------------------------------

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
OPT_REPLY_MAGIC = 0x3E889045565A9
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698
OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_INFO, OPT_GO = 1, 2, 3, 6, 7
REP_ACK, REP_SERVER, REP_INFO = 1, 2, 3
REP_ERR_UNSUP, REP_ERR_POLICY, REP_ERR_INVALID, REP_ERR_UNKNOWN, REP_ERR_SHUTDOWN = \
    0x80000001, 0x80000002, 0x80000003, 0x80000006, 0x80000007
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH, CMD_TRIM, CMD_WRITE_ZEROES = 0, 1, 2, 3, 4, 6
CMD_FLAG_FUA = 1
FLAG_HAS_FLAGS, FLAG_READ_ONLY, FLAG_SEND_FLUSH, FLAG_SEND_FUA, FLAG_SEND_TRIM, FLAG_SEND_WRITE_ZEROES, \
    FLAG_CAN_MULTI_CONN = 1, 2, 4, 8, 32, 64, 256
EPERM, EIO, EINVAL, ENOSPC = 1, 5, 22, 28
ERRNO_NAMES = {0: "OK", 1: "EPERM", 5: "EIO", 12: "ENOMEM", 22: "EINVAL", 28: "ENOSPC", 75: "EOVERFLOW",
               95: "ENOTSUP", 108: "ESHUTDOWN"}


class Closed(Exception):
    """The server closed the connection."""


class RawNbd:
    """One fixed-newstyle NBD connection driven byte by byte. Every socket operation is bounded
    by `timeout` seconds (a TestFailure when it passes)."""

    def __init__(self, addr, timeout=30.0):
        host, port = addr.rsplit(":", 1)
        self.timeout = timeout
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.handle = 0
        self.size = None
        self.flags = None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            try:
                b = self.sock.recv(min(n - len(buf), 1 << 20))
            except socket.timeout:
                raise TestFailure(f"no answer from the NBD server within {self.timeout}s "
                                  f"(had {len(buf)} of {n} bytes)") from None
            except ConnectionResetError:
                raise Closed("connection reset") from None
            if not b:
                raise Closed(f"connection closed after {len(buf)} of {n} bytes")
            buf += b
        return bytes(buf)

    def send(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            raise Closed("connection closed while sending") from None

    # handshake
    def greet(self, client_flags=3):
        magic, opt, gflags = struct.unpack(">QQH", self.recv_exact(18))
        check(magic == NBDMAGIC and opt == IHAVEOPT, f"bad greeting {magic:#x} {opt:#x}")
        check(gflags & 1, f"server is not fixed newstyle (flags {gflags:#x})")
        self.send(struct.pack(">I", client_flags))
        return gflags

    def option(self, opt, data=b""):
        self.send(struct.pack(">QII", IHAVEOPT, opt, len(data)) + data)

    def opt_reply(self):
        magic, opt, rtype, length = struct.unpack(">QIII", self.recv_exact(20))
        check(magic == OPT_REPLY_MAGIC, f"bad option reply magic {magic:#x}")
        return opt, rtype, self.recv_exact(length)

    def go(self, name, opt=OPT_GO):
        """Sends GO (or INFO) for `name`; returns (final reply type, info replies, error text).
        On an ACK after GO, the connection is in transmission with size and flags set."""
        n = name.encode()
        self.option(opt, struct.pack(">I", len(n)) + n + struct.pack(">H", 0))
        infos = []
        while True:
            o, rtype, data = self.opt_reply()
            check(o == opt, f"reply to option {o}, expected {opt}")
            if rtype == REP_INFO:
                infos.append(data)
                if struct.unpack(">H", data[:2])[0] == 0:
                    self.size, self.flags = struct.unpack(">QH", data[2:12])
                continue
            return rtype, infos, data.decode(errors="replace") if rtype & 0x80000000 else ""

    def list(self):
        self.option(OPT_LIST)
        names = []
        while True:
            _, rtype, data = self.opt_reply()
            if rtype == REP_SERVER:
                (n,) = struct.unpack(">I", data[:4])
                names.append(data[4:4 + n].decode())
            elif rtype == REP_ACK:
                return names
            else:
                raise TestFailure(f"LIST: reply type {rtype:#x}: {data!r}")

    def attach(self, name):
        self.greet()
        rtype, _, err = self.go(name)
        check(rtype == REP_ACK, f"GO {name!r}: reply {rtype:#x} ({err}), expected ACK")
        return self

    # transmission
    def request(self, cmd, offset=0, length=0, payload=b"", flags=0, handle=None):
        if handle is None:
            self.handle += 1
            handle = self.handle
        self.send(struct.pack(">IHHQQI", REQUEST_MAGIC, flags, cmd, handle, offset, length) + payload)
        return handle

    def reply(self, read_length=0):
        """Reads one simple reply: (error, handle, data); data only for a successful read."""
        magic, error, handle = struct.unpack(">IIQ", self.recv_exact(16))
        check(magic == SIMPLE_REPLY_MAGIC, f"bad reply magic {magic:#x}")
        data = self.recv_exact(read_length) if error == 0 and read_length else b""
        return error, handle, data

    def read(self, offset, length):
        h = self.request(CMD_READ, offset, length)
        err, got, data = self.reply(length)
        check(got == h, f"reply for handle {got}, expected {h}")
        return err, data

    def write(self, offset, data, flags=0):
        h = self.request(CMD_WRITE, offset, len(data), data, flags)
        err, got, _ = self.reply()
        check(got == h, f"reply for handle {got}, expected {h}")
        return err

    def simple(self, cmd, offset=0, length=0, flags=0):
        h = self.request(cmd, offset, length, flags=flags)
        err, got, _ = self.reply()
        check(got == h, f"reply for handle {got}, expected {h}")
        return err

    def disconnect(self):
        try:
            self.request(CMD_DISC)
        except Closed:
            pass
        self.close()

    def wait_closed(self, timeout=10.0):
        """True if the server closes the connection (EOF or reset) within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(self.timeout)


def errname(e):
    return ERRNO_NAMES.get(e, str(e))


# ---- the disk stack: nbdfuse file, loop device, mount ------------------------------------------

def _proc_mounts():
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            out.append((parts[4].encode().decode("unicode_escape"), parts[parts.index("-") + 1]))
    return out


def is_mounted(path):
    path = os.path.realpath(path)
    return any(mp == path for mp, _ in _proc_mounts())


class FuseFile:
    """`nbdfuse DIR/nbd URI`: the volume as the file DIR/nbd. close() unmounts with
    fusermount3 -u (nbdfuse then exits); if that fails, it aborts the FUSE connection and
    unmounts lazily, so cleanup never hangs on a dead server."""

    def __init__(self, ctx, uri, name="fuse", timeout=20.0):
        self.dir = ctx.mkdtemp(f"{name}-mnt-")
        self.file = os.path.join(self.dir, "nbd")
        work = ctx.mkdtemp(f"{name}-")
        self.log_path = os.path.join(work, "nbdfuse.log")
        pidfile = os.path.join(work, "nbdfuse.pid")
        self.proc = harness.spawn(["nbdfuse", "-P", pidfile, self.file, uri], self.log_path)
        self.conn = None
        harness.on_cleanup(self.close, f"fusermount3 -u {self.dir}")

        def ready():
            if self.proc.poll() is not None:
                return "dead"
            return os.path.exists(pidfile) and is_mounted(self.dir)

        if wait_until(ready, timeout, f"nbdfuse to mount {self.dir}") == "dead":
            raise TestFailure(f"nbdfuse exited {self.proc.returncode}: {self.log()}")
        self.conn = os.stat(self.dir).st_dev  # the FUSE connection number, for abort
        log(f"nbdfuse: {uri} is {self.file} (pid {self.proc.pid})")

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return harness.tail(f.read().decode(errors="replace"), 20)
        except OSError:
            return ""

    def abort(self):
        """Ends the FUSE connection so nothing waits on it any more: through fusectl if it is
        mounted, else by killing nbdfuse (by PID), which closes /dev/fuse and so aborts too."""
        path = f"/sys/fs/fuse/connections/{self.conn}/abort"
        if self.conn is not None and os.path.exists(path):
            with open(path, "w") as f:
                f.write("1")
            log(f"aborted FUSE connection {self.conn}")
        elif self.proc.poll() is None:
            self.proc.kill()
            log(f"killed nbdfuse (pid {self.proc.pid}) to abort its FUSE connection")

    def close(self):
        """Unmounts; returns nbdfuse's exit status."""
        forced = False
        if is_mounted(self.dir):
            # A loop device just detached may hold the file for a moment: retry a busy unmount.
            deadline = time.monotonic() + 5
            while _bounded(["fusermount3", "-u", self.dir], 30, on_timeout=self.abort) != 0 \
                    and is_mounted(self.dir) and time.monotonic() < deadline:
                time.sleep(0.2)
            if is_mounted(self.dir):
                log(f"fusermount3 -u {self.dir} kept failing; aborting the connection")
                forced = True
                self.abort()
                _bounded(["fusermount3", "-uz", self.dir], 30)
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=5 if forced else 20)
            except harness.subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        harness._forget(self.proc)
        return self.proc.returncode


class LoopDevice:
    """`losetup -f --show FILE`; close() runs losetup -d."""

    def __init__(self, path):
        r = tool(["losetup", "-f", "--show", path], f"losetup -f --show {path}", timeout=30)
        self.dev = r.stdout.decode().strip()
        check(self.dev.startswith("/dev/loop"), f"losetup printed {self.dev!r}")
        harness.on_cleanup(self.close, f"losetup -d {self.dev}")
        log(f"{path} attached as {self.dev}")

    def attached(self):
        r = run_tool(["losetup", "-n", "-O", "NAME", self.dev], 10) if self.dev else None
        return r is not None and r.returncode == 0 and r.stdout.strip() != b""

    def close(self):
        if self.dev and self.attached():
            r = run_tool(["losetup", "-d", self.dev], 30)
            check(r.returncode == 0, f"losetup -d {self.dev}: {r.describe()}")
        self.dev = None


class Mount:
    """`mount DEV DIR`; close() unmounts: lazily if a plain umount fails, and if it hangs the FUSE
    connection underneath (if given) is aborted first, so a wedged server cannot wedge cleanup."""

    def __init__(self, ctx, dev, fuse=None, options=None):
        self.dir = ctx.mkdtemp("ext4-")
        self.fuse = fuse
        cmd = ["mount"] + (["-o", options] if options else []) + [dev, self.dir]
        tool(cmd, f"mount {dev}", timeout=60)
        harness.on_cleanup(self.close, f"umount {self.dir}")
        log(f"{dev} mounted on {self.dir}")

    def path(self, name):
        return os.path.join(self.dir, name)

    def close(self, timeout=30.0):
        """Unmounts; returns umount's exit status (None if it was not mounted or hung)."""
        if not is_mounted(self.dir):
            return None
        rc = _bounded(["umount", self.dir], timeout, on_timeout=self.fuse.abort if self.fuse else None)
        if is_mounted(self.dir):
            log(f"umount {self.dir} failed (exit {rc}); unmounting lazily")
            _bounded(["umount", "-l", self.dir], 30)
        return rc


def _bounded(cmd, timeout, on_timeout=None):
    """Runs cmd; returns its exit status, or None if it had to be given up on. A process stuck
    in the kernel (an unmount waiting on a FUSE request) cannot be killed, so on timeout
    on_timeout() gets the chance to unblock it (abort the FUSE connection) before the wait
    goes on, still bounded."""
    p = harness.subprocess.Popen(cmd, stdin=harness.subprocess.DEVNULL, stdout=harness.subprocess.PIPE,
                                 stderr=harness.subprocess.STDOUT, close_fds=True)
    harness._register(p)
    try:
        out, _ = p.communicate(timeout=timeout)
        if p.returncode != 0:
            log(f"`{' '.join(cmd)}` exited {p.returncode}: {out.decode(errors='replace').strip()}")
        return p.returncode
    except harness.subprocess.TimeoutExpired:
        log(f"`{' '.join(cmd)}` still running after {timeout}s")
        if on_timeout:
            on_timeout()
        p.kill()
        try:
            p.wait(timeout=30)
        except harness.subprocess.TimeoutExpired:
            log(f"`{' '.join(cmd)}` (pid {p.pid}) is stuck; leaving it")
        return None
    finally:
        if p.poll() is not None:
            harness._forget(p)


def pick(rnd, seq):
    return seq[rnd.randrange(len(seq))]


def now():
    return time.monotonic()


# What `from nbd_common import *` gives a test; the rest is used as nc.NAME.
__all__ = ["harness", "json", "random", "EXIT_OK", "TestFailure", "check", "check_later", "check_deferred",
           "expect_rc", "log", "wait_until", "start_ring", "require_tools", "require_root", "cluster",
           "create_volume", "nbdinfo", "random_file", "sha256_range", "zero_range", "now"]
