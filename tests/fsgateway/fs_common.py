"""Helpers shared by the filesystem gateway tests (tests/fsgateway/test_fs_*.py).

On top of ../integration/harness.py: checks that FUSE mounts can work here (root, /dev/fuse,
fusermount3), a 3-node ring with a filesystem created on it, and mounts of it
(harness.FsGateway: -o auto_unmount, unmounted by cleanup even when a test fails).
"""

import os
import shutil
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402
from harness import EXIT_OK, TestFailure, check, expect_rc, log, start_ring, wait_until  # noqa: E402,F401

FAST_FD = ["--probe-interval-ms", "300", "--suspicion-timeout-ms", "1500"]


def require_fuse():
    harness.need(os.geteuid() == 0, f"FUSE mounts with allow_other need root (running as uid {os.geteuid()})")
    harness.need(os.path.exists("/dev/fuse"), "no /dev/fuse on this machine")
    harness.need(shutil.which("fusermount3") is not None, "fusermount3 missing (Debian: fuse3)")


def create_fs(ctx, node, name="default", extra=()):
    r = ctx.cli("fs", "create", name, *extra, cluster=node)
    expect_rc(r, EXIT_OK, f"ringstore fs create {name}")
    return name


def cluster_with_fs(ctx, nodes=3, fs="default", node_args=FAST_FD, fs_args=()):
    """A ring of `nodes` nodes with filesystem `fs` created on it."""
    ring = start_ring(ctx, nodes, list(node_args))
    create_fs(ctx, ring[0], fs, fs_args)
    return ring


def mount(ctx, ring, fs="default", name="fs", extra_args=(), read_only=False):
    g = ctx.fs_gateway(ring, fs=fs, name=name, extra_args=list(extra_args), read_only=read_only)
    g.start()
    return g


class Timings:
    """Wall-clock times of a test's steps: `with timings.step("tar -x"): ...` logs the start
    and the time taken; summary() lists them all."""

    def __init__(self):
        self.steps = []

    def step(self, what):
        timings = self

        class _Step:
            def __enter__(self):
                self.t0 = time.monotonic()
                log(f"{what} ...")
                return self

            def __exit__(self, exc_type, _exc, _tb):
                dt = time.monotonic() - self.t0
                log(f"{what}: {'done' if exc_type is None else 'FAILED'} in {dt:.2f}s")
                timings.steps.append((what, dt))
                return False

        return _Step()

    def summary(self):
        return ", ".join(f"{what} {dt:.1f}s" for what, dt in self.steps)


def run_ok(cmd, timeout, what=None, **kw):
    """Runs a program (harness.run_tool) and fails the test unless it exits 0."""
    r = harness.run_tool(cmd, timeout, **kw)
    check(r.returncode == 0, f"{what or cmd[0]} failed: {r.describe()}")
    return r


def need_tools(*tools):
    """Skips the test (exit 77) unless every program is on PATH."""
    missing = [t for t in tools if shutil.which(t) is None]
    harness.need(not missing, f"missing program(s): {', '.join(missing)} (Debian: apt-get install "
                              f"{' '.join(missing)})")
