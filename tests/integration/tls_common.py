"""Helpers for the tests of a TLS cluster (issue 8): a CA with node and client certificates
made by `ringstore cert`, and a ring of nodes that run with --tls-dir."""

import os

from harness import EXIT_OK, expect_rc, ring, wait_until


def make_pki(ctx, nodes, clients, other_ca_clients=()):
    """A CA (and a second, unrelated one) with `nodes` node certificates n1..nN and the client
    certificates in `clients`: (name, role, extra `cert issue` arguments). Returns a dict from
    each party's name (and "ca", "other-ca") to its directory."""
    pki = ctx.mkdtemp("pki-")
    dirs = {"ca": os.path.join(pki, "ca"), "other-ca": os.path.join(pki, "other-ca")}

    def cert(*a):
        expect_rc(ctx.cli("cert", *a), EXIT_OK, "cert " + " ".join(a))

    cert("init-ca", dirs["ca"])
    cert("init-ca", dirs["other-ca"])
    for i in range(1, nodes + 1):
        dirs[f"n{i}"] = os.path.join(pki, f"n{i}")
        cert("issue", "node", f"n{i}", "--ca", dirs["ca"], "--out", dirs[f"n{i}"])
    for ca, parties in (("ca", clients), ("other-ca", other_ca_clients)):
        for name, role, extra in parties:
            dirs[name] = os.path.join(pki, name)
            cert("issue", "client", name, "--role", role, "--ca", dirs[ca], "--out", dirs[name], *extra)
    return dirs


def start_tls_ring(ctx, dirs, count, node_args):
    """Starts nodes n1..n<count> with their certificates, joined into one ring."""
    first = ctx.node("n1", extra_args=list(node_args) + ["--tls-dir", dirs["n1"]])
    first.start()
    nodes = [first]
    for i in range(2, count + 1):
        n = ctx.node(f"n{i}", extra_args=list(node_args) + ["--tls-dir", dirs[f"n{i}"], "--join", first.addr])
        n.start()
        nodes.append(n)
    wait_until(lambda: all(ring(ctx, n)["up"] == count for n in nodes), 20, f"{count} TLS nodes in one ring")
    return nodes
