"""Coverage-guided fuzzing of the model loader with atheris (libFuzzer), for long runs; not in CI.

    pip install atheris
    mkdir -p /tmp/corpus && cp tests/fixtures/sg2_gray32.pkl tests/fixtures/sg3r_cond32.pkl /tmp/corpus/
    PYTHONPATH=$PWD python tests/fuzz/fuzz_loader.py /tmp/corpus -rss_limit_mb=4096 -timeout=30 -max_len=8000000

Each input is written to a file (in /dev/shm when it exists) and opened with ``load_model``;
anything but a one-line :class:`~latentstudio.ModelLoadError` of at most 300 characters (or a
successful load) is a finding. libFuzzer itself reports crashes, hangs (``-timeout``) and
memory blow-ups (``-rss_limit_mb``). Add a native file to the corpus with
``latentstudio convert tests/fixtures/sg2_gray32.pkl /tmp/corpus/g.safetensors``.
"""
from __future__ import annotations

import os
import sys
import tempfile

import atheris
import torch

with atheris.instrument_imports(include=["latentstudio"]):
    from latentstudio.io import ModelLoadError, load_model
    from latentstudio.io.errors import MAX_MESSAGE

torch.set_num_threads(1)
FOLDER = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
TARGET = os.path.join(FOLDER, f"latentstudio-fuzz-{os.getpid()}.bin")


def one_input(data: bytes) -> None:
    with open(TARGET, "wb") as handle:
        handle.write(data)
    try:
        load_model(TARGET, device="cpu")
    except ModelLoadError as error:
        message = str(error)
        if "\n" in message or len(message) > MAX_MESSAGE or not message.startswith(TARGET):
            raise AssertionError(f"not a one-line message naming the file: {message[:500]!r}") from None


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
