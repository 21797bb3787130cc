"""A planted bug must make ringstore-sim fail, print the seed, and replay exactly.

The bug: the simulated disk acknowledges writes before they are durable, so crashes lose
acknowledged writes. The run must exit 1 with "FAILED seed S" and G1 findings; replaying S
must fail the same way with the same trace hash; and without the bug the same seed passes.
"""
import re
import subprocess
import sys

sim = sys.argv[1]
opts = ["--nodes", "5", "--duration", "20", "--faults", "crash", "--n", "1", "--w", "1", "--r", "1",
        "--fallbacks", "0"]


def run(*extra):
    p = subprocess.run([sim, *opts, *extra], capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout


rc, out = run("--plant-bug-lying-disk", "--seed", "5", "--seeds", "3")
m = re.search(r"FAILED seed (\d+)", out)
if rc != 1 or not m or "G1 key" not in out:
    sys.exit(f"FAIL: the planted bug was not caught (exit {rc}):\n{out}")
seed = m.group(1)
first = re.search(rf"seed {seed}:.*?trace ([0-9a-f]{{16}})", out, re.S).group(1)
rc2, replay = run("--plant-bug-lying-disk", "--replay", seed, "--trace", "0")
again = re.search(r"trace ([0-9a-f]{16})", replay).group(1)
if rc2 != 1 or again != first or "history of k0" not in replay:
    sys.exit(f"FAIL: replay of seed {seed} differs (exit {rc2}, trace {again} vs {first}):\n{replay}")
rc3, clean = run("--replay", seed)
if rc3 != 0:
    sys.exit(f"FAIL: without the bug, seed {seed} should pass:\n{clean}")
print(f"PASS planted bug caught at seed {seed}, replayed with trace {first}; the correct disk passes")
