"""A stand-in ``tensorrt`` module generated from the real API of one version (trt_api.py).

It has the real version's classes (with their base classes), enums (with their member
values), module functions, properties (read-only or not) and method signatures, and
nothing else. Every call and property write is checked against the real signatures:
the argument count, keyword names, and the types pybind11 would accept (enums must be
members of the right enum, objects instances of the right class, ints, floats, bools,
strings, buffers, sequences). A call that the real bindings would refuse raises
:class:`ConformanceError` and is also kept in ``module.violations`` (so code that
catches exceptions cannot hide it). Calls are logged in ``module.calls``.

What a call returns comes from ``behaviours`` ({"Class.method": fn(self, *args)}),
else a default of the declared return type (None, True, 0, "", an instance of the
declared class, the first member of the declared enum); behaviour results are checked
against the declared return type too. Unknown annotations (C++ names pybind11 could not
resolve) accept anything and are listed in ``module.unchecked_types``.
"""

from __future__ import annotations

import enum
import os
import re
import types
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

INT_TYPES = {"int", "typing.SupportsInt", "typing.SupportsIndex"}
FLOAT_TYPES = {"float", "typing.SupportsFloat"}
BUFFER_TYPES = {"buffer", "typing_extensions.Buffer", "collections.abc.Buffer", "Buffer"}
CAPSULE_TYPES = {"capsule", "typing_extensions.CapsuleType", "types.CapsuleType"}
ANY_TYPES = {"", "object", "typing.Any", "*args", "**kwargs"}
SEQUENCE_PREFIXES = ("typing.Sequence[", "collections.abc.Sequence[", "typing.List[", "List[", "list[")


class ConformanceError(AssertionError):
    """A call, attribute or value that the real TensorRT bindings would refuse."""


@dataclass
class Param:
    name: str
    annotation: str
    has_default: bool


@dataclass
class Signature:
    text: str
    params: List[Param]  # without self
    returns: str


def split_top_level(text: str, separator: str = ",") -> List[str]:
    """Split at separators outside brackets, angle brackets and quotes."""
    parts, depth, quote, current = [], 0, None, ""
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{<":
            depth += 1
        elif char in ")]}>":
            depth -= 1
        elif char == separator and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        current += char
    if current.strip():
        parts.append(current.strip())
    return parts


def parse_signature(text: str, module: str, method: bool) -> Signature:
    """'name(self: M.X, a: int, b: M.Y = <Y.Z: 0>) -> M.T' -> Signature (M. stripped)."""
    start = text.index("(")
    depth, end = 0, start
    for end in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[end], 0)
        if depth == 0:
            break
    returns = text[end + 1:].strip()
    returns = clean(returns[2:].strip(), module) if returns.startswith("->") else ""
    params = []
    for part in split_top_level(text[start + 1:end]):
        name, _, annotation = part.partition(":")
        annotation, _, default = annotation.partition("=")
        name = name.strip()
        if name.startswith("*"):
            params.append(Param(name, name, True))
            continue
        params.append(Param(name.split("=")[0].strip(), clean(annotation.strip(), module),
                            bool(default.strip()) or "=" in name))
    return Signature(text, params[1:] if method and params else params, returns)


def clean(annotation: str, module: str) -> str:
    """Drop the module prefix; C++ names (nvinfer1::X, nvonnxparser::X) -> X."""
    annotation = annotation.replace(module + ".", "")
    return re.sub(r"\b(?:\w+::)+(\w+)", r"\1", annotation)


@dataclass
class StandInModule:
    """What generate() returns: the module, plus the record of what happened."""

    module: types.ModuleType
    calls: List[Tuple[str, tuple]] = field(default_factory=list)
    violations: List[str] = field(default_factory=list)
    unchecked_types: set = field(default_factory=set)

    def called(self, name: str) -> List[tuple]:
        """Arguments of every call of ``name`` ("Class.method", "function", "set Class.prop")."""
        return [args for called, args in self.calls if called == name]


class StandInObject:
    """Base of every generated class; ``_state`` is free for behaviours to use."""

    _api_name = "object"
    _properties: Dict[str, dict] = {}
    _owner: Optional[StandInModule] = None

    def __setattr__(self, name, value):
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        owner = type(self)._owner
        prop = type(self)._properties.get(name)
        if prop is None:
            owner.fail(f"{self._api_name} has no attribute {name!r} to set")
        if prop["set"] is None:
            owner.fail(f"{self._api_name}.{name} is read-only")
        if prop["set"] and not owner.accepts(prop["set"].params[-1].annotation, value):
            owner.fail(f"{self._api_name}.{name} = {value!r}: expected {prop['set'].params[-1].annotation}")
        owner.calls.append((f"set {self._api_name}.{name}", (value,)))
        self._values()[name] = value

    def _values(self) -> dict:
        if "_values_" not in self.__dict__:
            object.__setattr__(self, "_values_", {})
        return self.__dict__["_values_"]

    def __repr__(self):
        return f"<stand-in {self._api_name}>"


def generate(api: dict, behaviours: Optional[Dict[str, Callable]] = None) -> StandInModule:
    """Build the stand-in module for one API description (see trt_api.extract)."""
    builder = _Builder(api, behaviours or {})
    return builder.build()


class _Builder:
    def __init__(self, api: dict, behaviours: Dict[str, Callable]):
        self.api, self.behaviours = api, behaviours
        self.module_name = api["module"]
        self.record = StandInModule(types.ModuleType("tensorrt"))
        self.record.fail = self.fail
        self.record.accepts = self.accepts
        self.enums: Dict[str, type] = {}
        self.classes: Dict[str, type] = {}

    # ------------------------------------------------------------- checking
    def fail(self, message: str):
        self.record.violations.append(message)
        raise ConformanceError(message)

    def accepts(self, annotation: str, value) -> bool:
        a = annotation.strip()
        if a in ANY_TYPES:
            return True
        if a.startswith("typing.Optional[") or a.endswith("| None"):
            inner = a[len("typing.Optional["):-1] if a.startswith("typing.Optional[") else a[:-len("| None")]
            return value is None or self.accepts(inner, value)
        if a in INT_TYPES:
            return isinstance(value, (int, np.integer))  # IntEnum members too: pybind11 converts via __int__
        if a in FLOAT_TYPES:
            return isinstance(value, (int, float, np.integer, np.floating))
        if a == "bool":
            return isinstance(value, (bool, np.bool_))
        if a == "str":
            return isinstance(value, str)
        if a == "os.PathLike" or "PathLike" in a:
            return isinstance(value, (str, os.PathLike))
        if a in CAPSULE_TYPES:  # pybind11's void* caster takes any bound object or None
            return value is None or isinstance(value, StandInObject)
        if a in BUFFER_TYPES:
            return isinstance(value, (bytes, bytearray, memoryview, np.ndarray))
        if a == "tuple":
            return isinstance(value, tuple)
        if a == "list":
            return isinstance(value, list)
        if a.startswith(SEQUENCE_PREFIXES):
            inner = a[a.index("[") + 1:-1]
            return isinstance(value, (list, tuple)) and all(self.accepts(inner, v) for v in value)
        if a in self.enums:
            return isinstance(value, self.enums[a])
        if a in self.classes:
            if a.startswith(("Dims", "Permutation")) and isinstance(value, (list, tuple)):
                return all(isinstance(v, (int, np.integer)) for v in value)  # implicit conversion
            return isinstance(value, self.classes[a])
        self.record.unchecked_types.add(a)
        return True

    def returns_ok(self, annotation: str, value) -> bool:
        if annotation == "None":
            return value is None
        if annotation == "IHostMemory":
            return isinstance(value, (bytes, bytearray, memoryview)) or self.accepts(annotation, value)
        if annotation.startswith("Dims"):
            return isinstance(value, (tuple, list)) or self.accepts(annotation, value)
        if annotation in ("int", "float", "str", "bool"):
            return self.accepts(annotation, value)
        return value is None or self.accepts(annotation, value)

    def default(self, annotation: str):
        if annotation in ("", "None") or annotation.startswith("typing.Optional"):
            return None
        simple = {"bool": True, "int": 0, "float": 0.0, "str": "", "IHostMemory": b""}
        if annotation in simple:
            return simple[annotation]
        if annotation.startswith(("list", "List", "typing.List")):
            return []
        if annotation in self.enums:
            return next(iter(self.enums[annotation]))
        if annotation.startswith("Dims"):
            return ()
        if annotation in self.classes:
            return self.instance(annotation)
        return None

    def instance(self, name: str, **state):
        """An object of class ``name`` made without its constructor (as TensorRT returns them)."""
        obj = object.__new__(self.classes[name])
        obj._state = dict(state)
        return obj

    def bind(self, signature: Signature, args: tuple, kwargs: dict) -> Optional[str]:
        """None if the call fits the signature, else why not."""
        params = [p for p in signature.params if not p.name.startswith("*")]
        star = any(p.name.startswith("*") for p in signature.params)
        if len(args) > len(params) and not star:
            return f"{len(args)} positional arguments, the signature takes {len(params)}"
        for param, value in zip(params, args):
            if not self.accepts(param.annotation, value):
                return f"argument {param.name}={value!r} is not {param.annotation}"
        for name, value in kwargs.items():
            param = next((p for p in params if p.name == name), None)
            if param is None or params.index(param) < len(args):
                return f"unexpected keyword argument {name!r}"
            if not self.accepts(param.annotation, value):
                return f"argument {name}={value!r} is not {param.annotation}"
        missing = [p.name for p in params[len(args):] if not p.has_default and p.name not in kwargs]
        return f"missing arguments {missing}" if missing else None

    def resolve(self, qualified: str, signatures: List[Signature], args: tuple, kwargs: dict) -> Signature:
        reasons = []
        for signature in signatures:
            why = self.bind(signature, args, kwargs)
            if why is None:
                return signature
            reasons.append(f"{signature.text}: {why}")
        self.fail(f"{qualified}{args!r}: incompatible arguments; the real signatures are\n  " + "\n  ".join(reasons))

    # ------------------------------------------------------------- generating
    def callable_for(self, qualified: str, owner_names: List[str], lines: List[str], method: bool):
        signatures = [parse_signature(line, self.module_name, method) for line in lines]
        builder = self

        def call(*args, **kwargs):
            actual = args[1:] if method else args
            signature = builder.resolve(qualified, signatures, actual, kwargs) if signatures else None
            builder.record.calls.append((qualified, actual))
            behaviour = next((builder.behaviours[f"{o}.{qualified.split('.')[-1]}"] for o in owner_names
                              if f"{o}.{qualified.split('.')[-1]}" in builder.behaviours), None)
            if behaviour is None and not method:
                behaviour = builder.behaviours.get(qualified)
            returns = signature.returns if signature else ""
            result = behaviour(*args, **kwargs) if behaviour else builder.default(returns)
            if signature and not builder.returns_ok(returns, result):
                builder.fail(f"behaviour of {qualified} returned {result!r}, the real one returns {returns}")
            return result

        call.__name__ = qualified.split(".")[-1]
        call.__doc__ = "\n".join(lines)
        return call

    def make_property(self, class_name: str, attr: str, spec: dict, mro: List[str]):
        getter = parse_signature("get" + spec["get"], self.module_name, True) if spec["get"] else None
        setter = parse_signature("set" + spec["set"], self.module_name, True) if spec["set"] else None
        builder = self

        def fget(obj):
            if getter is None:
                builder.fail(f"{class_name}.{attr} is write-only")
            values = obj._values()
            if attr in values:
                return values[attr]
            behaviour = next((builder.behaviours[f"{o}.{attr}"] for o in mro if f"{o}.{attr}" in builder.behaviours),
                             None)
            result = behaviour(obj) if behaviour else builder.default(getter.returns)
            if not builder.returns_ok(getter.returns, result):
                builder.fail(f"behaviour of {class_name}.{attr} returned {result!r}, the real one is {getter.returns}")
            return result

        # "set": None read-only; a Signature to check values against; "" writable, type unknown
        return property(fget), {"set": None if spec["set"] is None else (setter or "")}

    def build_enum(self, qualname: str) -> type:
        if qualname not in self.enums:
            members = self.api["enums"][qualname]
            self.enums[qualname] = enum.IntEnum(qualname.split(".")[-1], members)
        return self.enums[qualname]

    def build_class(self, name: str) -> type:
        if name in self.classes:
            return self.classes[name]
        entry = self.api["classes"][name]
        bases = tuple(self.build_class(b) for b in entry["bases"][:1]) or (StandInObject,)
        mro = [name] + entry["bases"]
        namespace = {"_api_name": name, "_owner": self.record}
        properties = dict(getattr(bases[0], "_properties", {}))
        for attr, spec in entry["properties"].items():
            namespace[attr], properties[attr] = self.make_property(name, attr, spec, mro)
        namespace["_properties"] = properties
        for attr, lines in entry["methods"].items():
            if attr.startswith("_") and not attr.startswith("__"):
                continue
            namespace[attr] = self.callable_for(f"{name}.{attr}", mro, lines, method=True)
        for attr, qualname in entry["enum_types"].items():
            namespace[attr] = self.build_enum(qualname)
        for attr, (qualname, member) in entry["enum_members"].items():
            namespace[attr] = self.build_enum(qualname)[member]
        init_lines = entry["init"]
        builder = self

        if init_lines:
            checked_init = self.callable_for(f"{name}.__init__", mro, init_lines, method=True)

            def __init__(obj, *args, **kwargs):
                obj._state = {}
                checked_init(obj, *args, **kwargs)
        else:
            def __init__(obj, *args, **kwargs):
                builder.fail(f"{name}: no constructor is defined in the real bindings")

        namespace["__init__"] = __init__
        self.classes[name] = type(name.split(".")[-1], bases, namespace)
        return self.classes[name]

    def build(self) -> StandInModule:
        module = self.record.module
        for qualname in self.api["enums"]:
            self.build_enum(qualname)
        for name in self.api["classes"]:
            self.build_class(name)
        for qualname, value in self.enums.items():
            if "." not in qualname:
                setattr(module, qualname, value)
        for name, cls in self.classes.items():
            if "." not in name:
                setattr(module, name, cls)
        for name, lines in self.api["functions"].items():
            setattr(module, name, self.callable_for(name, [], lines, method=False))
        module.__version__ = self.api["version"]
        module.violations = self.record.violations
        self.record.instance = self.instance
        return self.record
