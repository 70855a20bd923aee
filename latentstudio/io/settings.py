"""Architecture settings read from a file, checked before any network is built.

A constructor trusts its arguments: ``img_resolution=2**20`` or ``channel_max=1e9`` allocate
gigabytes of random weights before anything else looks at them, a float where an int belongs
fails deep inside torch, a negative size becomes a pybind error. So every setting a file
gives is checked here first, against an exact type and a sane range (:func:`validate_settings`),
and the number of tensor elements the settings imply is computed from them alone
(:func:`implied_elements`), so a loader can compare it with the tensors the file actually
holds *before* it constructs anything.

The counts follow ``latentstudio.nets`` layer by layer (parameters, persistent buffers, and the
non-persistent ones construction allocates); ``tests/test_hostile_files.py`` checks them
against real networks of many configurations.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from latentstudio.nets.ops import ACTIVATIONS
from latentstudio.nets.stylegan2 import DEFAULT_FILTER
from latentstudio.nets.stylegan3 import layer_schedule

MAX_RESOLUTION = 4096
MAX_FEATURES = 16384  # channel counts and latent sizes
MAX_MAPPING_LAYERS = 32
MAX_SG3_LAYERS = 64
MAX_MARGIN = 256
MAX_FILTER_TAPS = 16


class SettingsError(ValueError):
    """A stored setting is of the wrong type, out of range or inconsistent; the message names it."""


Check = Callable[[str, Any], None]


def _fail(name: str, value: Any, expected: str) -> None:
    shown = repr(value) if isinstance(value, (int, float, str, bool, type(None))) else f"a {type(value).__name__}"
    raise SettingsError(f"setting {name} = {shown[:40]} is not {expected}")


def integer(lo: int, hi: int) -> Check:
    def check(name: str, value: Any) -> None:
        if type(value) is not int or not lo <= value <= hi:
            _fail(name, value, f"an integer from {lo} to {hi}")
    return check


def number(lo: float, hi: float, *, above: bool = False) -> Check:
    def check(name: str, value: Any) -> None:
        ok = type(value) in (int, float) and math.isfinite(value) and (lo < value if above else lo <= value) and value <= hi
        if not ok:
            _fail(name, value, f"a finite number {'above' if above else 'from'} {lo:g} {'up to' if above else 'to'} {hi:g}")
    return check


def optional(inner: Check) -> Check:
    def check(name: str, value: Any) -> None:
        if value is not None:
            inner(name, value)
    return check


def choice(*options: Any) -> Check:
    def check(name: str, value: Any) -> None:
        if not any(type(value) is type(option) and value == option for option in options):
            _fail(name, value, "one of " + ", ".join(map(repr, options)))
    return check


def power_of_two(lo: int, hi: int) -> Check:
    def check(name: str, value: Any) -> None:
        if type(value) is not int or not lo <= value <= hi or value & (value - 1):
            _fail(name, value, f"a power of two from {lo} to {hi}")
    return check


def filter_taps(name: str, value: Any) -> None:
    if (type(value) not in (list, tuple) or not 1 <= len(value) <= MAX_FILTER_TAPS
            or any(type(v) not in (int, float) or not math.isfinite(v) for v in value) or not sum(value) > 0):
        _fail(name, value, f"a list of 1 to {MAX_FILTER_TAPS} finite filter taps with a positive sum")


BOOL = choice(True, False)
FEATURES = integer(1, MAX_FEATURES)
COUNT = integer(0, MAX_FEATURES)
CLAMP = optional(number(0, 1e9, above=True))
ACTIVATION = choice(*ACTIVATIONS)

SG2_MAPPING = {
    "num_layers": integer(0, MAX_MAPPING_LAYERS),
    "embed_features": optional(FEATURES),
    "layer_features": optional(FEATURES),
    "activation": ACTIVATION,
    "lr_multiplier": number(0, 1e3, above=True),
    "w_avg_beta": optional(number(0, 1)),
    "freeze_layers": integer(0, MAX_MAPPING_LAYERS),
    "freeze_embed": BOOL,
}
SG3_MAPPING = {key: SG2_MAPPING[key] for key in ("num_layers", "lr_multiplier", "w_avg_beta", "freeze_layers", "freeze_embed")}
D_MAPPING = {key: check for key, check in SG2_MAPPING.items() if key != "w_avg_beta"}
GENERATOR = {
    "z_dim": FEATURES,
    "c_dim": COUNT,
    "w_dim": FEATURES,
    "img_resolution": power_of_two(4, MAX_RESOLUTION),
    "img_channels": FEATURES,
    "channel_base": integer(1, MAX_FEATURES * MAX_RESOLUTION * 2),
    "channel_max": FEATURES,
    "num_fp16_res": integer(0, 32),
    "conv_clamp": CLAMP,
}
SG2_SYNTHESIS = {
    **GENERATOR,
    "architecture": choice("orig", "skip", "resnet"),
    "resample_filter": filter_taps,
    "fp16_channels_last": BOOL,
    "fused_modconv_default": choice(True, False, "inference_only"),
    "kernel_size": choice(1, 3, 5, 7),
    "use_noise": BOOL,
    "activation": ACTIVATION,
}
SG3_SYNTHESIS = {
    **GENERATOR,
    "num_layers": integer(1, MAX_SG3_LAYERS),
    "num_critical": integer(0, MAX_SG3_LAYERS - 1),
    "first_cutoff": number(0, MAX_RESOLUTION, above=True),
    "first_stopband": number(0, 2 * MAX_RESOLUTION, above=True),
    "last_stopband_rel": number(1, 16),
    "margin_size": integer(0, MAX_MARGIN),
    "output_scale": number(-1e3, 1e3),
    "conv_kernel": choice(1, 3, 5, 7),
    "filter_size": integer(1, MAX_FILTER_TAPS),
    "lrelu_upsampling": integer(1, 8),
    "use_radial_filters": BOOL,
    "magnitude_ema_beta": number(0, 1),
}
DISCRIMINATOR = {
    "c_dim": COUNT,
    "img_resolution": power_of_two(4, MAX_RESOLUTION),
    "img_channels": FEATURES,
    "architecture": choice("orig", "skip", "resnet"),
    "channel_base": integer(1, MAX_FEATURES * MAX_RESOLUTION * 2),
    "channel_max": FEATURES,
    "num_fp16_res": integer(0, 32),
    "conv_clamp": CLAMP,
    "cmap_dim": optional(FEATURES),
}
D_BLOCK = {"activation": ACTIVATION, "resample_filter": filter_taps, "fp16_channels_last": BOOL,
           "freeze_layers": integer(0, 1024)}
D_EPILOGUE = {"mbstd_group_size": optional(integer(1, 1024)), "mbstd_num_channels": integer(0, 16),
              "activation": ACTIVATION}
REQUIRED = {"Generator": ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"),
            "Discriminator": ("c_dim", "img_resolution", "img_channels")}


def _check_all(settings: Any, schema: Mapping[str, Check], where: str) -> dict[str, Any]:
    if not isinstance(settings, dict):
        raise SettingsError(f"{where or 'the settings'} are a {type(settings).__name__}, not a dict")
    unknown = sorted(str(key) for key in settings if key not in schema)
    if unknown:
        raise SettingsError(f"unknown setting{'s' if len(unknown) > 1 else ''} {where}{', '.join(unknown)[:120]}")
    for key, value in settings.items():
        schema[key](f"{where}{key}", value)
    return settings


def flat_generator_settings(init_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """stylegan2-ada-pytorch nests synthesis settings in ``synthesis_kwargs``; stylegan3 does not."""
    nested = init_kwargs.get("synthesis_kwargs") or {}
    if not isinstance(nested, dict):
        raise SettingsError("setting synthesis_kwargs is not a dict")
    kwargs = {key: value for key, value in init_kwargs.items() if key != "synthesis_kwargs"}
    kwargs.update(nested)
    return kwargs


def validate_settings(kind: str, class_name: str, init_kwargs: Mapping[str, Any]) -> None:
    """Refuse (:class:`SettingsError`) settings of the wrong type, out of range or inconsistent."""
    missing = [key for key in REQUIRED.get(class_name, ()) if key not in init_kwargs and key not in (init_kwargs.get("synthesis_kwargs") or {})]
    if missing:
        raise SettingsError(f"missing setting{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    if class_name == "Discriminator":
        settings = dict(init_kwargs)
        nested = {key: settings.pop(key, None) or {} for key in ("block_kwargs", "mapping_kwargs", "epilogue_kwargs")}
        _check_all(settings, DISCRIMINATOR, "")
        _check_all(nested["block_kwargs"], D_BLOCK, "block_kwargs.")
        _check_all(nested["mapping_kwargs"], D_MAPPING, "mapping_kwargs.")
        _check_all(nested["epilogue_kwargs"], D_EPILOGUE, "epilogue_kwargs.")
        _discriminator_consistency(settings, nested)
        return
    settings = flat_generator_settings(init_kwargs)
    mapping = settings.pop("mapping_kwargs", None) or {}
    _check_all(settings, SG3_SYNTHESIS if kind == "stylegan3" else SG2_SYNTHESIS, "")
    _check_all(mapping, SG3_MAPPING if kind == "stylegan3" else SG2_MAPPING, "mapping_kwargs.")
    if mapping.get("num_layers", 1) == 0 and (settings["z_dim"] != settings["w_dim"] or settings["c_dim"]):
        raise SettingsError("a mapping network with 0 layers needs z_dim == w_dim and no labels")
    if kind == "stylegan3":
        _stylegan3_consistency(settings)
    else:
        top = settings["img_resolution"]
        if settings.get("channel_base", 32768) // top < 1:
            raise SettingsError(f"setting channel_base = {settings.get('channel_base')} leaves no channels at {top}x{top}")


def _discriminator_consistency(settings: dict[str, Any], nested: dict[str, dict[str, Any]]) -> None:
    channels = _sg2_channels(settings, range(2, int(math.log2(settings["img_resolution"])) + 1))
    if min(channels.values()) < 1:
        raise SettingsError(f"setting channel_base = {settings.get('channel_base')} leaves a block without channels")
    groups = nested["epilogue_kwargs"].get("mbstd_num_channels", 1)
    if groups and channels[4] % groups:
        raise SettingsError(f"epilogue_kwargs.mbstd_num_channels = {groups} does not divide the {channels[4]} channels at 4x4")


def _sg3_schedule(settings: Mapping[str, Any]):
    return layer_schedule(
        settings["img_resolution"], settings["img_channels"], settings.get("channel_base", 32768),
        settings.get("channel_max", 512), settings.get("num_layers", 14), settings.get("num_critical", 2),
        settings.get("first_cutoff", 2), settings.get("first_stopband", 2**2.1), settings.get("last_stopband_rel", 2**0.3),
        settings.get("margin_size", 10))


def _stylegan3_consistency(settings: dict[str, Any]) -> None:
    num_layers, num_critical = settings.get("num_layers", 14), settings.get("num_critical", 2)
    if num_critical >= num_layers:
        raise SettingsError(f"setting num_critical = {num_critical} must be below num_layers = {num_layers}")
    cutoff, stopband = settings.get("first_cutoff", 2), settings.get("first_stopband", 2**2.1)
    top = settings["img_resolution"]
    if not cutoff < stopband or not cutoff <= top / 2:
        raise SettingsError(f"settings first_cutoff = {cutoff} and first_stopband = {stopband} are not a valid band for {top}x{top}")
    schedule = _sg3_schedule(settings)
    if schedule.sampling_rates.min() < 2 or not (schedule.half_widths > 0).all():
        raise SettingsError("the StyleGAN3 filter settings give a layer without a valid sampling rate or transition band")
    if schedule.channels.min() < 1 or schedule.channels.max() > MAX_FEATURES:
        raise SettingsError(f"settings channel_base / channel_max give layers of {int(schedule.channels.min())} to "
                            f"{int(schedule.channels.max())} channels (1 to {MAX_FEATURES} accepted)")


def implied_num_ws(kind: str, flat: Mapping[str, Any]) -> int:
    """How many per-layer latents the generator these (valid) settings describe takes."""
    if kind == "stylegan3":
        return flat.get("num_layers", 14) + 2
    return 2 * int(math.log2(flat["img_resolution"])) - 2


# -- element counts ------------------------------------------------------------------------------
def _filter(taps: Any) -> int:
    """Elements of ``setup_filter(taps)``: an outer product, or 1-D from 8 taps on."""
    count = len(taps)
    return count if count >= 8 else count * count


def _dense(fan_in: int, fan_out: int, bias: bool = True) -> int:
    return fan_in * fan_out + (fan_out if bias else 0)


def _conv(fan_in: int, fan_out: int, kernel: int, bias: bool = True, taps: Any = DEFAULT_FILTER) -> int:
    return _filter(taps) + fan_out * fan_in * kernel * kernel + (fan_out if bias else 0)


def _mapping(z_dim: int, c_dim: int, w_dim: int, with_w_avg: bool, kwargs: Mapping[str, Any]) -> int:
    num_layers = kwargs.get("num_layers", 8)
    embed = 0 if c_dim == 0 else kwargs.get("embed_features") or w_dim
    layer = kwargs.get("layer_features") or w_dim
    features = [z_dim + embed] + [layer] * (num_layers - 1) + [w_dim]
    count = _dense(c_dim, embed) if c_dim else 0
    count += sum(_dense(features[i], features[i + 1]) for i in range(num_layers))
    return count + (w_dim if with_w_avg else 0)


def _sg2_channels(settings: Mapping[str, Any], log2_resolutions: range) -> dict[int, int]:
    base, most = settings.get("channel_base", 32768), settings.get("channel_max", 512)
    return {2**i: min(base // 2**i, most) for i in log2_resolutions}


def _sg2_synthesis(flat: Mapping[str, Any]) -> int:
    top, w_dim, img = flat["img_resolution"], flat["w_dim"], flat["img_channels"]
    channels = _sg2_channels(flat, range(2, int(math.log2(top)) + 1))
    taps = flat.get("resample_filter", DEFAULT_FILTER)
    kernel, noise = flat.get("kernel_size", 3), flat.get("use_noise", True)
    architecture = flat.get("architecture", "skip")

    def layer(fan_in: int, fan_out: int, res: int, layer_taps: Any) -> int:
        noise_elements = (res * res + 1) if noise else 0
        return _filter(layer_taps) + _dense(w_dim, fan_in) + fan_out * fan_in * kernel * kernel + fan_out + noise_elements

    count = 0
    for res, out in channels.items():
        fan_in = channels[res // 2] if res > 4 else 0
        count += _filter(taps)
        count += out * res * res if fan_in == 0 else layer(fan_in, out, res, taps)  # const, or conv0 (upsampling)
        count += layer(out, out, res, DEFAULT_FILTER)  # conv1 keeps the default filter
        if res == top or architecture == "skip":
            count += _dense(w_dim, out) + img * out + img
        if fan_in and architecture == "resnet":
            count += _conv(fan_in, out, 1, bias=False, taps=taps)
    return count


def _sg3_synthesis(flat: Mapping[str, Any]) -> int:
    schedule = _sg3_schedule(flat)
    w_dim, num_layers = flat["w_dim"], flat.get("num_layers", 14)
    num_critical, kernel = flat.get("num_critical", 2), flat.get("conv_kernel", 3)
    filter_size, lrelu_up = flat.get("filter_size", 6), flat.get("lrelu_upsampling", 2)
    radial = flat.get("use_radial_filters", False)
    rates, channels = schedule.sampling_rates.astype(int), schedule.channels.astype(int)
    first, size = int(channels[0]), int(schedule.sizes[0])
    count = first * first + _dense(w_dim, 4) + 9 + 3 * first + size * size * 2  # input, grid included
    for idx in range(num_layers + 1):
        prev, torgb = max(idx - 1, 0), idx == num_layers
        fan_in, fan_out, k = int(channels[prev]), int(channels[idx]), 1 if torgb else kernel
        count += _dense(w_dim, fan_in) + fan_out * fan_in * k * k + fan_out + 1
        tmp = max(rates[prev], rates[idx]) * (1 if torgb else lrelu_up)
        up, down = tmp // rates[prev], tmp // rates[idx]
        up_taps = filter_size * up if up > 1 and not torgb else 1
        down_taps = filter_size * down if down > 1 and not torgb else 1
        count += up_taps if up_taps > 1 else 0
        if down_taps > 1:
            count += down_taps * down_taps if radial and idx < num_layers - num_critical else down_taps
    return count


def _discriminator(settings: Mapping[str, Any]) -> int:
    top, img, c_dim = settings["img_resolution"], settings["img_channels"], settings["c_dim"]
    channels = _sg2_channels(settings, range(2, int(math.log2(top)) + 1))
    architecture = settings.get("architecture", "resnet")
    block = settings.get("block_kwargs") or {}
    taps = block.get("resample_filter", DEFAULT_FILTER)
    count = 0
    for res in range(int(math.log2(top)), 2, -1):
        res = 2**res
        tmp, out = channels[res], channels[res // 2]
        count += _filter(taps)
        if res == top or architecture == "skip":
            count += _conv(img, tmp, 1)
        count += _conv(tmp, tmp, 3) + _conv(tmp, out, 3, taps=taps)
        if architecture == "resnet":
            count += _conv(tmp, out, 1, bias=False, taps=taps)
    cmap = 0 if c_dim == 0 else settings.get("cmap_dim") or channels[4]
    if c_dim:
        count += _mapping(0, c_dim, cmap, False, settings.get("mapping_kwargs") or {})
    head, groups = channels[4], (settings.get("epilogue_kwargs") or {}).get("mbstd_num_channels", 1)
    if architecture == "skip":
        count += _conv(img, head, 1)
    count += _conv(head + groups, head, 3) + _dense(head * 16, head) + _dense(head, cmap or 1)
    return count


def implied_elements(kind: str, class_name: str, init_kwargs: Mapping[str, Any]) -> int:
    """Tensor elements that building the network these (validated) settings describe allocates."""
    if class_name == "Discriminator":
        return _discriminator(init_kwargs)
    flat = flat_generator_settings(init_kwargs)
    mapping = flat.get("mapping_kwargs") or {}
    if kind == "stylegan3":
        mapping = {"num_layers": 2, **mapping, "embed_features": None, "layer_features": None}
        synthesis = _sg3_synthesis(flat)
    else:
        synthesis = _sg2_synthesis(flat)
    with_w_avg = mapping.get("w_avg_beta", 0.998) is not None
    return synthesis + _mapping(flat["z_dim"], flat["c_dim"], flat["w_dim"], with_w_avg, mapping)
