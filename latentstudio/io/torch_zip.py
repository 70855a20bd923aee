"""PyTorch zip files (what ``torch.save`` writes since PyTorch 1.6), read as data, never with ``torch.load``.

The archive holds ``<folder>/data.pkl``, a pickle whose tensors name their storages by
persistent id ``('storage', torch.<Type>Storage, <key>, <location>, <numel>)``, and one raw
entry ``<folder>/data/<key>`` per storage. ``data.pkl`` is read by the bounded unpickler of
:mod:`latentstudio.io.safe_pickle` with the caller's allow-list; each persistent id is
answered with a checked :class:`~latentstudio.io.tensors.Storage` of its entry (the entry
must exist, be stored uncompressed, as ``torch.save`` always does, so nothing inflates, and
hold the elements the id declares), and tensors are the checked views of
:func:`~latentstudio.io.tensors.rebuild_tensor`. Everything counts against one budget for the
whole file.

API: ``read_torch_zip(stream, size, allowed, budget=None) -> data`` where ``stream`` is the
open file (seekable), ``size`` its size, ``allowed`` the allow-list for ``data.pkl`` (e.g.
``{**ALLOWED_GLOBALS, **TENSOR_GLOBALS, **format_specific}``). Raises
:class:`TorchZipError` (an :class:`~latentstudio.io.safe_pickle.UnsafePickle`) with one line.
"""
from __future__ import annotations

import re
import zipfile
from collections.abc import Mapping
from typing import Any, BinaryIO

from latentstudio.io.safe_pickle import Allowed, Budget, UnsafePickle, restricted_load
from latentstudio.io.tensors import Storage, storage_dtype

MAX_ENTRIES = 1 << 16
_KEY = re.compile(r"\w{1,64}")


class TorchZipError(UnsafePickle):
    """Not a readable torch zip file; the message says why, in one line."""


class _Storages:
    """Answers ``data.pkl``'s persistent ids with checked storages of the archive's entries."""

    def __init__(self, archive: zipfile.ZipFile, folder: str):
        self.archive = archive
        self.folder = folder
        self.entries = {info.filename: info for info in archive.infolist()}
        self.loaded: dict[str, Storage] = {}

    def __call__(self, budget: Budget, pid: Any) -> Storage:
        if type(pid) is not tuple or len(pid) != 5 or pid[0] != "storage":
            raise TorchZipError("data.pkl refers to something other than a tensor storage")
        _, storage_type, key, location, numel = pid
        dtype = storage_dtype(storage_type)
        if dtype is None:
            raise TorchZipError("a tensor storage of an unknown type")
        if type(key) is not str or not _KEY.fullmatch(key) or type(location) is not str:
            raise TorchZipError("a tensor storage with a malformed name or location")
        if type(numel) is not int or numel < 0:
            raise TorchZipError(f"tensor storage {key} declares a malformed size")
        if key in self.loaded:
            storage = self.loaded[key]
            if storage.dtype != dtype or storage.data.numel() < numel:
                raise TorchZipError(f"tensor storage {key} is used with two different types or sizes")
            return storage
        name = f"{self.folder}/data/{key}"
        info = self.entries.get(name)
        if info is None:
            raise TorchZipError(f"the archive has no entry {name} for one of its tensors")
        storage = Storage.from_bytes(budget, dtype, self.archive.read(info), 0, numel)
        self.loaded[key] = storage
        return storage


def _folder(archive: zipfile.ZipFile) -> tuple[str, zipfile.ZipInfo]:
    """The archive's top folder and its ``data.pkl`` entry."""
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        raise TorchZipError(f"a zip archive of {len(infos):,} entries")
    candidates = [info for info in infos if re.fullmatch(r"[^/]{1,200}/data\.pkl", info.filename)]
    if len(candidates) != 1:
        raise TorchZipError("a zip archive without exactly one <name>/data.pkl, so not a torch.save file")
    compressed = [info.filename for info in infos if info.compress_type != zipfile.ZIP_STORED]
    if compressed:
        raise TorchZipError(f"entry {compressed[0][:80]} is compressed, which torch.save never does")
    return candidates[0].filename.rsplit("/", 1)[0], candidates[0]


def read_torch_zip(stream: BinaryIO, size: int, allowed: Mapping[tuple[str, str], Allowed],
                   budget: Budget | None = None) -> Any:
    """The object ``torch.save`` wrote, as plain data with checked tensors (see the module docstring)."""
    budget = budget if budget is not None else Budget.for_file(size)
    try:
        with zipfile.ZipFile(stream) as archive:
            folder, pickle_entry = _folder(archive)
            if any(info.file_size > size for info in archive.infolist()):
                raise TorchZipError("an entry claims to be larger than the whole file")
            order_name = f"{folder}/byteorder"
            if order_name in archive.NameToInfo:
                order = archive.read(order_name)
                if order != b"little":
                    raise TorchZipError("the tensors are not stored little-endian (not supported)")
            with archive.open(pickle_entry) as data:
                return restricted_load(data, pickle_entry.file_size, allowed, _Storages(archive, folder), budget)
    except UnsafePickle:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, KeyError,
            NotImplementedError, RuntimeError) as error:
        raise TorchZipError(f"a damaged zip archive ({type(error).__name__})") from None
