"""Hostile model files: each gives one short ModelLoadError line, never a crash, a hang, a memory
blow-up or another exception type, through load_model, load_networks, `info` and `convert`.

The files are generated (:mod:`hostile_cases`) and loaded in child processes with an
address-space limit and a per-file alarm (:mod:`load_runner`); an error that mentions memory
would mean a limit, not a check, stopped the load, so it counts as a failure too.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch

from hostile_cases import make_cases
from load_runner import OPERATIONS, run_cases
from latentstudio.io import load_networks, save_native
from latentstudio.io.errors import MAX_MESSAGE
from latentstudio.io.settings import implied_elements, validate_settings
from latentstudio.nets import stylegan2, stylegan3

FIXTURES = Path(__file__).parent / "fixtures"


def problems(result: dict) -> list[str]:
    """What is wrong with how one hostile file was refused (empty: refused as it should be)."""
    if result["status"] != "error":
        return [f"status {result['status']} {result.get('signal', '')} {result.get('stderr', '')[-300:]}"]
    message = result["message"]
    found = []
    if result["type"] != "ModelLoadError":
        found.append(f"raised {result['type']}")
    if "\n" in message or len(message) > MAX_MESSAGE or result["length"] > MAX_MESSAGE:
        found.append(f"not one short line ({result['length']} characters)")
    if Path(result["path"]).name[-60:] not in message:
        found.append("does not name the file")
    if result.get("expected") and result["expected"] not in message:
        found.append(f"does not say {result['expected']!r}")
    if re.search(r"not enough memory|more memory than|allocate|MemoryError", message):
        found.append("stopped by the memory limit, not by a check")
    return found


@pytest.fixture(scope="module")
def hostile_results(tmp_path_factory) -> list[dict]:
    folder = tmp_path_factory.mktemp("hostile")
    native = save_native(folder / "valid.safetensors", {"G_ema": load_networks(FIXTURES / "sg2_gray32.pkl")["G_ema"]})
    cases = []
    for index, (name, path, expected) in enumerate(make_cases(folder / "files", native)):
        case = {"name": name, "path": str(path), "expected": expected}
        cases.append({**case, "op": "load_model"})
        cases.append({**case, "op": OPERATIONS[1 + index % 3]})
    return run_cases(cases, seconds_per_case=20, extra_memory_mb=1024)


def test_every_hostile_file_is_refused_with_one_clear_line(hostile_results):
    failures = {f"{r['name']} ({r['op']}): {r.get('message', '')[:200]!r}": problems(r) for r in hostile_results}
    failures = {case: found for case, found in failures.items() if found}
    assert not failures, "\n".join(f"{case}: {'; '.join(found)}" for case, found in failures.items())


def test_hostile_cases_cover_every_class_the_issue_names(hostile_results):
    names = {r["name"] for r in hostile_results}
    for required in ("forged_dtype_fields", "storage_growth", "dag_2_40_paths", "deep_tuple_key", "memo_index_2_27",
                     "binbytes8_2_62", "stride0_gigabytes", "img_resolution_2_20", "channel_max_1e9", "nan_weight",
                     "fifo", "long_name", "int_weight", "quantized_storage", "huge_json_like", "giant_class_name"):
        assert required in names
    assert {r["op"] for r in hostile_results} == set(OPERATIONS)


# -- the implied-memory check rests on exact element counts -------------------------------------
SG2_CONFIGS = [
    dict(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3, channel_base=256, channel_max=16),
    dict(z_dim=8, c_dim=3, w_dim=12, img_resolution=8, img_channels=1, channel_base=64, channel_max=8,
         architecture="resnet", mapping_kwargs=dict(num_layers=3, embed_features=5, layer_features=7)),
    dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=4, channel_base=128, channel_max=16,
         architecture="orig", resample_filter=[1, 2, 1], use_noise=False, mapping_kwargs=dict(w_avg_beta=None)),
    dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=8, img_channels=3, kernel_size=1, resample_filter=[1] * 8,
         synthesis_kwargs=dict(channel_base=64, channel_max=8)),
]
SG3_CONFIGS = [
    dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, channel_base=256, channel_max=16, num_layers=6),
    dict(z_dim=8, c_dim=2, w_dim=8, img_resolution=16, img_channels=3, channel_base=256, channel_max=16, num_layers=5,
         num_critical=1, conv_kernel=1, use_radial_filters=True, margin_size=3, filter_size=4, lrelu_upsampling=1),
]
D_CONFIGS = [
    dict(c_dim=0, img_resolution=16, img_channels=3, channel_base=256, channel_max=16),
    dict(c_dim=4, img_resolution=16, img_channels=1, channel_base=128, channel_max=16, architecture="skip", cmap_dim=6,
         block_kwargs=dict(resample_filter=[1, 3, 3, 1, 1, 3, 3, 1]), mapping_kwargs=dict(num_layers=2),
         epilogue_kwargs=dict(mbstd_num_channels=2)),
    dict(c_dim=0, img_resolution=8, img_channels=3, channel_base=64, channel_max=8, architecture="orig",
         epilogue_kwargs=dict(mbstd_num_channels=0)),
]


def _allocated(network: torch.nn.Module) -> int:
    return sum(t.numel() for t in network.state_dict().values()) + sum(
        b.numel() for name, b in network.named_buffers() if name not in network.state_dict())


@pytest.mark.parametrize("kind, class_name, kwargs", [("stylegan2", "Generator", c) for c in SG2_CONFIGS]
                         + [("stylegan3", "Generator", c) for c in SG3_CONFIGS]
                         + [("stylegan2", "Discriminator", c) for c in D_CONFIGS])
def test_implied_elements_equal_what_construction_allocates(kind, class_name, kwargs):
    validate_settings(kind, class_name, kwargs)
    module = {"stylegan2": stylegan2, "stylegan3": stylegan3}[kind]
    flat = {k: v for k, v in kwargs.items() if k != "synthesis_kwargs"} | kwargs.get("synthesis_kwargs", {})
    network = getattr(module, class_name)(**flat)
    assert implied_elements(kind, class_name, kwargs) == _allocated(network)


@pytest.mark.parametrize("name", ["sg2_skip32", "sg2_cond64", "sg2_gray32", "sg3t_32", "sg3r_cond32"])
def test_implied_elements_of_every_fixture_network(name):
    for network in load_networks(FIXTURES / f"{name}.pkl").values():
        class_name = type(network).__name__
        assert implied_elements(network.kind, class_name, network.init_kwargs) == _allocated(network), class_name
        assert math.isfinite(sum(float(t.sum()) for t in network.state_dict().values()))
