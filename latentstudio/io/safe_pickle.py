"""A bounded, restricted, pure-Python unpickler: only plain data ever comes out of a pickle.

``pickle.load`` runs code, and an allow-list on the C unpickler is not enough either: the file
still decides which allowed function runs on which arguments (a numpy dtype with forged field
offsets reads and writes outside its buffer), how large the memo grows, how deep tuples nest
before CPython hashes them, and how many paths its shared references make. So this module
reads the opcodes itself, checks each against budgets proportional to the file, and builds
only plain data: ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``, ``bytes``,
``list``, ``tuple``, ``dict``, ``set`` (of scalars), checked tensors and numpy arrays, and
:class:`Record` dataclasses that formats define for objects they turn into data.

API, for every format reader
----------------------------
``restricted_load(stream, size, allowed=ALLOWED_GLOBALS, persistent_load=None, budget=None)``
    Unpickle one pickle from the binary ``stream``, reading at most ``size`` bytes (every
    length the pickle declares is checked against what remains before anything is read).
    Returns plain data, already walked by :func:`check_plain`; raises :class:`UnsafePickle`
    (one-line message) or its subclass :class:`DisallowedGlobal` (``.module``, ``.name``).
``allowed``
    ``{(module, name): Allowed}``. :data:`ALLOWED_GLOBALS` holds containers only; formats
    combine it with their own entries, e.g. ``{**ALLOWED_GLOBALS, **TENSOR_GLOBALS,
    **NUMPY_GLOBALS, **mine}`` (:mod:`latentstudio.io.tensors`,
    :mod:`latentstudio.io.numpy_pickle`). :data:`REFUSED_GLOBALS` gives the reason shown for
    known-bad globals (quantized storages...).
``Allowed(name, call=None, new=None, build=None, token=None)``
    What one global may do. REDUCE calls ``call(budget, *args)``, NEWOBJ ``new(budget, *args)``;
    BUILD on an object that either returned calls ``build(budget, obj, state)``, and its
    result replaces the object on the stack and in the memo (so a placeholder can become
    an array, or ``argparse.Namespace`` a dict). ``token`` is an inert value for globals that
    are only passed as arguments (``numpy.ndarray``, ``torch.FloatStorage``): callables
    receive the ``Allowed`` itself and read ``.token``. Callables check their arguments,
    raise :class:`UnsafePickle` for anything else, and return plain data or a placeholder
    that their ``build`` completes (one left unbuilt is refused by :func:`check_plain`).
``persistent_load(budget, pid)``
    Resolves a persistent id (torch zip ``data.pkl`` names its storages this way; see
    :mod:`latentstudio.io.torch_zip`). ``pid`` is plain data built by this unpickler.
    Without a hook, persistent ids are refused.
``Budget.for_file(size)``
    One budget for everything read from one file (pass the same object to nested loads:
    the legacy storages inside an NVlabs pickle, the entries of a zip): bytes of strings,
    bytes, tensors and arrays (:data:`BYTES_PER_FILE_BYTE` x the file size), nodes built
    (objects and container slots), nodes walked (every path through shared references
    counts, so a DAG costs its paths and is refused, not walked) and nesting depth
    (:data:`MAX_DEPTH`, checked while unpickling, so no deep tuple is ever hashed).
    ``charge_bytes(n, what)`` and ``charge_nodes(n)`` let callables spend it.

Rules the opcode loop enforces: dict keys and set members are scalars (``str``, ``int``,
``float``, ``bool``, ``None``, ``bytes``); memo indices never exceed the number of memo puts;
a container cannot be changed once it sits inside another (which also rules out cycles);
integers are at most :data:`MAX_INT_BYTES` bytes; protocol 0/1 text opcodes, extension codes,
``INST``/``OBJ`` and out-of-band buffers are refused.
"""
from __future__ import annotations

import dataclasses
import pickle
import pickletools
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import torch

MAX_DEPTH = 100
MAX_INT_BYTES = 256
MAX_NAME = 256  # characters of a module or global name
CHUNK = 1 << 16  # bytes read ahead from the stream at a time
BYTES_PER_FILE_BYTE = 6  # strings, bytes, tensors and arrays may total this many times the file size
BYTES_ALLOWANCE = 16 << 20  # ... plus this much, so tiny files are not starved
NODES_PER_FILE_BYTE = 1 / 8  # objects and container slots per byte of file
NODES_ALLOWANCE = 100_000
KEY_TYPES = (str, int, float, bool, type(None), bytes)
LEAF_TYPES = (str, int, float, bool, type(None), bytes, complex, torch.Tensor, np.ndarray, np.dtype)


class UnsafePickle(pickle.UnpicklingError):
    """The pickle is malformed, hostile or too big for its file; the message is one line."""


class DisallowedGlobal(UnsafePickle):
    """The pickle asked for a global that is not on the allow-list."""

    def __init__(self, module: str, name: str, reason: str | None = None):
        self.module, self.name, self.reason = module, name, reason
        super().__init__(reason or f"disallowed global {module}.{name}")

    def explain(self, what: str) -> str:
        """The message for a person: the known reason, or that ``what`` (``the pickle``, ``the
        checkpoint``) asks for a global that is not on the allow-list."""
        return self.reason or (f"{what} asks for {self.module}.{self.name}, which is not on latentstudio's "
                               f"allow-list of data types, so it was not loaded")


@dataclass
class Budget:
    """What one file may still cost (see the module docstring)."""

    bytes_left: int
    nodes_left: int
    walk_left: int
    max_depth: int = MAX_DEPTH

    @classmethod
    def for_file(cls, size: int) -> "Budget":
        nodes = int(size * NODES_PER_FILE_BYTE) + NODES_ALLOWANCE
        return cls(bytes_left=BYTES_PER_FILE_BYTE * size + BYTES_ALLOWANCE, nodes_left=nodes, walk_left=nodes)

    def charge_bytes(self, count: int, what: str = "data") -> None:
        self.bytes_left -= count
        if self.bytes_left < 0:
            raise UnsafePickle(f"{what} of {count:,} bytes exceeds what a file of this size can hold")

    def charge_nodes(self, count: int) -> None:
        self.nodes_left -= count
        if self.nodes_left < 0:
            raise UnsafePickle("the pickle builds more objects than a file of this size can hold")


@dataclass(frozen=True)
class Allowed:
    """What one allow-listed global may do (see the module docstring)."""

    name: str
    call: Callable[..., Any] | None = None
    new: Callable[..., Any] | None = None
    build: Callable[..., Any] | None = None
    token: Any = None


class Record:
    """Base of the dataclasses that stand for objects a format turns into plain data.

    :func:`check_plain` walks every field; subclasses must be dataclasses.
    """


def _dict_call(budget: Budget, items: Any = ()) -> dict:
    """``collections.OrderedDict`` (and ``dict``) -> a plain dict; items usually follow by SETITEMS."""
    if items == ():
        return {}
    if not isinstance(items, list) or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in items):
        raise UnsafePickle("OrderedDict built from something other than key-value pairs")
    budget.charge_nodes(len(items))
    for key, _ in items:
        _check_key(key)
    return dict(items)


def _dict_build(budget: Budget, target: dict, state: Any) -> dict:
    """A state dict's ``_metadata`` attribute (torch keeps layer versions there): dropped."""
    if state is not None and not (type(state) is dict and set(state) <= {"_metadata"}):
        raise UnsafePickle("an OrderedDict with attributes other than _metadata")
    return target


def _set_call(budget: Budget, items: Any = ()) -> set:
    if not isinstance(items, (list, tuple)):
        raise UnsafePickle("set built from something other than a list")
    budget.charge_nodes(len(items))
    for item in items:
        _check_key(item)
    return set(items)


# Containers every format may use.
ALLOWED_GLOBALS: dict[tuple[str, str], Allowed] = {
    ("collections", "OrderedDict"): Allowed("collections.OrderedDict", call=_dict_call, build=_dict_build),
    ("builtins", "set"): Allowed("builtins.set", call=_set_call),
    ("__builtin__", "set"): Allowed("builtins.set", call=_set_call),
}

# Globals refused with a reason better than "not on the allow-list".
REFUSED_GLOBALS: dict[tuple[str, str], str] = {
    ("torch", name): f"the file holds quantized tensors (torch.{name}); only floating-point weights are supported"
    for name in ("QUInt8Storage", "QInt8Storage", "QInt32Storage", "QUInt4x2Storage", "QUInt2x4Storage")
}


def _check_key(key: Any) -> None:
    if type(key) not in KEY_TYPES:
        raise UnsafePickle(f"a dict key or set member is a {type(key).__name__}; only strings and numbers are accepted")


def _opcode_name(code: int) -> str:
    for op in pickletools.opcodes:
        if op.code.encode("latin-1")[0] == code:
            return op.name
    return f"0x{code:02x}"


class _Mark:
    """Marks where MARK was, on the stack (never escapes)."""


class SafeUnpickler:
    """The opcode loop behind :func:`restricted_load` (one instance reads one or more pickles
    from the same stream, e.g. the five consecutive pickles of a legacy torch storage)."""

    def __init__(self, stream: BinaryIO, size: int, allowed: Mapping[tuple[str, str], Allowed] = ALLOWED_GLOBALS,
                 persistent_load: Callable[[Budget, Any], Any] | None = None, budget: Budget | None = None):
        self._stream_read = stream.read
        self._left = size  # bytes of the pickle not yet taken from the stream
        self._buf = b""  # read ahead, at most CHUNK bytes at a time
        self._pos = 0  # next unread byte of _buf
        self._base = 0  # offset of _buf[0] in the pickle
        self.allowed = allowed
        self.persistent_load = persistent_load
        self.budget = budget if budget is not None else Budget.for_file(size)

    # -- reading ---------------------------------------------------------------------------
    @property
    def position(self) -> int:
        """Bytes consumed so far."""
        return self._base + self._pos

    def _available(self) -> int:
        return len(self._buf) - self._pos + self._left

    def _pull(self, count: int) -> bytes:
        data = self._stream_read(count)
        if len(data) != count:
            raise UnsafePickle(f"the pickle ends early at byte {self._base + len(self._buf) + len(data):,}: truncated or corrupt")
        self._left -= count
        return data

    def _read(self, count: int) -> bytes:
        pos = self._pos
        end = pos + count
        if end <= len(self._buf):
            self._pos = end
            return self._buf[pos:end]
        if count > self._available():
            raise UnsafePickle(f"the pickle declares {count:,} bytes at byte {self.position:,}, but only {self._available():,} remain: "
                               f"truncated or corrupt")
        rest = self._buf[pos:]
        self._base += len(self._buf)
        if count >= CHUNK:  # a large string or bytes object: read it exactly, without a second copy
            data = rest + self._pull(count - len(rest)) if rest else self._pull(count)
            self._buf, self._pos = b"", 0
            return data
        self._base -= len(rest)
        self._buf = rest + self._pull(min(CHUNK, self._left))
        self._pos = count
        return self._buf[:count]

    def _byte(self) -> int:
        pos = self._pos
        if pos < len(self._buf):
            self._pos = pos + 1
            return self._buf[pos]
        return self._read(1)[0]

    def _read_line(self) -> str:
        end = self._buf.find(b"\n", self._pos, self._pos + MAX_NAME + 1)
        if end < 0:
            if len(self._buf) - self._pos <= MAX_NAME:
                self._refill()
            end = self._buf.find(b"\n", self._pos, self._pos + MAX_NAME + 1)
            if end < 0:
                raise UnsafePickle(f"a text field at byte {self.position:,} is too long or truncated")
        line = self._read(end + 1 - self._pos)
        try:
            return line[:-1].decode("ascii")
        except UnicodeDecodeError:
            raise UnsafePickle("a text field of the pickle is not ASCII") from None

    def _refill(self) -> None:
        rest = self._buf[self._pos:]
        self._base += self._pos
        self._buf, self._pos = rest + self._pull(min(CHUNK, self._left)), 0

    # -- bookkeeping -----------------------------------------------------------------------
    def load(self) -> Any:
        """Read one pickle and return its (checked, plain) value."""
        self._stack: list[Any] = []
        self._marks: list[list[Any]] = []
        self._memo: dict[int, Any] = {}
        self._puts = 0
        self._depth: dict[int, int] = {}  # id -> nesting depth of every container built
        self._nested: set[int] = set()  # ids of containers already placed inside another
        self._alive: list[Any] = []  # keeps the ids above valid
        self._builders: dict[int, Allowed] = {}  # id -> entry whose build completes it
        self._slots: dict[int, list[int]] = {}  # id of an object awaiting BUILD -> its memo indices
        self._result = _Mark
        dispatch, byte = _DISPATCH, self._byte
        try:
            while self._result is _Mark:
                code = byte()
                handler = dispatch[code]
                if handler is None:
                    raise UnsafePickle(f"opcode {_opcode_name(code)} at byte {self.position - 1:,} is not accepted")
                handler(self)
        except UnsafePickle:
            raise
        except MemoryError:
            raise UnsafePickle(f"the pickle needs more memory than is available (at byte {self.position:,})") from None
        except RecursionError:
            raise UnsafePickle(f"the pickle is nested too deeply to read (at byte {self.position:,})") from None
        except Exception as error:  # noqa: BLE001 - any other failure on hostile bytes is a malformed pickle
            if isinstance(error, RuntimeError) and "alloc" in str(error)[:1000]:  # torch's allocator gave up
                raise UnsafePickle(f"the pickle needs more memory than is available (at byte {self.position:,})") from None
            raise UnsafePickle(f"the pickle is malformed at byte {self.position:,} ({type(error).__name__})") from None
        value = self._result
        check_plain(value, self.budget)
        return value

    def _register(self, obj: Any, depth: int) -> Any:
        if depth > self.budget.max_depth:
            raise UnsafePickle(f"the pickle nests deeper than {self.budget.max_depth} levels")
        self._depth[id(obj)] = depth
        self._alive.append(obj)
        return obj

    def _nest(self, items: Any) -> int:
        """Mark ``items`` as placed inside a container; their greatest depth."""
        depth_of, nested, deepest = self._depth, self._nested, 0
        for item in items:
            depth = depth_of.get(id(item))
            if depth is not None:
                nested.add(id(item))
                if depth > deepest:
                    deepest = depth
        return deepest

    def _grow(self, container: Any, items: Any) -> None:
        """Before adding ``items`` to ``container``: refuse changes to nested containers and cycles."""
        key = id(container)
        if key in self._nested:
            raise UnsafePickle("the pickle changes a container after placing it inside another (cyclic or forged)")
        if any(item is container for item in items):
            raise UnsafePickle("the pickle puts a container inside itself (cyclic data)")
        depth = self._nest(items) + 1
        if depth > self._depth.get(key, 1):
            self._register(container, depth)

    def _pop_mark(self) -> list[Any]:
        if not self._marks:
            raise UnsafePickle(f"the pickle closes a MARK that was never opened (byte {self.position:,})")
        items = self._stack
        self._stack = self._marks.pop()
        return items

    def _pop(self) -> Any:
        if not self._stack:
            raise UnsafePickle(f"the pickle pops an empty stack (byte {self.position:,})")
        return self._stack.pop()

    def _top(self) -> Any:
        if not self._stack:
            raise UnsafePickle(f"the pickle reads an empty stack (byte {self.position:,})")
        return self._stack[-1]

    def _push(self, value: Any) -> None:
        budget = self.budget
        budget.nodes_left -= 1
        if budget.nodes_left < 0:
            budget.charge_nodes(0)
        self._stack.append(value)

    def _push_text(self, data: bytes) -> None:
        self.budget.charge_bytes(len(data), "a string")
        try:
            self._push(data.decode("utf-8", "surrogatepass"))
        except UnicodeDecodeError:
            raise UnsafePickle(f"a string at byte {self.position:,} is not valid UTF-8") from None

    def _push_bytes(self, data: bytes) -> None:
        self.budget.charge_bytes(len(data), "a bytes object")
        self._push(data)

    # -- framing, constants, numbers, strings -------------------------------------------------
    def _op_PROTO(self) -> None:
        if not 2 <= self._byte() <= 5:
            raise UnsafePickle("unsupported pickle protocol (expected 2 to 5)")

    def _op_FRAME(self) -> None:
        (length,) = struct.unpack("<Q", self._read(8))
        if length > self._available():
            raise UnsafePickle(f"the pickle declares a frame of {length:,} bytes, but only {self._available():,} remain")

    def _op_STOP(self) -> None:
        self._result = self._pop()

    def _op_NONE(self) -> None:
        self._push(None)

    def _op_NEWTRUE(self) -> None:
        self._push(True)

    def _op_NEWFALSE(self) -> None:
        self._push(False)

    def _op_BININT(self) -> None:
        self._push(struct.unpack("<i", self._read(4))[0])

    def _op_BININT1(self) -> None:
        self._push(self._byte())

    def _op_BININT2(self) -> None:
        self._push(struct.unpack("<H", self._read(2))[0])

    def _long(self, length: int) -> None:
        if length > MAX_INT_BYTES:
            raise UnsafePickle(f"an integer of {length:,} bytes (at most {MAX_INT_BYTES} accepted)")
        self._push(int.from_bytes(self._read(length), "little", signed=True))

    def _op_LONG1(self) -> None:
        self._long(self._byte())

    def _op_LONG4(self) -> None:
        self._long(struct.unpack("<i", self._read(4))[0] & 0xFFFFFFFF)

    def _op_BINFLOAT(self) -> None:
        self._push(struct.unpack(">d", self._read(8))[0])

    def _op_SHORT_BINUNICODE(self) -> None:
        self._push_text(self._read(self._byte()))

    def _op_BINUNICODE(self) -> None:
        self._push_text(self._read(struct.unpack("<I", self._read(4))[0]))

    def _op_BINUNICODE8(self) -> None:
        self._push_text(self._read(struct.unpack("<Q", self._read(8))[0]))

    def _op_SHORT_BINBYTES(self) -> None:
        self._push_bytes(self._read(self._byte()))

    def _op_BINBYTES(self) -> None:
        self._push_bytes(self._read(struct.unpack("<I", self._read(4))[0]))

    def _op_BINBYTES8(self) -> None:
        self._push_bytes(self._read(struct.unpack("<Q", self._read(8))[0]))

    def _op_BYTEARRAY8(self) -> None:
        self._push_bytes(self._read(struct.unpack("<Q", self._read(8))[0]))

    # -- stack and memo ----------------------------------------------------------------------
    def _op_MARK(self) -> None:
        if len(self._marks) >= self.budget.max_depth:
            raise UnsafePickle(f"the pickle nests deeper than {self.budget.max_depth} levels")
        self._marks.append(self._stack)
        self._stack = []

    def _op_POP(self) -> None:
        self._pop()

    def _op_POP_MARK(self) -> None:
        self._pop_mark()

    def _op_DUP(self) -> None:
        self._push(self._top())

    def _memo_put(self, index: int) -> None:
        if index > self._puts:
            raise UnsafePickle(f"the pickle stores memo entry {index:,} after only {self._puts:,} memo stores")
        value = self._top()
        if index not in self._memo:
            self._puts += 1
        self._memo[index] = value
        if id(value) in self._builders:
            self._slots.setdefault(id(value), []).append(index)

    def _op_PUT(self) -> None:
        try:
            index = int(self._read_line())
        except ValueError:
            raise UnsafePickle("a PUT index is not a number") from None
        self._memo_put(index)

    def _op_BINPUT(self) -> None:
        self._memo_put(self._byte())

    def _op_LONG_BINPUT(self) -> None:
        self._memo_put(struct.unpack("<I", self._read(4))[0])

    def _op_MEMOIZE(self) -> None:
        self._memo_put(len(self._memo))

    def _memo_get(self, index: int) -> None:
        try:
            self._push(self._memo[index])
        except KeyError:
            raise UnsafePickle(f"the pickle refers to memo entry {index:,}, which was never stored") from None

    def _op_GET(self) -> None:
        try:
            index = int(self._read_line())
        except ValueError:
            raise UnsafePickle("a GET index is not a number") from None
        self._memo_get(index)

    def _op_BINGET(self) -> None:
        self._memo_get(self._byte())

    def _op_LONG_BINGET(self) -> None:
        self._memo_get(struct.unpack("<I", self._read(4))[0])

    # -- containers --------------------------------------------------------------------------
    def _tuple(self, items: list[Any]) -> None:
        value = tuple(items)
        self.budget.charge_nodes(len(items))
        if items:
            self._register(value, self._nest(items) + 1)
        self._push(value)

    def _op_EMPTY_TUPLE(self) -> None:
        self._push(())

    def _op_TUPLE(self) -> None:
        self._tuple(self._pop_mark())

    def _op_TUPLE1(self) -> None:
        self._tuple([self._pop()])

    def _op_TUPLE2(self) -> None:
        b, a = self._pop(), self._pop()
        self._tuple([a, b])

    def _op_TUPLE3(self) -> None:
        c, b, a = self._pop(), self._pop(), self._pop()
        self._tuple([a, b, c])

    def _op_EMPTY_LIST(self) -> None:
        self._push(self._register([], 1))

    def _op_LIST(self) -> None:
        items = self._pop_mark()
        self.budget.charge_nodes(len(items))
        self._push(self._register(items, self._nest(items) + 1))

    def _extend(self, items: list[Any]) -> None:
        target = self._top()
        if type(target) is not list:
            raise UnsafePickle(f"the pickle appends to a {type(target).__name__}, not a list")
        self.budget.charge_nodes(len(items))
        self._grow(target, items)
        target.extend(items)

    def _op_APPEND(self) -> None:
        self._extend([self._pop()])

    def _op_APPENDS(self) -> None:
        self._extend(self._pop_mark())

    def _op_EMPTY_DICT(self) -> None:
        self._push(self._register({}, 1))

    def _set_items(self, target: Any, items: list[Any]) -> None:
        if type(target) is not dict:
            raise UnsafePickle(f"the pickle sets items on a {type(target).__name__}, not a dict")
        if len(items) % 2:
            raise UnsafePickle("a dict with an odd number of keys and values")
        keys, values = items[0::2], items[1::2]
        for key in keys:
            _check_key(key)
        self.budget.charge_nodes(len(items))
        self._grow(target, values)
        target.update(zip(keys, values))

    def _op_DICT(self) -> None:
        items = self._pop_mark()
        target = self._register({}, 1)
        self._set_items(target, items)
        self._push(target)

    def _op_SETITEM(self) -> None:
        value, key = self._pop(), self._pop()
        self._set_items(self._top(), [key, value])

    def _op_SETITEMS(self) -> None:
        items = self._pop_mark()
        self._set_items(self._top(), items)

    def _op_EMPTY_SET(self) -> None:
        self._push(self._register(set(), 1))

    def _op_ADDITEMS(self) -> None:
        items = self._pop_mark()
        target = self._top()
        if type(target) is not set:
            raise UnsafePickle(f"the pickle adds set members to a {type(target).__name__}")
        for item in items:
            _check_key(item)
        self.budget.charge_nodes(len(items))
        self._grow(target, ())
        target.update(items)

    # -- globals, calls, persistent ids -------------------------------------------------------
    def _global(self, module: str, name: str) -> None:
        if not isinstance(module, str) or not isinstance(name, str) or len(module) > MAX_NAME or len(name) > MAX_NAME:
            raise UnsafePickle("a global named by something other than two short strings")
        entry = self.allowed.get((module, name))
        if entry is None:
            raise DisallowedGlobal(module, name, REFUSED_GLOBALS.get((module, name)))
        self._push(entry)

    def _op_GLOBAL(self) -> None:
        module = self._read_line()
        self._global(module, self._read_line())

    def _op_STACK_GLOBAL(self) -> None:
        name, module = self._pop(), self._pop()
        self._global(module, name)

    def _made(self, entry: Allowed, result: Any, args: tuple) -> None:
        """Push what an allowed callable returned, tracked like any container it may be."""
        if isinstance(result, (list, dict, set, tuple, Record)) or entry.build is not None:
            self._register(result, self._depth.get(id(args), 0) + 1)
        if entry.build is not None:
            self._builders[id(result)] = entry
        self._push(result)

    def _invoke(self, entry: Any, kind: str, args: Any) -> None:
        function = getattr(entry, kind, None) if isinstance(entry, Allowed) else None
        if function is None:
            what = entry.name if isinstance(entry, Allowed) else type(entry).__name__
            raise UnsafePickle(f"{what} cannot be {'called' if kind == 'call' else 'instantiated'} from a pickle")
        if type(args) is not tuple:
            raise UnsafePickle(f"{entry.name} given arguments that are not a tuple")
        self._nest(args)
        try:
            result = function(self.budget, *args)
        except UnsafePickle:
            raise
        except TypeError:
            raise UnsafePickle(f"{entry.name} given unexpected arguments") from None
        self._made(entry, result, args)

    def _op_REDUCE(self) -> None:
        args = self._pop()
        self._invoke(self._pop(), "call", args)

    def _op_NEWOBJ(self) -> None:
        args = self._pop()
        self._invoke(self._pop(), "new", args)

    def _op_NEWOBJ_EX(self) -> None:
        kwargs, args = self._pop(), self._pop()
        if kwargs != {}:
            raise UnsafePickle("keyword arguments for a constructor are not accepted")
        self._invoke(self._pop(), "new", args)

    def _op_BUILD(self) -> None:
        state = self._pop()
        obj = self._top()
        entry = self._builders.pop(id(obj), None)
        if entry is None:
            raise UnsafePickle(f"the pickle sets the state of a {type(obj).__name__}, which is not accepted")
        if id(obj) in self._nested:
            raise UnsafePickle("the pickle sets the state of an object after placing it inside another")
        depth = max(self._depth.get(id(obj), 1), self._nest((state,)) + 1)
        try:
            built = entry.build(self.budget, obj, state)
        except UnsafePickle:
            raise
        except TypeError:
            raise UnsafePickle(f"{entry.name} given an unexpected state") from None
        if built is not obj:
            self._stack[-1] = built
            for index in self._slots.pop(id(obj), ()):
                self._memo[index] = built
            if isinstance(built, (list, dict, set, tuple, Record)):
                self._register(built, depth)

    def _persistent(self, pid: Any) -> None:
        if self.persistent_load is None:
            raise UnsafePickle("the pickle uses persistent ids, which this format does not have")
        self._nest((pid,))
        result = self.persistent_load(self.budget, pid)
        self._push(result)

    def _op_BINPERSID(self) -> None:
        self._persistent(self._pop())

    def _op_PERSID(self) -> None:
        self._persistent(self._read_line())


_DISPATCH: list[Callable[[SafeUnpickler], None] | None] = [None] * 256
for _op in pickletools.opcodes:
    _DISPATCH[_op.code.encode("latin-1")[0]] = getattr(SafeUnpickler, f"_op_{_op.name}", None)


def restricted_load(stream: BinaryIO, size: int, allowed: Mapping[tuple[str, str], Allowed] = ALLOWED_GLOBALS,
                    persistent_load: Callable[[Budget, Any], Any] | None = None, budget: Budget | None = None) -> Any:
    """Unpickle one pickle of at most ``size`` bytes from ``stream`` as plain data (see the module docstring)."""
    return SafeUnpickler(stream, size, allowed, persistent_load, budget).load()


def check_plain(value: Any, budget: Budget) -> None:
    """Walk ``value``: refuse anything that is not plain data, and refuse a walk longer than the
    budget allows (a shared reference costs a node each time it is reached)."""
    pending = [(value, 0)]
    walk_left = budget.walk_left
    while pending:
        item, depth = pending.pop()
        walk_left -= 1
        if walk_left < 0:
            raise UnsafePickle("the pickle's shared references make more paths than a file of this size can hold")
        if isinstance(item, LEAF_TYPES):
            continue
        if depth >= budget.max_depth:
            raise UnsafePickle(f"the pickle nests deeper than {budget.max_depth} levels")
        kind = type(item)
        if kind is list or kind is tuple:
            pending.extend((child, depth + 1) for child in item)
        elif kind is dict:
            pending.extend((child, depth + 1) for child in item.values())
            walk_left -= len(item)
        elif kind is set:
            walk_left -= len(item)
        elif isinstance(item, Record) and dataclasses.is_dataclass(item):
            pending.extend((getattr(item, f.name), depth + 1) for f in dataclasses.fields(item))
        else:
            raise UnsafePickle(f"the pickle holds a {kind.__name__}, which is not plain data")
    budget.walk_left = walk_left
