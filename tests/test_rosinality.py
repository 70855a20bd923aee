"""rosinality/stylegan2-pytorch checkpoints: both layouts load and compute what rosinality's
own model.py computes (the fixtures' reference outputs, and networks of other sizes through
an op-for-op re-implementation checked against those outputs), and bad files are one-line
errors."""
from __future__ import annotations

import argparse
import io
import os
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

import rosinality_layout as ros
from latentstudio.cli import main
from latentstudio.io import ModelLoadError, load_model, load_networks
from latentstudio.io.architectures import DERIVED_BUFFERS, build_checked
from latentstudio.io.rosinality import channel_rule, generator_from_rosinality
from latentstudio.io.rosinality_checkpoint import W_AVG_COMPUTED
from latentstudio.io.w_avg import mean_w

pytestmark = pytest.mark.usefixtures("one_thread")
FIXTURES = Path(__file__).parent / "fixtures"
NAMES = ["ros_train32", "ros_converted64"]
ATOL = 1e-4  # images reach ~10 in magnitude


@pytest.fixture(scope="module")
def loaded() -> dict[str, dict[str, torch.nn.Module]]:
    return {name: load_networks(FIXTURES / f"{name}.pt") for name in NAMES}


def reference(name: str) -> dict:
    return torch.load(FIXTURES / f"{name}.ref.pt", weights_only=True)


def checkpoint(name: str) -> dict:
    """The fixture as rosinality itself would load it (only to build test inputs)."""
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(FIXTURES / f"{name}.pt", weights_only=True)


def mixed(ws: torch.Tensor, inject_index: int) -> torch.Tensor:
    """rosinality's style mixing: the first ``inject_index`` layers from the first latent."""
    return torch.cat([ws[:1, :inject_index], ws[1:2, inject_index:]], dim=1)


@pytest.mark.parametrize("name", NAMES)
def test_outputs_equal_the_rosinality_reference(name, loaded):
    ref = reference(name)
    out, z = ref["outputs"], ref["z"]
    G = loaded[name]["G_ema"]
    with torch.no_grad():
        ws = G.mapping(z, None)
        torch.testing.assert_close(ws[:, 0], out["w"], atol=ATOL, rtol=0)
        torch.testing.assert_close(G.synthesis(ws, noise_mode="const"), out["img"], atol=ATOL, rtol=0)
        broadcast = out["w"].unsqueeze(1).repeat(1, G.num_ws, 1)
        torch.testing.assert_close(G.synthesis(broadcast, noise_mode="const"), out["img_from_w"], atol=ATOL, rtol=0)
        mix = mixed(ws, int(out["mix_inject_index"]))
        torch.testing.assert_close(G.synthesis(mix, noise_mode="const"), out["img_mix"], atol=ATOL, rtol=0)
        if "img_psi0.7" in out:  # truncation towards the stored latent_avg, all layers
            torch.testing.assert_close(G(z, None, truncation_psi=0.7, noise_mode="const"), out["img_psi0.7"], atol=ATOL, rtol=0)
        if "D" in loaded[name]:
            torch.testing.assert_close(loaded[name]["D"](out["img"], None), out["d_logits"], atol=ATOL, rtol=0)
    assert out["img"].abs().max() > 5  # the tolerance is meaningful against these magnitudes


def test_both_layouts_are_recognised_and_described(loaded):
    train = load_model(FIXTURES / "ros_train32.pt", device="cpu").info
    assert (train.format, train.format_name) == ("rosinality-train", "rosinality checkpoint (train.py)")
    assert train.networks == ("G", "D", "G_ema")
    assert (train.resolution, train.z_dim, train.w_dim, train.num_ws) == (32, 64, 64, 8)
    assert train.provenance["training_args"]["n_mlp"] == 4 and train.provenance["ada_aug_p"] == 0.0
    assert train.provenance["w_avg"] == {"G": W_AVG_COMPUTED, "G_ema": W_AVG_COMPUTED}

    converted = load_model(FIXTURES / "ros_converted64.pt", device="cpu").info
    assert (converted.format_name, converted.networks) == ("rosinality checkpoint (convert_weight.py)", ("G_ema",))
    assert converted.provenance["w_avg"] == {"G_ema": "latent_avg stored in the file"}
    assert torch.equal(loaded["ros_converted64"]["G_ema"].mapping.w_avg, checkpoint("ros_converted64")["latent_avg"])


def test_missing_average_latent_is_the_mean_of_100k_mapped_z(loaded):
    G = loaded["ros_train32"]["G_ema"]
    g = torch.Generator().manual_seed(0)
    z = torch.randn([100_000, 64], generator=g)  # the same draws, computed rosinality's way
    with torch.no_grad():
        expected = ros.map_z(checkpoint("ros_train32")["g_ema"], z).double().mean(dim=0).float()
    torch.testing.assert_close(G.mapping.w_avg, expected, atol=1e-5, rtol=0)
    assert torch.equal(mean_w(G.mapping), G.mapping.w_avg)  # the same every time


def _save(tmp_path: Path, name: str, data: dict) -> Path:
    path = tmp_path / f"{name}.pt"
    torch.save(data, path)
    return path


# Other sizes: 512-dim latents, 8 mapping layers, channel tables that are not the fixtures'.
SIZES = [
    pytest.param(64, 512, 8, {r: min(4096 // r, 128) for r in (4, 8, 16, 32, 64)}, id="z512-8mlp-64px"),
    pytest.param(128, 48, 2, {r: min(1024 * 2 // r, 96) for r in (4, 8, 16, 32, 64, 128)}, id="z48-2mlp-128px"),
]


@pytest.mark.parametrize("size, style_dim, n_mlp, channels", SIZES)
def test_other_sizes_load_and_match(tmp_path, size, style_dim, n_mlp, channels):
    g_state = ros.generator_state(size, style_dim, n_mlp, channels)
    d_state = ros.discriminator_state(size, channels)
    latent_avg = torch.randn([style_dim])
    # convert_weight.py --disc writes this layout: no latent to compute, so the test stays fast.
    path = _save(tmp_path, "other", {"g_ema": OrderedDict(g_state), "latent_avg": latent_avg, "d": OrderedDict(d_state)})
    nets = load_networks(path)
    G, D = nets["G_ema"], nets["D"]
    assert (G.img_resolution, G.z_dim, G.mapping.num_layers, G.num_ws) == (size, style_dim, n_mlp, ros.n_latent(g_state))
    z = torch.randn([2, style_dim], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = ros.generate(g_state, z)
        scale = expected.abs().max()
        torch.testing.assert_close(G(z, None, noise_mode="const"), expected, atol=1e-4 * scale, rtol=0)
        truncated = ros.generate(g_state, z, 0.5, latent_avg)
        torch.testing.assert_close(G(z, None, truncation_psi=0.5, noise_mode="const"), truncated, atol=1e-4 * scale, rtol=0)
        images = torch.randn([4, 3, size, size])
        torch.testing.assert_close(D(images, None), ros.discriminate(d_state, images), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("multiplier", [1, 2])
def test_rosinality_channel_table_is_nvlabs_base_and_max(multiplier):
    table = {res: width for res, width in ros.rosinality_channels(multiplier).items()}
    assert channel_rule(table, "generator") == (16384 * multiplier, 512)


def test_real_size_generator_maps_tensor_for_tensor():
    """The real table at 256x256 (channel multiplier 2), 512-dim latents, 8 mapping layers:
    every rosinality tensor lands, unchanged, in the network built from its shapes."""
    table = {r: w for r, w in ros.rosinality_channels(2).items() if r <= 256}
    state = ros.generator_state(256, 512, 8, table)
    init_kwargs, weights = generator_from_rosinality(state)
    assert (init_kwargs["channel_base"], init_kwargs["channel_max"], init_kwargs["mapping_kwargs"]["num_layers"]) == (32768, 512, 8)
    weights["mapping.w_avg"] = torch.zeros([512])
    G = build_checked("stylegan2", "Generator", init_kwargs, weights, "g_ema", derived=DERIVED_BUFFERS)
    loaded = G.state_dict()
    assert torch.equal(loaded["synthesis.b256.conv0.weight"], state["convs.10.conv.weight"][0])
    assert torch.equal(loaded["synthesis.b128.torgb.affine.bias"], state["to_rgbs.4.conv.modulation.bias"])
    assert torch.equal(loaded["synthesis.b64.conv1.noise_const"], state["noises.noise_8"][0, 0])
    assert torch.equal(loaded["mapping.fc7.weight"], state["style.8.weight"])
    assert sum(v.numel() for k, v in loaded.items() if "resample_filter" not in k) == sum(
        v.numel() for k, v in state.items() if not k.endswith("kernel")) + 512  # + w_avg


# -- bad files ---------------------------------------------------------------------------------


class _Calls:
    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return (self.function, self.args)


def _rezip(source: Path, target: Path, change) -> Path:
    """Copy a torch zip entry by entry; ``change(name, data)`` returns new bytes, or None to drop it."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as new:
        for info in old.infolist():
            data = change(info.filename, old.read(info))
            if data is not None:
                new.writestr(info.filename, data)
    return target


def _zip_with_pickle(target: Path, payload: bytes) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")
    return target


def _global_pickle(module: str, name: str) -> bytes:
    """A protocol-2 pickle that calls ``module.name()``: {'g_ema': module.name()}."""
    return b"\x80\x02}q\x00X\x05\x00\x00\x00g_emaq\x01c" + f"{module}\n{name}\n".encode() + b")Rs."


def hostile_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = FIXTURES / "ros_converted64.pt"
    folder = "ros_converted64"
    files = {
        "os_system": (_save(tmp_path, "os_system", {"g_ema": _Calls(os.system, "echo pwned")}), "posix.system"),
        "missing_entry": (_rezip(good, tmp_path / "missing.pt", lambda n, d: None if n == f"{folder}/data/5" else d),
                          f"no entry {folder}/data/5"),
        "short_entry": (_rezip(good, tmp_path / "short.pt", lambda n, d: d[: len(d) // 2] if n == f"{folder}/data/0" else d),
                        "but its data holds"),
        "no_data_pkl": (_rezip(good, tmp_path / "nopkl.pt", lambda n, d: None if n.endswith("data.pkl") else d), "data.pkl"),
        "big_endian": (_rezip(good, tmp_path / "endian.pt", lambda n, d: b"big" if n.endswith("byteorder") else d), "endian"),
        "truncated": (None, "damaged zip"),
        "not_rosinality": (_save(tmp_path, "other", {"model": OrderedDict(w=torch.zeros(2))}), "not a rosinality one"),
        "broken_generator": (_save(tmp_path, "broken", {"g_ema": OrderedDict(w=torch.zeros(2))}), "no mapping layers"),
        "integer_weights": (_save(tmp_path, "ints", {"g_ema": OrderedDict((k, v.long()) for k, v in checkpoint("ros_converted64")["g_ema"].items())}),
                            "style.1.weight is not a floating-point tensor"),
    }
    data = good.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    files["truncated"] = (tmp_path / "truncated.pt", files["truncated"][1])
    ckpt = checkpoint("ros_converted64")
    swagan = OrderedDict(ckpt["g_ema"], **{"convs.0.conv.dwt.ll": torch.zeros(2)})
    files["other_architecture"] = (_save(tmp_path, "swagan", {"g_ema": swagan}), "unexpected parameters convs.0.conv.dwt.ll")
    odd = OrderedDict(ckpt["g_ema"])
    for key in ("convs.4.conv.weight", "convs.5.conv.weight"):  # 64x64 convs 24 wide: no min(base/res, max) rule
        odd[key] = odd[key][:, :24] if key.startswith("convs.4") else odd[key][:, :24, :24]
    files["odd_channels"] = (_save(tmp_path, "odd", {"g_ema": odd, "latent_avg": ckpt["latent_avg"]}),
                             "follow no min(base / resolution, max) rule")
    return files


def test_hostile_and_broken_checkpoints_are_one_line_errors(tmp_path):
    for name, (path, expected) in hostile_files(tmp_path).items():
        with pytest.raises(ModelLoadError) as caught:
            load_model(path, device="cpu")
        message = str(caught.value)
        assert "\n" not in message and str(path) in message and expected in message, (name, message)


@pytest.mark.parametrize("module, name", [("builtins", "eval"), ("torch", "load"), ("argparse", "ArgumentParser"),
                                          ("torch.nn.modules.conv", "Conv2d"), ("numpy", "load"), ("subprocess", "Popen")])
def test_any_global_outside_the_list_is_refused(tmp_path, module, name):
    path = _zip_with_pickle(tmp_path / "hostile.pt", _global_pickle(module, name))
    with pytest.raises(ModelLoadError, match=f"asks for {module}.{name}, which is not on latentstudio's allow-list"):
        load_model(path, device="cpu")


# -- everywhere a model is accepted --------------------------------------------------------------


def test_info_render_and_convert_from_the_command_line(tmp_path, capsys):
    assert main(["info", str(FIXTURES / "ros_train32.pt")]) == 0
    text = capsys.readouterr().out
    assert "rosinality checkpoint (train.py)" in text and "computed by latentstudio" in text
    assert main(["render", str(FIXTURES / "ros_train32.pt"), "--seeds", "0-3", "--outdir", str(tmp_path / "png")]) == 0
    assert len(list((tmp_path / "png").glob("*.png"))) == 4


@pytest.mark.parametrize("name", NAMES)
def test_convert_then_load_gives_identical_images(tmp_path, name, loaded, capsys):
    out = tmp_path / f"{name}.safetensors"
    assert main(["convert", str(FIXTURES / f"{name}.pt"), str(out), "--all"]) == 0
    native = load_networks(out)
    assert set(native) == set(loaded[name])
    z = torch.randn([2, native["G_ema"].z_dim])
    with torch.no_grad():
        for key in ("G", "G_ema"):
            if key in native:  # the stored w_avg too: truncated images are identical
                assert torch.equal(native[key](z, None, truncation_psi=0.7, noise_mode="const"),
                                   loaded[name][key](z, None, truncation_psi=0.7, noise_mode="const"))
    assert load_model(out, device="cpu").info.provenance["source_format"].startswith("rosinality-")


def test_train_init_fine_tunes_from_a_train_checkpoint(tmp_path, loaded):
    from test_train import make_image_folder

    data = make_image_folder(tmp_path / "images", count=8, broken=False)
    out = tmp_path / "tuned"
    assert main(["train", "--data", str(data), "--res", "32", "--outdir", str(out), "--kimg", "0.008", "--batch", "8",
                 "--init", str(FIXTURES / "ros_train32.pt"), "--device", "cpu", "--workers", "0"]) == 0
    tuned = load_networks(out / "network-snapshot-000001.safetensors")
    for name in ("G", "D", "G_ema"):  # every network started from the checkpoint's, then took one step
        before, after = loaded["ros_train32"][name].state_dict(), tuned[name].state_dict()
        assert before.keys() == after.keys()
        weight = "b32.conv0.weight" if name == "D" else "synthesis.b32.conv1.weight"
        torch.testing.assert_close(after[weight], before[weight], atol=0.05, rtol=0)
        if name != "G_ema":  # G_ema moves by (1 - beta) of that step only
            assert not torch.equal(after[weight], before[weight])
