"""The Directions panel drives the real engine through the real EditorDocument (offscreen)."""
from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import torch

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from latentstudio.engine.directions import DirectionSet  # noqa: E402
from latentstudio.gui.directions_panel import DirectionsPanel  # noqa: E402
from latentstudio.gui.document import EditorDocument  # noqa: E402
from latentstudio.io import load_model  # noqa: E402


@pytest.fixture(scope="module")
def model(fixtures_dir):
    """The 32 px fixture with its last mapping layer scaled up so seeds differ in W as they
    would in a trained model (the untrained 0.01 learning-rate multiplier leaves W nearly constant)."""
    G = copy.deepcopy(load_model(fixtures_dir / "sg2_skip32.pkl", device="cpu"))
    with torch.no_grad():
        last = getattr(G.mapping, f"fc{G.mapping.num_layers - 1}")
        last.weight.mul_(1e4)
        last.bias.mul_(1e4)
    return G


@pytest.fixture
def panel(qtbot, model):
    document = EditorDocument()
    document.set_model(model, "sg2_skip32.pkl")
    widget = DirectionsPanel(document)
    qtbot.addWidget(widget)
    widget.resize(420, 900)
    yield widget
    widget.cancel()
    if widget.worker is not None:
        qtbot.waitUntil(lambda: widget.worker is None, timeout=30_000)


def _compute(qtbot, panel, method="PCA (GANSpace)", count=3, samples=2000):
    panel.method.setCurrentText(method)
    panel.count.setValue(count)
    panel.samples.setValue(samples)
    with qtbot.waitSignal(panel.computed, timeout=60_000) as blocker:
        panel.compute_button.click()
    return blocker.args[0]


def test_compute_lists_directions_and_edits_go_through_undo(qtbot, panel, tmp_path):
    document = panel.document
    dset = _compute(qtbot, panel)
    assert document.direction_sets == [dset] and dset.method == "pca" and len(dset) == 3
    assert panel.direction_list.count() == 3 and panel.direction_list.item(0).text().startswith("PC1")
    heights = panel.bars.opts["height"]
    np.testing.assert_allclose(heights, 100 * dset.explained_variance, rtol=1e-5)
    assert panel.progress.value() == panel.progress.maximum()

    steps = document.undo_stack.count()
    panel.direction_list.setCurrentRow(1)
    panel.add_button.click()
    (edit,) = document.recipe.edits
    assert edit.direction == "pca:1" and edit.sigma == pytest.approx(float(dset.sigmas[1])) and edit.strength == 0
    assert len(panel.rows) == 1

    row = panel.rows[0]
    for value in (0.5, 1.0, 2.5):  # a drag: one undo step
        row.strength.setValue(value)
    document.end_merge()
    assert document.recipe.edits[0].strength == pytest.approx(2.5)
    row.layers.setValue((2, 5))
    assert (document.recipe.edits[0].first_layer, document.recipe.edits[0].last_layer) == (2, 5)
    row.enabled.setChecked(False)
    assert document.recipe.edits[0].enabled is False
    assert document.undo_stack.count() == steps + 4  # add, strength drag, layers, disable

    document.undo_stack.undo()  # enable again; the row follows the document
    assert panel.rows[0].enabled.isChecked()
    document.undo_stack.undo()
    assert tuple(panel.rows[0].layers.value()) == (0, panel.num_ws - 1)
    document.undo_stack.undo()
    assert panel.rows[0].strength.value() == 0

    panel.rows[0].remove.click()
    assert document.recipe.edits == () and panel.rows == []

    # Export, then import: a second set; a damaged file is refused with a message.
    path = panel.export_file(tmp_path / "dirs.npz")
    assert panel.import_file(path) and len(document.direction_sets) == 2
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"nope")
    assert not panel.import_file(bad)
    assert "Not imported" in panel.status.text() and len(document.direction_sets) == 2
    panel.grab().save(str(tmp_path / "directions_panel.png"))


def test_edit_rows_are_reused_and_stay_wired_to_their_edit(qtbot, panel):
    """Appending an edit keeps the existing rows (a style drag appends one at a time);
    removing one rebuilds the rows after it, and each row still edits its own recipe entry."""
    from latentstudio.engine.recipe import DirectionEdit

    document = panel.document
    w_dim = document.model.w_dim
    a, b, c = (DirectionEdit(name, tuple(np.eye(w_dim)[i]), strength=0.5) for i, name in enumerate("abc"))
    document.set_recipe(document.recipe.replace(edits=(a, b)), "two edits")
    first, second = panel.rows
    document.set_recipe(document.recipe.replace(edits=(a, b, c)), "append")
    assert panel.rows[:2] == [first, second] and len(panel.rows) == 3

    first.remove.click()
    assert [e.direction for e in document.recipe.edits] == ["b", "c"]
    assert [row.enabled.text() for row in panel.rows] == ["b", "c"]
    panel.rows[0].strength.setValue(1.5)
    assert [e.strength for e in document.recipe.edits] == [1.5, 0.5]
    panel.rows[1].remove.click()
    assert [e.direction for e in document.recipe.edits] == ["b"] and len(panel.rows) == 1


def test_import_from_another_model_warns(qtbot, panel, tmp_path):
    G = panel.document.model
    other = DirectionSet(names=["x"], vectors=np.eye(1, G.w_dim, dtype=np.float32), sigmas=[1.0], layer_ranges=[(0, -1)],
                         method="pca", fingerprint="another-model", w_dim=G.w_dim).save(tmp_path / "other.npz")
    assert panel.import_file(other)
    assert panel.status.text().startswith("Warning:") and "another model" in panel.status.text()


def test_cancel_stops_the_computation(qtbot, panel):
    panel.samples.setValue(1_000_000)
    with qtbot.waitSignal(panel.failed, timeout=30_000) as blocker:
        panel.compute_button.click()
        assert panel.cancel_button.isEnabled()
        panel.cancel_button.click()
    assert blocker.args[0] == "Cancelled." and panel.document.direction_sets == []
    qtbot.waitUntil(lambda: panel.worker is None, timeout=30_000)
    assert panel.compute_button.isEnabled()


def test_tag_seeds_and_fit_a_supervised_direction(qtbot, panel):
    document = panel.document
    for seed in range(8):
        document.set_recipe(document.recipe.replace(seed=seed), "seed")
        panel.tag_current(seed % 2 == 0)
    assert panel.tag_count.text() == "4 +, 4 −" and panel.fit_button.isEnabled()
    panel.fit_name.setText("even")
    with qtbot.waitSignal(panel.computed, timeout=60_000) as blocker:
        panel.fit_button.click()
    dset = blocker.args[0]
    assert dset.names == ["even"] and dset.method == "svm" and dset.stats["accuracy"] == 1.0
    # The fitted normal separates the tagged latents.
    positives = np.stack(list(panel.positives.values())) @ dset.vectors[0]
    negatives = np.stack(list(panel.negatives.values())) @ dset.vectors[0]
    assert positives.min() > negatives.max()
