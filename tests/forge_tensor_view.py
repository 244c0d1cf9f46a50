#!/usr/bin/env python3
"""Rewrites one tensor's view (sizes or strides) in a torch.save zip, leaving its storage record
and every zip CRC intact, as an edit of the pickle would: a file LibTorch's unpickler turns into
a tensor reaching past its storage (tests/checkpoint_guard.sh).

    forge_tensor_view.py SRC DST NAME sizes|strides [params]

NAME is a key of the checkpoint's `model` dict (`params` writes only that dict, as a parameters
file); `sizes` multiplies the first size by 1000, `strides`
sets the first stride to 10^9. Plain Python: no torch needed."""
import io
import pickle
import sys
import types
import zipfile


class Global:  # a class or function named in the pickle, kept by name
    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):
        return Reduce(self, args)


class Reduce:  # a call recorded in the pickle (torch._utils._rebuild_tensor_v2(...))
    def __init__(self, fn, args):
        self.fn, self.args = fn, args


class Persistent:  # a storage reference
    def __init__(self, pid):
        self.pid = pid


class Reader(pickle.Unpickler):
    def find_class(self, module, name):
        return Global(module, name)

    def persistent_load(self, pid):
        return Persistent(pid)


_stubs = {}
_modules = set()  # the stand-in modules made here


def stub(g):
    """A function that pickles as the global module.name (in stand-in modules of that name)."""
    if (g.module, g.name) not in _stubs:
        parts = g.module.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name not in _modules:
                sys.modules[name] = types.ModuleType(name)
                _modules.add(name)
            if i > 1:
                setattr(sys.modules[".".join(parts[:i - 1])], parts[i - 1], sys.modules[name])

        def fn(*_):
            return None
        fn.__module__, fn.__qualname__, fn.__name__ = g.module, g.name, g.name
        setattr(sys.modules[g.module], g.name, fn)
        _stubs[(g.module, g.name)] = fn
    return _stubs[(g.module, g.name)]


class Writer(pickle._Pickler):
    dispatch = dict(pickle._Pickler.dispatch)

    def save_long(self, v):  # LibTorch reads 8-byte LONG1 only
        if -2**31 <= v < 2**31:
            return pickle._Pickler.save_long(self, v)
        self.write(pickle.LONG1 + bytes([8]) + v.to_bytes(8, "little", signed=True))
    dispatch[int] = save_long

    def persistent_id(self, obj):
        if isinstance(obj, Persistent):
            return tuple(stub(x) if isinstance(x, Global) else x for x in obj.pid)
        return None

    def reducer_override(self, obj):
        if isinstance(obj, Reduce):
            return stub(obj.fn), obj.args
        if isinstance(obj, Global):
            return stub(obj)  # pickled by reference
        return NotImplemented


def main():
    src, dst, name, what = sys.argv[1:5]
    params = len(sys.argv) > 5
    archive = zipfile.ZipFile(src)
    pkl = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
    top = Reader(io.BytesIO(archive.read(pkl))).load()
    holder = top["model"]
    t = holder[name]  # _rebuild_tensor_v2(storage, offset, sizes, strides, ...)
    args = list(t.args)
    if what == "sizes":
        args[2] = (args[2][0] * 1000,) + tuple(args[2][1:])
    else:
        args[3] = (10**9,) + tuple(args[3][1:])
    holder[name] = Reduce(t.fn, tuple(args))
    out = io.BytesIO()
    Writer(out, protocol=2).dump(holder if params else top)
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as w:
        for n in archive.namelist():
            w.writestr(n, out.getvalue() if n == pkl else archive.read(n))


if __name__ == "__main__":
    main()
