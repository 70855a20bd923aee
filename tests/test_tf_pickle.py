"""NVlabs TensorFlow network pickles (stylegan2 / stylegan2-ada TF): the fixtures equal
legacy.py's conversion, the embedded build_module_src never runs, other sizes load and match,
and hostile or unsupported files are one-line errors."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import tf_layout as tf
from latentstudio.cli import main
from latentstudio.io import ModelLoadError, load_model, load_networks
from latentstudio.nets.stylegan2 import Discriminator, Generator

pytestmark = pytest.mark.usefixtures("one_thread")
FIXTURES = Path(__file__).parent / "fixtures"
NAMES = ["tf_sg2_32", "tf_sg2ada_cond32"]
ATOL = 1e-4


def reference(name: str) -> dict:
    return torch.load(FIXTURES / f"{name}.pt", weights_only=True)


@pytest.mark.parametrize("name", NAMES)
def test_outputs_equal_legacy_conversion_and_nothing_runs(name, sentinel):
    ref = reference(name)
    nets = load_networks(FIXTURES / f"{name}.pkl")
    assert set(nets) == {"G", "D", "G_ema"}
    G, D = nets["G_ema"], nets["D"]
    assert G.init_kwargs == ref["G_init_kwargs"]  # the settings legacy.py derives, exactly
    out, z, c = ref["outputs"], ref["z"], ref["c"]
    with torch.no_grad():
        torch.testing.assert_close(G.mapping(z, c), out["ws"], atol=ATOL, rtol=0)
        torch.testing.assert_close(G.mapping(z, c, truncation_psi=0.7), out["ws_psi0.7"], atol=ATOL, rtol=0)
        torch.testing.assert_close(G.synthesis(out["ws"], noise_mode="const"), out["img_const"], atol=ATOL, rtol=0)
        torch.testing.assert_close(G.synthesis(out["ws"], noise_mode="none"), out["img_none"], atol=ATOL, rtol=0)
        crossover = int(out["mix_crossover"])
        ws_mix = torch.cat([out["ws"][:1, :crossover], out["ws"][1:2, crossover:]], dim=1)
        torch.testing.assert_close(ws_mix, out["ws_mix"], atol=ATOL, rtol=0)
        torch.testing.assert_close(G.synthesis(ws_mix, noise_mode="const"), out["img_mix_const"], atol=ATOL, rtol=0)
        torch.testing.assert_close(D(out["img_const"], c), out["d_logits_img_const"], atol=ATOL, rtol=0)
    assert not sentinel.exists()


def test_formats_are_named_and_gs_is_the_inference_generator(tmp_path, sentinel):
    assert load_model(FIXTURES / "tf_sg2_32.pkl", device="cpu").info.format_name == "NVlabs TensorFlow pickle (StyleGAN2)"
    info = load_model(FIXTURES / "tf_sg2ada_cond32.pkl", device="cpu").info
    assert (info.format_name, info.c_dim, info.networks) == ("NVlabs TensorFlow pickle (StyleGAN2-ADA)", 4, ("G", "D", "G_ema"))
    # A G and a Gs with different weights (a real snapshot): load_model returns Gs.
    nets = load_networks(FIXTURES / "tf_sg2_32.pkl")
    Gs = Generator(**nets["G"].init_kwargs["synthesis_kwargs"], **{k: v for k, v in nets["G"].init_kwargs.items() if k != "synthesis_kwargs"})
    Gs.load_state_dict(nets["G"].state_dict())
    with torch.no_grad():
        Gs.mapping.fc0.weight.mul_(-1)
    static = reference("tf_sg2_32")
    path = tmp_path / "snapshot.pkl"
    path.write_bytes(tf.dumps(tf.tf_networks(nets["G"], nets["D"], static["tf_static_kwargs_G"], static["tf_static_kwargs_D"],
                                             Gs=Gs, version=5, synthesis_func="G_synthesis", discriminator_func="D_main")))
    G = load_model(path, device="cpu")
    assert G.info.format == "nvlabs-tf-stylegan2-ada"  # version 5, ADA build functions
    assert torch.equal(G.mapping.fc0.weight, Gs.mapping.fc0.weight)
    assert not torch.equal(load_networks(path)["G"].mapping.fc0.weight, Gs.mapping.fc0.weight)
    assert not sentinel.exists()


def test_a_naive_unpickle_runs_the_embedded_code(tmp_path, sentinel):
    """What the checks above guard against: the real Network class exec()s build_module_src."""
    stubs = tmp_path / "stubs" / "dnnlib" / "tflib"
    stubs.mkdir(parents=True)
    (stubs.parent / "__init__.py").write_text("")
    (stubs / "__init__.py").write_text("")
    (stubs / "network.py").write_text(textwrap.dedent("""
        class Network:
            def __setstate__(self, state):
                exec(compile(state['build_module_src'], 'embedded', 'exec'), {})  # as tflib does
    """))
    code = "import pickle, sys; pickle.load(open(sys.argv[1], 'rb'))"
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "stubs"))
    result = subprocess.run([sys.executable, "-c", code, str(FIXTURES / "tf_sg2_32.pkl")], env=env, capture_output=True, text=True)
    assert result.returncode != 0 and sentinel.exists()


# Other sizes: 512-dim latents, 8 mapping layers, more resolutions, the other architectures.
SIZES = [
    pytest.param(dict(resolution=64, latent_size=512, dlatent_size=512, mapping_layers=8, fmap_base=1024, fmap_max=128,
                      label_size=3, num_fp16_res=2, conv_clamp=256),
                 dict(z_dim=512, w_dim=512, c_dim=3, img_resolution=64, channel_base=2048, channel_max=128, num_fp16_res=2,
                      conv_clamp=256, mapping_kwargs=dict(num_layers=8)),
                 dict(mapping_layers=2, mbstd_group_size=4),
                 dict(c_dim=3, img_resolution=64, channel_base=2048, channel_max=128, num_fp16_res=2, conv_clamp=256,
                      mapping_kwargs=dict(num_layers=2, lr_multiplier=0.1), epilogue_kwargs=dict(mbstd_group_size=4)),
                 id="z512-8mlp-64px-conditional-fp16-clamp"),
    # TF's own defaults where NVlabs' differ: labels embedded to latent_size features, the
    # discriminator's label map nf(0) wide.
    pytest.param(dict(resolution=128, latent_size=32, dlatent_size=48, mapping_layers=3, fmap_base=256, fmap_max=256,
                      architecture="resnet", label_size=2),
                 dict(z_dim=32, w_dim=48, c_dim=2, img_resolution=128, channel_base=512, channel_max=256, conv_clamp=None,
                      num_fp16_res=0, architecture="resnet", mapping_kwargs=dict(num_layers=3, embed_features=32)),
                 dict(architecture="skip"),
                 dict(c_dim=2, img_resolution=128, channel_base=512, channel_max=256, num_fp16_res=0, conv_clamp=None,
                      architecture="skip", cmap_dim=256, mapping_kwargs=dict(num_layers=0),
                      epilogue_kwargs=dict(mbstd_group_size=None)),
                 id="config-e-Gresnet-Dskip-128px"),
]


@pytest.mark.parametrize("G_static, G_kwargs, D_static, D_kwargs", SIZES)
def test_other_sizes_load_and_match(tmp_path, sentinel, G_static, G_kwargs, D_static, D_kwargs):
    G = tf.randomised(Generator(img_channels=3, **G_kwargs), seed=0)
    D = tf.randomised(Discriminator(img_channels=3, **D_kwargs), seed=1)
    shared = ("resolution", "label_size", "fmap_base", "fmap_max", "num_fp16_res", "conv_clamp")
    D_static = {**{k: v for k, v in G_static.items() if k in shared}, **D_static}
    path = tmp_path / "other.pkl"
    path.write_bytes(tf.dumps(tf.tf_networks(G, D, G_static, D_static)))
    nets = load_networks(path)
    z = torch.randn([2, G.z_dim], generator=torch.Generator().manual_seed(2))
    c = torch.eye(G.c_dim)[[0, 1]]
    with torch.no_grad():
        expected = G(z, c, truncation_psi=0.6, noise_mode="const")
        scale = expected.abs().max()
        torch.testing.assert_close(nets["G_ema"](z, c, truncation_psi=0.6, noise_mode="const"), expected, atol=1e-5 * scale, rtol=0)
        images = torch.randn([4, 3, G.img_resolution, G.img_resolution])
        labels = torch.eye(G.c_dim)[[0, 1, 1, 0]]
        torch.testing.assert_close(nets["D"](images, labels), D(images, labels), atol=1e-4, rtol=1e-4)
    assert not sentinel.exists()


# -- unsupported and hostile files ----------------------------------------------------------------


def _fixture_states() -> tuple[dict, dict, dict]:
    nets = load_networks(FIXTURES / "tf_sg2_32.pkl")
    static = reference("tf_sg2_32")
    return tf.tf_networks(nets["G"], nets["D"], static["tf_static_kwargs_G"], static["tf_static_kwargs_D"])


class _Forged:
    """Pickles as ``numpy.dtype('f4')`` whose BUILD state declares a field far outside it."""

    def __reduce__(self):
        return (np.dtype, ("f4", False, True), (3, "|", None, ("a",), {"a": (np.dtype("f8"), 1 << 24)}, 8, 1, 16))


class _ForgedArray:
    """Pickles as the 64 biases of a layer, of the forged dtype (256 bytes, as its itemsize says)."""

    def __reduce__(self):
        return (np.ndarray.__reduce__(np.zeros(1))[0], (np.ndarray, (0,), b"b"), (1, (64,), _Forged(), False, b"\0" * 256))


class _Call:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _set_variable(state: dict, name: str, value) -> None:
    state["variables"] = [(n, value if n == name else v) for n, v in state["variables"]]


def _synthesis_variable(name: str, value):
    return lambda G, D, Gs: _set_variable(Gs["components"]["synthesis"], name, value)


def _without_noise3(G, D, Gs):
    synthesis = Gs["components"]["synthesis"]
    synthesis["variables"] = [(n, v) for n, v in synthesis["variables"] if n != "noise3"]


def _pickled(change) -> bytes:
    """The tf_sg2_32 network states with ``change(G, D, Gs)`` applied (or returned), pickled."""
    G, D, Gs = _fixture_states()
    result = change(G, D, Gs)
    return tf.dumps(result if result is not None else (G, D, Gs))


def _self_referencing() -> bytes:
    G, D, Gs = (tf.Network(state) for state in _fixture_states())
    Gs._state["components"]["synthesis"]._state["components"] = {"loop": Gs}
    return tf.dumps((G, D, Gs))


BAD = {
    # unsupported networks and inconsistent files
    "config_a_to_d": (lambda G, D, Gs: G["components"]["synthesis"].update(build_func_name="G_synthesis_stylegan_revised"),
                      "G/synthesis is built by 'G_synthesis_stylegan_revised' (a StyleGAN2 config A-D network, grown progressively)"),
    "config_a_to_d_D": (lambda G, D, Gs: D.update(build_func_name="D_stylegan"), "config A-D discriminator"),
    "stylegan1": (lambda G, D, Gs: G.update(build_func_name="G_style"), "StyleGAN (version 1)"),
    "unknown_setting": (lambda G, D, Gs: Gs["static_kwargs"].update(fmap_decay=0.5), "does not know: fmap_decay"),
    "old_version": (lambda G, D, Gs: D.update(version=3), "version 3 TensorFlow network"),
    "not_a_triple": (lambda G, D, Gs: (G, D), "not a (G, D, Gs) network triple: found a 2-tuple"),
    "missing_variable": (_without_noise3, "synthesis.b16.conv0.noise_const is missing"),
    "wrong_shape": (_synthesis_variable("8x8/Conv1/bias", np.zeros(7, np.float32)), "synthesis.b8.conv1.bias has shape [7]"),
    # hostile contents
    "os_system": (_synthesis_variable("8x8/Conv1/bias", _Call()), "posix.system"),
    "object_array": (_synthesis_variable("8x8/Conv1/bias", np.array([1.0, "x"], dtype=object)), "object"),
    "integer_array": (_synthesis_variable("8x8/Conv1/bias", np.zeros(64, np.int64)), "not a floating-point array"),
    "variables_not_a_list": (lambda G, D, Gs: Gs.update(variables={"dlatent_avg": 1}), "variables is dict, expected list"),
    "variable_not_a_pair": (lambda G, D, Gs: Gs.update(variables=[("dlatent_avg",)]), "not a (name, array) pair"),
    "variable_name_not_str": (lambda G, D, Gs: Gs.update(variables=[(7, np.zeros(2, np.float32))]), "not a (name, array) pair"),
    "setting_of_wrong_type": (lambda G, D, Gs: Gs["static_kwargs"].update(resolution="32"), "resolution='32' has the wrong type"),
    "bool_for_int": (lambda G, D, Gs: D["static_kwargs"].update(fmap_max=True), "fmap_max=True has the wrong type"),
    "version_not_int": (lambda G, D, Gs: Gs.update(version="4"), "version is str, expected int"),
    "components_not_dict": (lambda G, D, Gs: Gs.update(components=[1, 2]), "components is list, expected dict"),
    "component_not_network": (lambda G, D, Gs: Gs["components"].update(mapping=[1]), "Gs/mapping is list, not a TensorFlow network"),
}


@pytest.mark.parametrize("name", [*BAD, "self_referencing", "truncated"])
def test_unsupported_and_hostile_pickles_are_one_line_errors(tmp_path, sentinel, name):
    if name == "self_referencing":
        data, expected = _self_referencing(), "inside another"
    elif name == "truncated":
        whole = (FIXTURES / "tf_sg2_32.pkl").read_bytes()
        data, expected = whole[: len(whole) // 3], "truncated or corrupt"
    else:
        change, expected = BAD[name]
        data = _pickled(change)
    path = tmp_path / f"{name}.pkl"
    path.write_bytes(data)
    with pytest.raises(ModelLoadError) as caught:
        load_model(path, device="cpu")
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and expected in message, message
    assert not sentinel.exists()


def test_forged_dtype_is_a_one_line_error(tmp_path, sentinel):
    """A dtype whose pickled state puts a field outside the array: loaded in a child process,
    so that a loader which trusted it would show up as a crash, not take the tests down."""
    path = tmp_path / "forged.pkl"
    path.write_bytes(_pickled(_synthesis_variable("8x8/Conv1/bias", _ForgedArray())))
    code = ("import sys\nfrom latentstudio.io import ModelLoadError, load_model\n"
            "try:\n    load_model(sys.argv[1], device='cpu')\nexcept ModelLoadError as e:\n    print('ERROR', e)\n")
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ERROR {path}") and "dtype" in lines[0], result.stdout
    assert not sentinel.exists()


# -- everywhere a model is accepted ----------------------------------------------------------------


def test_info_render_and_convert_from_the_command_line(tmp_path, capsys, sentinel):
    assert main(["info", str(FIXTURES / "tf_sg2ada_cond32.pkl")]) == 0
    assert "NVlabs TensorFlow pickle (StyleGAN2-ADA)" in capsys.readouterr().out
    assert main(["render", str(FIXTURES / "tf_sg2ada_cond32.pkl"), "--seeds", "0-3", "--class", "2", "--outdir", str(tmp_path / "png")]) == 0
    assert len(list((tmp_path / "png").glob("*.png"))) == 4
    assert not sentinel.exists()


@pytest.mark.parametrize("name", NAMES)
def test_convert_then_load_gives_identical_images(tmp_path, name, sentinel):
    out = tmp_path / f"{name}.safetensors"
    assert main(["convert", str(FIXTURES / f"{name}.pkl"), str(out), "--all"]) == 0
    native, original = load_networks(out), load_networks(FIXTURES / f"{name}.pkl")
    assert set(native) == set(original) == {"G", "D", "G_ema"}
    G = native["G_ema"]
    z, c = torch.randn([2, G.z_dim]), torch.eye(max(G.c_dim, 1))[:2, : G.c_dim]
    with torch.no_grad():
        for key in ("G", "G_ema"):
            assert torch.equal(native[key](z, c, truncation_psi=0.7, noise_mode="const"),
                               original[key](z, c, truncation_psi=0.7, noise_mode="const"))
    assert load_model(out, device="cpu").info.provenance["source_format"] == load_model(FIXTURES / f"{name}.pkl", device="cpu").info.format
    assert not sentinel.exists()


def test_train_init_fine_tunes_from_a_tf_pickle(tmp_path, sentinel):
    from test_train import make_image_folder

    data = make_image_folder(tmp_path / "images", count=8, broken=False)
    out = tmp_path / "tuned"
    assert main(["train", "--data", str(data), "--res", "32", "--outdir", str(out), "--kimg", "0.008", "--batch", "8",
                 "--init", str(FIXTURES / "tf_sg2_32.pkl"), "--device", "cpu", "--workers", "0"]) == 0
    original, tuned = load_networks(FIXTURES / "tf_sg2_32.pkl"), load_networks(out / "network-snapshot-000001.safetensors")
    for name, weight in (("G", "synthesis.b32.conv1.weight"), ("D", "b32.conv0.weight")):
        before, after = original[name].state_dict()[weight], tuned[name].state_dict()[weight]
        torch.testing.assert_close(after, before, atol=0.05, rtol=0)
        assert not torch.equal(after, before)
    assert not sentinel.exists()
