"""Shared harness for ringstore's multi-process integration tests (Python 3, stdlib only).

What it gives a test script:
  * run(test_fn, name): parses --bin-dir/--keep-tmp/--seed, builds a Context, runs test_fn(ctx, args),
    prints one summary line and exits 0 (pass) or 1 (fail). On failure it prints the tail of
    every node log it started.
  * Context: makes temp dirs, starts nodes (Node), runs the CLI (ctx.cli), and cleans up.
  * Node: one ringstore-node process on 127.0.0.1:0. start() waits for its --ready-file with a
    bounded poll; stop() sends SIGTERM and checks the exit status; kill9() sends SIGKILL.
  * wait_until(cond, timeout, what): the only way the tests wait for something to happen.
  * BlockGateway (ctx.gateway()): one ringstore-block process, started and stopped like a Node.
  * run_tool / spawn: other programs (nbdinfo, qemu-img, nbdfuse...), registered for cleanup.
  * on_cleanup(fn, what): undo steps (umount, losetup -d, fusermount3 -u) that cleanup runs, last
    registered first, before it kills processes. raise Skip(reason) makes run() exit 77.

Cleanup is unconditional: every process the harness starts is recorded by its Popen and
killed by PID (Popen.kill, which never signals a PID that has already been reaped) in a
finally block, again from atexit as a backstop, and nodes also get PR_SET_PDEATHSIG so that
a test runner that SIGKILLs the script does not leave them behind. Temp dirs are removed
the same way unless --keep-tmp is given (never while something is still mounted under them).
"""

import argparse
import atexit
import ctypes
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

READY_TIMEOUT_S = 20.0   # a node must write its ready file within this
STOP_TIMEOUT_S = 20.0    # a node must exit within this after SIGTERM
CLI_TIMEOUT_S = 120.0    # hard bound on one CLI run (64 MiB objects on a slow machine)
POLL_INTERVAL_S = 0.01

# Exit codes of the `ringstore` CLI (tools/ringstore_main.cc).
EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_ERROR = 0, 1, 2, 3, 4

_T0 = time.monotonic()


class TestFailure(Exception):
    """A check failed. The message says what was expected and what happened."""


SKIP_RETURN_CODE = 77  # what run() exits with when a test raises Skip (CMake: SKIP_RETURN_CODE 77)


class Skip(Exception):
    """The test cannot run here (no root, no /dev/fuse, a tool missing). The message says why."""


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def log(msg):
    print(f"[{time.monotonic() - _T0:7.2f}s] {msg}", flush=True)


def wait_until(cond, timeout, what, interval=POLL_INTERVAL_S):
    """Polls cond() until it returns a true value (returned) or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise TestFailure(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tail(text, lines=40):
    return "\n".join(text.splitlines()[-lines:])


# ---- process registry and cleanup ------------------------------------------------------

_lock = threading.Lock()
_procs = []      # every Popen started; killed at cleanup if still running
_tmpdirs = []    # every temp dir made; removed at cleanup unless keep
_keep_tmp = False
_undo = []       # (what, fn): undo steps run by cleanup, last registered first


def _register(proc):
    with _lock:
        _procs.append(proc)


def _forget(proc):
    with _lock:
        if proc in _procs:
            _procs.remove(proc)


def on_cleanup(fn, what):
    """Registers an undo step (an unmount, a loop device detach) for cleanup to run, last
    registered first, before any process is killed. fn must be idempotent: the test usually
    undoes the step itself on success, and cleanup calls fn again regardless."""
    with _lock:
        _undo.append((what, fn))


def _mounts_under(d):
    """Mount points at or below directory d, from /proc/self/mountinfo."""
    d = os.path.realpath(d)
    found = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4].encode().decode("unicode_escape")  # \040 -> space
                if mp == d or mp.startswith(d + "/"):
                    found.append(mp)
    except OSError:
        pass
    return found


def cleanup():
    """Runs the undo steps, kills every process still running (by PID, through its Popen)
    and removes temp dirs. Idempotent; called from run()'s finally and from atexit."""
    with _lock:
        undo, _undo[:] = list(_undo), []
    for what, fn in reversed(undo):
        try:
            fn()
        except BaseException as e:  # noqa: B902 - keep undoing the rest
            print(f"harness: cleanup step '{what}' failed: {e!r}", file=sys.stderr)
    with _lock:
        procs, _procs[:] = list(_procs), []
        dirs, _tmpdirs[:] = list(_tmpdirs), []
    for p in procs:
        if p.poll() is None:
            try:
                p.kill()
            except OSError:
                pass
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            print(f"harness: pid {p.pid} did not exit after SIGKILL", file=sys.stderr)
    for d in dirs:
        mounted = _mounts_under(d)
        if mounted:
            print(f"harness: NOT removing {d}: still mounted there: {mounted}", file=sys.stderr)
        elif _keep_tmp:
            print(f"harness: kept {d}", file=sys.stderr)
        else:
            shutil.rmtree(d, ignore_errors=True)


atexit.register(cleanup)


def _on_signal(signum, _frame):
    # Turn SIGTERM/SIGHUP into an exception in the main thread so finally blocks and atexit run.
    raise SystemExit(128 + signum)


def _pdeathsig_preexec():
    """Returns a preexec_fn that asks the kernel to SIGKILL the child if we die, or None.
    PR_SET_PDEATHSIG fires when the *thread* that forked exits, and preexec_fn is unsafe with
    other threads running, so it is only used when the main thread is the only thread."""
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread() or threading.active_count() != 1:
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    PR_SET_PDEATHSIG = 1

    def preexec():
        prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)

    return preexec


# ---- CLI results ----------------------------------------------------------------------------

class CliResult:
    def __init__(self, args, returncode, stdout, stderr, elapsed):
        self.args = args
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.elapsed = elapsed

    def describe(self):
        shown = " ".join(str(a) for a in self.args[1:])
        err = self.stderr.decode(errors="replace").strip()
        out = self.stdout[:300].decode(errors="replace").strip() if len(self.stdout) < 4096 else \
            f"<{len(self.stdout)} bytes>"
        return f"`ringstore {shown}` exited {self.returncode}; stderr: {err!r}; stdout: {out!r}"


class ToolResult(CliResult):
    """The result of run_tool: like CliResult, but describe() names the whole command."""

    def describe(self):
        shown = " ".join(str(a) for a in self.args)
        err = tail(self.stderr.decode(errors="replace").strip(), 15)
        out = self.stdout[:300].decode(errors="replace").strip() if len(self.stdout) < 4096 else \
            f"<{len(self.stdout)} bytes>"
        return f"`{shown}` exited {self.returncode}; stderr: {err!r}; stdout: {out!r}"


def run_tool(cmd, timeout, input=None, env=None, cwd=None):
    """Runs any program to completion (bounded by timeout, then SIGKILLed and a TestFailure).
    The process is registered for cleanup while it runs. Returns a ToolResult."""
    cmd = [str(a) for a in cmd]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd,
                            preexec_fn=_pdeathsig_preexec(), close_fds=True)
    _register(proc)
    try:
        out, err = proc.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise TestFailure(f"`{' '.join(cmd)}` did not finish within {timeout}s; stderr: "
                          f"{tail(err.decode(errors='replace'), 15)!r}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _forget(proc)
    return ToolResult(cmd, proc.returncode, out, err, time.monotonic() - t0)


def spawn(cmd, log_path, env=None, pass_fds=()):
    """Starts a long-running program in the background, its output in log_path. It is killed
    by PID at cleanup if still running (and gets PR_SET_PDEATHSIG where possible)."""
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen([str(a) for a in cmd], stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                env=env, preexec_fn=_pdeathsig_preexec(), close_fds=True, pass_fds=pass_fds)
    _register(proc)
    return proc


def need(cond, reason):
    """Skips the test (exit 77) with reason unless cond holds."""
    if not cond:
        raise Skip(reason)


def expect_rc(result, want, what):
    check(result.returncode == want, f"{what}: expected exit {want}, got: {result.describe()}")
    return result


# ---- nodes ----------------------------------------------------------------------------------

class Daemon:
    """A long-running ringstore process that writes its address to a --ready-file. Each start
    gets a fresh ready file and log file (name.N.log) in the daemon's work dir; stop() sends
    SIGTERM and returns the exit status; kill9() sends SIGKILL to its PID."""

    def __init__(self, ctx, name):
        self.ctx = ctx
        self.name = name
        self.workdir = ctx.mkdtemp(f"{name}-")
        self.proc = None
        self.addr = None
        self.generation = 0
        self.log_paths = []

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _launch(self, cmd_without_ready, timeout, popen, accept=lambda text: ":" in text):
        """Starts cmd + [--ready-file F] with popen(cmd, log_path) and waits for the address
        (the ready file's text, once accept(text) holds)."""
        check(not self.alive(), f"{self.name} is already running (pid {self.pid})")
        self.generation += 1
        ready = os.path.join(self.workdir, f"ready.{self.generation}")
        log_path = os.path.join(self.workdir, f"{self.name}.{self.generation}.log")
        self.log_paths.append(log_path)
        self.proc = popen(list(cmd_without_ready) + ["--ready-file", ready], log_path)
        self.addr = None

        def ready_or_dead():
            if self.proc.poll() is not None:
                return "dead"
            try:
                with open(ready) as f:
                    text = f.read().strip()
            except FileNotFoundError:
                return None
            return text if accept(text) else None  # written atomically, but be strict anyway

        try:
            got = wait_until(ready_or_dead, timeout, f"{self.name} to write its ready file {ready}")
        except TestFailure as e:
            raise TestFailure(f"{e}\n{self.name} log tail:\n{tail(self.log())}") from None
        if got == "dead":
            raise TestFailure(f"{self.name} exited with status {self.proc.returncode} before it was "
                              f"ready; log tail:\n{tail(self.log())}")
        self.addr = got
        return got

    def stop(self, timeout=STOP_TIMEOUT_S):
        """SIGTERM, then wait for the exit; returns the exit status. SIGKILLs and fails the
        test if the process does not exit in time."""
        check(self.proc is not None, f"{self.name} was never started")
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise TestFailure(f"{self.name} (pid {self.pid}) did not exit within {timeout}s of SIGTERM; "
                              f"log tail:\n{tail(self.log())}")
        _forget(self.proc)
        log(f"{self.name} stopped with SIGTERM: exit {rc}")
        return rc

    def kill9(self):
        check(self.alive(), f"{self.name} is not running; cannot kill it")
        self.proc.kill()  # SIGKILL to this PID
        rc = self.proc.wait(timeout=10)
        _forget(self.proc)
        log(f"{self.name} killed with SIGKILL (pid {self.pid}, exit {rc})")
        return rc

    def log(self, generation=None):
        """The text of the current (or a given 1-based generation's) log."""
        if not self.log_paths:
            return ""
        path = self.log_paths[-1 if generation is None else generation - 1]
        try:
            with open(path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""


class Node(Daemon):
    """One ringstore-node. Its data dir survives restarts."""

    def __init__(self, ctx, name="node", durability=None, cluster_id=None, extra_args=()):
        super().__init__(ctx, name)
        self.data_dir = os.path.join(self.workdir, "data")
        self.durability = durability
        self.cluster_id = cluster_id
        self.extra_args = list(extra_args)

    def start(self, timeout=READY_TIMEOUT_S):
        cmd = [self.ctx.node_bin, "--data", self.data_dir, "--listen", "127.0.0.1:0"]
        if self.durability:
            cmd += ["--durability", self.durability]
        if self.cluster_id:
            cmd += ["--cluster-id", self.cluster_id]
        cmd += self.extra_args

        def popen(full_cmd, log_path):
            with open(log_path, "wb") as logf:
                proc = subprocess.Popen(full_cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                        preexec_fn=_pdeathsig_preexec(), close_fds=True)
            _register(proc)
            return proc

        self._launch(cmd, timeout, popen)
        log(f"{self.name} started: pid {self.pid}, {self.addr}, data {self.data_dir}")
        return self.addr

    def fd_count(self):
        try:
            return len(os.listdir(f"/proc/{self.pid}/fd"))
        except OSError:
            return None


# ---- the block gateway ----------------------------------------------------------------------

class BlockGateway(Daemon):
    """One ringstore-block (NBD server) on 127.0.0.1:0 in front of a cluster; stop() sends
    SIGTERM, on which the gateway writes back every dirty chunk before it exits."""

    def __init__(self, ctx, name="block", nodes=(), extra_args=()):
        super().__init__(ctx, name)
        self.nodes = list(nodes)  # the cluster: --cluster names every one's current address
        self.extra_args = list(extra_args)

    def uri(self, volume):
        return f"nbd://{self.addr}/{volume}"

    def start(self, timeout=READY_TIMEOUT_S, extra_args=None):
        if extra_args is not None:
            self.extra_args = list(extra_args)
        cluster = ",".join(n.addr for n in self.nodes if n.alive())
        check(cluster, f"{self.name}: no running node to point --cluster at")
        cmd = [self.ctx.block_bin, "--cluster", cluster, "--listen", "127.0.0.1:0"] + self.extra_args
        env = {k: v for k, v in os.environ.items() if not k.startswith("RINGSTORE_")}
        self._launch(cmd, timeout, lambda full_cmd, log_path: spawn(full_cmd, log_path, env=env))
        log(f"{self.name} started: pid {self.pid}, NBD on {self.addr}, cluster {cluster}")
        return self.addr


class FsGateway(Daemon):
    """One ringstore-fs mounting filesystem `fs` at a fresh mountpoint (self.mountpoint) with
    -o auto_unmount,allow_other (and ro when read_only); stop() sends SIGTERM, on which it
    writes back dirty data and unmounts. Cleanup unmounts it (fusermount3 -u -z) even when the
    test fails, before any process is killed."""

    def __init__(self, ctx, name="fs", nodes=(), fs="default", extra_args=(), read_only=False):
        super().__init__(ctx, name)
        self.nodes = list(nodes)
        self.fs = fs
        self.extra_args = list(extra_args)
        self.options = "auto_unmount,allow_other" + (",ro" if read_only else "")
        self.mountpoint = os.path.join(self.workdir, "mnt")
        os.mkdir(self.mountpoint)
        on_cleanup(self.unmount, f"unmount {self.mountpoint}")

    def mounted(self):
        return os.path.realpath(self.mountpoint) in _mounts_under(self.mountpoint)

    def unmount(self):
        if self.mounted():
            subprocess.run(["fusermount3", "-u", "-z", self.mountpoint], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=30)

    def start(self, timeout=READY_TIMEOUT_S, extra_args=None):
        if extra_args is not None:
            self.extra_args = list(extra_args)
        cluster = ",".join(n.addr for n in self.nodes if n.alive())
        check(cluster, f"{self.name}: no running node to point --cluster at")
        cmd = [self.ctx.fs_bin, self.mountpoint, "--cluster", cluster, "--fs", self.fs,
               "-o", self.options] + self.extra_args
        env = {k: v for k, v in os.environ.items() if not k.startswith("RINGSTORE_")}
        self._launch(cmd, timeout, lambda full_cmd, log_path: spawn(full_cmd, log_path, env=env),
                     accept=lambda text: text == self.mountpoint)
        check(self.mounted(), f"{self.name} says it is ready but {self.mountpoint} is not a mount point")
        log(f"{self.name} started: pid {self.pid}, filesystem {self.fs} at {self.mountpoint}, cluster {cluster}")
        return self.mountpoint


# ---- the context a test runs in -------------------------------------------------------------

class Context:
    def __init__(self, bin_dir):
        self.bin_dir = os.path.abspath(bin_dir)
        self.node_bin = os.path.join(self.bin_dir, "node", "ringstore-node")
        self.cli_bin = os.path.join(self.bin_dir, "tools", "ringstore")
        self.block_bin = os.path.join(self.bin_dir, "blockgateway", "ringstore-block")
        self.fs_bin = os.path.join(self.bin_dir, "fsgateway", "ringstore-fs")
        for b in (self.node_bin, self.cli_bin):
            check(os.access(b, os.X_OK), f"binary not found or not executable: {b} (is --bin-dir right?)")
        self.nodes = []
        self.gateways = []
        self.scratch = self.mkdtemp("scratch-")
        # When set, every ctx.cli() run passes --tls-dir with it (a TLS cluster's tests).
        self.cli_tls_dir = None

    def mkdtemp(self, prefix):
        d = tempfile.mkdtemp(prefix=f"ringstore-it-{prefix}")
        with _lock:
            _tmpdirs.append(d)
        return d

    def node(self, name="node", **kw):
        n = Node(self, name, **kw)
        self.nodes.append(n)
        return n

    def gateway(self, nodes, name="block", extra_args=()):
        """A BlockGateway (not started) in front of nodes."""
        check(os.access(self.block_bin, os.X_OK),
              f"binary not found or not executable: {self.block_bin} (is --bin-dir right?)")
        g = BlockGateway(self, name, nodes, extra_args)
        self.gateways.append(g)
        return g

    def fs_gateway(self, nodes, fs="default", name="fs", extra_args=(), read_only=False):
        """An FsGateway (not started) mounting filesystem fs of the cluster of nodes (-o ro
        when read_only)."""
        check(os.access(self.fs_bin, os.X_OK),
              f"binary not found or not executable: {self.fs_bin} (is --bin-dir right?)")
        g = FsGateway(self, name, nodes, fs, extra_args, read_only)
        self.gateways.append(g)
        return g

    def path(self, name):
        return os.path.join(self.scratch, name)

    def cli(self, *args, cluster=None, cluster_id=None, input=None, env=None, timeout=CLI_TIMEOUT_S,
            cli_timeout=None):
        """Runs `ringstore [--cluster C] [--cluster-id I] [--timeout T] ARGS...`. `cluster` is an
        address string or a Node (its current address); None passes no --cluster. The
        environment is scrubbed of RINGSTORE_* unless given in `env`."""
        cmd = [self.cli_bin]
        if cluster is not None:
            cmd += ["--cluster", cluster.addr if isinstance(cluster, Node) else cluster]
        if cluster_id is not None:
            cmd += ["--cluster-id", cluster_id]
        if cli_timeout is not None:
            cmd += ["--timeout", str(cli_timeout)]
        if self.cli_tls_dir is not None:
            cmd += ["--tls-dir", self.cli_tls_dir]
        cmd += [str(a) for a in args]
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("RINGSTORE_")}
        full_env.update(env or {})
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env,
                                close_fds=True)
        _register(proc)
        try:
            out, err = proc.communicate(input=input, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise TestFailure(f"`{' '.join(cmd)}` did not finish within {timeout}s") from None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            _forget(proc)
        return CliResult(cmd, proc.returncode, out, err, time.monotonic() - t0)

    def dump_logs(self, lines=40):
        for n in self.nodes + self.gateways:
            for i, p in enumerate(n.log_paths, 1):
                text = n.log(i)
                print(f"---- {n.name} log #{i} ({p}), last {lines} lines ----", file=sys.stderr)
                print(tail(text, lines) or "<empty>", file=sys.stderr)
        sys.stderr.flush()


def unused_address():
    """Returns (address, socket): a 127.0.0.1 port that is bound but not listening, so a
    connect to it is refused for as long as the caller keeps the socket open."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    return f"127.0.0.1:{s.getsockname()[1]}", s


# ---- the ring as `ringstore ring` shows it ---------------------------------------------------

RING_HEAD = re.compile(r"ring seen by (\S+): (\d+) nodes \((\d+) up, (\d+) suspect, (\d+) down, (\d+) left\), "
                       r"table digest ([0-9a-f]+)")
RING_ROW = re.compile(r"^([0-9a-f]{8})\s+(\S+)\s+(\S+)\s+(\S+)\s+(\d+)\s+([0-9.]+)%\s+([0-9.]+)%$")


def ring(ctx, node):
    """`ringstore ring` through node, parsed: nodes, up, down, digest, rows by node id prefix."""
    r = expect_rc(ctx.cli("ring", cluster=node, cli_timeout=5), EXIT_OK, f"ring via {node.name}")
    text = r.stdout.decode()
    m = RING_HEAD.search(text)
    check(m is not None, f"ring via {node.name}: no header in:\n{text}")
    rows = {}
    for line in text.splitlines():
        rm = RING_ROW.match(line.strip())
        if rm:
            rows[rm.group(1)] = {"address": rm.group(2), "state": rm.group(4), "ring": float(rm.group(6))}
    return {"nodes": int(m.group(2)), "up": int(m.group(3)), "down": int(m.group(5)), "digest": m.group(7),
            "rows": rows}


def node_id(node):
    """The first 8 hex digits of a node's id, as `ringstore ring` prints them."""
    with open(os.path.join(node.data_dir, "NODE_ID")) as f:
        return f.read().strip()[:8]


def start_ring(ctx, count, extra_args=(), bound_s=20):
    """Starts n1 and n2..n<count> told only n1's address; waits until all agree on one table."""
    first = ctx.node("n1", extra_args=list(extra_args))
    first.start()
    nodes = [first]
    for i in range(2, count + 1):
        n = ctx.node(f"n{i}", extra_args=list(extra_args) + ["--join", first.addr])
        n.start()
        nodes.append(n)
    wait_ring_agrees(ctx, nodes, bound_s)
    return nodes


def wait_ring_agrees(ctx, nodes, bound_s=20):
    """Waits until every one of nodes sees all of them up and all hold one route table."""
    def converged():
        views = [ring(ctx, n) for n in nodes]
        return all(v["nodes"] == len(nodes) and v["up"] == len(nodes) for v in views) and \
            len({v["digest"] for v in views}) == 1

    wait_until(converged, bound_s, f"{len(nodes)} nodes to be up and agree on one route table")


def default_bin_dir():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.environ.get("RINGSTORE_BIN_DIR", os.path.join(here, "..", "..", "build"))


def run(test_fn, name, description=""):
    """Entry point of every test script. test_fn(ctx, args) returns a short summary string."""
    global _keep_tmp
    ap = argparse.ArgumentParser(description=description or name)
    ap.add_argument("--bin-dir", default=default_bin_dir(),
                    help="CMake build dir holding node/ringstore-node and tools/ringstore")
    ap.add_argument("--keep-tmp", action="store_true", help="keep temp dirs (data, logs) for debugging")
    ap.add_argument("--seed", type=int, default=None, help="seed for the test's random choices")
    args = ap.parse_args()
    _keep_tmp = args.keep_tmp
    if args.seed is None:
        args.seed = int.from_bytes(os.urandom(4), "little")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    t0 = time.monotonic()
    ctx = None
    ok = False
    skipped = None
    summary = ""
    try:
        ctx = Context(args.bin_dir)
        log(f"{name}: seed {args.seed}, binaries in {ctx.bin_dir}")
        summary = test_fn(ctx, args) or ""
        ok = True
    except Skip as e:
        skipped = str(e)
    except TestFailure as e:
        print(f"FAIL: {e}", file=sys.stderr)
    except BaseException:  # noqa: B902 - report anything, including SystemExit from a signal
        traceback.print_exc()
    finally:
        if not ok and skipped is None and ctx is not None:
            ctx.dump_logs()
        cleanup()
    elapsed = time.monotonic() - t0
    if skipped is not None:
        print(f"SKIP {name}: {skipped}", flush=True)
        sys.exit(SKIP_RETURN_CODE)
    if ok:
        print(f"PASS {name}: {summary} ({elapsed:.1f}s)", flush=True)
        sys.exit(0)
    print(f"FAIL {name} after {elapsed:.1f}s (seed {args.seed})", flush=True)
    sys.exit(1)
