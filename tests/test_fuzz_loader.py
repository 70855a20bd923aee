"""A seeded mutation fuzzer over a fixture pickle, a StyleGAN3 pickle and a native file.

Every mutant (bit flips, byte and opcode swaps, truncations, insertions, deletions,
duplications, length fields set to extremes, splices: :mod:`mutations`) either still loads or
is refused with one short ModelLoadError line naming it; none crashes, hangs, hits the memory
limit or raises anything else. Longer runs: ``LATENTSTUDIO_FUZZ_CASES=5000 pytest
tests/test_fuzz_loader.py`` (or ``tests/fuzz/`` with atheris).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from load_runner import run_cases
from test_hostile_files import problems
from latentstudio.io import load_networks, save_native

FIXTURES = Path(__file__).parent / "fixtures"
CASES = int(os.environ.get("LATENTSTUDIO_FUZZ_CASES", "300"))
SEED = int(os.environ.get("LATENTSTUDIO_FUZZ_SEED", "13"))


def test_mutated_files_load_or_fail_with_one_clear_line(tmp_path):
    native = save_native(tmp_path / "native.safetensors", {"G_ema": load_networks(FIXTURES / "sg2_gray32.pkl")["G_ema"]})
    sources = [str(FIXTURES / "sg2_gray32.pkl")] * 6 + [str(FIXTURES / "sg3r_cond32.pkl")] * 2 + [str(native)] * 2
    cases = [{"mutate": sources[i % len(sources)], "seed": SEED * 100_003 + i} for i in range(CASES)]
    start = time.perf_counter()
    results = run_cases(cases, seconds_per_case=20, extra_memory_mb=1024)
    elapsed = time.perf_counter() - start
    failures = [f"{r['mutate']} seed {r['seed']} ({r.get('mutation')}): {'; '.join(found)}: {r.get('message', '')[:160]!r}"
                for r in results if (found := problems(r) if r["status"] != "loaded" else [])]
    loaded = sum(r["status"] == "loaded" for r in results)
    print(f"\nfuzzed {len(results)} files in {elapsed:.1f} s: {loaded} still loaded, {len(results) - loaded} refused")
    assert not failures, "\n".join(failures)
    assert 0 < loaded < len(results)
