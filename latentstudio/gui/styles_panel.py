"""Styles panel: one row per ``ws`` layer, grouped coarse / middle / fine.

Each row blends its layer from seed A (0) to seed B (1) and offsets it along a chosen
direction in standard deviations. Group rows move every row of their group; the "from B"
buttons are the StyleGAN paper's style-mixing experiments (whole groups swapped to B).
Widgets only edit the document's recipe; every write-back happens under a signal blocker.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, replace

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleSlider

from latentstudio.engine.recipe import EditRecipe
from latentstudio.gui.direction_choices import DirectionChoice, choices_from_sets, layer_edit_index
from latentstudio.gui.document import EditorDocument
from latentstudio.gui.widgets import SEED_MAX, caption, float_slider, on_right_click, set_quietly
from latentstudio.nets.layout import layer_groups, ws_layout

OFFSET_RANGE = 5.0  # sigma
# The direction combo is as wide as its longest name ("head turn", "set#2 PC10"), within these
# bounds so that the two sliders keep most of the row; its popup always shows names in full.
COMBO_MIN_CHARS = 5
COMBO_MAX_CHARS = 12
POPUP_MARGIN_PX = 24
GROUP_TITLES = {"coarse": "Coarse", "middle": "Middle", "fine": "Fine"}


@dataclass
class _Row:
    layer: int
    mix: QLabeledDoubleSlider
    direction: QComboBox
    offset: QLabeledDoubleSlider


@dataclass
class _GroupRow:
    layers: list[int]
    mix: QLabeledDoubleSlider
    offset: QLabeledDoubleSlider


class StylesPanel(QWidget):
    """Per-layer mixing and offset sliders for the document's current model.

    ``animateDirection(edit)``: right-clicking an offset slider asks the Timeline to sweep that
    row's (or group's) direction on its layers.
    """

    animateDirection = Signal(object)

    def __init__(self, document: EditorDocument, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self.rows: list[_Row] = []
        self.group_rows: dict[str, _GroupRow] = {}
        self.groups: dict[str, list[int]] = {}
        self.choices: list[DirectionChoice] = []
        self._num_ws = 0

        self.seed_b = QSpinBox()
        self.seed_b.setRange(0, SEED_MAX)
        self.seed_b.setKeyboardTracking(False)
        self.seed_b.setValue(1)
        self.seed_b.setToolTip("Seed B: the second latent that mixing sliders blend towards")
        self.seed_b.valueChanged.connect(self._on_seed_b)
        random_b = QPushButton("Random")
        random_b.clicked.connect(lambda: self.seed_b.setValue(random.randrange(SEED_MAX)))
        self.from_b_buttons: dict[str, QPushButton] = {}
        top = QHBoxLayout()
        top.addWidget(QLabel("Seed B"))
        top.addWidget(self.seed_b, 1)
        top.addWidget(random_b)
        buttons = QHBoxLayout()
        for group in GROUP_TITLES:
            button = QPushButton(f"{GROUP_TITLES[group]} from B")
            button.setToolTip(f"Take the {group} layers wholly from seed B, everything else from A (StyleGAN style mixing)")
            button.clicked.connect(lambda _=False, g=group: self.take_group_from_b(g))
            self.from_b_buttons[group] = button
            buttons.addWidget(button)
        reset = QPushButton("Reset")
        reset.setToolTip("Remove all mixing and per-layer offsets")
        reset.clicked.connect(self.reset_styles)
        buttons.addWidget(reset)

        self._grid_host = QWidget()
        self._grid = QGridLayout(self._grid_host)
        self._grid.setContentsMargins(0, 4, 4, 4)
        self._grid.setHorizontalSpacing(8)
        self._grid.setVerticalSpacing(3)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self._grid_host)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addLayout(top)
        layout.addLayout(buttons)
        layout.addWidget(scroll, 1)

        document.modelChanged.connect(self._rebuild)
        document.directionsChanged.connect(self._refresh_choices)
        document.recipeChanged.connect(self._show_recipe)
        self._rebuild(document.model)

    # -- building ------------------------------------------------------------------------
    def _rebuild(self, model) -> None:
        while self._grid.count():
            item = self._grid.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.rows, self.group_rows = [], {}
        self._num_ws = 0 if model is None else model.info.num_ws
        if model is None:
            return
        info = model.info
        self.groups = layer_groups(ws_layout(model), info.resolution)
        for column, title in enumerate(("Layer", "A  ·  mix  ·  B", "Direction", "Offset (σ)")):
            self._grid.addWidget(caption(title), 0, column)
        line = 1
        for group, layers in self.groups.items():
            if not layers:
                continue
            resolutions = sorted({info.layer_resolutions[i] for i in layers})
            span = f"{resolutions[0]}" if len(resolutions) == 1 else f"{resolutions[0]}–{resolutions[-1]}"
            title = QLabel(f"{GROUP_TITLES[group]}  {span} px")
            title.setObjectName("groupTitle")
            title.setToolTip(f"ws layers {layers[0]}–{layers[-1]}; the slider moves all of them")
            group_row = _GroupRow(layers, float_slider(0, 1), float_slider(-OFFSET_RANGE, OFFSET_RANGE, step=0.05))
            group_row.mix.valueChanged.connect(lambda v, g=group: self._set_group_mix(g, v))
            group_row.offset.valueChanged.connect(lambda v, g=group: self._set_group_offset(g, v))
            on_right_click(group_row.offset, lambda ls=layers: [("Animate this direction", lambda: self._animate(ls))])
            for slider in (group_row.mix, group_row.offset):
                slider.sliderReleased.connect(self.document.end_merge)
                slider.editingFinished.connect(self.document.end_merge)
            self._grid.addWidget(title, line, 0, 1, 1)
            self._grid.addWidget(group_row.mix, line, 1)
            self._grid.addWidget(group_row.offset, line, 3)
            self.group_rows[group] = group_row
            line += 1
            for layer in layers:
                name = info.layer_names[layer]
                label = QLabel(f"{layer:2d}  {name.split(' + ')[0]}")
                label.setToolTip(f"ws[{layer}]: {name}")
                row = _Row(layer, float_slider(0, 1), QComboBox(), float_slider(-OFFSET_RANGE, OFFSET_RANGE, step=0.05))
                row.direction.setToolTip("Direction this layer's offset slider moves along")
                row.direction.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
                row.mix.valueChanged.connect(lambda v, i=layer: self._set_mix(i, v))
                row.offset.valueChanged.connect(lambda v, i=layer: self._set_offset(i, v))
                row.direction.currentIndexChanged.connect(lambda _, i=layer: self._direction_picked(i))
                on_right_click(row.offset, lambda i=layer: [("Animate this direction", lambda: self._animate([i]))])
                for slider in (row.mix, row.offset):
                    slider.sliderReleased.connect(self.document.end_merge)
                    slider.editingFinished.connect(self.document.end_merge)
                self._grid.addWidget(label, line, 0)
                self._grid.addWidget(row.mix, line, 1)
                self._grid.addWidget(row.direction, line, 2)
                self._grid.addWidget(row.offset, line, 3)
                self.rows.append(row)
                line += 1
        self._grid.setColumnStretch(1, 1)
        self._grid.setColumnStretch(3, 1)
        self._grid.setRowStretch(line, 1)
        self._refresh_choices()
        self._show_recipe(self.document.recipe)

    def _refresh_choices(self) -> None:
        self.choices = choices_from_sets(self.document.direction_sets)
        longest = max((len(choice.label) for choice in self.choices), default=0)
        for row in self.rows:
            row.direction.setMinimumContentsLength(min(max(longest, COMBO_MIN_CHARS), COMBO_MAX_CHARS))
            with_previous = row.direction.currentText()
            set_quietly(row.direction, "clear")
            for choice in self.choices:
                set_quietly(row.direction, "addItem", choice.label)
            position = row.direction.findText(with_previous)
            set_quietly(row.direction, "setCurrentIndex", max(position, 0))
            row.direction.view().setMinimumWidth(row.direction.view().sizeHintForColumn(0) + POPUP_MARGIN_PX)
            ready = bool(self.choices)
            row.offset.setEnabled(ready)
            row.direction.setEnabled(ready)
            if not ready:
                row.offset.setToolTip("Computing principal directions…")
            else:
                row.offset.setToolTip("Offset along the chosen direction, in standard deviations of sampled W")
        for group_row in self.group_rows.values():
            group_row.offset.setEnabled(bool(self.choices))
        self._show_recipe(self.document.recipe)

    # -- recipe -> widgets ---------------------------------------------------------------
    def _show_recipe(self, recipe: EditRecipe) -> None:
        if not self.rows:
            return
        mix = recipe.mix_weights(self._num_ws) if recipe.mix_seed is not None else [0.0] * self._num_ws
        if recipe.mix_seed is not None:
            set_quietly(self.seed_b, "setValue", min(recipe.mix_seed, SEED_MAX))
        offsets = [0.0] * self._num_ws
        for row in self.rows:
            set_quietly(row.mix, "setValue", mix[row.layer])
            index = layer_edit_index(recipe.edits, row.layer)
            if index is not None:
                edit = recipe.edits[index]
                offsets[row.layer] = edit.strength if edit.enabled else 0.0
                self._select_choice_for(row, edit)
            set_quietly(row.offset, "setValue", offsets[row.layer])
        for group_row in self.group_rows.values():
            set_quietly(group_row.mix, "setValue", sum(mix[i] for i in group_row.layers) / len(group_row.layers))
            set_quietly(group_row.offset, "setValue", sum(offsets[i] for i in group_row.layers) / len(group_row.layers))

    def _select_choice_for(self, row: _Row, edit) -> None:
        for position, choice in enumerate(self.choices):
            if choice.matches(edit):
                set_quietly(row.direction, "setCurrentIndex", position)
                return
        # A direction that is not loaded (e.g. from an opened recipe): offer it as it is.
        choice = DirectionChoice(f"{edit.direction} (recipe)", edit.direction, edit.vector, edit.sigma)
        self.choices.append(choice)
        for other in self.rows:
            set_quietly(other.direction, "addItem", choice.label)
        set_quietly(row.direction, "setCurrentIndex", len(self.choices) - 1)

    # -- widgets -> recipe ---------------------------------------------------------------
    def _mixed(self, recipe: EditRecipe, weights: list[float]) -> EditRecipe:
        mix_seed = recipe.mix_seed if recipe.mix_seed is not None else self.seed_b.value()
        return recipe.replace(mix=tuple(weights), mix_seed=mix_seed)

    def _set_mix(self, layer: int, value: float) -> None:
        recipe = self.document.recipe
        weights = recipe.mix_weights(self._num_ws)
        weights[layer] = value
        self.document.set_recipe(self._mixed(recipe, weights), f"Mix layer {layer}", merge_key=f"mix:{layer}")

    def _set_group_mix(self, group: str, value: float) -> None:
        recipe = self.document.recipe
        weights = recipe.mix_weights(self._num_ws)
        for layer in self.groups[group]:
            weights[layer] = value
        self.document.set_recipe(self._mixed(recipe, weights), f"Mix {group} layers", merge_key=f"mix:{group}")

    def _with_offsets(self, recipe: EditRecipe, strengths: dict[int, float]) -> EditRecipe:
        edits = list(recipe.edits)
        for layer, strength in strengths.items():
            choice = self._row_choice(layer)
            index = layer_edit_index(tuple(edits), layer)
            if index is not None:
                edits[index] = choice.edit(layer, strength)
            else:
                edits.append(choice.edit(layer, strength))
        edits = [e for e in edits if not (e.first_layer == e.last_layer and e.first_layer in strengths and e.strength == 0)]
        return recipe.replace(edits=tuple(edits))

    def _row_choice(self, layer: int) -> DirectionChoice:
        row = next(row for row in self.rows if row.layer == layer)
        position = row.direction.currentIndex()
        return self.choices[max(position, 0)]

    def _set_offset(self, layer: int, value: float) -> None:
        if not self.choices:
            return
        recipe = self._with_offsets(self.document.recipe, {layer: value})
        self.document.set_recipe(recipe, f"Offset layer {layer}", merge_key=f"offset:{layer}")

    def _set_group_offset(self, group: str, value: float) -> None:
        if not self.choices:
            return
        recipe = self._with_offsets(self.document.recipe, {layer: value for layer in self.groups[group]})
        self.document.set_recipe(recipe, f"Offset {group} layers", merge_key=f"offset:{group}")

    def _animate(self, layers: list[int]) -> None:
        """Sweep the first row's direction over ``layers`` (one row, or a whole group)."""
        if self.choices:
            edit = self._row_choice(layers[0]).edit(layers[0], 0.0)
            self.animateDirection.emit(replace(edit, last_layer=layers[-1]))

    def _direction_picked(self, layer: int) -> None:
        recipe = self.document.recipe
        index = layer_edit_index(recipe.edits, layer)
        if index is None or not self.choices:
            return  # remembered by the combo; used when the offset slider moves
        strength = recipe.edits[index].strength
        self.document.set_recipe(self._with_offsets(recipe, {layer: strength}), f"Direction of layer {layer}")

    def _on_seed_b(self, seed: int) -> None:
        recipe = self.document.recipe
        if recipe.mix_seed is not None or any(recipe.mix):
            self.document.set_recipe(recipe.replace(mix_seed=seed), "Seed B", merge_key="seed_b")

    # -- actions -------------------------------------------------------------------------
    def take_group_from_b(self, group: str) -> None:
        """The paper's style mixing: the group's layers wholly from B, all others from A."""
        recipe = self.document.recipe
        mix_seed = recipe.mix_seed if recipe.mix_seed is not None else self.seed_b.value()
        mixed = recipe.with_layers_from_b(self.groups[group], self._num_ws, mix_seed=mix_seed)
        self.document.set_recipe(mixed, f"{GROUP_TITLES[group]} from B")

    def reset_styles(self) -> None:
        recipe = self.document.recipe
        edits = tuple(e for e in recipe.edits if e.first_layer != e.last_layer)
        self.document.set_recipe(recipe.replace(mix=(), edits=edits), "Reset styles")
