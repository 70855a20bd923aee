"""Sessions: the model file, the recipe and the timeline in one ``.lsession`` JSON file.

File > Save session / Open session write and read one; closing the window keeps the last one
(File > Restore last session). Opening a video latentstudio wrote (or its animation ``.json``)
puts its animation on the timeline, loading the model it was made with first when another
one is open and the file says where that model is.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from latentstudio import bounded_json
from latentstudio.atomic import atomic_path
from latentstudio.engine.animation import MAX_FILE_BYTES, MAX_JSON_DEPTH, ANIMATION_FORMAT, AnimationError
from latentstudio.engine.recipe import EditRecipe, RecipeError
from latentstudio.engine.video import SEQUENCE_SIDECAR, read_video_animation
from latentstudio.gui.timeline_state import TimelineState
from latentstudio.untrusted import open_regular_file, prefixed, read_regular_file

if TYPE_CHECKING:
    from latentstudio.gui.main_window import MainWindow

SESSION_FORMAT = "latentstudio-session"
SESSION_VERSION = 1
SESSION_SUFFIX = ".lsession"
LAST_SESSION = "last-session" + SESSION_SUFFIX
VIDEO_SUFFIXES = (".mp4", ".gif", ".webp")
MAX_SESSION_DEPTH = 2 + MAX_JSON_DEPTH  # session, timeline, then an animation


class SessionError(ValueError):
    """A session file is malformed or unreadable."""


def write_session(path: str | os.PathLike, model_path: str | None, recipe: EditRecipe, timeline: TimelineState) -> Path:
    data = {"format": SESSION_FORMAT, "version": SESSION_VERSION, "model_path": model_path, "recipe": recipe.to_dict(),
            "timeline": timeline.to_dict()}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return Path(path)


def read_session(path: str | os.PathLike) -> tuple[str | None, EditRecipe, TimelineState]:
    """``(model_path, recipe, timeline)`` of a session file; :class:`SessionError` otherwise."""
    path = Path(path)
    if not os.path.lexists(path):
        raise SessionError(f"{path}: no such session (none is kept until the window has been closed with a model open)")
    text = read_regular_file(path, MAX_FILE_BYTES, prefixed(SessionError), "session file")
    try:
        data = bounded_json.loads(text, max_chars=MAX_FILE_BYTES, max_depth=MAX_SESSION_DEPTH)
    except bounded_json.JSONError as error:
        raise SessionError(f"{path}: cannot read the session ({error})") from None
    if not isinstance(data, dict) or data.get("format") != SESSION_FORMAT:
        raise SessionError(f"{path}: not a latentstudio session")
    if data.get("version") != SESSION_VERSION:
        raise SessionError(f"{path}: session version {data.get('version')!r:.20} is not supported")
    model_path = data.get("model_path")
    try:
        recipe = EditRecipe.from_dict(data.get("recipe"))
        timeline = TimelineState.from_dict(data.get("timeline", {}))
    except (RecipeError, AnimationError) as error:
        raise SessionError(f"{path}: {error}") from None
    return (model_path if isinstance(model_path, str) else None), recipe, timeline


def last_session_path(settings) -> Path:
    """Where the window keeps the session it had when it closed (next to its settings)."""
    return Path(settings.fileName()).with_name(LAST_SESSION)


def is_animation_file(path: str | os.PathLike) -> bool:
    """A video, a session, a folder of PNG frames, or a ``.json`` holding an animation (not a recipe)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES or suffix == SESSION_SUFFIX:
        return True
    if path.is_dir():
        return (path / SEQUENCE_SIDECAR).is_file()  # PNG frames latentstudio wrote
    if suffix != ".json":
        return False
    try:
        with open_regular_file(path, prefixed(SessionError)) as (stream, _):
            head = stream.read(4096)
    except (SessionError, OSError):
        return False  # a pipe, a folder, unreadable: not an animation (and never a hang)
    return ANIMATION_FORMAT.encode() in head


def after_model(window: "MainWindow", model_path: str, then) -> None:
    """Open ``model_path`` and call ``then()`` once it is the document's model."""
    def loaded(_G) -> None:
        disconnect()
        then()

    def disconnect(*_args) -> None:
        window.modelLoaded.disconnect(loaded)
        window.modelFailed.disconnect(disconnect)

    window.modelLoaded.connect(loaded)
    window.modelFailed.connect(disconnect)
    window.open_model(model_path)


def open_session(window: "MainWindow", path: str | os.PathLike) -> None:
    """Load a session's model, then its recipe and timeline (each an undoable step)."""
    try:
        model_path, recipe, timeline = read_session(path)
    except SessionError as error:
        window.show_error("Cannot open session", str(error))
        return
    if model_path is None or not Path(model_path).exists():
        window.show_error("Cannot open session", f"{path}: its model {model_path} is not there any more")
        return

    def restore() -> None:
        window.document.set_recipe(recipe, "Open session")
        window.document.set_timeline(timeline, "Open session timeline")

    after_model(window, model_path, restore)


def _model_path(window: "MainWindow") -> str | None:
    return str(Path(window.document.model_path).resolve()) if window.document.model_path else None


def save_session(window: "MainWindow", path: str | os.PathLike) -> Path | None:
    document = window.document
    try:
        return write_session(path, _model_path(window), document.recipe, document.timeline)
    except OSError as error:
        window.show_error("Cannot save session", f"{path}: {error}")
        return None


def keep_last_session(window: "MainWindow") -> None:
    """Write the window's session next to its settings (on close; a failure is not worth a dialog then)."""
    document = window.document
    if document.model is None:
        return
    try:
        write_session(last_session_path(window.settings), _model_path(window), document.recipe, document.timeline)
    except OSError:
        pass


def open_animation(window: "MainWindow", path: str | os.PathLike) -> None:
    """A session, or a latentstudio video / animation file onto the timeline."""
    if Path(path).suffix.lower() == SESSION_SUFFIX:
        open_session(window, path)
        return
    try:
        animation, model_path = read_video_animation(path)
    except AnimationError as error:
        window.show_error("Cannot open animation", str(error))
        return
    current = window.document.model
    made_on = animation.tracks[0][0].recipe.model
    fits = current is not None and made_on in (None, current.info.fingerprint)
    if not fits and model_path and Path(model_path).exists():
        after_model(window, model_path, lambda: window.timeline_panel.set_animation(animation))
    elif current is None:
        window.show_error("No model", "Open a model first, then the animation.")
    else:
        window.timeline_panel.set_animation(animation)
