"""Animations: keys are hit exactly, interpolation is smooth, loops close, videos decode back."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from latentstudio.defaults import DEFAULT_MODEL
from latentstudio.engine.animation import (
    Animation,
    AnimationError,
    Keyframe,
    check_model,
    direction_sweep,
    grid_walk,
    seed_walk,
    truncation_sweep,
)
from latentstudio.engine.animation_sampler import AnimationFrame, AnimationSampler, iter_frames, slerp
from latentstudio.engine.directions import Cancelled, DirectionSet
from latentstudio.engine.recipe import EditRecipe, seed_to_z
from latentstudio.engine.renderer import Renderer
from latentstudio.engine.video import VideoError, open_writer, read_video_animation
from latentstudio.engine.video_export import export_video
from latentstudio.io import load_model

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def renderer():
    """The default model: trained faces, so video quality numbers mean something."""
    return Renderer(load_model(DEFAULT_MODEL, device="cpu"))


@pytest.fixture(scope="module")
def base(renderer):
    return EditRecipe(truncation_psi=0.7, model=renderer.G.info.fingerprint)


def decode(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def assert_same_render(batched: np.ndarray, single: np.ndarray) -> None:
    """The same ws rendered in a batch and alone: a batched convolution may round differently
    on some CPUs (oneDNN picks its kernel by batch size), so one grey level is allowed."""
    assert batched.shape == single.shape
    assert np.abs(batched.astype(np.int16) - single.astype(np.int16)).max() <= 1


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse))


def test_two_key_linear_animation_starts_and_ends_on_its_keys_exactly(renderer, base):
    keys = [base.replace(seed=3), base.replace(seed=8, truncation_psi=0.5)]
    animation = Animation.of(keys, 6, interpolation="linear")
    assert animation.num_frames == 7
    sampler = AnimationSampler(renderer, animation)
    ws, _ = sampler.sample([0, 3, 6])
    assert torch.equal(ws[0], renderer.compose(keys[0])[0]) and torch.equal(ws[2], renderer.compose(keys[1])[0])
    assert torch.allclose(ws[1], (ws[0] + ws[2]) / 2, atol=1e-5)  # halfway is halfway
    frames = list(iter_frames(renderer, animation, batch_size=1))
    assert len(frames) == 7
    assert np.array_equal(frames[0], renderer.render(keys[0]).raw)
    assert np.array_equal(frames[-1], renderer.render(keys[1]).raw)
    batched = list(iter_frames(renderer, animation, batch_size=4, start=3))  # a batch ends on the last key
    assert_same_render(batched[-1], frames[-1])


def test_cubic_interpolation_passes_through_every_key_and_is_smooth(renderer, base):
    animation = seed_walk(base, [0, 4, 7, 2], 10, interpolation="cubic")
    sampler = AnimationSampler(renderer, animation)
    ws, _ = sampler.sample(range(animation.num_frames))
    for index, frame in enumerate(animation.key_frame_indices()):
        assert torch.equal(ws[frame], renderer.compose(animation.keyframes[index].recipe)[0])
    # A spline has no corners: the velocity changes little across each inner key.
    velocity = ws[1:] - ws[:-1]
    for frame in animation.key_frame_indices()[1:-1]:
        turn = (velocity[frame] - velocity[frame - 1]).norm() / velocity[frame - 1].norm()
        assert turn < 0.35, (frame, float(turn))
    linear = AnimationSampler(renderer, animation.replace(interpolation="linear")).sample(range(animation.num_frames))[0]
    assert not torch.allclose(ws[5], linear[5])  # cubic really is another path


@pytest.mark.parametrize("interpolation,space", [("linear", "w"), ("cubic", "w"), ("linear", "z")])
def test_looping_video_closes_seamlessly(renderer, base, interpolation, space):
    animation = seed_walk(base, [1, 5, 9], 8, interpolation=interpolation, space=space, loop=True)
    assert animation.num_frames == 24
    ws, _ = AnimationSampler(renderer, animation).sample(range(24))
    steps = (ws[1:] - ws[:-1]).norm(dim=(1, 2))
    closing = (ws[0] - ws[-1]).norm()  # the step from the last frame back into the first
    assert closing <= 1.5 * steps.max() and closing >= 0.5 * steps.min()
    non_looping = AnimationSampler(renderer, animation.replace(loop=False)).sample([0, 16])[0]
    assert (non_looping[1] - non_looping[0]).norm() > 3 * steps.max()  # without the loop the ends are far apart


def test_easing_slows_into_and_out_of_keys(renderer, base):
    animation = seed_walk(base, [0, 1], 20, interpolation="linear", easing="ease-in-out")
    ws, _ = AnimationSampler(renderer, animation).sample(range(21))
    steps = (ws[1:] - ws[:-1]).norm(dim=(1, 2))
    assert steps[0] < 0.2 * steps[10] and steps[-1] < 0.2 * steps[10]
    assert torch.equal(ws[-1], renderer.compose(base.replace(seed=1))[0])


def test_z_interpolation_is_spherical_and_hits_the_keys(renderer, base):
    a, b = seed_to_z(0, 64)[0], seed_to_z(1, 64)[0]
    middle = slerp(a, b, [0.5])[0]
    assert abs(np.linalg.norm(middle) - (np.linalg.norm(a) + np.linalg.norm(b)) / 2) < 1e-6  # no shrinking towards 0
    assert np.allclose(slerp(a, b, [0.0, 1.0]), [a, b])
    animation = seed_walk(base, [0, 1], 6, interpolation="linear", space="z")
    ws, _ = AnimationSampler(renderer, animation).sample([0, 3, 6])
    assert torch.equal(ws[0], renderer.compose(base.replace(seed=0))[0])
    assert torch.equal(ws[2], renderer.compose(base.replace(seed=1))[0])
    with pytest.raises(AnimationError, match="plain seeds"):
        Animation.of([base.replace(latent=(0.0,) * 64), base], space="z", interpolation="linear")
    with pytest.raises(AnimationError, match="linear"):
        seed_walk(base, [0, 1], space="z", interpolation="cubic")


def test_stylegan3_translate_and_rotate_are_interpolated():
    renderer = Renderer(load_model(FIXTURES / "sg3t_32.pkl", device="cpu"))
    start, end = EditRecipe(seed=2), EditRecipe(seed=2, translate=(0.2, -0.1), rotate=30.0)
    animation = Animation.of([start, end], 4, interpolation="linear")
    _, moves = AnimationSampler(renderer, animation).sample(range(5))
    (x, y), rotate = moves[2]
    assert (x, y, rotate) == pytest.approx((0.1, -0.05, 15.0))
    sampler = AnimationSampler(renderer, animation)
    ws, moves = sampler.sample([0, 2])
    frames = renderer.render_ws(ws, transforms=moves)  # one batch, each frame its own transform
    middle = renderer.render(EditRecipe(seed=2, translate=(0.1, -0.05), rotate=15.0)).raw
    assert np.abs(frames[1].astype(int) - middle.astype(int)).max() <= 1
    assert not np.array_equal(frames[0], frames[1])  # the frames really moved
    assert renderer.G.synthesis.input.transform.shape == (3, 3)  # the batch transform does not linger


def test_grid_walk_assigns_seeds_as_nvlabs_gen_video(renderer, base):
    animation = grid_walk(base, list(range(8)), columns=2, rows=2, frames_per_key=5, loop=True)
    assert [[key.recipe.seed for key in track] for track in animation.tracks] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    ws, _ = AnimationSampler(renderer, animation).sample([0])
    assert torch.equal(ws[2], renderer.compose(base.replace(seed=4))[0])  # bottom-left cell, first key: exact
    frame = next(iter_frames(renderer, animation))
    assert frame.shape == (128, 128, 3)
    assert_same_render(frame[64:, :64], renderer.render(base.replace(seed=4)).raw)
    with pytest.raises(AnimationError, match="multiple of 4"):
        grid_walk(base, list(range(6)), 2, 2)


def test_sweeps_move_only_what_they_sweep(renderer, base):
    dset = DirectionSet.load(DEFAULT_MODEL.with_name("faces64_pca.npz"))
    sweep = direction_sweep(base, dset.edit(0, 0.0, 0, 3), -2.0, 2.0, 10, loop=True)
    ws, _ = AnimationSampler(renderer, sweep).sample([0, 10])
    delta = ws[1] - ws[0]
    assert delta[4:].abs().max() == 0 and delta[:4].abs().max() > 0  # layers 0-3 only
    assert [key.recipe.edits[-1].strength for key in sweep.keyframes] == [-2.0, 2.0]
    truncation = truncation_sweep(base, 0.0, 1.0, 10)
    ws, _ = AnimationSampler(renderer, truncation).sample([0])
    assert torch.allclose(ws[0], renderer.G.mapping.w_avg.expand_as(ws[0]))  # psi 0 is the average face


def test_projected_latent_keyframes_work(renderer, base):
    """A recipe with ``latent`` set (a projected photo, a drag) is a keyframe like any other."""
    projected = base.replace(latent=tuple(renderer.compose(base.replace(seed=11))[0].reshape(-1).tolist()))
    edited = projected.replace(edits=(DirectionSet.load(DEFAULT_MODEL.with_name("faces64_pca.npz")).edit(1, 2.0),))
    animation = Animation.of([projected, edited, base.replace(seed=3)], 4, interpolation="cubic")
    ws, _ = AnimationSampler(renderer, animation).sample([0, 4])
    assert torch.equal(ws[0], renderer.compose(projected)[0]) and torch.equal(ws[1], renderer.compose(edited)[0])
    frames = list(iter_frames(renderer, animation, batch_size=4))
    assert_same_render(frames[0], renderer.render(projected).raw)


def test_animation_json_round_trip_and_hostile_input(base):
    animation = grid_walk(base, [1, 2], 2, 1, 7, easing="ease-in", fps=24)
    assert Animation.from_json(animation.to_json()) == animation
    for text, message in [
        ("[]", "JSON object"),
        ('{"format": "latentstudio-animation", "version": 9, "tracks": []}', "version"),
        ('{"format": "latentstudio-animation", "version": 1, "tracks": [[]]}', "at least one keyframe"),
        ('{"format": "latentstudio-animation", "version": 1, "tracks": [[{"frames": 0, "recipe": {"version": 1}}]]}', "at least 1 frame"),
        ('{"format": "latentstudio-animation", "version": 1, "fps": "NaN", "tracks": [[{"frames": 2, "recipe": {"version": 1}}]]}', "fps"),
        ('{"format": "latentstudio-animation", "version": 1, "tracks": [[{"frames": 2, "recipe": {"seed": -1, "version": 1}}]]}', "keyframe 1"),
        ("[" * 100_000, "JSON"),
    ]:
        with pytest.raises(AnimationError, match=message):
            Animation.from_json(text)
    with pytest.raises(AnimationError, match="at least 1 frame"):
        Keyframe(base, 0)


def test_keys_from_another_model_are_refused(renderer, base):
    with pytest.raises(AnimationError, match="keyframe 2 was made on another model"):
        check_model(Animation.of([base, base.replace(model="sha256:0000")]), renderer.G.info.fingerprint)
    other = Renderer(load_model(FIXTURES / "sg2_gray32.pkl", device="cpu"))  # another W size
    latent = base.replace(latent=(0.5,) * (renderer.G.num_ws * renderer.G.w_dim), model=None)
    with pytest.raises(AnimationError, match="keyframe 1: stored latent"):
        AnimationSampler(other, Animation.of([latent, base.replace(model=None)]))


def test_mp4_decodes_back_close_to_the_renders_with_its_animation(renderer, base, tmp_path):
    animation = seed_walk(base, [0, 1, 2], 4, loop=True)
    path = export_video(renderer, animation, tmp_path / "walk.mp4", model_path="faces64.safetensors")
    frames = decode(path)
    assert len(frames) == animation.num_frames == 12
    assert frames[0].shape == (64, 64, 3)
    assert psnr(frames[0], renderer.render(base).raw) > 32
    # H.264 with 4:2:0 chroma keeps a detailed 64 px face at about 34-36 dB (CRF 15); what must
    # hold is that every frame is its own render, in order: 10 dB closer to it than to any other
    rendered = list(iter_frames(renderer, animation))
    scores = np.array([[psnr(f, r) for r in rendered] for f in frames])
    own = np.diag(scores)
    assert own.min() > 32
    assert (own - np.where(np.eye(len(frames), dtype=bool), -np.inf, scores).max(axis=1)).min() > 10
    reopened, model_path = read_video_animation(path)
    assert reopened == animation and model_path == "faces64.safetensors"
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt, float(stream.average_rate)) == ("h264", "yuv420p", 30.0)


def test_gif_png_and_webp_outputs_with_upscaling(renderer, base, tmp_path):
    animation = seed_walk(base, [0, 1], 3, interpolation="linear", fps=25)
    first = renderer.render(base).raw
    gif = export_video(renderer, animation, tmp_path / "walk.gif", scale=2)
    with Image.open(gif) as picture:
        assert picture.n_frames == 4 and picture.size == (128, 128) and picture.info["duration"] == 40 and picture.info.get("loop") is None
        picture.seek(0)
        assert psnr(np.asarray(picture.convert("RGB")), np.asarray(Image.fromarray(first).resize((128, 128), Image.Resampling.LANCZOS))) > 25
    assert read_video_animation(gif)[0] == animation  # via walk.gif.json
    folder = export_video(renderer, animation, tmp_path / "frames")
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["animation.json"] + [f"frame{i:05d}.png" for i in range(4)]
    assert_same_render(np.asarray(Image.open(folder / "frame00000.png")), first)  # exported in batches
    assert read_video_animation(folder)[0] == animation
    webp = export_video(renderer, animation.replace(loop=True), tmp_path / "walk.webp")
    with Image.open(webp) as picture:
        assert picture.n_frames == 6 and picture.size == (64, 64)


def test_gif_palette_does_not_band(tmp_path):
    """A smooth gradient through a global palette with dithering: local averages stay true."""
    ramp = np.linspace(0, 255, 256)
    image = np.stack([np.tile(ramp, (64, 1)), np.tile(ramp[::-1], (64, 1)), np.full((64, 256), 128.0)], axis=-1).astype(np.uint8)
    writer = open_writer(tmp_path / "ramp.gif", 10, palette_frames=[image[:, ::4], image])
    for _ in range(3):
        writer.write(image)
    with Image.open(writer.close()) as picture:
        decoded = np.asarray(picture.convert("RGB")).astype(np.float64)
    blur = lambda a: a.reshape(8, 8, 32, 8, 3).mean(axis=(1, 3))  # 8x8 box averages
    assert np.abs(blur(decoded) - blur(image.astype(np.float64))).max() < 4  # banding would leave steps of 8+ levels


def test_interrupted_export_leaves_a_valid_shorter_video_and_cancel_leaves_nothing(renderer, base, tmp_path):
    animation = seed_walk(base, [0, 1, 2], 6)

    def interrupt_at(count):
        def progress(done, _total):
            if done == count:
                raise KeyboardInterrupt
        return progress

    path = tmp_path / "walk.mp4"
    with pytest.raises(KeyboardInterrupt):
        export_video(renderer, animation, path, progress=interrupt_at(5))
    assert len(decode(path)) == 5
    previous = path.read_bytes()
    with pytest.raises(Cancelled):
        export_video(renderer, animation, path, should_stop=lambda: True)
    assert path.read_bytes() == previous  # the older video is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["walk.mp4"]  # no temporary files left
    with pytest.raises(Cancelled):
        export_video(renderer, animation, tmp_path / "frames", should_stop=lambda: True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["walk.mp4"]


def test_bad_outputs_are_refused_before_rendering(tmp_path):
    with pytest.raises(VideoError, match="unknown video format"):
        open_writer(tmp_path / "walk.avi", 30)
    blocked = tmp_path / "file"
    blocked.write_text("x")
    with pytest.raises(VideoError, match="cannot write"):
        open_writer(blocked / "walk.mp4", 30)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(VideoError, match="holds other files"):
        open_writer(tmp_path / "mine", 30)
    with pytest.raises(VideoError, match="0 .lossless"):
        open_writer(tmp_path / "walk.mp4", 30, crf=99)
    with pytest.raises(VideoError, match="GiB in memory"):
        open_writer(tmp_path / "long.webp", 30, expected_frames=200_000, image_size=(256, 256))
    writer = open_writer(tmp_path / "empty.mp4", 30)
    with pytest.raises(VideoError, match="no frames"):
        writer.close()
    assert not (tmp_path / "empty.mp4").exists()


def test_animation_frame_request_renders_through_the_editor_path(renderer, base):
    animation = seed_walk(base, [0, 1], 4, interpolation="linear")
    frame = AnimationFrame(animation, 4).render(renderer)
    assert frame.ok and frame.frame_index == 4
    assert np.array_equal(frame.raw, renderer.render(base.replace(seed=1)).raw)
    assert not AnimationFrame(animation, 99).render(renderer).ok  # an error, never an exception


def test_default_batch_size_follows_the_measurements():
    from types import SimpleNamespace

    from latentstudio.engine.video_export import default_batch_size

    def renderer(resolution, device):
        return SimpleNamespace(device=torch.device(device), G=SimpleNamespace(img_resolution=resolution))

    assert default_batch_size(renderer(64, "cpu")) == 8  # batches 2.8x faster there
    assert default_batch_size(renderer(256, "cpu")) == 1  # the batch-1 lean path wins
    assert default_batch_size(renderer(1024, "meta")) == 8  # per-call overheads dominate off the CPU
