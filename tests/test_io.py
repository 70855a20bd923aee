"""Loading model files: NVlabs pickles equal the reference, nothing in them runs, bad files
give clear errors, and the native format round-trips."""
from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from latentstudio.io import ModelLoadError, load_model, load_networks, save_native

FIXTURES = Path(__file__).parent / "fixtures"
SG2 = ["sg2_skip32", "sg2_cond64", "sg2_gray32"]


def reference(name: str) -> dict:
    return torch.load(FIXTURES / f"{name}.pt", weights_only=True)


@pytest.mark.parametrize("name", SG2)
def test_pickle_outputs_equal_reference(name, sentinel):
    ref = reference(name)
    nets = load_networks(FIXTURES / f"{name}.pkl")
    assert set(nets) == {"G", "D", "G_ema"}
    G, D = nets["G_ema"], nets["D"]
    out = ref["outputs"]
    with torch.no_grad():
        ws = G.mapping(ref["z"], ref["c"])
        torch.testing.assert_close(ws, out["ws"], atol=1e-4, rtol=0)
        torch.testing.assert_close(G.mapping(ref["z"], ref["c"], truncation_psi=0.5, truncation_cutoff=4), out["ws_psi0.5_cutoff4"], atol=1e-4, rtol=0)
        torch.testing.assert_close(G.synthesis(out["ws"], noise_mode="const"), out["img_const"], atol=1e-4, rtol=0)
        torch.testing.assert_close(D(out["img_const"], ref["c"]), out["d_logits_img_const"], atol=1e-4, rtol=0)
    assert not sentinel.exists()


def test_load_model_prefers_g_ema_and_describes_it(sentinel):
    G = load_model(FIXTURES / "sg2_cond64.pkl", device="cpu")
    info = G.info
    assert (info.format, info.kind, info.config) == ("nvlabs-pickle", "stylegan2", "skip")
    assert (info.resolution, info.num_ws, info.w_dim, info.c_dim, info.img_channels) == (64, 10, 64, 5, 3)
    assert info.networks == ("G", "D", "G_ema")
    assert len(info.layer_names) == 10 and info.layer_names[1] == "8x8 conv0 + 4x4 torgb"
    assert info.layer_resolutions == (4, 8, 8, 16, 16, 32, 32, 64, 64, 64)
    # G_ema, not G: the fixture's G and G_ema hold the same weights, so compare by identity of the source.
    ref = reference("sg2_cond64")
    with torch.no_grad():
        torch.testing.assert_close(G.mapping(ref["z"], ref["c"]), ref["outputs"]["ws"], atol=1e-4, rtol=0)
    assert not sentinel.exists()


def test_naive_pickle_load_does_run_the_embedded_code(tmp_path, sentinel):
    """Proves the sentinel checks above mean something: plain pickle.load executes the file."""
    stubs = tmp_path / "stubs"
    (stubs / "torch_utils").mkdir(parents=True)
    (stubs / "dnnlib").mkdir()
    (stubs / "torch_utils" / "__init__.py").write_text("")
    (stubs / "torch_utils" / "persistence.py").write_text(textwrap.dedent("""
        import types
        def _reconstruct_persistent_obj(meta):
            module = types.ModuleType('embedded')
            exec(meta['module_src'], module.__dict__)  # what NVlabs persistence does
    """))
    (stubs / "dnnlib" / "__init__.py").write_text("")
    (stubs / "dnnlib" / "util.py").write_text("class EasyDict(dict):\n    pass\n")
    code = "import pickle, sys; pickle.load(open(sys.argv[1], 'rb'))"
    env = dict(os.environ, PYTHONPATH=str(stubs))
    result = subprocess.run([sys.executable, "-c", code, str(FIXTURES / "sg2_skip32.pkl")], env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "must never run" in result.stderr
    assert sentinel.exists()


class _Hostile:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = (FIXTURES / "sg2_skip32.pkl").read_bytes()
    png = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (4, 4)).save(png, format="PNG")
    zipped = tmp_path / "checkpoint.pt"
    torch.save({"g_ema": {"w": torch.zeros(2)}}, zipped)
    files = {
        "truncated": (good[: len(good) // 2], "truncated or corrupt"),
        "empty": (b"", "empty file"),
        "random": (np.random.RandomState(0).bytes(4096), "unrecognised format"),
        "hostile": (pickle.dumps(_Hostile(), protocol=4), "posix.system"),
        "image": (png.getvalue(), "PNG image"),
        "plain_pickle": (pickle.dumps({"a": 1}, protocol=4), "not an NVlabs network pickle"),
        "safetensors_without_header": (None, "without latentstudio settings"),
        "torch_zip": (None, "rosinality generator: no mapping layers"),
    }
    paths = {}
    for name, (data, expected) in files.items():
        path = tmp_path / f"{name}.pkl"
        if name == "safetensors_without_header":
            from safetensors.torch import save_file

            save_file({"x": torch.zeros(3)}, str(path))
        elif name == "torch_zip":
            path = zipped
        else:
            path.write_bytes(data)
        paths[name] = (path, expected)
    return paths


@pytest.mark.parametrize(
    "kind",
    ["truncated", "empty", "random", "hostile", "image", "plain_pickle", "safetensors_without_header", "torch_zip"],
)
def test_bad_files_raise_model_load_error(kind, tmp_path, sentinel):
    path, expected = _bad_files(tmp_path)[kind]
    with pytest.raises(ModelLoadError) as caught:
        load_model(path, device="cpu")
    message = str(caught.value)
    assert str(path) in message and expected.replace("posix.system", "system") in message
    assert "Traceback" not in message
    assert not sentinel.exists()


def test_hostile_pickle_names_the_refused_global(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_Hostile(), protocol=2))
    with pytest.raises(ModelLoadError, match=r"system.*allow-list"):
        load_model(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ModelLoadError, match="no such file"):
        load_model(tmp_path / "nope.pkl")
    with pytest.raises(ModelLoadError, match="a folder"):
        load_model(tmp_path)


def test_native_round_trip_gives_identical_outputs(tmp_path, sentinel):
    nets = load_networks(FIXTURES / "sg2_cond64.pkl")
    path = save_native(tmp_path / "model.safetensors", nets, {"note": "test"})
    again = load_networks(path)
    assert set(again) == {"G", "D", "G_ema"}
    ref = reference("sg2_cond64")
    with torch.no_grad():
        for name in ("G", "G_ema"):
            a = nets[name](ref["z"], ref["c"], noise_mode="const")
            b = again[name](ref["z"], ref["c"], noise_mode="const")
            assert torch.equal(a, b)
        assert torch.equal(nets["D"](a, ref["c"]), again["D"](a, ref["c"]))
    G = load_model(path, device="cpu")
    assert G.info.format == "native" and G.info.provenance["note"] == "test"
    assert G.info.fingerprint == load_model(FIXTURES / "sg2_cond64.pkl", device="cpu").info.fingerprint


def test_fp16_native_file_is_smaller_and_close(tmp_path):
    nets = load_networks(FIXTURES / "sg2_skip32.pkl")
    full = save_native(tmp_path / "full.safetensors", {"G_ema": nets["G_ema"]})
    half = save_native(tmp_path / "half.safetensors", {"G_ema": nets["G_ema"]}, dtype=torch.float16)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    G = load_model(half, device="cpu")
    assert next(G.parameters()).dtype == torch.float32
    # Loading casts back to float32: the result is exactly the original rounded to float16.
    rounded = nets["G_ema"]
    rounded.load_state_dict({k: v.half().float() for k, v in rounded.state_dict().items()})
    for key, value in G.state_dict().items():
        assert torch.equal(value, rounded.state_dict()[key]), key
    assert G.info.fingerprint == load_model(full, device="cpu").info.fingerprint


def test_native_file_with_damaged_tensors(tmp_path):
    nets = load_networks(FIXTURES / "sg2_skip32.pkl")
    path = save_native(tmp_path / "m.safetensors", {"G_ema": nets["G_ema"]})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1000])
    with pytest.raises(ModelLoadError, match="damaged"):
        load_model(path)


def test_zip_without_torch_checkpoint_is_refused(tmp_path):
    path = tmp_path / "images.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.txt", "hello")
    with pytest.raises(ModelLoadError, match=str(path)):
        load_model(path)
