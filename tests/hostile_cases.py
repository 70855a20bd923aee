"""Hostile model files, generated: one or more per way a file can hurt a loader.

``make_cases(folder)`` writes them and returns ``(name, path, expected)`` triples, ``expected``
being a phrase the one-line error must contain. Pickles are assembled from opcodes (so a case
says exactly what a forger would write), or re-pickled from a real fixture with one thing
changed (:mod:`nvlabs_writer`); native files are edited fixtures.
"""
from __future__ import annotations

import collections
import json
import math
import os
import pickle
import socket
import struct
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

from nvlabs_writer import dumps_records, read_records

FIXTURES = Path(__file__).parent / "fixtures"
SG2 = FIXTURES / "sg2_gray32.pkl"
SG3 = FIXTURES / "sg3r_cond32.pkl"


# -- a tiny pickle assembler ---------------------------------------------------------------
def glob(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def text(value: str) -> bytes:
    data = value.encode()
    return pickle.BINUNICODE + struct.pack("<I", len(data)) + data


def raw(value: bytes) -> bytes:
    return pickle.BINBYTES + struct.pack("<I", len(value)) + value


def small(value: int) -> bytes:
    return pickle.BININT1 + bytes([value])


def put(index: int) -> bytes:
    return pickle.LONG_BINPUT + struct.pack("<I", index)


def get(index: int) -> bytes:
    return pickle.LONG_BINGET + struct.pack("<I", index)


def program(*parts: bytes, proto: int = 2) -> bytes:
    return pickle.PROTO + bytes([proto]) + b"".join(parts) + pickle.STOP


# -- pickles from opcodes ------------------------------------------------------------------------
def forged_dtype_fields() -> bytes:
    """A float64 dtype whose state declares a field 2**40 bytes away, then a scalar of it: the
    read (and with an array, write) outside the buffer that crashed the old loader."""
    state = (pickle.MARK + small(3) + text("<") + pickle.NONE + text("a") + pickle.TUPLE1
             + pickle.EMPTY_DICT + text("a") + glob("numpy", "dtype") + text("f8") + pickle.NEWFALSE + pickle.NEWTRUE
             + pickle.TUPLE3 + pickle.REDUCE + pickle.LONG1 + bytes([6]) + (1 << 40).to_bytes(6, "little")
             + pickle.TUPLE2 + pickle.SETITEM + small(8) + small(1) + small(0) + pickle.TUPLE)
    return program(glob("numpy", "dtype"), text("f8"), pickle.NEWFALSE, pickle.NEWTRUE, pickle.TUPLE3, pickle.REDUCE,
                   put(0), state, pickle.BUILD, pickle.POP,
                   glob("numpy._core.multiarray", "scalar"), get(0), raw(b"\0" * 8), pickle.TUPLE2, pickle.REDUCE)


def numpy_array(descriptor: str, shape: tuple[int, ...], data: bytes) -> bytes:
    """``_reconstruct(ndarray, (0,), b'b')`` then BUILD with the given shape, dtype and bytes."""
    shape_ops = pickle.MARK + b"".join(pickle.BININT + struct.pack("<i", n) for n in shape) + pickle.TUPLE
    dtype = glob("numpy", "dtype") + text(descriptor) + pickle.NEWFALSE + pickle.NEWTRUE + pickle.TUPLE3 + pickle.REDUCE
    return program(glob("numpy.core.multiarray", "_reconstruct"), glob("numpy", "ndarray"), small(0), pickle.TUPLE1,
                   raw(b"b"), pickle.TUPLE3, pickle.REDUCE,
                   pickle.MARK, small(1), shape_ops, dtype, pickle.NEWFALSE, raw(data), pickle.TUPLE, pickle.BUILD)


def dag(levels: int) -> bytes:
    """Each list holds the previous one twice: a few hundred bytes, 2**levels paths."""
    parts = [pickle.EMPTY_LIST, put(0)]
    for level in range(levels):
        parts += [pickle.EMPTY_LIST, pickle.MARK, get(level), get(level), pickle.APPENDS, put(level + 1)]
    return program(*parts)


def deep_tuple_key(depth: int) -> bytes:
    """A dict whose key is a tuple nested ``depth`` deep: hashing it overflows CPython's C stack."""
    return program(pickle.EMPTY_DICT, small(1), pickle.TUPLE1 * depth, small(0), pickle.SETITEM)


def deep_set_member(depth: int) -> bytes:
    return program(pickle.EMPTY_SET, pickle.MARK, small(1), pickle.TUPLE1 * depth, pickle.ADDITEMS, proto=4)


def deep_lists(depth: int) -> bytes:
    return program(pickle.EMPTY_LIST * depth, pickle.APPEND * (depth - 1))


def deep_marks(depth: int) -> bytes:
    return program(pickle.MARK * depth, pickle.NONE, pickle.TUPLE * depth)


def memo_abuse() -> bytes:
    """A memo index of 2**27 in a 9-byte file (the C unpickler sizes its memo array by it)."""
    return program(pickle.EMPTY_LIST, put(1 << 27))


def missing_memo() -> bytes:
    return program(get(12345))


def declared(opcode: bytes, length_format: str, length: int) -> bytes:
    return program(opcode + struct.pack(length_format, length) + b"x" * 16, proto=4)


def self_containing_list() -> bytes:
    return program(pickle.EMPTY_LIST, put(0), get(0), pickle.APPEND)


def text_opcode() -> bytes:
    return program(b"I12345\n")


def quantized_storage() -> bytes:
    return program(glob("torch", "QInt8Storage"))


def huge_integer() -> bytes:
    return program(pickle.LONG4 + struct.pack("<i", 1 << 20) + b"\x01" * (1 << 20))


class _FakeTensor:
    """Pickles as ``_rebuild_tensor_v2(storage, offset, size, stride, ...)`` with any geometry."""

    def __init__(self, values: torch.Tensor, offset: int, size: tuple, stride: tuple):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.storage = values.storage()
        self.geometry = (offset, size, stride)

    def __reduce__(self):
        return torch._utils._rebuild_tensor_v2, (self.storage, *self.geometry, False, collections.OrderedDict())


def fake_tensor(values: torch.Tensor, offset: int, size: tuple, stride: tuple) -> bytes:
    return pickle.dumps({"weight": _FakeTensor(values, offset, size, stride)}, protocol=4)


# -- networks with one thing changed ------------------------------------------------------------
def _changed(source: Path, change: Callable[[Any], None]) -> bytes:
    data = read_records(source)
    change(data)
    return dumps_records(data)


def _set(network: str, key: str, value: Any, nested: str | None = None) -> Callable[[Any], None]:
    def change(data: Any) -> None:
        kwargs = data[network].state["_init_kwargs"]
        (kwargs.setdefault(nested, {}) if nested else kwargs)[key] = value
    return change


def _weight(network: str, module_path: str, name: str, make: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[Any], None]:
    def change(data: Any) -> None:
        record = data[network]
        for part in module_path.split("."):
            record = record.state["_modules"][part]
        params = record.state["_parameters"]
        params[name] = make(params[name])
    return change


def _stored_attribute(network: str, key: str, value: Any) -> Callable[[Any], None]:
    def change(data: Any) -> None:
        data[network].state[key] = value
    return change


def _class_name(value: str) -> Callable[[Any], None]:
    def change(data: Any) -> None:
        data["G_ema"].class_name = value
    return change


def _huge_channels(data: Any) -> None:
    """Settings within every range, describing a network thousands of times larger than the weights."""
    data["G_ema"].state["_init_kwargs"].update(img_resolution=4096, channel_base=1 << 26, channel_max=16384)
    data["G_ema"].state.update(img_resolution=4096, num_ws=22)


def _nan(tensor: torch.Tensor) -> torch.Tensor:
    tensor = tensor.clone()
    tensor.view(-1)[0] = math.nan
    return tensor


def _inf(tensor: torch.Tensor) -> torch.Tensor:
    tensor = tensor.clone()
    tensor.view(-1)[-1] = math.inf
    return tensor


# -- native files ---------------------------------------------------------------------------------
def _native_parts(native: Path) -> tuple[dict, bytes]:
    data = native.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + length]), data[8 + length:]


def _native(header: dict, body: bytes) -> bytes:
    encoded = json.dumps(header).encode()
    return struct.pack("<Q", len(encoded)) + encoded + body


def _native_settings(native: Path, change: Callable[[dict], None]) -> bytes:
    header, body = _native_parts(native)
    settings = json.loads(header["__metadata__"]["latentstudio"])
    change(settings)
    header["__metadata__"]["latentstudio"] = json.dumps(settings)
    return _native(header, body)


def _native_tensor_nan(native: Path) -> bytes:
    header, body = _native_parts(native)
    name, entry = next((k, v) for k, v in header.items() if k.endswith("mapping.fc0.weight"))
    start = entry["data_offsets"][0]
    body = body[:start] + struct.pack("<f", math.nan) + body[start + 4:]
    return _native(header, body)


def _native_overlap(native: Path) -> bytes:
    header, body = _native_parts(native)
    last = max((v for k, v in header.items() if k != "__metadata__"), key=lambda v: v["data_offsets"][0])
    last["data_offsets"] = [offset - 4 for offset in last["data_offsets"]]
    return _native(header, body)


def make_cases(folder: Path, native: Path) -> list[tuple[str, Path, str]]:
    """Write every hostile file into ``folder``; ``native`` is a valid native file to edit."""
    folder.mkdir(parents=True, exist_ok=True)
    blobs: dict[str, tuple[bytes, str]] = {
        "forged_dtype_fields": (forged_dtype_fields(), "declares fields"),
        "object_dtype": (numpy_array("O", (1,), b"\0" * 8), "not a simple numeric type"),
        "void_dtype": (numpy_array("V8", (1,), b"\0" * 8), "not a simple numeric type"),
        "array_bytes_short": (numpy_array("<f4", (1 << 20,), b"\0" * 8), "needs 4,194,304 bytes but holds 8"),
        "storage_growth": (fake_tensor(torch.zeros(4), 0, (1000,), (1,)), "reaches element 1,000 of a storage of 4"),
        "storage_offset_beyond": (fake_tensor(torch.zeros(4), 3, (2,), (1,)), "outside its data"),
        "negative_stride": (fake_tensor(torch.zeros(4), 3, (4,), (-1,)), "not a non-negative integer"),
        "stride0_gigabytes": (fake_tensor(torch.zeros(1), 0, (1 << 20, 1 << 16), (0, 0)), "exceeds what a file of this size can hold"),
        "dag_2_40_paths": (dag(40), "shared references make more paths"),
        "deep_tuple_key": (deep_tuple_key(200_000), "nests deeper than 100 levels"),
        "deep_set_member": (deep_set_member(200_000), "nests deeper than 100 levels"),
        "deep_lists": (deep_lists(100_000), "nests deeper than 100 levels"),
        "deep_marks": (deep_marks(100_000), "nests deeper than 100 levels"),
        "memo_index_2_27": (memo_abuse(), "stores memo entry 134,217,728 after only 0 memo stores"),
        "memo_never_stored": (missing_memo(), "memo entry 12,345, which was never stored"),
        "binbytes8_2_62": (declared(pickle.BINBYTES8, "<Q", 1 << 62), "declares 4,611,686,018,427,387,904 bytes"),
        "binunicode_4gb": (declared(pickle.BINUNICODE, "<I", 0xFFFFFFFF), "declares 4,294,967,295 bytes"),
        "frame_2_60": (declared(pickle.FRAME, "<Q", 1 << 60), "declares a frame"),
        "huge_integer": (huge_integer(), "an integer of 1,048,576 bytes"),
        "self_containing_list": (self_containing_list(), "inside itself"),
        "text_opcode": (text_opcode(), "opcode INT"),
        "quantized_storage": (quantized_storage(), "quantized tensors"),
        "os_system": (program(glob("os", "system"), text("echo pwned"), pickle.TUPLE1, pickle.REDUCE), "os.system"),
        "img_resolution_2_20": (_changed(SG2, _set("G_ema", "img_resolution", 2**20)), "setting img_resolution = 1048576"),
        "channel_max_1e9": (_changed(SG2, _set("G_ema", "channel_max", 1e9)), "setting channel_max = 1000000000.0 is not an integer"),
        "channel_max_huge_int": (_changed(SG2, _set("G_ema", "channel_max", 10**12)), "setting channel_max"),
        "negative_z_dim": (_changed(SG2, _set("G", "z_dim", -64)), "setting z_dim = -64"),
        "bool_w_dim": (_changed(SG2, _set("G", "w_dim", True)), "setting w_dim = True is not an integer"),
        "mapping_layers_1e6": (_changed(SG2, _set("G_ema", "num_layers", 10**6, nested="mapping_kwargs")), "setting mapping_kwargs.num_layers"),
        "nan_conv_clamp": (_changed(SG2, _set("G_ema", "conv_clamp", math.nan)), "setting conv_clamp = nan"),
        "unknown_setting": (_changed(SG2, _set("D", "evil", "x")), "unknown setting evil"),
        "huge_channels_small_file": (_changed(SG2, _huge_channels), "but the file holds only"),
        "num_ws_disagrees": (_changed(SG2, _stored_attribute("G_ema", "num_ws", 99)), "stored num_ws (99) disagrees"),
        "sg3_num_critical": (_changed(SG3, _set("G_ema", "num_critical", 14)), "setting num_critical = 14 must be below"),
        "sg3_margin_huge": (_changed(SG3, _set("G_ema", "margin_size", 10**7)), "setting margin_size"),
        "nan_weight": (_changed(SG2, _weight("G_ema", "mapping.fc0", "weight", _nan)), "G_ema tensor mapping.fc0.weight contains NaN"),
        "inf_weight": (_changed(SG2, _weight("D", "b4.fc", "bias", _inf)), "D tensor b4.fc.bias contains Inf"),
        "int_weight": (_changed(SG2, _weight("G_ema", "mapping.fc0", "weight", lambda t: t.to(torch.int64))), "integer values (int64)"),
        "bool_weight": (_changed(SG2, _weight("G", "mapping.fc1", "bias", lambda t: t > 0)), "boolean values"),
        "complex_weight": (_changed(SG2, _weight("G", "mapping.fc1", "weight", lambda t: t.to(torch.complex64))), "complex values"),
        "wrong_shape": (_changed(SG2, _weight("G_ema", "mapping.fc0", "weight", lambda t: t[:, :-1].contiguous())), "mapping.fc0.weight has shape"),
        "giant_class_name": (_changed(SG2, _class_name("A" * 5_000_000)), "unexpected network class 'AAAA"),
        "native_img_resolution": (_native_settings(native, lambda s: s["networks"]["G_ema"]["init_kwargs"].update(img_resolution=2**20)), "setting img_resolution"),
        "native_deep_settings": (_native_settings(native, lambda s: s["provenance"].update(deep=json.loads("[" * 500 + "]" * 500))), "levels deep"),
        "native_nan": (_native_tensor_nan(native), "contains NaN"),
        "native_overlap": (_native_overlap(native), "overlaps another"),
        "native_header_2_40": (struct.pack("<Q", 1 << 40) + b"{" + b" " * 64, "an unrecognised format"),
    }
    cases = []
    for name, (data, expected) in blobs.items():
        path = folder / f"{name}.pkl"
        path.write_bytes(data)
        cases.append((name, path, expected))

    fifo = folder / "fifo.pkl"
    os.mkfifo(fifo)
    cases.append(("fifo", fifo, "a named pipe (FIFO), not a model file"))
    cases.append(("folder", folder, "a folder, not a model file"))
    cases.append(("device", Path("/dev/zero"), "a device, not a model file"))
    sock = folder / "sock.pkl"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock))
    server.close()
    cases.append(("socket", sock, "a socket, not a model file"))
    cases.append(("long_name", folder / ("x" * 300 + ".pkl"), "the path is too long"))
    cases.append(("long_path", Path("/" + "d/" * 3000 + "m.pkl"), "the path is too long"))
    json_like = folder / "huge.json"
    with open(json_like, "wb") as handle:
        handle.write(b"[" * 64)
        handle.truncate(3 << 30)  # sparse: 3 GB, nothing of it on disk
    cases.append(("huge_json_like", json_like, "a text file that starts like JSON"))
    return cases
