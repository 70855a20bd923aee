"""Model loading speed: this checkout's loader against another revision's, on the same files.

    PYTHONPATH=$PWD python benchmarks/load_speed.py [--baseline REV] [--rounds 7] [--repeats 5] [FILE ...]

``REV`` (default ``c555eb6``, the last revision before the hardened loader) is exported with
``git archive`` into a temporary folder. Each round runs one process per loader, in turns,
each loading every file ``--repeats`` times with ``load_networks`` (one warm-up load first,
one torch thread); the best CPU time (``time.process_time``: other processes on a shared
machine inflate it far less than wall time) per file and loader over all rounds is reported
with the ratio new / baseline. Without FILE, the largest fixture pickle and a native conversion of it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKER = r"""
import json, sys, time
import torch
torch.set_num_threads(1)
import latentstudio
from latentstudio.io import load_networks
repeats, files = int(sys.argv[1]), sys.argv[2:]
best = {"code": latentstudio.__file__}
for path in files:
    load_networks(path)
    times = []
    for _ in range(repeats):
        start = time.process_time()
        load_networks(path)
        times.append(time.process_time() - start)
    best[path] = min(times)
print(json.dumps(best))
"""


def export_revision(revision: str, target: Path) -> Path:
    archive = target / "baseline.tar"
    with open(archive, "wb") as out:
        subprocess.run(["git", "-C", str(ROOT), "archive", revision, "latentstudio"], stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(target / "baseline", filter="data")
    return target / "baseline"


def measure(code_root: Path, files: list[str], repeats: int) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(code_root))
    # cwd matters: ``python -c`` puts the working directory first on sys.path
    result = subprocess.run([sys.executable, "-c", WORKER, str(repeats), *files], env=env, check=True,
                            capture_output=True, text=True, cwd=code_root)
    return json.loads(result.stdout.strip().splitlines()[-1])


def default_files(folder: Path) -> list[str]:
    pickle = max((ROOT / "tests" / "fixtures").glob("*.pkl"), key=lambda p: p.stat().st_size)
    native = folder / f"{pickle.stem}.safetensors"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-m", "latentstudio", "convert", str(pickle), str(native), "--all"],
                   env=env, check=True, capture_output=True)
    return [str(pickle), str(native)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*")
    parser.add_argument("--baseline", default="c555eb6", help="git revision of the loader to compare with")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        baseline = export_revision(args.baseline, folder)
        files = args.files or default_files(folder)
        best: dict[str, dict[str, float]] = {"baseline": {}, "new": {}}
        for _ in range(args.rounds):
            for name, root in (("baseline", baseline), ("new", ROOT)):
                measured = measure(root, files, args.repeats)
                if not measured.pop("code").startswith(str(root)):
                    raise RuntimeError(f"the {name} run did not import the code under {root}")
                for path, seconds in measured.items():
                    best[name][path] = min(seconds, best[name].get(path, float("inf")))
        print(f"{'file':<40} {'size':>9} {args.baseline:>12} {'this tree':>12} {'ratio':>7}")
        for path in files:
            old, new = best["baseline"][path], best["new"][path]
            size = Path(path).stat().st_size / 1e6
            print(f"{Path(path).name:<40} {size:>7.1f}MB {old * 1e3:>10.1f}ms {new * 1e3:>10.1f}ms {new / old:>6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
