"""Training from a teacher: the DCGAN reader (safe, checked), teacher images drawn on the fly,
distillation pairs, the r3gan loss, and the options that select them."""
from __future__ import annotations

import importlib.util
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from latentstudio.cli import build_parser, main
from latentstudio.data.errors import DatasetError
from latentstudio.io import load_networks
from latentstudio.io.dcgan import read_dcgan
from latentstudio.io.errors import ModelLoadError
from latentstudio.nets.dcgan import DCGANGenerator
from latentstudio.train import losses
from latentstudio.train.command import TrainUsageError, options_from_args
from latentstudio.train.config import TrainOptions
from latentstudio.train.run import train
from latentstudio.train.stats import read_stats
from latentstudio.train.teacher import TeacherData, load_teacher

import hostile_cases  # noqa: E402 - the tests folder is on sys.path (as for the other hostile-file tests)
from load_runner import TEACHER_OPERATION, run_cases  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
Z_DIM = 8


def small_dcgan(seed: int = 0) -> DCGANGenerator:
    """A random DCGAN with 2 features (8 channels at 4x4) and batch-norm statistics that matter."""
    torch.manual_seed(seed)
    network = DCGANGenerator(z_dim=Z_DIM, features=2)
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
    return network


@pytest.fixture
def teacher_file(tmp_path) -> Path:
    path = tmp_path / "weights.tar"
    torch.save({"netG_state_dict": small_dcgan().state_dict()}, path)  # as the DCGAN tutorial saves it
    return path


def test_a_dcgan_checkpoint_reads_back_as_the_same_function(teacher_file):
    reference = small_dcgan()
    loaded = read_dcgan(teacher_file)
    z = torch.randn(5, Z_DIM)
    assert (loaded.z_dim, loaded.features, loaded.img_resolution) == (Z_DIM, 2, 64)
    assert torch.equal(loaded(z), reference(z))
    loaded.train()  # a teacher never switches its batch norm to batch statistics
    assert not loaded.training and torch.equal(loaded(z[:1]), reference(z[:1]))


@pytest.mark.skipif(importlib.util.find_spec("gan_face_generate") is None, reason="gan-face-generate is not installed")
def test_the_packaged_teacher_equals_its_own_code():
    from importlib.resources import files

    from gan_face_generate.models import Generator

    original = Generator(0, 3, 100, 64).eval()
    state = torch.load(str(files("gan_face_generate") / "weights.tar"), map_location="cpu", weights_only=True)
    original.load_state_dict(state["netG_state_dict"])
    ours = load_teacher("gan-face-generate")
    z = torch.randn(3, 100)
    with torch.no_grad():
        assert torch.allclose(ours(z), original(z.reshape(3, 100, 1, 1)), atol=1e-6)


def _saved(folder: Path, data) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "teacher.tar"
    torch.save(data, path)
    return path


def test_unusable_teacher_files_are_one_line_errors_and_run_nothing(tmp_path, sentinel):
    state = small_dcgan().state_dict()
    wrong_shape = dict(state, **{"main.3.weight": torch.zeros(3, 3, 4, 4)})
    missing = {k: v for k, v in state.items() if k != "main.4.bias"}
    nan = dict(state, **{"main.6.weight": torch.full_like(state["main.6.weight"], float("nan"))})
    cases = {
        "wrong shape": (_saved(tmp_path / "a", {"netG_state_dict": wrong_shape}), "main.3.weight is"),
        "missing weight": (_saved(tmp_path / "b", missing), "missing main.4.bias"),
        "NaN": (_saved(tmp_path / "c", {"netG_state_dict": nan}), "NaN"),
        "not a dict": (_saved(tmp_path / "d", [1, 2, 3]), "not a DCGAN checkpoint"),
        "folder": (tmp_path, "a folder"),
    }
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "code.tar").write_bytes(b"not a zip at all")
    cases["garbage"] = (tmp_path / "e" / "code.tar", "not a readable PyTorch checkpoint")
    for name, (path, words) in cases.items():
        with pytest.raises(ModelLoadError) as caught:
            read_dcgan(path)
        message = str(caught.value)
        assert words in message and "\n" not in message, (name, message)

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {sentinel}",)

    path = tmp_path / "evil.tar"
    torch.save({"netG_state_dict": state, "extra": Evil()}, path)
    with pytest.raises(ModelLoadError, match="posix.system, which is not on latentstudio.s allow-list"):
        read_dcgan(path)
    assert not sentinel.exists()
    with pytest.raises(DatasetError, match="--teacher"):
        load_teacher(str(tmp_path / "nothing-here.tar"))


def _with_pickle(source: Path, path: Path, program: bytes) -> Path:
    """``source`` (a torch zip) with its data.pkl replaced by ``program``, stored as torch stores it."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as forged:
        for info in original.infolist():
            forged.writestr(info, program if info.filename.endswith("/data.pkl") else original.read(info))
    return path


def test_hostile_teacher_pickles_are_refused_under_a_memory_cap_and_a_timeout(teacher_file, tmp_path):
    """The teacher reader is the model loader's bounded torch-zip reader: DAGs, deep nesting and
    memo abuse in data.pkl are one-line errors in a child process with an address-space limit and
    an alarm, never a crash, a hang or a memory blow-up; the intact file loads there too."""
    programs = {"dag": hostile_cases.dag(40), "deep-key": hostile_cases.deep_tuple_key(100_000),
                "deep-lists": hostile_cases.deep_lists(100_000), "memo": hostile_cases.memo_abuse()}
    cases = [{"path": str(teacher_file), "op": TEACHER_OPERATION}]
    cases += [{"path": str(_with_pickle(teacher_file, tmp_path / f"{name}.tar", program)), "op": TEACHER_OPERATION}
              for name, program in programs.items()]
    results = run_cases(cases, seconds_per_case=20, extra_memory_mb=512)
    assert results[0]["status"] == "loaded", results[0]
    for result in results[1:]:
        assert result["status"] == "error" and result["type"] == "ModelLoadError", result
        assert "\n" not in result["message"] and result["length"] <= 300, result


def test_teacher_latents_are_a_function_of_seed_and_step_and_shared_between_processes(teacher_file):
    data = TeacherData(read_dcgan(teacher_file), resolution=16, seed=3)
    first = data.latents(step=5, batch=8)
    assert torch.equal(first, data.latents(step=5, batch=8))
    assert not torch.equal(first, data.latents(step=6, batch=8))
    assert not torch.equal(first, TeacherData(data.teacher, 16, seed=4).latents(step=5, batch=8))
    halves = torch.cat([data.latents(5, 8, rank=r, world_size=2) for r in range(2)])
    assert torch.equal(halves, first)
    images = data.images(first)
    assert images.dtype == torch.uint8 and images.shape == (8, 3, 16, 16)
    full = TeacherData(data.teacher, 64, seed=3).images(first).float()
    assert torch.allclose(images.float(), torch.nn.functional.avg_pool2d(full, 4), atol=1.0)  # area-downsampled
    batches = data.batches(start_step=5, batch=8)
    real, labels, z = next(batches)
    assert torch.equal(z, first) and torch.equal(real, images) and labels.shape == (8, 0)
    held_out = data.samples(10, chunk=4)
    assert held_out.shape == (10, 16, 16, 3) and held_out.dtype == np.uint8
    with pytest.raises(DatasetError, match="64x64"):
        TeacherData(data.teacher, 128, seed=0)


def test_reconstruction_losses():
    a = torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.equal(losses.reconstruction_loss("l1", a, a), torch.zeros(2))
    assert torch.equal(losses.reconstruction_loss("pyramid", a, a), torch.zeros(2))
    shifted = a + 0.25  # a constant offset is the same at every scale: 4 scales x 0.25
    assert torch.allclose(losses.reconstruction_loss("l1", shifted, a), torch.full([2], 0.25))
    assert torch.allclose(losses.reconstruction_loss("pyramid", shifted, a), torch.full([2], 1.0))
    noise = torch.randn(2, 3, 16, 16)  # high frequencies fade at coarse scales
    assert (losses.reconstruction_loss("pyramid", a + noise, a) < 4 * losses.reconstruction_loss("l1", a + noise, a)).all()


def test_r3gan_pairs_each_fake_with_a_real():
    real, fake = torch.tensor([[2.0], [0.0]]), torch.tensor([[1.0], [0.5]])
    assert torch.allclose(losses.discriminator_loss("r3gan", real, fake), torch.nn.functional.softplus(torch.tensor([-1.0, 0.5])))
    assert torch.allclose(losses.generator_loss("r3gan", fake, real), torch.nn.functional.softplus(torch.tensor([1.0, -0.5])))
    with pytest.raises(ValueError, match="real_logits"):
        losses.generator_loss("r3gan", fake)


def _teacher_options(teacher: Path, outdir: Path, **overrides) -> TrainOptions:
    values = dict(data="teacher", teacher=str(teacher), outdir=str(outdir), resolution=16, cfg="tiny", batch=8,
                  kimg=0.4, tick=0.08, snap=1.0, workers=0, device="cpu", seed=1, augment="none")
    values.update(overrides)
    return TrainOptions(**values)


def test_distillation_pulls_the_student_towards_the_teacher(teacher_file, tmp_path):
    """Pure distillation (no adversarial term): the reconstruction loss falls, the student takes
    the teacher's z size, and D is still trained (the shipped file keeps a usable D)."""
    options = _teacher_options(teacher_file, tmp_path / "run", distill=1.0, adversarial=0.0, lr_g=0.01)
    trainer = train(options, progress=False, log=lambda line: None)
    assert trainer.G.z_dim == Z_DIM
    records, _ = read_stats(tmp_path / "run" / "stats.jsonl")
    distill = [r["distill"] for r in records]
    assert all(r["G_loss"] is None and r["D_loss"] is not None for r in records)
    assert distill[-1] < 0.6 * distill[0], distill
    networks = load_networks(next((tmp_path / "run").glob("network-snapshot-*.safetensors")))
    assert set(networks) == {"G", "D", "G_ema"} and networks["G_ema"].z_dim == Z_DIM
    assert (tmp_path / "run" / "reals.png").exists()


def test_a_teacher_run_with_r3gan_resumes_exactly(teacher_file, tmp_path):
    """Teacher images on the fly, distillation and the adversarial r3gan loss with R1 and R2:
    stopping after 4 steps and resuming gives the weights of the uninterrupted 8-step run."""
    common = dict(loss="r3gan", distill=0.5, kimg=0.064, tick=0.032, r1_interval=2, gamma=0.5)
    straight = train(_teacher_options(teacher_file, tmp_path / "straight", **common), progress=False, log=lambda line: None)
    train(_teacher_options(teacher_file, tmp_path / "split", **dict(common, kimg=0.032)), progress=False, log=lambda line: None)
    resumed = train(_teacher_options(teacher_file, tmp_path / "split", **common), resume=tmp_path / "split",
                    progress=False, log=lambda line: None)
    assert straight.step == resumed.step == 8
    for (name, a), b in zip(straight.G.state_dict().items(), resumed.G.state_dict().values()):
        assert torch.equal(a, b), name
    records, _ = read_stats(tmp_path / "straight" / "stats.jsonl")
    assert all(r["R2"] is not None and r["R1"] is not None and r["G_loss"] is not None for r in records)


def test_teacher_options_on_the_command_line(teacher_file, tmp_path, capsys):
    parse = lambda *extra: options_from_args(build_parser().parse_args(["train", "--outdir", str(tmp_path / "o"), *extra]))
    options = parse("--teacher", str(teacher_file), "--distill", "2", "--distill-loss", "l1", "--adversarial", "0.5",
                    "--ema-kimg", "5")
    assert (options.data, options.distill, options.distill_loss, options.adversarial) == ("teacher", 2.0, "l1", 0.5)
    assert options.ema_half_life_kimg == 5.0
    with pytest.raises(TrainUsageError, match="--teacher"):
        parse("--data", "portraits", "--distill", "1")
    with pytest.raises(TrainUsageError, match="not both 0"):
        parse("--teacher", str(teacher_file), "--adversarial", "0")
    with pytest.raises(SystemExit):
        parse("--teacher", str(teacher_file), "--distill-loss", "l7")
    # A wrong --z-dim, or --data teacher without a teacher, fails before training with one line.
    code = main(["train", "--teacher", str(teacher_file), "--distill", "1", "--z-dim", "5", "--res", "16",
                 "--cfg", "tiny", "--outdir", str(tmp_path / "z")])
    assert code != 0 and f"--z-dim must be {Z_DIM}, not 5" in capsys.readouterr().err
    assert main(["train", "--data", "teacher", "--res", "16", "--outdir", str(tmp_path / "t")]) != 0
    assert "the images come from --teacher" in capsys.readouterr().err
    assert not (tmp_path / "z" / "stats.jsonl").exists()
