"""``TimelineState``: the Timeline dock's keyframes and settings, as one undoable value.

An :class:`~latentstudio.engine.animation.Animation` needs at least one key; the Timeline
also exists empty, with its settings already chosen, so it keeps them here and makes an
animation from them on demand. The Timeline only ever stores states whose
:meth:`TimelineState.animation` succeeds (it checks before pushing a change).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from latentstudio.engine.animation import (
    DEFAULT_FPS,
    EASINGS,
    INTERPOLATIONS,
    MAX_FPS,
    SPACES,
    Animation,
    AnimationError,
    Keyframe,
)


@dataclass(frozen=True)
class TimelineState:
    """One track of keyframes (possibly none) and the interpolation settings."""

    keyframes: tuple[Keyframe, ...] = ()
    interpolation: str = "cubic"
    space: str = "w"
    easing: str = "linear"
    loop: bool = False
    fps: float = DEFAULT_FPS

    def __post_init__(self) -> None:
        object.__setattr__(self, "keyframes", tuple(self.keyframes))
        if self.interpolation not in INTERPOLATIONS or self.space not in SPACES or self.easing not in EASINGS:
            raise AnimationError("unknown timeline setting")
        fps_ok = isinstance(self.fps, (int, float)) and not isinstance(self.fps, bool) and 0 < self.fps <= MAX_FPS
        if not isinstance(self.loop, bool) or not fps_ok:
            raise AnimationError("timeline loop must be true or false and fps a number in (0, 240]")

    def replace(self, **changes: Any) -> "TimelineState":
        return dataclasses.replace(self, **changes)

    @property
    def settings(self) -> dict[str, Any]:
        return {"interpolation": self.interpolation, "space": self.space, "easing": self.easing, "loop": self.loop, "fps": self.fps}

    def animation(self) -> Animation | None:
        """The animation these keys and settings make (``None`` without keys). Raises
        :class:`AnimationError` for settings that do not fit the keys (z with edited keys)."""
        if not self.keyframes:
            return None
        return Animation(tracks=(self.keyframes,), **self.settings)

    @classmethod
    def from_animation(cls, animation: Animation) -> "TimelineState":
        """A one-track animation as a timeline (a grid's first cell)."""
        return cls(keyframes=animation.tracks[0], interpolation=animation.interpolation, space=animation.space,
                   easing=animation.easing, loop=animation.loop, fps=animation.fps)

    def with_keys(self, keyframes: Sequence[Keyframe]) -> "TimelineState":
        return self.replace(keyframes=tuple(keyframes))

    # -- sessions ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        animation = self.animation()
        return {"animation": animation.to_dict()} if animation is not None else {"settings": self.settings}

    @classmethod
    def from_dict(cls, data: Any) -> "TimelineState":
        if not isinstance(data, dict):
            raise AnimationError("a timeline must be a JSON object")
        if "animation" in data:
            return cls.from_animation(Animation.from_dict(data["animation"]))
        settings = data.get("settings", {})
        if not isinstance(settings, dict) or set(settings) - {"interpolation", "space", "easing", "loop", "fps"}:
            raise AnimationError("malformed timeline settings")
        try:
            return cls(**settings)
        except TypeError as error:
            raise AnimationError(f"malformed timeline settings: {error}") from None
