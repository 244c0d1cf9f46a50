"""Reading `longnet train` checkpoints and their configs from Python.

A checkpoint (train/checkpoint_files.h) is a torch.save-format dict: "config" (the resolved YAML
of the run, every key), "model" ({parameter name: tensor}, on the CPU), "optimizer", "step", ...,
plus "_longnet_format" and "_longnet_crc32": a CRC-32 of every other entry's contents, which
load_checkpoint checks as the C++ reader does (train/checkpoint_files.cpp, state_crc).
"""

from __future__ import annotations

import os
import pickle
import re
import stat
import struct
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Dict, List, Optional

import torch

from longnet._ops import PathArg, short_repr

CHECKPOINT_FORMAT = "longnet-checkpoint-1"
ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format (and LibTorch's) is a zip archive
ZIP_END_MAGIC = b"PK\x05\x06"  # a zip archive's end record: 22 bytes, then its comment
ZIP_END_SEARCH = 22 + 65535  # the end record and the longest comment


# c10::ScalarType codes of the dtypes checkpoints hold (the CRC hashes the code, not the name).
_SCALAR_TYPE = {torch.uint8: 0, torch.int8: 1, torch.int16: 2, torch.int32: 3, torch.int64: 4,
                torch.float16: 5, torch.float32: 6, torch.float64: 7, torch.complex32: 8,
                torch.complex64: 9, torch.complex128: 10, torch.bool: 11, torch.bfloat16: 15}


class _Crc32:
    """The C++ reader's CRC-32 over tagged values (state_crc): a tag byte per value, then its
    data; integers and sizes as 64-bit little-endian."""

    # The C++ writer stores a tree: each list and dict once, a few levels deep. A pickle can
    # instead repeat one container (a DAG of 40 levels is 2^40 visits) or nest thousands deep.
    MAX_DEPTH = 64

    def __init__(self) -> None:
        self.crc = 0
        self.seen: set = set()
        self.depth = 0

    def update(self, data: bytes) -> None:
        self.crc = zlib.crc32(data, self.crc)

    def u64(self, v: int) -> None:
        self.update(struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF))

    def value(self, v: Any, where: str) -> None:
        if v is None:
            self.update(b"N")
        elif isinstance(v, bool):
            self.update(b"B" + (b"\x01" if v else b"\x00"))
        elif isinstance(v, int):
            self.update(b"I")
            self.u64(v)
        elif isinstance(v, float):
            self.update(b"D" + struct.pack("<d", v))
        elif isinstance(v, str):
            data = v.encode("utf-8", "surrogatepass")
            self.update(b"S")
            self.u64(len(data))
            self.update(data)
        elif isinstance(v, torch.Tensor):
            if v.layout != torch.strided or v.is_nested or v.device.type == "meta":
                raise ValueError(f"entry {where!r} holds a {v.layout} tensor on {v.device}, which "
                                 f"longnet checkpoints do not store")
            t = v.detach().cpu().contiguous()
            if t.dtype not in _SCALAR_TYPE:
                raise ValueError(f"entry {where!r} holds a tensor of dtype {t.dtype}, which "
                                 f"longnet checkpoints do not store")
            self.update(b"T")
            self.u64(_SCALAR_TYPE[t.dtype])
            self.u64(t.dim())
            for s in t.shape:
                self.u64(s)
            nbytes = t.numel() * t.element_size()
            self.u64(nbytes)
            if nbytes:  # (the tensor's own bytes, not a copy)
                self.crc = zlib.crc32(t.reshape(-1).view(torch.uint8).numpy().data, self.crc)
        elif isinstance(v, (list, tuple, dict)):
            if v and id(v) in self.seen:  # (the empty tuple is one shared object)
                raise ValueError(f"entry {where!r} repeats a container held elsewhere in the "
                                 f"file, which longnet checkpoints never do")
            if self.depth >= self.MAX_DEPTH:
                raise ValueError(f"entry {where!r} nests more than {self.MAX_DEPTH} levels deep, "
                                 f"which longnet checkpoints never do")
            self.seen.add(id(v))
            self.depth += 1
            if isinstance(v, dict):
                self.update(b"M")
                self.u64(len(v))
                for k, x in v.items():
                    self.value(k, where + " key")
                    self.value(x, f"{where}.{k}")
            else:
                self.update(b"L" if isinstance(v, list) else b"U")
                self.u64(len(v))
                for i, x in enumerate(v):
                    self.value(x, f"{where}[{i}]")
            self.depth -= 1
        else:
            raise ValueError(f"entry {where!r} holds a {type(v).__name__}, which longnet "
                             f"checkpoints do not store")


def _state_crc(raw: Dict[Any, Any]) -> int:
    crc = _Crc32()
    for k, v in raw.items():
        if k == "_longnet_crc32":
            continue
        crc.value(k, "key")
        crc.value(v, str(k))
    return crc.crc


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


def _out_of_memory(e: BaseException) -> bool:
    """Whether e is an allocation failure (Python's, or the allocator's inside torch)."""
    return isinstance(e, MemoryError) or (isinstance(e, RuntimeError) and (
        "can't allocate memory" in str(e) or "not enough memory" in str(e) or
        "out of memory" in str(e)))


def _damaged(path: Path, reason: str) -> ValueError:
    return ValueError(f"{path} is not a readable longnet checkpoint (truncated or damaged: "
                      f"{reason})")


def _end_record_check(path: Path, f: BinaryIO) -> None:
    """Refuses a zip archive whose end record (with its comment) does not end the file: zipfile
    reads past bytes appended after it, LibTorch's reader (and longnet's C++ one) does not."""
    size = f.seek(0, os.SEEK_END)
    f.seek(max(0, size - ZIP_END_SEARCH))
    tail = f.read()
    at = tail.rfind(ZIP_END_MAGIC)
    if at < 0 or at + 22 > len(tail):
        return  # (zipfile found one; its own reading is the judge)
    end = at + 22 + int.from_bytes(tail[at + 20:at + 22], "little")
    if end < len(tail):
        raise ValueError(f"{path} is not a readable longnet checkpoint (corrupted: {size} bytes; "
                         f"its zip end record does not end the file: {len(tail) - end} bytes "
                         f"were appended after it, or the record is damaged)")


def check_checkpoint_file(path: Path) -> None:
    """Says what `path` is when it cannot be a checkpoint, reading at most its zip directory:
    FileNotFoundError (missing, or a dangling link), IsADirectoryError, ValueError for a FIFO,
    device or socket (never opened, so a FIFO cannot block), for a file that is not a zip
    archive, or for a truncated or damaged one."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        dangling = os.path.islink(path)
        raise FileNotFoundError(
            f"checkpoint {path} does not exist" +
            (f" (it is a symbolic link to the missing {os.readlink(path)})" if dangling else ""))
    if stat.S_ISDIR(st.st_mode):
        found = sorted(path.glob("*.ckpt"))
        hint = f", e.g. {found[-1]}" if found else ""
        raise IsADirectoryError(f"checkpoint {path} is a directory; pass one checkpoint file "
                                f"in it{hint}")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"checkpoint {path} is {_file_kind(st.st_mode)}, not a regular file; "
                         f"longnet reads checkpoints from regular files only (copy it to one)")
    # O_NONBLOCK: should the path have become a FIFO since the stat, open does not wait for it.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ValueError(f"checkpoint {path} is not a regular file")
        head = f.read(len(ZIP_MAGIC))
        if head != ZIP_MAGIC:
            what = "it is empty" if not head else f"it starts with {head!r}"
            hint = ""
            if path.suffix == ".safetensors" or path.name == "config.json":
                hint = (f"; a `longnet export` folder loads with "
                        f"LongNetLM.from_export({str(path.parent)!r})")
            raise ValueError(f"{path} is not a readable longnet checkpoint (not a torch.save zip "
                             f"archive: {what}, a checkpoint starts with {ZIP_MAGIC!r}){hint}")
        try:  # reads the end of the file and the zip directory, not the tensors
            with zipfile.ZipFile(f) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
            raise _damaged(path, f"no readable zip directory at its end ({e}); the file has "
                                 f"{st.st_size} bytes") from None
        _end_record_check(path, f)
    if not any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
        raise ValueError(f"{path} is not a readable longnet checkpoint (a zip archive without "
                         f"torch.save's data.pkl record; it holds {names[:4]})")


def _jit_pickle_globals() -> List[Any]:
    """The helpers that LibTorch's pickler (torch::pickle_save) names in a file: type tags and
    typed-list builders, each an identity function in torch.jit._pickle, so safe to allow under
    weights_only=True."""
    try:
        import torch.jit._pickle as jp
    except ImportError:
        return []
    names = ("restore_type_tag", "build_intlist", "build_tensorlist", "build_doublelist",
             "build_boollist", "build_tensor_from_id")
    return [getattr(jp, n) for n in names if hasattr(jp, n)]


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else "no message"


def _load_weights_only(path: Path) -> Any:
    allow = _jit_pickle_globals()
    if allow and hasattr(torch.serialization, "safe_globals"):
        with torch.serialization.safe_globals(allow):
            return torch.load(path, map_location="cpu", weights_only=True)
    return torch.load(path, map_location="cpu", weights_only=True)


_SAVED_OBJECT_HINT = (
    "If it is a model saved whole (torch.save(model)), torch.load(path, weights_only=False) "
    "reads it back, only from a file you trust (unpickling runs the code it names); better, save "
    "model.state_dict() and load that into a model built with the same arguments "
    "(model.load_state_dict(torch.load(path)))")


def _pickle_mentions(path: Path, needle: bytes) -> bool:
    """Whether the pickle record (data.pkl) of the torch.save archive at `path` holds the bytes
    `needle` (a longnet checkpoint's names its key "_longnet_format"). The record is small: the
    tensors are stored apart. True when it cannot be told (a record past 64 MiB, a read error),
    so that callers keep their general message."""
    try:
        with zipfile.ZipFile(path) as z:
            name = next(n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl")
            if z.getinfo(name).file_size > 64 << 20:
                return True
            return needle in z.read(name)
    except Exception:  # noqa: BLE001 - whatever the archive, the general message stands
        return True


def _not_checkpoint_reason(raw: Any) -> str:
    """What a torch.load'ed object that is no longnet checkpoint is, and how to load it."""
    if isinstance(raw, dict) and "_longnet_format" in raw:
        return (f"format {short_repr(raw['_longnet_format'])}, expected {CHECKPOINT_FORMAT!r} "
                f"(written by another version of longnet?)")
    if isinstance(raw, dict) and raw and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                             for k, v in raw.items()):
        first = next(iter(raw))
        return (f"it holds a state_dict ({len(raw)} tensors, e.g. {short_repr(first)}) and no "
                f"config to build the model from. Build the model with the arguments it was made "
                f"with and load it with model.load_state_dict(torch.load(path))")
    if isinstance(raw, dict):
        keys = [short_repr(k) for k in list(raw)[:6]]
        return (f"a dict without the '_longnet_format' record `longnet train` writes (its keys: "
                f"{', '.join(keys) or 'none'})")
    kind = f"{type(raw).__module__}.{type(raw).__qualname__}"
    if isinstance(raw, torch.nn.Module):
        return (f"it holds a {kind} object, a model saved whole with torch.save(model); "
                f"torch.load(path, weights_only=False) returns it as it is")
    return f"it holds a {kind} object, not the dict of a `longnet train` checkpoint"


def path_argument(owner: str, name: str, value: Any) -> Path:
    """A path argument as a Path: str, bytes (decoded as the file system does) or os.PathLike;
    TypeError naming the argument for anything else (an open file, None), ValueError for an
    empty path (which would mean the current directory)."""
    if isinstance(value, bytes):
        value = os.fsdecode(value)
    if not isinstance(value, (str, os.PathLike)):
        hint = " (an open file: pass its path, e.g. f.name)" if hasattr(value, "read") else ""
        raise TypeError(f"{owner}: {name} must be a path (str or os.PathLike), got "
                        f"{type(value).__name__}{hint}")
    if not os.fspath(value):
        raise ValueError(f"{owner}: {name} is empty ('')")
    return Path(value)


def load_checkpoint(path: PathArg, *,
                    weights_only: Optional[bool] = True) -> Dict[str, Any]:
    """Reads a `longnet train` checkpoint into a dict (the "_longnet_" entries left out), tensors
    on the CPU.

    weights_only: True (default; None means the same) reads with torch.load(weights_only=True),
    allowing only LibTorch's list and type-tag helpers (identity functions): a file holding any
    other object is refused, never unpickled, since unpickling runs whatever code the file
    names. False unpickles arbitrary objects: only for files you trust.
    Raises FileNotFoundError (missing), IsADirectoryError, or ValueError naming what the path is
    (a FIFO, a device: never opened), that the file is not a torch.save archive, that it holds
    objects weights_only=True refuses, that it is truncated or damaged ("PATH is not a readable
    longnet checkpoint (truncated or damaged: ...)"), or that it is not a longnet checkpoint.
    """
    path = path_argument("load_checkpoint", "path", path)
    if weights_only is not None and not isinstance(weights_only, bool):
        raise TypeError(f"weights_only must be True, False or None, got {weights_only!r}")
    check_checkpoint_file(path)
    try:
        if weights_only is False:
            raw = torch.load(path, map_location="cpu", weights_only=False)
        else:
            raw = _load_weights_only(path)
    except pickle.UnpicklingError as e:  # a broken pickle, or an object weights_only refuses
        # torch names a refused object as "GLOBAL module.name".
        refused = re.findall(r"GLOBAL ([\w.]+)", str(e))
        if not refused:
            found = re.search(r"WeightsUnpickler error:\s*(.+)", str(e))  # after torch's advice
            reason = found.group(1).strip() if found else _first_line(e)
            raise _damaged(path, f"{type(e).__name__}: {reason}") from e
        if not _pickle_mentions(path, b"_longnet_format"):  # no checkpoint at all
            raise ValueError(f"{path} is not a longnet checkpoint: it holds a pickled object "
                             f"that torch.load(weights_only=True) refuses (it names "
                             f"{refused[0]}), where a `longnet train` checkpoint holds tensors "
                             f"and plain values only. {_SAVED_OBJECT_HINT}") from e
        raise ValueError(f"{path} holds objects other than tensors and plain values, which "
                         f"torch.load(weights_only=True) refuses (it names {refused[0]}); `longnet "
                         f"train` never writes such a file, so it was changed or made elsewhere. "
                         f"Unpickling it runs whatever code it names: only for a file you trust, "
                         f"pass weights_only=False") from e
    except Exception as e:  # noqa: BLE001 - a damaged pickle can raise nearly any error
        if _out_of_memory(e):  # a good file, too large for the memory here
            raise MemoryError(f"{path}: out of host memory while reading it ({type(e).__name__}: "
                              f"{_first_line(e)}); the file is not known to be damaged: reading "
                              f"it needs about its size free") from e
        raise _damaged(path, f"{type(e).__name__}: {_first_line(e)}") from e
    if not isinstance(raw, dict) or raw.get("_longnet_format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a longnet checkpoint: {_not_checkpoint_reason(raw)}")
    stored = raw.get("_longnet_crc32")
    if not isinstance(stored, int) or isinstance(stored, bool):
        raise _damaged(path, "it has no integrity record (_longnet_crc32)")
    try:
        computed = _state_crc(raw)
    except (ValueError, RuntimeError, NotImplementedError, TypeError, RecursionError) as e:
        # (what a pickle made elsewhere can hold: sparse, nested or meta tensors, odd objects)
        raise _damaged(path, f"{type(e).__name__}: {_first_line(e)}") from e
    if computed != stored & 0xFFFFFFFF:
        raise ValueError(f"{path} is a corrupted longnet checkpoint (checksum mismatch: stored "
                         f"CRC-32 {stored & 0xFFFFFFFF:08x}, contents give {computed:08x})")
    out = {k: v for k, v in raw.items() if not str(k).startswith("_longnet_")}
    for key in ("config", "model"):
        if key not in out:
            raise ValueError(f"checkpoint {path} has no {key!r} entry")
    return out


# Plain scalars that are numbers, as the trainer reads them (YAML 1.2, strictly: no leading zeros,
# no octal, hexadecimal, base-60 or underscores, no inf or nan); anything else is a string.
_INT = re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$")
_FLOAT = re.compile(r"^[-+]?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$")


def _quoted(t: str, where: str) -> "tuple[str, str]":
    """A quoted scalar at the start of t: its text and what follows the closing quote."""
    if t[0] == "'":  # single quotes: '' is a quote, nothing else is escaped
        i, out = 1, []
        while i < len(t):
            if t[i] == "'":
                if t[i + 1:i + 2] == "'":
                    out.append("'")
                    i += 2
                    continue
                return "".join(out), t[i + 1:]
            out.append(t[i])
            i += 1
        raise ValueError(f"{where}: unterminated string {t}")
    i, out = 1, []
    simple = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", '"': '"', "\\": "\\", "/": "/",
              " ": " ", "e": "\x1b", "a": "\a", "b": "\b", "v": "\v", "f": "\f"}
    while i < len(t):
        ch = t[i]
        if ch == '"':
            return "".join(out), t[i + 1:]
        if ch == "\\" and i + 1 < len(t):
            nxt = t[i + 1]
            width = {"x": 2, "u": 4, "U": 8}.get(nxt)
            if width:
                digits = t[i + 2:i + 2 + width]
                if len(digits) != width or any(c not in "0123456789abcdefABCDEF" for c in digits):
                    raise ValueError(f"{where}: \\{nxt} needs {width} hex digits, got {digits!r}")
                out.append(chr(int(digits, 16)))
                i += 2 + width
                continue
            if nxt not in simple:
                raise ValueError(f"{where}: unknown escape \\{nxt} in {t}")
            out.append(simple[nxt])
            i += 2
            continue
        out.append(ch)
        i += 1
    raise ValueError(f"{where}: unterminated string {t}")


def _uncomment(t: str) -> str:
    """t without a trailing comment (a '#' after a blank, as YAML reads plain scalars)."""
    for i, ch in enumerate(t):
        if ch == "#" and (i == 0 or t[i - 1] in " \t"):
            return t[:i].rstrip()
    return t


def _scalar(text: str, where: str) -> Any:
    t = text.strip()
    if t[:1] in ("'", '"'):
        body, rest = _quoted(t, where)
        if _uncomment(rest.strip()):
            raise ValueError(f"{where}: {rest.strip()!r} follows the quoted string {t}")
        return body
    t = _uncomment(t)
    if t[:1] in ("{", "&", "*", "!", "|", ">", "%", "@", "`"):
        raise ValueError(f"{where}: {t!r} (a flow mapping, anchor, alias, tag or block scalar) is "
                         "beyond this reader (used without PyYAML): pip install pyyaml")
    if re.search(r":(?:[ \t]|$)", t):
        raise ValueError(f"{where}: {t!r} holds ':' before a blank or at its end, which YAML "
                         "reads as a mapping (an error in a plain value, a one-pair mapping in a "
                         "list); quote it, or pip install pyyaml")
    if t in ("true", "false"):
        return t == "true"
    if t in ("", "null", "Null", "NULL", "~"):  # YAML's nulls, as PyYAML reads them
        return None
    if _INT.match(t):
        return int(t)
    if _FLOAT.match(t):
        return float(t)
    return t


def _value(text: str, where: str) -> Any:
    t = text.strip()
    if t.startswith("["):
        t = t if t.endswith("]") else _uncomment(t)
        if not t.endswith("]"):
            raise ValueError(f"{where}: unterminated list {t}")
        inner = t[1:-1].strip()
        if any(c in inner for c in '[]{}"\'#'):
            raise ValueError(f"{where}: the list {t} holds nested lists, mappings, quoted items or "
                             "comments, which this reader (used without PyYAML) does not parse: "
                             "pip install pyyaml")
        items = [] if not inner else [x.strip() for x in inner.split(",")]
        if len(items) > 1 and items[-1] == "":  # [1, 2,]: YAML's trailing comma
            items.pop()
        if any(x == "" for x in items):
            raise ValueError(f"{where}: the list {t} has an empty item")
        return [_scalar(x, where) for x in items]
    return _scalar(t, where)


def parse_config_simple(text: str) -> Dict[str, Any]:
    """Parses the two-level YAML that `longnet train` writes into checkpoints
    (train/config.cpp config_to_yaml): `section:` lines, then `  key: value` lines; values are
    numbers, true/false, plain words, double-quoted strings, or flow lists [a, b]. Raises
    ValueError naming the line for anything else."""
    out: Dict[str, Any] = {}
    section: Optional[Dict[str, Any]] = None
    if text.startswith("\ufeff"):  # a UTF-8 byte-order mark, which YAML readers skip
        text = text[1:]
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"config line {n}"
        if line[:1] == "\t" or line.lstrip(" ")[:1] == "\t":
            raise ValueError(f"{where}: indented with a tab (YAML indents with spaces)")
        indented = line.startswith(" ")
        key, sep, rest = line.strip().partition(":")
        key = key.rstrip(" ")  # `key : value`, as YAML reads it
        if "\t" in key:
            raise ValueError(f"{where}: a tab in the key {key!r} (YAML refuses it)")
        if not sep or not key or (rest and rest[0] not in " \t"):
            raise ValueError(f"{where}: expected 'key: value', got {line!r}")
        into = section if indented else out
        if into is not None and key in into:
            raise ValueError(f"{where}: the key {key!r} is given twice")
        if indented:
            if section is None:
                raise ValueError(f"{where}: indented key {key!r} outside a section")
            section[key] = _value(rest, where)
        elif _uncomment(rest.strip()):
            out[key] = _value(rest, where)
            section = None
        else:
            section = out.setdefault(key, {})
            if not isinstance(section, dict):
                raise ValueError(f"{where}: {key!r} is a value above and a section here")
    return out


_CONFIG_LOADERS: Dict[Any, Any] = {}


def _config_loader(yaml: Any) -> Any:
    """PyYAML's SafeLoader, but typing plain scalars as the trainer does (YAML 1.2, strictly):
    `1e-5` and `3E4` are floats, where YAML 1.1 wants a dot (`1.0e-5`) and reads them as
    strings; YAML 1.1's octal, hexadecimal, base-60 and yes/no forms are not numbers or
    booleans; and a key given twice is refused."""
    if yaml not in _CONFIG_LOADERS:
        class Loader(yaml.SafeLoader):  # type: ignore[misc,name-defined]
            def construct_mapping(self, node: Any, deep: bool = False) -> Any:
                # A key given twice is an error, as in the trainer's reader (PyYAML keeps the
                # last silently). Merge keys (<<) are left to PyYAML.
                if isinstance(node, yaml.MappingNode):
                    seen = set()
                    for key_node, _ in node.value:
                        if not isinstance(key_node, yaml.ScalarNode) or \
                                key_node.tag == "tag:yaml.org,2002:merge":
                            continue
                        key = self.construct_object(key_node)
                        if key in seen:
                            raise yaml.constructor.ConstructorError(
                                None, None, f"the key {key!r} is given twice in one mapping (line "
                                f"{key_node.start_mark.line + 1})",
                                key_node.start_mark)
                        seen.add(key)
                return super().construct_mapping(node, deep=deep)

        # Plain scalars typed as the trainer types them (YAML 1.2 core, strict): true and false
        # are the booleans; decimal integers without leading zeros; decimal floats (1e-5 too).
        # YAML 1.1's other forms (yes/on, 010 as octal, 0x10, 1_000, 1:04 as base 60, .inf)
        # stay strings, which the model's checks refuse, as the trainer refuses them, rather than
        # read as another number.
        # Dates (2024-01-05), '=' and merge keys ('<<') are YAML 1.1 too: plain strings here, as
        # the trainer reads them (it refuses merge keys by name).
        typed = {"tag:yaml.org,2002:" + t
                 for t in ("bool", "int", "float", "timestamp", "value", "merge")}
        Loader.yaml_implicit_resolvers = {
            first: [(tag, rx) for tag, rx in resolvers if tag not in typed]
            for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
        Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"),
                                     list("tf"))
        Loader.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
        Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
        _CONFIG_LOADERS[yaml] = Loader
    return _CONFIG_LOADERS[yaml]


def parse_config(text: str) -> Dict[str, Any]:
    """A `longnet train` config (YAML text) as nested dicts: PyYAML (its safe loader, reading
    `1e-5` as a float as the trainer does) when PyYAML is installed, else parse_config_simple
    (enough for the configs checkpoints carry)."""
    if not isinstance(text, str):
        raise ValueError(f"config is not YAML text (got {type(text).__name__})")
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        return parse_config_simple(text)
    try:
        data = yaml.load(text, Loader=_config_loader(yaml))
    except yaml.YAMLError as e:
        raise ValueError(f"config is not valid YAML ({str(e).splitlines()[0]})") from e
    except RecursionError:  # nesting deeper than any config (a forged file)
        raise ValueError("config is nested too deeply to be a longnet config") from None
    except ValueError as e:  # an integer of more digits than Python converts, say
        raise ValueError(f"config is not a longnet config ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"config is not a mapping (got {type(data).__name__})")
    return data


def model_config(checkpoint: Dict[str, Any]) -> Dict[str, Any]:
    """The `model:` section of a loaded checkpoint's config."""
    config = parse_config(checkpoint["config"])
    model = config.get("model")
    if not isinstance(model, dict):
        raise ValueError("checkpoint config has no 'model' section")
    return model


__all__: List[str] = ["load_checkpoint", "parse_config", "parse_config_simple", "model_config",
                      "CHECKPOINT_FORMAT"]
