"""``EditorDocument``: the one editable state of the editor window (napari's "layer" role).

Every widget edits the current :class:`EditRecipe` only through :meth:`set_recipe`, which
pushes an undo command, and every widget follows the document through its signals. The
document knows nothing of widgets, so panels written by different people plug in by taking a
document and listening to it.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from latentstudio.engine.recipe import EditRecipe
from latentstudio.gui.timeline_state import TimelineState

class _StateCommand(QUndoCommand):
    """Replace one piece of the document's state (the recipe, the timeline) through ``apply``;
    consecutive commands with the same merge id collapse."""

    def __init__(self, apply, before, after, text: str, merge_id: int):
        super().__init__(text)
        self._apply = apply
        self._before = before
        self._after = after
        self._merge_id = merge_id

    def id(self) -> int:  # noqa: A003 - Qt's name
        return self._merge_id

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 - Qt's name
        if not isinstance(other, _StateCommand) or self._merge_id < 0 or other.id() != self._merge_id:
            return False
        self._after = other._after
        return True

    def redo(self) -> None:
        self._apply(self._after)

    def undo(self) -> None:
        self._apply(self._before)


STARTING_PSI = 0.7


class EditorDocument(QObject):
    """The current model, recipe, timeline and direction sets, with undo for every change.

    - ``recipeChanged(recipe)`` fires after every change (edit, undo, redo, model switch).
    - ``timelineChanged(timeline)`` fires after every change of the :class:`TimelineState`.
    - ``modelChanged(G)`` fires when a model is installed (``G.info`` describes it) or removed.
    - ``directionsChanged()`` fires when ``direction_sets`` changes.
    """

    recipeChanged = Signal(object)
    timelineChanged = Signal(object)
    modelChanged = Signal(object)
    directionsChanged = Signal()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.undo_stack = QUndoStack(self)
        self._recipe = EditRecipe()
        self._timeline = TimelineState()
        self.model = None
        self.model_path: str | None = None
        self.direction_sets: list = []
        # The current merge run: its key and the QUndoCommand id its commands share.
        self._run_key: str | None = None
        self._run_id = -1
        self._next_id = 0
        self._pushing = False
        # A command pushed after an undo / redo must not merge into the one below it.
        self.undo_stack.indexChanged.connect(self._forget_merge_run)

    # -- recipe --------------------------------------------------------------------------
    @property
    def recipe(self) -> EditRecipe:
        return self._recipe

    def set_recipe(self, recipe: EditRecipe, text: str = "Edit", merge_key: str | None = None) -> None:
        """Make ``recipe`` current as one undo step. Consecutive calls with the same
        ``merge_key`` fold into one step (a slider drag); an undo, redo, another key or
        :meth:`end_merge` starts a new step. No-op when nothing changed."""
        self._push(self._apply, self._recipe, recipe, text, merge_key)

    def _push(self, apply, before, after, text: str, merge_key: str | None) -> None:
        if after == before:
            return
        if merge_key is None:
            merge_id = -1
        elif merge_key == self._run_key:
            merge_id = self._run_id
        else:
            self._next_id += 1
            merge_id = self._next_id
        self._run_key, self._run_id = merge_key, merge_id
        self._pushing = True
        try:
            self.undo_stack.push(_StateCommand(apply, before, after, text, merge_id))
        finally:
            self._pushing = False

    def end_merge(self) -> None:
        """Close the current merge run (call on slider release): the next edit is a new step."""
        self._run_key = None

    def _forget_merge_run(self, _index: int) -> None:
        if not self._pushing:
            self._run_key = None

    def _apply(self, recipe: EditRecipe) -> None:
        self._recipe = recipe
        self.recipeChanged.emit(recipe)

    # -- timeline ------------------------------------------------------------------------
    @property
    def timeline(self) -> TimelineState:
        return self._timeline

    def set_timeline(self, timeline: TimelineState, text: str = "Edit timeline", merge_key: str | None = None) -> None:
        """Make ``timeline`` current as one undo step (merging as :meth:`set_recipe` does)."""
        self._push(self._apply_timeline, self._timeline, timeline, text, merge_key)

    def _apply_timeline(self, timeline: TimelineState) -> None:
        self._timeline = timeline
        self.timelineChanged.emit(timeline)

    # -- model ---------------------------------------------------------------------------
    def set_model(self, model, path: str | None, recipe: EditRecipe | None = None) -> None:
        """Install a loaded generator (or ``None``) with a starting recipe; clears undo,
        direction sets and the timeline's keys, since they belong to the previous model."""
        self.model = model
        self.model_path = path
        self.direction_sets = []
        self.undo_stack.clear()
        self._run_key = None
        self.modelChanged.emit(model)
        self.directionsChanged.emit()
        self._apply_timeline(self._timeline.with_keys(()))
        self._apply(recipe if recipe is not None else self.starting_recipe(model))

    @staticmethod
    def starting_recipe(model) -> EditRecipe:
        """Seed 0, class 0 for conditional models, truncation ψ 0.7 (typical, clean images to
        start from, as in the StyleGAN papers' figures), tagged with the model fingerprint."""
        if model is None:
            return EditRecipe()
        info = model.info
        return EditRecipe(seed=0, class_index=0 if info.c_dim else None, truncation_psi=STARTING_PSI, model=info.fingerprint)

    # -- directions ----------------------------------------------------------------------
    def add_direction_set(self, dset) -> None:
        """Add a :class:`~latentstudio.engine.directions.DirectionSet` for the current model."""
        self.direction_sets.append(dset)
        self.directionsChanged.emit()
