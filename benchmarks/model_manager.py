"""Model manager figures on this machine, all from one run.

1. Per discovered model, in a fresh process each: load seconds, estimated vs measured bytes.
2. Time of a lease on an already loaded model (target <= 1 ms).
3. Peak RSS of a process leasing voice, ASR and VAD in turn under a budget that fits one model,
   against budget + baseline (the acceptance limit is budget + baseline + 10%).

usage: python benchmarks/model_manager.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from voxmill.models import ModelManager, Registry

HERE = Path(__file__).parent
MIB = 2**20

LOAD_ONE = """
import json, sys, time
from voxmill.models import ModelManager
manager = ModelManager(budget_bytes=4 << 30, threads=1)
with manager.lease(sys.argv[1]):
    pass
(row,) = manager.status()
print(json.dumps(row.to_dict()))
"""


def main() -> None:
    registry = Registry()
    specs = registry.all()
    print(f"model_manager: {len(specs)} discovered models, Python {sys.version.split()[0]}\n")
    print("1. cold load in a fresh process")
    print(f"  {'model':<26}{'file MiB':>9}{'load s':>8}{'est MiB':>9}{'measured MiB':>14}{'meas/est':>10}")
    estimates = {}
    for spec in specs:
        out = subprocess.run([sys.executable, "-c", LOAD_ONE, spec.name], capture_output=True, text=True, check=True)
        row = json.loads(out.stdout)
        estimates[spec.name] = row["estimated_bytes"]
        measured = row["measured_bytes"] or 0
        print(
            f"  {spec.name:<26}{spec.size_bytes / MIB:>9.0f}{row['load_seconds']:>8.2f}"
            f"{row['estimated_bytes'] / MIB:>9.0f}{measured / MIB:>14.0f}{measured / row['estimated_bytes']:>10.2f}"
        )

    manager = ModelManager(budget_bytes=1 << 30, threads=1)
    with manager.lease("silero-vad"):
        pass
    count = 20_000
    start = time.perf_counter()
    for _ in range(count):
        with manager.lease("silero-vad"):
            pass
    per_lease = (time.perf_counter() - start) / count
    print(f"\n2. lease of a loaded model: {per_lease * 1e6:.1f} us per lease ({count:,} leases; target <= 1000 us)")

    budget = int(max(estimates.get("whisper:tiny.en", 0), estimates.get("piper:en_US-joe-medium", 0)) * 1.05)
    out = subprocess.run(
        [sys.executable, str(HERE / "model_rss.py"), str(budget)], capture_output=True, text=True, check=True
    )
    r = json.loads(out.stdout)
    limit = (r["budget"] + r["baseline"]) * 1.10
    print(f"\n3. 3 rounds of voice -> whisper -> VAD leases under a {budget / MIB:.0f} MiB budget (fits one model)")
    print(f"  {'baseline RSS':<28}{r['baseline'] / MIB:>8.0f} MiB")
    print(f"  {'budget':<28}{r['budget'] / MIB:>8.0f} MiB")
    print(f"  {'max RSS':<28}{r['peak'] / MIB:>8.0f} MiB")
    print(f"  {'budget + baseline':<28}{(r['budget'] + r['baseline']) / MIB:>8.0f} MiB")
    print(f"  {'limit (+10%)':<28}{limit / MIB:>8.0f} MiB   -> {'within' if r['peak'] <= limit else 'OVER'}")
    print(f"  evictions: {len(r['evictions'])} ({', '.join(r['evictions'])})")


if __name__ == "__main__":
    main()
