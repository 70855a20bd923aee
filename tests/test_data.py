"""Image folder / zip data sets: decoding every pixel format, labels, flips, broken files, writing."""
from __future__ import annotations

import argparse
import io
import json
import logging
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from latentstudio.cli import dataset as dataset_cli
from latentstudio.data.archive import DatasetZipWriter
from latentstudio.data.errors import DatasetError
from latentstudio.data.images import ImageDataset

RNG = np.random.default_rng(0)


def _noise(height: int, width: int, channels: int = 3) -> np.ndarray:
    return RNG.integers(0, 256, (height, width, channels), dtype=np.uint8)


def _png_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=options.pop("format", "PNG"), **options)
    return buffer.getvalue()


def _mixed_files() -> dict[str, bytes]:
    """Seven good images of different modes, sizes and formats, two broken ones, two ignored files."""
    palette = Image.fromarray(_noise(25, 25)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    sixteen_bit = Image.fromarray((np.arange(32 * 48).reshape(32, 48) * 40).astype(np.uint16))
    good = {
        "rgb.png": _png_bytes(Image.fromarray(_noise(30, 40))),
        "gray.png": _png_bytes(Image.fromarray(_noise(50, 30, 1)[..., 0], "L")),
        "rgba.png": _png_bytes(Image.fromarray(_noise(20, 20, 4), "RGBA")),
        "palette.png": _png_bytes(palette, transparency=0),
        "sub/wide16.png": _png_bytes(sixteen_bit),
        "sub/photo.jpg": _png_bytes(Image.fromarray(_noise(40, 50)), format="JPEG"),
        "sub/deeper/pic.webp": _png_bytes(Image.fromarray(_noise(33, 33)), format="WEBP"),
    }
    whole = _png_bytes(Image.fromarray(_noise(64, 64)))
    return {
        **good,
        "truncated.png": whole[: len(whole) // 2],
        "sub/noise.jpg": RNG.bytes(700),
        "notes.txt": b"not an image",
        ".hidden.png": whole,
    }


def _write_folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def _write_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


@pytest.fixture
def mixed_files() -> dict[str, bytes]:
    return _mixed_files()


@pytest.fixture
def mixed_folder(tmp_path: Path, mixed_files: dict[str, bytes]) -> Path:
    return _write_folder(tmp_path / "images", mixed_files)


def test_folder_decodes_every_mode_and_skips_broken_files(mixed_folder: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="latentstudio.data"):
        dataset = ImageDataset(mixed_folder, 16)
    assert len(dataset) == 7
    assert sorted(s.name for s in dataset.skipped) == ["sub/noise.jpg", "truncated.png"]
    assert all(s.reason for s in dataset.skipped)
    assert "skipped 2 of 9" in caplog.text
    assert (dataset.resolution, dataset.num_channels, dataset.label_dim, dataset.has_labels) == (16, 3, 0, False)
    assert dataset.name == "images"
    for index in range(len(dataset)):
        image, label = dataset[index]
        assert image.shape == (3, 16, 16) and image.dtype == np.uint8
        assert label.shape == (0,) and label.dtype == np.float32


def test_zip_gives_the_same_pixels_as_the_folder(mixed_folder: Path, mixed_files: dict, tmp_path: Path) -> None:
    archive = _write_zip(tmp_path / "images.zip", mixed_files)
    from_zip, from_folder = ImageDataset(archive, 12, channels=1), ImageDataset(mixed_folder, 12, channels=1)
    assert from_zip.names == from_folder.names and from_zip.name == "images"
    assert len(from_zip.skipped) == 2
    for index in range(len(from_zip)):
        assert from_zip[index][0].shape == (1, 12, 12)
        np.testing.assert_array_equal(from_zip[index][0], from_folder[index][0])


def test_verify_check_also_catches_truncated_png_and_random_bytes(mixed_folder: Path) -> None:
    dataset = ImageDataset(mixed_folder, 8, check="verify")
    assert sorted(s.name for s in dataset.skipped) == ["sub/noise.jpg", "truncated.png"]


def test_centre_crop_and_resize(tmp_path: Path) -> None:
    stripes = np.zeros((20, 60, 3), dtype=np.uint8)
    stripes[:, :20, 0] = 255  # red | green | blue: only green survives a centred square crop
    stripes[:, 20:40, 1] = 255
    stripes[:, 40:, 2] = 255
    Image.fromarray(stripes).save(tmp_path / "wide.png")
    image, _ = ImageDataset(tmp_path, 8)[0]
    assert image.shape == (3, 8, 8)
    assert (image[1] > 250).all() and (image[0] < 5).all() and (image[2] < 5).all()
    upscaled, _ = ImageDataset(tmp_path, 64)[0]
    assert upscaled.shape == (3, 64, 64) and (upscaled[1] > 250).all()


def test_sixteen_bit_is_rescaled_and_transparency_goes_white(tmp_path: Path) -> None:
    levels = np.full((8, 8), 65535, dtype=np.uint16)
    levels[:, 4:] = 32896  # 128 * 257
    Image.fromarray(levels).save(tmp_path / "a16.png")
    clear = np.zeros((8, 8, 4), dtype=np.uint8)  # fully transparent black
    Image.fromarray(clear, "RGBA").save(tmp_path / "b_clear.png")
    dataset = ImageDataset(tmp_path, 8)
    grey, _ = dataset[0]
    assert (grey[:, :, :3] == 255).all() and (grey[:, :, 5:] == 128).all()
    assert (dataset[1][0] == 255).all()


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, 20:] = 255  # stored: dark left, bright right
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display": the dark side ends up on top
    Image.fromarray(pixels).save(tmp_path / "camera.jpg", exif=exif, quality=95)
    image, _ = ImageDataset(tmp_path, 8, channels=1)[0]
    assert image[0, :3].mean() < 40 and image[0, -3:].mean() > 215


def test_xflip_doubles_the_set_and_mirrors(tmp_path: Path) -> None:
    for i in range(3):
        Image.fromarray(_noise(10, 10)).save(tmp_path / f"{i}.png")
    plain, flipped = ImageDataset(tmp_path, 10), ImageDataset(tmp_path, 10, xflip=True)
    assert len(flipped) == 2 * len(plain) == 6
    for i in range(3):
        np.testing.assert_array_equal(flipped[i][0], plain[i][0])
        np.testing.assert_array_equal(flipped[3 + i][0], plain[i][0][:, :, ::-1])
    with pytest.raises(IndexError):
        flipped[6]


def test_integer_labels_from_dataset_json(tmp_path: Path) -> None:
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(_noise(8, 8)).save(tmp_path / name)
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": [["a.png", 2], ["b.png", 0]]}))
    dataset = ImageDataset(tmp_path, 8)
    assert dataset.has_labels and dataset.has_class_labels and dataset.label_dim == 3
    assert dataset.names == ["a.png", "b.png"]
    assert [s.name for s in dataset.skipped] == ["c.png"] and "no label" in dataset.skipped[0].reason
    np.testing.assert_array_equal(dataset[0][1], np.array([0, 0, 1], dtype=np.float32))
    np.testing.assert_array_equal(dataset[1][1], np.array([1, 0, 0], dtype=np.float32))
    assert ImageDataset(tmp_path, 8, labels="none").label_dim == 0


def test_vector_labels_from_dataset_json_in_a_zip(tmp_path: Path) -> None:
    files = {f"00000/img{i:08d}.png": _png_bytes(Image.fromarray(_noise(8, 8))) for i in range(2)}
    labels = [[name, [0.5 * i, -1.0]] for i, name in enumerate(files)]
    files["dataset.json"] = json.dumps({"labels": labels}).encode()
    dataset = ImageDataset(_write_zip(tmp_path / "vectors.zip", files), 8)
    assert dataset.label_dim == 2 and not dataset.has_class_labels
    np.testing.assert_allclose(dataset[1][1], [0.5, -1.0])
    assert dataset[1][1].dtype == np.float32


def test_labels_from_sub_folders(tmp_path: Path) -> None:
    for folder, count in (("dogs", 2), ("cats", 1)):
        (tmp_path / folder / "inner").mkdir(parents=True)
        for i in range(count):
            Image.fromarray(_noise(8, 8)).save(tmp_path / folder / "inner" / f"{i}.png")
    Image.fromarray(_noise(8, 8)).save(tmp_path / "stray.png")
    dataset = ImageDataset(tmp_path, 8, labels="folders")
    assert dataset.class_names == ("cats", "dogs") and dataset.label_dim == 2
    assert [s.name for s in dataset.skipped] == ["stray.png"]
    classes = {name: dataset[i][1].argmax() for i, name in enumerate(dataset.names)}
    assert classes == {"cats/inner/0.png": 0, "dogs/inner/0.png": 1, "dogs/inner/1.png": 1}


def test_all_broken_and_empty_sets_raise_before_training(tmp_path: Path) -> None:
    broken = _write_folder(tmp_path / "broken", {"a.png": b"\x89PNG\r\n\x1a\n" + b"\0" * 30, "b.jpg": b"junk"})
    with pytest.raises(DatasetError, match=r"broken: none of the 2 image files is usable \(2 skipped"):
        ImageDataset(broken, 8)
    empty = _write_folder(tmp_path / "empty", {"readme.txt": b"hello"})
    with pytest.raises(DatasetError, match="empty: no PNG, JPEG or WebP images found"):
        ImageDataset(empty, 8)
    with pytest.raises(DatasetError, match="no such file"):
        ImageDataset(tmp_path / "missing", 8)
    (tmp_path / "fake.zip").write_bytes(b"PK not really")
    with pytest.raises(DatasetError, match="expected an image folder or a zip"):
        ImageDataset(tmp_path / "fake.zip", 8)
    (tmp_path / "broken" / "dataset.json").write_text("{not json")
    with pytest.raises(DatasetError, match="dataset.json"):
        ImageDataset(tmp_path / "broken", 8)


def test_a_file_broken_after_the_scan_is_replaced_not_raised(tmp_path: Path, caplog) -> None:
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), 50 * i, dtype=np.uint8)).save(tmp_path / f"{i}.png")
    dataset = ImageDataset(tmp_path, 8)
    (tmp_path / "1.png").write_bytes(b"overwritten during training")
    with caplog.at_level(logging.WARNING, logger="latentstudio.data"):
        image, _ = dataset[1]
    assert (image == 100).all()  # the next good image
    assert "1.png became unreadable" in caplog.text


def test_zip_dataset_pickles_and_works_in_dataloader_workers(tmp_path: Path) -> None:
    files = {f"{i}.png": _png_bytes(Image.fromarray(np.full((6, 6, 3), i, np.uint8))) for i in range(8)}
    dataset = ImageDataset(_write_zip(tmp_path / "small.zip", files), 4)
    dataset[0]  # opens the archive in this process
    clone = pickle.loads(pickle.dumps(dataset))
    np.testing.assert_array_equal(clone[5][0], dataset[5][0])
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=2)
    batches = list(loader)
    images = torch.cat([images for images, _ in batches])
    assert images.dtype == torch.uint8 and images.shape == (8, 3, 4, 4)
    assert sorted(images[:, 0, 0, 0].tolist()) == list(range(8))


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    dataset_cli.add_parser(parser.add_subparsers(dest="command"))
    return dataset_cli.run(parser.parse_args(["dataset", *argv]))


def test_cli_converts_a_folder_with_mirror(mixed_folder: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out" / "data.zip"
    assert _cli("folder", str(mixed_folder), "--res", "16", "--out", str(out), "--mirror") == 0
    captured = capsys.readouterr()
    assert "skipped 2 unusable file(s)" in captured.err and "truncated.png" in captured.err
    written = ImageDataset(out, 16)
    assert len(written) == 14 and not written.skipped and not written.has_labels
    original = ImageDataset(mixed_folder, 16)
    np.testing.assert_array_equal(written[7 + 2][0], original[2][0][:, :, ::-1])
    assert [p.name for p in out.parent.iterdir()] == ["data.zip"]  # no temporary left behind


def test_cli_keeps_folder_classes(tmp_path: Path) -> None:
    for folder in ("b_class", "a_class"):
        (tmp_path / "in" / folder).mkdir(parents=True)
        Image.fromarray(_noise(9, 9)).save(tmp_path / "in" / folder / "x.png")
    out = tmp_path / "classes.zip"
    assert _cli("folder", str(tmp_path / "in"), "--res", "8", "--out", str(out), "--labels", "folders") == 0
    written = ImageDataset(out, 8)
    assert written.class_names == ("a_class", "b_class")
    assert [int(written[i][1].argmax()) for i in range(2)] == [0, 1]


def test_cli_reports_an_unusable_folder_as_a_user_error(tmp_path: Path) -> None:
    from latentstudio.cli import CliError

    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(CliError, match="none of the 1 image files"):
        _cli("folder", str(tmp_path), "--res", "8", "--out", str(tmp_path / "x.zip"))
    assert not (tmp_path / "x.zip").exists()


def test_writer_failure_leaves_no_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    target = tmp_path / "data.zip"
    target.write_bytes(b"previous archive")
    with pytest.raises(RuntimeError):
        with DatasetZipWriter(target) as writer:
            writer.add(_noise(4, 4))
            raise RuntimeError("killed halfway")
    assert target.read_bytes() == b"previous archive"
    assert [p.name for p in tmp_path.iterdir()] == ["data.zip"]
