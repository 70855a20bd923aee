"""The trainer: tiny real runs on the CPU (16x16, a few steps), exact resume after SIGKILL,
broken images skipped and counted, DDP with two gloo processes."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from latentstudio.cli import build_parser, main
from latentstudio.train.command import options_from_args
from latentstudio.data.errors import DatasetError
from latentstudio.io import load_model, load_networks
from latentstudio.train import augment, losses
from latentstudio.train.checkpoints import find_checkpoint, load_state
from latentstudio.train.config import TrainOptions
from latentstudio.train.data import batch_indices
from latentstudio.train.loop import Trainer
from latentstudio.train.run import train
from latentstudio.train.stats import read_stats

RES = 16
LOSS_KEYS = ("G_loss", "D_loss", "D_real_acc", "D_fake_acc", "R1", "PL", "augment_p")


pytestmark = pytest.mark.usefixtures("one_thread")


def make_image_folder(root: Path, count: int = 24, broken: bool = True) -> Path:
    """``count`` small PNGs (coloured discs on gradients), plus a truncated PNG and a fake JPEG."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:24, 0:24]
    for i in range(count):
        image = np.zeros((24, 24, 3), dtype=np.uint8)
        image[...] = (xx[..., None] * 10 + rng.integers(0, 60, 3)).clip(0, 255)
        cy, cx, r = rng.integers(6, 18, 2).tolist() + [int(rng.integers(3, 7))]
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.integers(0, 255, 3)
        Image.fromarray(image).save(root / f"img{i:03d}.png")
    if broken:
        data = (root / "img000.png").read_bytes()
        (root / "truncated.png").write_bytes(data[: len(data) // 2])
        (root / "not_really.jpg").write_bytes(b"this is not a JPEG file at all")
    return root


def tiny_options(data: Path, outdir: Path, **overrides) -> TrainOptions:
    values = dict(data=str(data), outdir=str(outdir), resolution=RES, cfg="tiny", batch=8, kimg=0.032,
                  tick=0.016, snap=1.0, workers=0, device="cpu", seed=3)
    values.update(overrides)
    return TrainOptions(**values)


def stats_by_step(run_dir: Path) -> dict[int, dict]:
    records, _ = read_stats(run_dir / "stats.jsonl")
    return {r["step"]: r for r in records}


def test_tiny_run_writes_stats_checkpoint_and_sample_grid(tmp_path):
    data = make_image_folder(tmp_path / "images")
    run_dir = tmp_path / "run"
    trainer = train(tiny_options(data, run_dir, pl_weight=2.0, label_smoothing=0.9), progress=False)

    assert trainer.step == 4
    records = list(stats_by_step(run_dir).values())
    assert [r["step"] for r in records] == [2, 4]
    for record in records:
        for key in ("G_loss", "D_loss", "D_real_acc", "D_fake_acc", "lr_G", "lr_D", "img_per_s", "sec_per_kimg"):
            assert math.isfinite(record[key]), (key, record)
    assert math.isfinite(records[0]["R1"]) and math.isfinite(records[0]["PL"])  # both ran at step 0

    network_path, state_path = find_checkpoint(run_dir)
    assert network_path.name == "network-snapshot-000004.safetensors"
    G = load_model(network_path, device="cpu")
    assert G.img_resolution == RES and set(G.info.networks) == {"G", "D", "G_ema"}
    with torch.no_grad():
        assert torch.isfinite(G(torch.randn(2, G.z_dim), None)).all()
    state = load_state(state_path)
    assert state["step"] == 4 and state["images_seen"] == 32

    grid = Image.open(run_dir / "fakes000004.png")
    assert grid.size == (8 * RES, 4 * RES)
    assert np.asarray(grid).std() > 1  # an image, not a blank
    assert (run_dir / "reals.png").exists() and (run_dir / "fakes000000.png").exists()

    summary = json.loads((run_dir / "run.json").read_text())
    assert summary["images"] == 24
    assert sorted(s["name"] for s in summary["skipped"]) == ["not_really.jpg", "truncated.png"]


def test_the_cli_runs_wgan_gp_and_hinge_and_reports_broken_images(tmp_path, capsys):
    data = make_image_folder(tmp_path / "images")
    for loss in ("wgan-gp", "hinge"):
        run_dir = tmp_path / loss
        status = main(["train", "--data", str(data), "--res", str(RES), "--cfg", "tiny", "--batch", "8",
                       "--kimg", "0.016", "--tick", "0.016", "--outdir", str(run_dir), "--loss", loss,
                       "--workers", "0", "--device", "cpu", "--augment", "fixed", "--augment-p", "0.5", "--events"])
        assert status == 0
        (record,) = stats_by_step(run_dir).values()
        assert math.isfinite(record["G_loss"]) and math.isfinite(record["D_loss"])
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["event"] for e in events if e["event"] in ("start", "done")] == ["start", "done"] * 2
    assert events[0]["skipped"] == 2 and events[0]["images"] == 24
    snapshot = [e for e in events if e["event"] == "snapshot" and e["checkpoint"]][-1]
    assert Path(snapshot["checkpoint"]).exists() and Path(snapshot["grid"]).exists()
    assert "2 unreadable file(s) skipped" in err


def test_unusable_data_is_an_error_before_training(tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DatasetError):
        train(tiny_options(broken, tmp_path / "run"), progress=False)
    status = main(["train", "--data", str(tmp_path / "missing"), "--outdir", str(tmp_path / "run2"), "--device", "cpu"])
    assert status == 2
    assert "missing" in capsys.readouterr().err
    assert not (tmp_path / "run2" / "stats.jsonl").exists()


def _train_command(data: Path, run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "latentstudio.train", "--data", str(data), "--res", str(RES), "--cfg", "tiny",
            "--batch", "8", "--kimg", "0.064", "--tick", "0.008", "--snap", "0.016", "--keep", "2",
            "--pl-weight", "2", "--augment", "ada", "--augment-p", "0.3", "--seed", "5", "--workers", "0",
            "--device", "cpu", "--outdir", str(run_dir)]


def test_a_killed_run_resumes_exactly(tmp_path):
    """SIGKILL after a checkpoint, resume in a new process: the losses of every later step equal
    those of the uninterrupted run."""
    data = make_image_folder(tmp_path / "images", count=12, broken=False)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    command = _train_command(data, killed)

    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (killed / "training-state-000004.pt").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read().decode()
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    _, state_path = find_checkpoint(killed)
    resumed_from = load_state(state_path)["step"]
    assert 4 <= resumed_from < 8

    # The same run without interruption, and the resumed one, here (also one thread, also the CPU).
    args = build_parser().parse_args(["train", *command[3:]])
    train(dataclasses.replace(options_from_args(args), outdir=str(straight)), progress=False)
    assert main(["train", "--resume", str(killed)]) == 0
    expected, got = stats_by_step(straight), stats_by_step(killed)
    assert sorted(got) == sorted(expected) == list(range(1, 9))  # no duplicate or missing ticks
    for step in range(resumed_from + 1, 9):
        assert {k: got[step][k] for k in LOSS_KEYS} == {k: expected[step][k] for k in LOSS_KEYS}, step
    final_straight = load_networks(straight / "network-snapshot-000008.safetensors")
    final_resumed = load_networks(killed / "network-snapshot-000008.safetensors")
    for name in ("G", "D", "G_ema"):
        for (key, a), b in zip(final_straight[name].state_dict().items(), final_resumed[name].state_dict().values()):
            assert torch.equal(a, b), (name, key)
    assert len(list(killed.glob("training-state-*.pt"))) == 2  # --keep 2


def _ddp_worker(options: TrainOptions, out_dir: str) -> None:
    from latentstudio.train.distributed import process_info_from_env, shutdown

    try:
        trainer = train(options, progress=False)
        rank = process_info_from_env().rank
        parameters = {name: dict(getattr(trainer, name).named_parameters()) for name in ("G", "D")}
        torch.save(parameters, Path(out_dir) / f"rank{rank}.pt")
    finally:
        shutdown()


def test_ddp_two_gloo_processes_keep_identical_replicas(tmp_path):
    from latentstudio.train.distributed import spawn

    data = make_image_folder(tmp_path / "images", count=16, broken=False)
    options = tiny_options(data, tmp_path / "run", kimg=0.032, tick=0.016, pl_weight=2.0, augment_p=0.2)
    spawn(_ddp_worker, 2, (options, str(tmp_path)))
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    initial = Trainer(options, 0, torch.device("cpu"))
    moved = False
    for name in ("G", "D"):
        for key, value in rank0[name].items():
            assert torch.equal(value, rank1[name][key]), (name, key)
            moved |= not torch.equal(value, dict(getattr(initial, name).named_parameters())[key])
    assert moved  # the replicas trained, and stayed in step
    assert len(stats_by_step(tmp_path / "run")) == 2


def test_init_fine_tunes_from_an_existing_model(tmp_path):
    data = make_image_folder(tmp_path / "images", count=8, broken=False)
    train(tiny_options(data, tmp_path / "base", kimg=0.008, tick=0.008), progress=False)
    model = tmp_path / "base" / "network-snapshot-000001.safetensors"
    networks = load_networks(model)
    trainer = Trainer(tiny_options(data, tmp_path / "tuned"), 0, torch.device("cpu"), init_networks=networks)
    for name in ("G", "D", "G_ema"):
        for key, value in networks[name].state_dict().items():
            assert torch.equal(getattr(trainer, name).state_dict()[key], value), (name, key)
    with pytest.raises(ValueError, match="resolution"):
        Trainer(tiny_options(data, tmp_path / "x", resolution=32), 0, torch.device("cpu"), init_networks=networks)


def test_data_order_depends_only_on_seed_and_step():
    first = [batch_indices(7, step, 5, 12) for step in range(12)]
    again = [batch_indices(7, step, 5, 12) for step in range(12)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    seen = np.concatenate(first)[:12]  # the first epoch is a permutation
    assert sorted(seen.tolist()) == list(range(12))
    assert not np.array_equal(batch_indices(8, 0, 5, 12), first[0])


def test_losses_and_augmentation_behave():
    real, fake = torch.tensor([[3.0], [-1.0]]), torch.tensor([[-2.0], [0.5]])
    plain = losses.discriminator_loss("ns", real, fake)
    smoothed = losses.discriminator_loss("ns", real, fake, real_target=0.9)
    assert torch.allclose(plain, torch.nn.functional.softplus(-real.flatten()) + torch.nn.functional.softplus(fake.flatten()))
    assert smoothed[0] > plain[0]  # smoothing punishes an over-confident real
    assert torch.equal(losses.discriminator_loss("hinge", real, fake), torch.tensor([0.0, 3.5]))

    images = torch.rand(6, 3, 16, 16, requires_grad=True)
    assert torch.equal(augment.Augmenter("fixed", 0.0)(images), images)
    out = augment.Augmenter("fixed", 1.0)(images)
    assert out.shape == images.shape and not torch.equal(out, images)
    out.sum().backward()
    assert images.grad is not None and torch.isfinite(images.grad).all()
    shifted = augment.augment_translation(images.detach(), 1.0)
    assert shifted.abs().sum() <= images.detach().abs().sum() + 1e-4  # shifting only moves or drops pixels

    ada = augment.Augmenter("ada", 0.0, target=0.6, speed_kimg=0.1, adjust_interval=2)
    for _ in range(2):
        ada.observe(sign_sum=8.0, count=8, batch=8)  # D is sure every real is real: overfitting
    assert ada.p == pytest.approx(0.16)
    state = ada.state_dict()
    other = augment.Augmenter("ada")
    other.load_state_dict(state)
    assert other.state_dict() == state


def test_conditional_training_on_class_folders_and_portraits_drawn_on_the_fly(tmp_path):
    for label in ("cats", "dogs"):
        make_image_folder(tmp_path / "images" / label, count=4, broken=False)
    train(tiny_options(tmp_path / "images", tmp_path / "cond", cond=True, kimg=0.008, tick=0.008), progress=False)
    G = load_model(find_checkpoint(tmp_path / "cond")[0], device="cpu")
    assert G.c_dim == 2 and G.info.class_names == ("cats", "dogs")

    trainer = train(tiny_options("portraits", tmp_path / "faces", portraits=8, kimg=0.008, tick=0.008), progress=False)
    assert trainer.step == 1
    reals = np.asarray(Image.open(tmp_path / "faces" / "reals.png"))
    assert reals.shape == (RES, 8 * RES, 3) and reals.std() > 10  # 8 portraits, not blanks
    with pytest.raises(DatasetError, match="--cond"):
        train(tiny_options("portraits", tmp_path / "x", cond=True), progress=False)
