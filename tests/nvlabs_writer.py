"""Write NVlabs-style network pickles from data, so tests can make modified (hostile) ones.

``read_records(path)`` gives a fixture's content as our reader sees it (networks as
:class:`PersistentRecord`); change it, then ``write_records(path, data)`` pickles it again the
way NVlabs persistence does (``torch_utils.persistence._reconstruct_persistent_obj(meta)``,
tensors through torch's own reduction), with a module source that must never run.
"""
from __future__ import annotations

import contextlib
import io
import pickle
import sys
import types
from pathlib import Path
from typing import Any

from latentstudio.io.nvlabs_pickle import NVLABS_GLOBALS, PersistentRecord
from latentstudio.io.safe_pickle import restricted_load

NEVER_RUN = "raise SystemExit('embedded code ran: this must never happen')\n"


def read_records(path: Path) -> Any:
    data = path.read_bytes()
    return restricted_load(io.BytesIO(data), len(data), NVLABS_GLOBALS)


def _reconstruct_persistent_obj(meta: dict) -> None:  # pragma: no cover - only ever pickled by reference
    raise AssertionError("the test writer's stand-in is never called")


@contextlib.contextmanager
def _stand_in_module():
    """``torch_utils.persistence`` importable while pickling, so the global pickles by name."""
    package, module = types.ModuleType("torch_utils"), types.ModuleType("torch_utils.persistence")
    _reconstruct_persistent_obj.__module__ = module.__name__
    module._reconstruct_persistent_obj = _reconstruct_persistent_obj
    package.persistence = module
    saved = {name: sys.modules.get(name) for name in (package.__name__, module.__name__)}
    sys.modules.update({package.__name__: package, module.__name__: module})
    try:
        yield
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, PersistentRecord):
            meta = {"type": "class", "version": obj.version, "module_src": NEVER_RUN,
                    "class_name": obj.class_name, "state": obj.state}
            return _reconstruct_persistent_obj, (meta,)
        return NotImplemented


def dumps_records(data: Any, protocol: int = 4) -> bytes:
    buffer = io.BytesIO()
    with _stand_in_module():
        _Pickler(buffer, protocol=protocol).dump(data)
    return buffer.getvalue()


def write_records(path: Path, data: Any, protocol: int = 4) -> Path:
    path.write_bytes(dumps_records(data, protocol))
    return path
