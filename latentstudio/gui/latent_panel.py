"""Latent panel: seed A, seed browser, class, truncation, noise, and the StyleGAN3 input
transform of the current recipe."""
from __future__ import annotations

import random

from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from latentstudio.engine.recipe import NOISE_MODES, EditRecipe
from latentstudio.gui.document import EditorDocument
from latentstudio.gui.render_worker import RenderController
from latentstudio.gui.seed_browser import SeedBrowser
from latentstudio.gui.widgets import SEED_MAX, caption, float_slider, set_quietly


class LatentPanel(QWidget):
    """Controls for everything that picks the latent before per-layer styling."""

    def __init__(self, document: EditorDocument, controller: RenderController, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document

        self.seed = QSpinBox()
        self.seed.setRange(0, SEED_MAX)
        self.seed.setKeyboardTracking(False)  # a typed seed is one edit, made on Enter
        self.seed.setToolTip("Seed A: picks z exactly as NVlabs gen_images.py does")
        self.seed.valueChanged.connect(lambda v: self._edit("Seed", "seed", seed=v, latent=None))
        previous = QPushButton("◀")
        previous.setToolTip("Previous seed (Page Up)")
        previous.clicked.connect(lambda: self.step_seed(-1))
        following = QPushButton("▶")
        following.setToolTip("Next seed (Page Down)")
        following.clicked.connect(lambda: self.step_seed(1))
        dice = QPushButton("Random")
        dice.setToolTip("A random seed (Ctrl+R)")
        dice.clicked.connect(self.random_seed)
        for button in (previous, following):
            button.setFixedWidth(32)
        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(previous)
        seed_row.addWidget(following)
        seed_row.addWidget(dice)

        self.class_box = QComboBox()
        self.class_box.setToolTip("Class of a conditional model")
        self.class_box.currentIndexChanged.connect(self._class_picked)

        self.psi = float_slider(-1.0, 2.0, 1.0)
        self.psi.setToolTip("Truncation ψ: 1 = untruncated, 0 = the average image")
        self.psi.valueChanged.connect(lambda v: self._edit("Truncation ψ", "psi", truncation_psi=v))
        self.psi.sliderReleased.connect(document.end_merge)
        self.cutoff = QSpinBox()
        self.cutoff.setSpecialValueText("all layers")
        self.cutoff.setToolTip("Truncate only the first N layers")
        self.cutoff.valueChanged.connect(lambda v: self._edit("Truncation cutoff", "cutoff", truncation_cutoff=v or None))

        self.noise_mode = QComboBox()
        self.noise_mode.addItems(NOISE_MODES)
        self.noise_mode.setToolTip("const: the model's stored noise; random: seeded noise; none: no noise")
        self.noise_mode.currentTextChanged.connect(lambda m: self._edit("Noise mode", None, noise_mode=m))
        self.noise_seed = QSpinBox()
        self.noise_seed.setRange(0, SEED_MAX)
        self.noise_seed.setKeyboardTracking(False)
        self.noise_seed.setToolTip("Seed of the random noise")
        self.noise_seed.valueChanged.connect(lambda v: self._edit("Noise seed", "noise_seed", noise_seed=v))

        # StyleGAN3 only: the Fourier-feature input's transform (StyleGAN3 has no noise inputs).
        self.translate_x = float_slider(-1.0, 1.0, 0.0)
        self.translate_y = float_slider(-1.0, 1.0, 0.0)
        self.rotate = float_slider(-180.0, 180.0, 0.0, decimals=1, step=0.5)
        for slider, name in ((self.translate_x, "x"), (self.translate_y, "y")):
            slider.setToolTip(f"Translate the StyleGAN3 input along {name} (1 = half the image)")
            slider.valueChanged.connect(lambda _v, n=name: self._edit(f"Translate {n}", f"translate_{n}", translate=self._translation()))
            slider.sliderReleased.connect(document.end_merge)
        self.rotate.setToolTip("Rotate the StyleGAN3 input (degrees)")
        self.rotate.valueChanged.connect(lambda v: self._edit("Rotate", "rotate", rotate=v))
        self.rotate.sliderReleased.connect(document.end_merge)

        # A projected photo, a drag result or a latent file is not a seed: say so, or the Seed
        # box would claim the image is seed 0.
        self.stored_latent = caption("Showing a stored latent (projection, drag or latent file): pick a seed to leave it")
        self.stored_latent.setWordWrap(True)
        self.stored_latent.setVisible(False)

        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Seed", seed_row)
        form.addRow(self.stored_latent)
        form.addRow("Class", self.class_box)
        form.addRow("Truncation ψ", self.psi)
        form.addRow("Cutoff", self.cutoff)
        form.addRow("Noise", self.noise_mode)
        form.addRow("Noise seed", self.noise_seed)
        form.addRow("Translate x", self.translate_x)
        form.addRow("Translate y", self.translate_y)
        form.addRow("Rotate °", self.rotate)
        self._form = form

        self.browser = SeedBrowser(document, controller)
        self.browser.seedPicked.connect(lambda s: self._edit("Seed", None, seed=s, latent=None))
        self.browser.mixSeedPicked.connect(self.use_as_mixing_seed)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addLayout(form)
        layout.addSpacing(6)
        layout.addWidget(caption("Nearby seeds"))
        layout.addWidget(self.browser, 1)

        document.modelChanged.connect(self._on_model)
        document.recipeChanged.connect(self._show_recipe)
        self._on_model(document.model)

    def _edit(self, text: str, merge_key: str | None, **changes) -> None:
        """Change the recipe; choosing a seed (``latent=None`` with it) drops a stored latent
        (a drag or projection result), since the person asked to see that seed."""
        self.document.set_recipe(self.document.recipe.replace(**changes), text, merge_key=merge_key)

    def _translation(self) -> tuple[float, float]:
        return (self.translate_x.value(), self.translate_y.value())

    def _class_picked(self, index: int) -> None:
        model = self.document.model
        if model is not None and model.info.c_dim and index >= 0:
            self._edit("Class", None, class_index=index)

    def step_seed(self, delta: int) -> None:
        seed = min(max(self.document.recipe.seed + delta, 0), SEED_MAX)
        self._edit("Seed", None, seed=seed, latent=None)

    def random_seed(self) -> None:
        self._edit("Seed", None, seed=random.randrange(SEED_MAX), latent=None)

    def use_as_mixing_seed(self, seed: int) -> None:
        self._edit("Seed B", None, mix_seed=seed)

    def _on_model(self, model) -> None:
        set_quietly(self.class_box, "clear")
        if model is None:
            return
        info = model.info
        names = info.class_names or tuple(f"class {k}" for k in range(info.c_dim))
        set_quietly(self.class_box, "addItems", list(names))
        self.class_box.setEnabled(bool(info.c_dim))
        if not info.c_dim:
            set_quietly(self.class_box, "addItem", "unconditional")
        set_quietly(self.cutoff, "setRange", 0, info.num_ws)
        is_stylegan3 = info.kind == "stylegan3"
        for widget in (self.noise_mode, self.noise_seed):
            self._form.setRowVisible(widget, not is_stylegan3)
        for widget in (self.translate_x, self.translate_y, self.rotate):
            self._form.setRowVisible(widget, is_stylegan3)
        self._show_recipe(self.document.recipe)

    def _show_recipe(self, recipe: EditRecipe) -> None:
        set_quietly(self.seed, "setValue", min(recipe.seed, SEED_MAX))
        self.stored_latent.setVisible(recipe.latent is not None)
        if recipe.class_index is not None:
            set_quietly(self.class_box, "setCurrentIndex", recipe.class_index)
        set_quietly(self.psi, "setValue", recipe.truncation_psi)
        set_quietly(self.cutoff, "setValue", recipe.truncation_cutoff or 0)
        set_quietly(self.noise_mode, "setCurrentText", recipe.noise_mode)
        set_quietly(self.noise_seed, "setValue", min(recipe.noise_seed, SEED_MAX))
        self.noise_seed.setEnabled(recipe.noise_mode == "random")
        set_quietly(self.translate_x, "setValue", recipe.translate[0])
        set_quietly(self.translate_y, "setValue", recipe.translate[1])
        set_quietly(self.rotate, "setValue", recipe.rotate)
