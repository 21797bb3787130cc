#!/usr/bin/env python3
"""Network partitions between real ringstore-node processes (issue 4, the real-process part).

The simulator (docs/simulator.md) checks G1 and G2 in virtual time. This test checks them on
real sockets: five ringstore-node processes, each in its own network namespace, under a write
load while iptables DROP rules cut and heal the links between them.

Topology (every namespace, veth and bridge is created by the test and named
rsit-<pid>-<hex>-*, so nothing touches the host's network):

    rsit-..-br   a namespace holding only the bridge br0, with one veth port per member
    rsit-..-n1 .. rsit-..-n5   one ringstore-node each, on 10.213.X.11-15:7400 (X random)
    rsit-..-c    the client: every `ringstore` CLI run happens here, on 10.213.X.100

Cuts are iptables DROP rules in the node namespaces (INPUT -s PEER, or OUTPUT -d CLIENT for
a node-to-client cut), so a directed link can be cut on its own. Healing rewrites a node's
filter table empty. Teardown kills the nodes by PID and deletes the namespaces, which takes
the rules, veths and bridge with them; it runs from the harness cleanup on any failure, on
Ctrl-C and on SIGTERM/SIGHUP. A startup sweep deletes rsit-<pid>-* namespaces whose <pid> is
no longer running (left by a test that was SIGKILLed).

The run:
1. Form a 5-node ring (--probe-interval-ms 200, --suspicion-timeout-ms 1000).
2. Write load: 6 writer threads run `ringstore put` (N=3, W=2, --timeout 1) on 200 keys; each
   key belongs to one writer, so a key's puts are issued one after another (and, the clock
   being shared, get increasing timestamps). Every value is "KEY:SEQ:padding", SEQ from one
   counter in issue order. A put is acknowledged (exit 0) or unknown (anything else: it may
   or may not have been applied, on some replicas). The history keeps them all.
3. Faults during the load, one at a time in random order, each held 1-2.4 s and healed: a
   node isolated; a 2|3 split with the client on the minority side; a node deaf (drops what
   it receives) and a node mute (what it sends is dropped), both asymmetric; a node-only 2|3
   split; the client cut from three nodes (writes land on fallbacks only); the client reaching
   one node only (2.5-3.5 s: puts fail after one replica took them); a bridge node between
   two halves; and a swizzle that cuts random links one by one and heals them in another
   order. The load is stopped while the last fault is still on, so that many keys' final
   writes are made under it.
4. Heal everything and wait for `ringstore status` to say HEALTHY.
5. G2, before any read, so that only anti-entropy (rounds every 2 s here) and hinted handoff
   can make replicas agree: within 40 s, each key's record (timestamp, checksum, state) is read from each of
   its 3 placement nodes on its own: the client namespace REJECTs TCP to every other node,
   and `ringstore stat --replicas 3 --r 1` can then only be answered by that node, from its
   own store (with 5 nodes every node is inside every key's N + slack window, so none
   forwards). The placement is computed here from each node's DIR/MEMBERSHIP ring seed by the
   rules of routing/placement.cc; the model's ring shares must match `ringstore ring`'s, and
   its object ids those every `stat` prints. A key whose 3 records differ is divergent; the
   check is repeated each second until none is.
6. G1: every key is read with `ringstore get --replicas 3 --r 3` (R=N). The value must come
   from the key's newest acknowledged put or from a put of that key issued after it (which
   can only be an unknown one); a key with an acknowledged put must not read as missing; and
   every value must be one that some put of that key wrote. A key that fails is read again
   every 0.5 s for up to 10 s: if it then passes it is reported as LATE, else as LOST.
7. Every node stops cleanly on SIGTERM; the namespaces are deleted and must be gone.

A LOST key (G1) fails the test, with its put history, its replicas' records and the fault
timeline; so does a key whose replicas still differ after 40 s (G2, docs/repair.md). This
test found that `ringstore get` exited before its read repairs left the process; the CLI now
waits for them (Session::DrainRepairs).

Needs root, ip(8) and iptables(8) (with iptables-restore); otherwise it prints SKIP and exits 77.
Run: python3 tests/integration/test_partition_netns.py --bin-dir build
"""

import bisect
import concurrent.futures
import hashlib
import itertools
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (EXIT_NOT_FOUND, EXIT_OK, RING_HEAD, RING_ROW, TestFailure, check, log,  # noqa: E402
                     wait_until)

NODES = 5
PORT = 7400
KEYS = 200
REPLICAS, W = 3, 2
WRITERS = 6
FAST_FD = ["--probe-interval-ms", "200", "--suspicion-timeout-ms", "1000", "--repair-interval", "2"]
PUT_TIMEOUT_S = 1          # the CLI's --timeout for a put (also its connect timeout)
PUT_PROC_TIMEOUT_S = 40    # hard bound on one put process (a few seeds and replicas timing out)
READ_TIMEOUT_S = 5         # the CLI's --timeout for the checking reads
CONVERGE_BOUND_S = 20      # the ring forms
HEAL_BOUND_S = 30          # `ringstore status` says HEALTHY after the last heal
G2_BOUND_S = 40.0          # anti-entropy rounds every 2 s must make the replicas agree within this
G1_GRACE_S = 10.0          # a key failing G1 at first is read again for this long (reported as late)
CHECK_THREADS = 8
VNODES = 1024              # kVnodesPerCapacity (routing/route_table.h), at the default --capacity 1
NAMESPACE = "default"      # the CLI's default --namespace

NS_PREFIX = "rsit-"
IP_PREFIX = "10.213"


# ---- the network: namespaces, veths, a bridge, iptables --------------------------------------

def sh(cmd, what, input=None, timeout=15):
    """Runs a setup command (ip, iptables-restore) and fails the test if it fails."""
    r = harness.run_tool(cmd, timeout, input=input)
    check(r.returncode == 0, f"{what}: {r.describe()}")
    return r


def our_namespaces(prefix):
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=15).stdout
    return [line.split()[0] for line in out.splitlines() if line.split() and line.split()[0].startswith(prefix)]


def sweep_stale_namespaces():
    """Deletes rsit-<pid>-* namespaces whose creating test (<pid>) is no longer running."""
    for ns in our_namespaces(NS_PREFIX):
        m = re.match(rf"{NS_PREFIX}(\d+)-", ns)
        if not m or int(m.group(1)) == os.getpid() or os.path.exists(f"/proc/{m.group(1)}"):
            continue
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=15)
        log(f"deleted stale namespace {ns} (its test, pid {m.group(1)}, is gone)")


def filter_table(rules):
    """An iptables-restore input that replaces the whole filter table with `rules`."""
    return ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
            "".join(r + "\n" for r in rules) + "COMMIT\n").encode()


class Net:
    """The test's namespaces. Members are "n1".."n5" and "c" (the client)."""

    def __init__(self, rnd):
        self.tag = f"{NS_PREFIX}{os.getpid()}-{rnd.getrandbits(16):04x}"
        self.subnet = rnd.randrange(1, 255)
        self.bridge_ns = f"{self.tag}-br"
        self.names = [f"n{i}" for i in range(1, NODES + 1)]
        self.ns = {name: f"{self.tag}-{name}" for name in self.names + ["c"]}
        self.ip = {name: f"{IP_PREFIX}.{self.subnet}.{10 + i}" for i, name in enumerate(self.names, 1)}
        self.ip["c"] = f"{IP_PREFIX}.{self.subnet}.100"
        self.created = []  # namespaces made so far, deleted at teardown
        self.lock = threading.Lock()

    def addr(self, name):
        return f"{self.ip[name]}:{PORT}"

    def _add_ns(self, ns):
        sh(["ip", "netns", "add", ns], f"create namespace {ns}")
        with self.lock:
            self.created.append(ns)

    def create(self):
        self._add_ns(self.bridge_ns)
        sh(["ip", "-n", self.bridge_ns, "link", "add", "br0", "type", "bridge"], "create the bridge")
        sh(["ip", "-n", self.bridge_ns, "link", "set", "br0", "up"], "bring the bridge up")
        for name in self.names + ["c"]:
            ns = self.ns[name]
            self._add_ns(ns)
            port = f"v-{name}"
            sh(["ip", "-n", self.bridge_ns, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns],
               f"veth for {name}")
            sh(["ip", "-n", self.bridge_ns, "link", "set", port, "master", "br0"], f"attach {port} to br0")
            sh(["ip", "-n", self.bridge_ns, "link", "set", port, "up"], f"bring {port} up")
            sh(["ip", "-n", ns, "addr", "add", f"{self.ip[name]}/24", "dev", "eth0"], f"address {name}")
            sh(["ip", "-n", ns, "link", "set", "eth0", "up"], f"bring {name}'s eth0 up")
            sh(["ip", "-n", ns, "link", "set", "lo", "up"], f"bring {name}'s lo up")
            self.set_rules(name, [])
        log(f"network: bridge in {self.bridge_ns}; " +
            ", ".join(f"{n} {self.ip[n]} in {self.ns[n]}" for n in self.names + ["c"]))

    def set_rules(self, name, rules):
        """Replaces the filter table of member `name`'s namespace."""
        sh(["ip", "netns", "exec", self.ns[name], "iptables-restore"], f"iptables-restore in {self.ns[name]}",
           input=filter_table(rules))

    def cut(self, links):
        """Makes exactly the directed links (src, dst) in `links` drop their packets: a node
        receiving drops INPUT from src; a node sending to the client drops OUTPUT to it."""
        rules = {n: [] for n in self.names}
        for src, dst in sorted(links):
            if dst != "c":
                rules[dst].append(f"-A INPUT -s {self.ip[src]} -j DROP")
            else:
                rules[src].append(f"-A OUTPUT -d {self.ip[dst]} -j DROP")
        for n in self.names:
            self.set_rules(n, rules[n])

    def only_reach(self, name):
        """Client side, for reading one replica: TCP from the client to every node but `name`
        is refused at once (REJECT with a reset); None lifts it."""
        rules = [f"-A OUTPUT -p tcp -d {self.ip[n]} -j REJECT --reject-with tcp-reset"
                 for n in self.names if name is not None and n != name]
        self.set_rules("c", rules)

    def destroy(self):
        with self.lock:
            todo, self.created = list(self.created), []
        for ns in reversed(todo):
            r = subprocess.run(["ip", "netns", "del", ns], capture_output=True, text=True, timeout=15)
            if r.returncode != 0 and ns in our_namespaces(ns):
                print(f"test_partition_netns: cannot delete namespace {ns}: {r.stderr.strip()}", file=sys.stderr)


def require_netns():
    harness.need(sys.platform.startswith("linux"), "network namespaces need Linux")
    harness.need(os.geteuid() == 0, f"needs root for network namespaces and iptables (running as uid {os.geteuid()})")
    missing = [t for t in ("ip", "iptables", "iptables-restore") if shutil.which(t) is None]
    harness.need(not missing, f"missing tool(s): {', '.join(missing)} (Debian: iproute2, iptables)")
    # Root is not always enough (a container without CAP_SYS_ADMIN/CAP_NET_ADMIN): try it.
    probe = f"{NS_PREFIX}{os.getpid()}-probe"
    try:
        steps = [["ip", "netns", "add", probe],
                 ["ip", "-n", probe, "link", "add", "p0", "type", "veth", "peer", "name", "p1"],
                 ["ip", "netns", "exec", probe, "iptables", "-S"]]
        for cmd in steps:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=15)
            harness.need(r.returncode == 0, f"`{' '.join(cmd)}` failed here: {r.stderr.strip()}")
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=15)


# ---- nodes in namespaces and the CLI in the client namespace --------------------------------

class NsNode(harness.Daemon):
    """A ringstore-node run with `ip netns exec NS` (which execs it: the Popen PID is the node's)."""

    def __init__(self, ctx, net, name):
        super().__init__(ctx, name)
        self.net = net
        self.data_dir = os.path.join(self.workdir, "data")
        ctx.nodes.append(self)  # so that a failure prints its log

    def start(self, join=None):
        addr = self.net.addr(self.name)
        cmd = ["ip", "netns", "exec", self.net.ns[self.name], self.ctx.node_bin, "--data", self.data_dir,
               "--listen", addr, "--advertise", addr] + FAST_FD
        if join:
            cmd += ["--join", join]
        self._launch(cmd, harness.READY_TIMEOUT_S, lambda full, log_path: harness.spawn(full, log_path))
        log(f"{self.name} started: pid {self.pid}, {self.addr} in {self.net.ns[self.name]}")

    def ring_seed(self):
        with open(os.path.join(self.data_dir, "MEMBERSHIP")) as f:
            m = re.search(r"ring_seed (\d+)", f.read())
        check(m is not None, f"{self.name}: no ring_seed in {self.data_dir}/MEMBERSHIP")
        return int(m.group(1))


CLI_ENV = {k: v for k, v in os.environ.items() if not k.startswith("RINGSTORE_")}


def cli(ctx, net, seeds, *args, timeout_s=READ_TIMEOUT_S, input=None, proc_timeout=60):
    """`ringstore --cluster SEEDS --timeout T ARGS` in the client namespace."""
    cmd = ["ip", "netns", "exec", net.ns["c"], ctx.cli_bin, "--cluster", ",".join(seeds), "--timeout",
           str(timeout_s)] + [str(a) for a in args]
    return harness.run_tool(cmd, proc_timeout, input=input, env=CLI_ENV)


def ring_view(ctx, net, name):
    r = cli(ctx, net, [net.addr(name)], "ring")
    text = r.stdout.decode(errors="replace")
    m = RING_HEAD.search(text)
    if r.returncode != EXIT_OK or m is None:
        return None
    rows = {}
    for line in text.splitlines():
        rm = RING_ROW.match(line.strip())
        if rm:
            rows[rm.group(1)] = {"address": rm.group(2), "state": rm.group(4), "ring": float(rm.group(6))}
    return {"nodes": int(m.group(2)), "up": int(m.group(3)), "digest": m.group(7), "rows": rows}


# ---- placement, as routing/placement.cc computes it -----------------------------------------

def object_id(key):
    return hashlib.sha256(NAMESPACE.encode() + b"\0" + key.encode()).digest()


class Placement:
    """The ring from each node's ring seed: point i of a node is SHA-256(seed as 8 LE bytes ||
    i as 4 LE bytes); points sorted by id, then node id. Replica r of an object is its id for
    r = 0, else SHA-256(id || r as 4 LE bytes), owned by the first point at or after it; the
    walk skips nodes already chosen (no zones here, so zones change nothing)."""

    def __init__(self, seeds_by_node, node_ids):
        pts = []
        for name, seed in seeds_by_node.items():
            sb = seed.to_bytes(8, "little")
            for i in range(VNODES):
                pts.append((hashlib.sha256(sb + i.to_bytes(4, "little")).digest(), node_ids[name], name))
        pts.sort()
        self.points = [p[0] for p in pts]
        self.owner = [p[2] for p in pts]

    def shares(self):
        """Each node's share of the ring (RouteTable::RingShares)."""
        pos = [int.from_bytes(p[:8], "big") / 18446744073709551616.0 for p in self.points]
        out = {}
        for i in range(len(pos)):
            width = pos[i] - pos[i - 1]
            if width < 0:
                width += 1.0
            out[self.owner[i]] = out.get(self.owner[i], 0.0) + width
        return out

    def replicas(self, key, n=REPLICAS):
        oid = object_id(key)
        chosen = []
        for r in range(n):
            rid = oid if r == 0 else hashlib.sha256(oid + r.to_bytes(4, "little")).digest()
            start = bisect.bisect_left(self.points, rid) % len(self.points)
            for k in range(len(self.points)):
                owner = self.owner[(start + k) % len(self.points)]
                if owner not in chosen:
                    chosen.append(owner)
                    break
        return chosen


# ---- the write load ---------------------------------------------------------------------------

class Put:
    __slots__ = ("key", "seq", "t0", "t1", "rc", "err", "seeds")

    def __init__(self, key, seq, t0, t1, rc, err, seeds):
        self.key, self.seq, self.t0, self.t1, self.rc, self.err, self.seeds = key, seq, t0, t1, rc, err, seeds

    @property
    def acked(self):
        return self.rc == EXIT_OK

    def describe(self, t_base):
        state = "ACK" if self.acked else f"unknown (exit {self.rc})"
        err = f"; {self.err}" if self.err else ""
        return (f"seq {self.seq}: {self.t0 - t_base:7.3f}s..{self.t1 - t_base:7.3f}s {state}, seeds "
                f"{','.join(s.split(':')[0].rsplit('.', 1)[1] for s in self.seeds)}{err}")


class Load:
    def __init__(self, ctx, net, keys, rnd):
        self.ctx, self.net, self.keys = ctx, net, keys
        self.rnd = random.Random(rnd.getrandbits(64))
        self.stop = threading.Event()
        self.history = []
        self.lock = threading.Lock()
        self.counter = itertools.count(1)
        self.threads = []
        self.errors = []

    def start(self):
        for t in range(WRITERS):
            mine = self.keys[t::WRITERS]
            th = threading.Thread(target=self._writer, args=(t, mine, random.Random(self.rnd.getrandbits(64))),
                                  name=f"writer-{t}", daemon=True)
            th.start()
            self.threads.append(th)

    def _writer(self, t, keys, rnd):
        addrs = [self.net.addr(n) for n in self.net.names]
        try:
            while not self.stop.is_set():
                order = list(keys)
                rnd.shuffle(order)
                for key in order:
                    if self.stop.is_set():
                        return
                    with self.lock:
                        seq = next(self.counter)
                    value = f"{key}:{seq}:".encode() + os.urandom(rnd.randrange(16, 200)).hex().encode()
                    seeds = list(addrs)
                    rnd.shuffle(seeds)
                    t0 = time.monotonic()
                    try:
                        r = cli(self.ctx, self.net, seeds, "--replicas", REPLICAS, "--w", W, "put", key, "-",
                                timeout_s=PUT_TIMEOUT_S, input=value, proc_timeout=PUT_PROC_TIMEOUT_S)
                        rc, err = r.returncode, r.stderr.decode(errors="replace").strip().splitlines()
                        err = err[-1][:200] if err and rc != EXIT_OK else ""
                    except TestFailure as e:  # the process overran its bound and was killed
                        rc, err = -9, str(e)[:200]
                    with self.lock:
                        self.history.append(Put(key, seq, t0, time.monotonic(), rc, err, seeds))
        except BaseException as e:  # noqa: B902 - reported by finish()
            self.errors.append(f"writer {t}: {e!r}")

    def finish(self, bound_s):
        self.stop.set()
        deadline = time.monotonic() + bound_s
        for th in self.threads:
            th.join(max(0.1, deadline - time.monotonic()))
        check(not any(th.is_alive() for th in self.threads), f"writers still running {bound_s}s after the stop")
        check(not self.errors, f"writer thread error(s): {self.errors}")


# ---- faults ---------------------------------------------------------------------------------------

def both(a, b):
    return {(x, y) for x in a for y in b} | {(y, x) for x in a for y in b}


def fault_plan(rnd, names):
    """[(description, directed cuts, hold range in s)], one of each kind, in random order. The
    swizzle's cuts are a list of links, cut one by one and then healed in another order."""
    everyone = set(names) | {"c"}

    def pick(k):
        return sorted(rnd.sample(names, k))

    hold = (1.0, 2.4)
    plan = []
    x = rnd.choice(names)
    plan.append((f"isolate {x}", both({x}, everyone - {x}), hold))
    a = pick(2)
    b = sorted(set(names) - set(a))
    plan.append((f"split {a}+client | {b}", both(set(a) | {"c"}, set(b)), hold))
    x = rnd.choice(names)
    plan.append((f"{x} deaf (drops all it receives)", {(e, x) for e in everyone - {x}}, hold))
    x = rnd.choice(names)
    plan.append((f"{x} mute (all it sends is dropped)", {(x, e) for e in everyone - {x}}, hold))
    a = pick(2)
    b = sorted(set(names) - set(a))
    plan.append((f"nodes split {a} | {b}, client sees all", both(set(a), set(b)), hold))
    s = pick(3)
    plan.append((f"client cut from {s}", both({"c"}, set(s)), hold))
    x = rnd.choice(names)
    # Long enough for puts to fail with one replica written (the seeds and replicas that time
    # out cost PUT_TIMEOUT_S each): unknown outcomes.
    plan.append((f"client reaches only {x}", both({"c"}, set(names) - {x}), (2.5, 3.5)))
    order = list(names)
    rnd.shuffle(order)
    bridge, left, right = order[0], order[1:3], order[3:]
    plan.append((f"{sorted(left)} | {sorted(right)} bridged by {bridge}", both(set(left), set(right)), hold))
    pairs = [(p, q) for p in sorted(everyone) for q in sorted(everyone) if p != q]
    plan.append(("swizzle", rnd.sample(pairs, 6), (0.5, 1.0)))
    rnd.shuffle(plan)
    return plan


def run_faults(net, plan, rnd, timeline, t_base, before_last_heal):
    """Applies the plan, one fault at a time. The load is stopped (before_last_heal) while the
    last fault is still on, so that the final value of many keys is a write made under it."""
    def note(what):
        timeline.append((time.monotonic() - t_base, what))
        log(what)

    for i, (what, cuts, hold) in enumerate(plan):
        last = i == len(plan) - 1
        if what == "swizzle":
            active = set()
            for link in cuts:  # cut links one by one...
                active.add(link)
                net.cut(active)
                note(f"swizzle: cut {link[0]}->{link[1]} ({len(active)} cut)")
                time.sleep(rnd.uniform(0.2, 0.4))
            time.sleep(rnd.uniform(*hold))
            if last:
                before_last_heal()
            heal_order = list(active)
            rnd.shuffle(heal_order)
            for link in heal_order:  # ...and heal them in another order
                active.discard(link)
                net.cut(active)
                note(f"swizzle: healed {link[0]}->{link[1]} ({len(active)} cut)")
                time.sleep(rnd.uniform(0.1, 0.3))
        else:
            net.cut(cuts)
            note(f"fault: {what} ({len(cuts)} directed links cut)")
            time.sleep(rnd.uniform(*hold))
            if last:
                before_last_heal()
            net.cut(set())
            note("healed")
        if not last:
            time.sleep(rnd.uniform(0.3, 0.7))


# ---- checks ---------------------------------------------------------------------------------------

STAT_FIELDS = re.compile(rb"^(id|checksum|timestamp|state):\s+(\S+)", re.M)


def parallel(fn, items):
    with concurrent.futures.ThreadPoolExecutor(CHECK_THREADS) as ex:
        return dict(zip(items, ex.map(fn, items)))


def replica_records(ctx, net, keys, placement):
    """{key: {node: (timestamp, checksum, state) | "missing" | "error: ..."}}, each node's own
    record for the keys it is a placement node of (see the module doc, step 5)."""
    out = {k: {} for k in keys}
    try:
        for name in net.names:
            net.only_reach(name)
            mine = [k for k in keys if name in placement[k]]

            def stat(key, name=name):
                r = None
                for _attempt in range(2):
                    r = cli(ctx, net, [net.addr(name)], "--replicas", REPLICAS, "--r", 1, "stat", key)
                    f = dict(STAT_FIELDS.findall(r.stdout))
                    if r.returncode in (EXIT_OK, EXIT_NOT_FOUND) and b"timestamp" in f:  # live, or a tombstone
                        check(f.get(b"id", b"").decode() == object_id(key).hex(),
                              f"object id model is off for {key}: {object_id(key).hex()}; {r.describe()}")
                        return (f[b"timestamp"].decode(), f[b"checksum"].decode(), f[b"state"].decode())
                    if r.returncode == EXIT_NOT_FOUND:
                        return "missing"
                return f"error: {r.describe()}"

            for key, rec in parallel(stat, mine).items():
                out[key][name] = rec
    finally:
        net.only_reach(None)
    return out


def divergent(records):
    return sorted(k for k, per_node in records.items() if len(set(per_node.values())) > 1)


def check_g1(ctx, net, keys, history, t_base):
    """Reads every key at R=N and judges it (see the module doc, step 6). A key that fails is
    read again every 0.5 s for up to G1_GRACE_S: one that then passes was late (a handoff
    still under way), not lost. Returns (violations, late {key: seconds}, keys won by an
    unknown put)."""
    seeds = [net.addr(n) for n in net.names]
    by_key = {k: sorted((p for p in history if p.key == k), key=lambda p: p.seq) for k in keys}

    def read(key):
        r = cli(ctx, net, seeds, "--replicas", REPLICAS, "--r", REPLICAS, "get", key)
        if r.returncode not in (EXIT_OK, EXIT_NOT_FOUND):  # one retry for a transient error
            r = cli(ctx, net, seeds, "--replicas", REPLICAS, "--r", REPLICAS, "get", key)
        return r

    def judge(key, r):
        """(problem or None, whether the value came from a put issued after the last ack)."""
        puts = by_key[key]
        acked = [p for p in puts if p.acked]
        last_acked = acked[-1].seq if acked else None
        if r.returncode == EXIT_NOT_FOUND:
            lost = last_acked is not None
            return (f"LOST: not found, but seq {last_acked} was acknowledged" if lost else None), False
        if r.returncode != EXIT_OK:
            return f"the R=N read failed: {r.describe()}", False
        m = re.match(rb"^([^:]+):(\d+):", r.stdout)
        if m is None or m.group(1).decode() != key or int(m.group(2)) not in {p.seq for p in puts}:
            return f"read a value no put of {key} wrote: {r.stdout[:80]!r}", False
        got = int(m.group(2))
        if last_acked is not None and got < last_acked:
            return f"LOST: read seq {got}, older than the acknowledged seq {last_acked}", False
        return None, last_acked is None or got > last_acked

    t0 = time.monotonic()
    verdicts = {k: judge(k, r) for k, r in parallel(read, keys).items()}
    failing = {k: v[0] for k, v in verdicts.items() if v[0]}
    first_problem = dict(failing)
    late = {}
    while failing and time.monotonic() - t0 < G1_GRACE_S:
        time.sleep(0.5)
        for k, r in parallel(read, sorted(failing)).items():
            problem, won = judge(k, r)
            if problem is None:
                late[k] = time.monotonic() - t0
                verdicts[k] = (None, won)
                del failing[k]
            else:
                failing[k] = problem
    for k, secs in sorted(late.items()):
        log(f"G1 LATE: {k} failed its first R=N read ({first_problem[k]}) and passed {secs:.1f}s later")
    violations = []
    for key, problem in sorted(failing.items()):
        puts = by_key[key]
        hist = "\n      ".join(p.describe(t_base) for p in puts[-8:])
        first = "" if first_problem[key] == problem else f" (first read: {first_problem[key]})"
        violations.append((key, f"{key}: {problem}{first}; its last {min(8, len(puts))} of {len(puts)} puts:"
                                f"\n      {hist}"))
    return violations, late, sum(v[1] for v in verdicts.values())


# ---- the test ----------------------------------------------------------------------------------------

def test(ctx, args):
    require_netns()
    sweep_stale_namespaces()
    rnd = random.Random(args.seed)
    net = Net(rnd)
    nodes = {}
    load = None

    def teardown():
        # No Ctrl-C/SIGTERM in the middle of this: a half-done teardown would leave namespaces.
        saved = {}
        pending = []
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            try:
                saved[sig] = signal.signal(sig, lambda s, f: pending.append(s))
            except ValueError:  # not the main thread
                pass
        try:
            if load is not None:
                load.stop.set()
            for n in nodes.values():
                if n.proc is not None and n.proc.poll() is None:
                    n.proc.kill()  # by PID, through its Popen
            for n in nodes.values():
                if n.proc is not None:
                    try:
                        n.proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        print(f"test_partition_netns: {n.name} (pid {n.pid}) did not die", file=sys.stderr)
            net.destroy()
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, handler)
        if pending:
            raise SystemExit(128 + pending[0])

    harness.on_cleanup(teardown, f"kill the nodes and delete namespaces {net.tag}-*")
    t_setup = time.monotonic()
    net.create()

    # The ring.
    for i, name in enumerate(net.names):
        nodes[name] = NsNode(ctx, net, name)
        nodes[name].start(join=None if i == 0 else net.addr(net.names[0]))

    def converged():
        views = [ring_view(ctx, net, n) for n in net.names]
        ok = all(v and v["nodes"] == NODES and v["up"] == NODES for v in views) and \
            len({v["digest"] for v in views}) == 1
        return views[0] if ok else None

    view = wait_until(converged, CONVERGE_BOUND_S, f"{NODES} nodes to agree on one route table", interval=0.2)
    log(f"ring formed in {time.monotonic() - t_setup:.1f}s (setup included)")

    # Placement, checked against what the nodes say.
    node_ids = {n: harness.node_id(nodes[n]) for n in net.names}
    placement_model = Placement({n: nodes[n].ring_seed() for n in net.names},
                                {n: node_ids[n] for n in net.names})
    model_shares = placement_model.shares()
    for n in net.names:
        row = view["rows"].get(node_ids[n])
        check(row is not None and row["address"] == net.addr(n), f"`ringstore ring` has no row for {n}: {view['rows']}")
        check(abs(row["ring"] - 100 * model_shares[n]) < 0.006,
              f"placement model is off: {n} owns {100 * model_shares[n]:.4f}% of the ring by the model, "
              f"{row['ring']}% by `ringstore ring`")
    keys = [f"key-{i:03d}" for i in range(KEYS)]  # (object ids are checked by replica_records)
    placement = {k: placement_model.replicas(k) for k in keys}

    # Load and faults.
    t_base = time.monotonic()
    timeline = []
    load = Load(ctx, net, keys, rnd)
    load.start()
    time.sleep(1.0)
    plan = fault_plan(rnd, net.names)
    load_s = None

    def stop_load():
        nonlocal load_s
        timeline.append((time.monotonic() - t_base, "load stopping"))
        log("stopping the load (the last fault is still on)")
        load.finish(PUT_PROC_TIMEOUT_S + 5)
        load_s = time.monotonic() - t_base
        log(f"load stopped after {load_s:.1f}s")

    run_faults(net, plan, rnd, timeline, t_base, stop_load)
    net.cut(set())
    history = sorted(load.history, key=lambda p: p.seq)
    acked = sum(p.acked for p in history)
    unknown = len(history) - acked
    written = len({p.key for p in history})
    errs = {}
    for p in history:
        if not p.acked:
            kind = f"exit {p.rc}"
            if kind not in errs:
                log(f"first put with {kind}: {p.describe(t_base)}")
            errs[kind] = errs.get(kind, 0) + 1
    log(f"load: {len(history)} puts in {load_s:.1f}s ({acked} acknowledged, {unknown} unknown: {errs}) on "
        f"{written} keys; {len(plan)} faults")
    check(acked > KEYS, f"only {acked} puts were acknowledged: the load did not run ({errs})")

    # Settle.
    t_heal = time.monotonic()

    def healthy():
        r = cli(ctx, net, [net.addr(n) for n in net.names], "status")
        text = r.stdout.decode(errors="replace")
        return text if r.returncode == EXIT_OK and re.search(rf"^HEALTHY: {NODES} members \({NODES} up", text, re.M) \
            else None

    try:
        wait_until(healthy, HEAL_BOUND_S, "`ringstore status` to say HEALTHY after the last heal", interval=0.3)
    except TestFailure:
        last = cli(ctx, net, [net.addr(n) for n in net.names], "status")
        raise TestFailure(f"not HEALTHY {HEAL_BOUND_S}s after the last heal; last status:\n"
                          f"{last.stdout.decode(errors='replace')}") from None
    heal_s = time.monotonic() - t_heal
    log(f"HEALTHY {heal_s:.1f}s after the last heal")

    # G2 before any read (anti-entropy alone), then G1 (R=N reads).
    t_check = time.monotonic()
    first = replica_records(ctx, net, keys, placement)
    div_first = divergent(first)
    log(f"G2 right after the heal: {len(div_first)} of {KEYS} keys have differing replicas")
    state = {"records": first}

    def converged():
        if divergent(state["records"]):
            state["records"] = replica_records(ctx, net, keys, placement)
        return not divergent(state["records"])

    try:
        wait_until(converged, G2_BOUND_S, "every key's 3 replicas to agree (anti-entropy)", interval=1.0)
    except TestFailure:
        rest = divergent(state["records"])
        raise TestFailure(f"G2: {len(rest)} of {KEYS} keys still have differing replicas {G2_BOUND_S}s after the "
                          f"heal, before any read; e.g. " +
                          "; ".join(f"{k} on {placement[k]}: {state['records'][k]}" for k in rest[:5])) from None
    converge_s = time.monotonic() - t_check
    before = state["records"]
    div_before = div_first
    log(f"G2 holds: every key's replicas agree {converge_s:.1f}s after the heal, before any read")
    violations, late, won_by_unknown = check_g1(ctx, net, keys, history, t_base)
    log(f"G1: {len(violations)} violation(s), {len(late)} late; {won_by_unknown} key(s) read a value from an "
        f"unknown put")
    check_s = time.monotonic() - t_check

    if violations:
        lines = [v for _, v in violations[:15]]
        for key, _ in violations[:15]:
            lines.append(f"{key}: replicas {placement[key]} before the reads: {before[key]}")
        lines.append("fault timeline:\n      " + "\n      ".join(f"{t:7.3f}s {w}" for t, w in timeline))
        raise TestFailure(f"G1: {len(violations)} of {KEYS} keys lost an acknowledged write or read a wrong "
                          f"value (seed {args.seed}):\n  " + "\n  ".join(lines))

    # Nodes must still stop cleanly, and the namespaces must go.
    load = None
    for n in net.names:
        check(nodes[n].stop() == 0, f"{n} did not exit cleanly on SIGTERM")
    tag = net.tag
    net.destroy()
    left = our_namespaces(tag)
    check(not left, f"namespaces left after teardown: {left}")
    return (f"{NODES} nodes in netns, {len(plan)} faults; puts {len(history)} ({acked} acked, {unknown} unknown) "
            f"on {written}/{KEYS} keys; G1 lost 0, late {len(late)} ({won_by_unknown} keys won by an unknown put); "
            f"G2 divergent {len(div_before)} at the heal, 0 after {converge_s:.1f}s of anti-entropy; "
            f"healthy {heal_s:.1f}s after heal; checks {check_s:.1f}s")


if __name__ == "__main__":
    harness.run(test, "test_partition_netns", __doc__)
