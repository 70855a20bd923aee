"""Loads model files in child processes, many per process, and reports how each load ended.

A hostile file may crash the interpreter, hang it or eat the machine's memory, so the tests
never load one in the pytest process. :func:`run_cases` starts this module as a child with an
address-space limit (``RLIMIT_AS``, set after the imports) and a per-file alarm (the default
SIGALRM action ends the child even inside C code), reads one ``START`` / ``RESULT`` line pair
per file, and when the child dies mid-file records that file as crashed (the signal) or hung
(SIGALRM) and starts a new child for the files after it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OPERATIONS = ("load_model", "load_networks", "info", "convert")  # the model loader's ways in
TEACHER_OPERATION = "read_dcgan"  # the trainer's --teacher checkpoints (not a model file)


def run_cases(cases: list[dict[str, Any]], seconds_per_case: int = 20, extra_memory_mb: int = 1024) -> list[dict[str, Any]]:
    """One result per case: ``status`` is ``loaded``, ``error`` (with ``type`` and ``message``),
    ``crashed`` (with ``signal``) or ``hung``. A case is ``{"path", "op"}`` (``op`` one of
    :data:`OPERATIONS` or :data:`TEACHER_OPERATION`, default ``load_model``) or, for fuzzing, ``{"mutate": source, "seed": n}``
    (the child loads :func:`mutations.mutated` of the source, and reports its ``path`` and
    ``mutation``)."""
    results: list[dict[str, Any] | None] = [None] * len(cases)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", QT_QPA_PLATFORM="offscreen")
    start = 0
    while start < len(cases):
        batch = cases[start:]
        child = subprocess.run(
            [sys.executable, __file__, str(seconds_per_case), str(extra_memory_mb)],
            input=json.dumps(batch), capture_output=True, text=True, env=env,
            timeout=60 + seconds_per_case * len(batch),
        )
        started = None
        for line in child.stdout.splitlines():
            tag, _, payload = line.partition(" ")
            if tag == "START":
                started = start + int(payload)
            elif tag == "RESULT":
                result = json.loads(payload)
                results[start + result.pop("index")] = result
                started = None
        if child.returncode == 0:
            break
        if started is None:
            raise RuntimeError(f"load runner failed outside any case: {child.stderr[-2000:]}")
        signal = -child.returncode
        results[started] = {"status": "hung"} if signal == 14 else {"status": "crashed", "signal": signal,
                                                                      "stderr": child.stderr[-1000:]}
        start = started + 1
    return [dict(case, **result) for case, result in zip(cases, results)]


def _vm_size() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def _child(seconds: int, extra_memory_mb: int) -> None:
    import resource
    import signal
    import tempfile

    import torch

    torch.set_num_threads(1)
    from latentstudio.cli import main as cli
    from latentstudio.io import load_model, load_networks

    cases = json.loads(sys.stdin.read())
    limit = _vm_size() + extra_memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    out_dir = tempfile.mkdtemp()
    for index, case in enumerate(cases):
        print("START", index, flush=True)
        extra = {}
        if "mutate" in case:  # a fuzz case: made here, so the parent never writes hundreds of files
            from mutations import mutated

            data, extra["mutation"] = mutated(case["mutate"], case["seed"])
            extra["path"] = os.path.join(out_dir, f"mutant-{case['seed']}{Path(case['mutate']).suffix}")
            Path(extra["path"]).write_bytes(data)
        signal.alarm(seconds)
        path, op = extra.get("path", case.get("path")), case.get("op", "load_model")
        try:
            if op == "load_model":
                load_model(path, device="cpu")
            elif op == "load_networks":
                load_networks(path)
            elif op == TEACHER_OPERATION:
                from latentstudio.io.dcgan import read_dcgan

                read_dcgan(path)
            else:
                args = ["info", path] if op == "info" else ["convert", path, os.path.join(out_dir, "out.safetensors")]
                with open(os.devnull, "w") as quiet:
                    stderr, sys.stderr = sys.stderr, _Capture()
                    stdout, sys.stdout = sys.stdout, quiet
                    try:
                        code = cli(args)
                    finally:
                        captured, sys.stderr, sys.stdout = sys.stderr, stderr, stdout
                if code != 0:
                    raise _CliFailed(captured.text.removeprefix(f"latentstudio {op}: error: ").rstrip("\n"))
            result = {"status": "loaded"}
        except BaseException as error:  # noqa: BLE001 - report whatever it was
            message = str(error)
            kind = "ModelLoadError" if isinstance(error, _CliFailed) else type(error).__name__
            result = {"status": "error", "type": kind, "message": message[:5000], "length": len(message)}
        signal.alarm(0)
        if "mutate" in case:
            os.unlink(path)
        print("RESULT", json.dumps({"index": index, **extra, **result}), flush=True)


class _CliFailed(Exception):
    """The CLI printed an error (its text, without the command prefix) and exited 2."""


class _Capture:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass


if __name__ == "__main__":
    _child(int(sys.argv[1]), int(sys.argv[2]))
