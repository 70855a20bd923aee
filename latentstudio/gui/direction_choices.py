"""The directions a per-layer offset slider can follow, gathered from the document's sets."""
from __future__ import annotations

from dataclasses import dataclass

from latentstudio.engine.directions import display_name
from latentstudio.engine.recipe import DirectionEdit


@dataclass(frozen=True)
class DirectionChoice:
    """One direction a row can use: what the combo shows, and what goes into the recipe."""

    label: str  # shown in the combo box
    name: str  # DirectionEdit.direction
    vector: tuple[float, ...]
    sigma: float

    def edit(self, layer: int, strength: float) -> DirectionEdit:
        """The per-layer offset of row ``layer``: an edit confined to that one ws layer."""
        return DirectionEdit(direction=self.name, vector=self.vector, strength=strength, first_layer=layer, last_layer=layer, sigma=self.sigma)

    def matches(self, edit: DirectionEdit) -> bool:
        return edit.direction == self.name and edit.vector == self.vector


def choices_from_sets(direction_sets: list) -> list[DirectionChoice]:
    """Every direction of every set, labelled; sets after the first get a ``#n`` prefix."""
    choices = []
    for number, dset in enumerate(direction_sets):
        prefix = "" if number == 0 else f"{getattr(dset, 'method', 'set')}#{number + 1} "
        for k, name in enumerate(dset.names):
            vector = tuple(float(v) for v in dset.vectors[k])
            choices.append(DirectionChoice(prefix + display_name(name), name, vector, float(dset.sigmas[k])))
    return choices


def layer_edit_index(edits: tuple[DirectionEdit, ...], layer: int) -> int | None:
    """Index of the per-layer offset of ``layer`` in ``edits`` (first single-layer edit)."""
    for index, edit in enumerate(edits):
        if edit.first_layer == layer and edit.last_layer == layer:
            return index
    return None
