"""save_png writes atomically: a poller (the Training tab) never sees half a sample grid."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from latentstudio.engine.export import save_png


def test_a_failed_write_keeps_the_previous_picture_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = save_png(tmp_path / "fakes.png", np.full((8, 8, 3), 40, np.uint8))
    before = path.read_bytes()
    real_save = Image.Image.save

    def save_half_then_fail(self, fp, *args, **kwargs):
        real_save(self, fp, *args, **kwargs)
        with open(fp, "r+b") as written:
            written.truncate(len(before) // 2)
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", save_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_png(path, np.full((8, 8, 3), 200, np.uint8))

    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["fakes.png"]


def test_a_new_picture_replaces_the_old_one_whole(tmp_path):
    path = save_png(tmp_path / "grids" / "fakes.png", np.full((8, 8, 3), 40, np.uint8))
    save_png(path, np.full((8, 8, 3), 200, np.uint8), scale=2)
    with Image.open(path) as picture:
        assert picture.size == (16, 16)
        assert np.asarray(picture).min() == 200
    assert [p.name for p in path.parent.iterdir()] == ["fakes.png"]
