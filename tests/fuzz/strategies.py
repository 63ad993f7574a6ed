"""Hypothesis strategies for signed E-HPC calls, read from the server's /openapi.json: every action, every
parameter (lists with hostile and canonical indexes, JSON ones with deep and odd values), V1 and V3."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

# Values that broke, or could break, a parser or a store: other digits, huge numbers, NUL bytes, widths.
HOSTILE = (
    "",
    " ",
    "a\x00b",
    "\x00",
    "²",
    "٩٠٠",
    "１",
    "-1",
    "0",
    "+7",
    "007",
    "99999999999999999999",
    "1" * 5000,
    "x" * 65,
    "x" * 129,
    "x" * 300,
    "True",
    "false",
    "null",
    "{}",
    "[]",
    '{"status":"running"}',
    '{"a":' + "[" * 1015,
    "[" * 40 + "]" * 40,
    '{"status": "\\u0000"}',
    '{"n": 1e999}',
    "é中",
    "%00",
    "../../etc",
    "' OR '1'='1",
    "Instance.1.Id",
)
INDEXES = ("1", "1", "2", "3", "100", "101", "0", "01", "001", "١", "1\n", "1" * 30)
_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


@dataclass(frozen=True)
class Param:
    """One parameter of the description: `Instance.N.Id` is `listed`."""

    name: str
    kind: str  # string | integer | number | boolean | json
    listed: bool


@dataclass(frozen=True)
class Operation:
    action: str
    version: str
    params: tuple[Param, ...]
    success_fields: frozenset[str]


@dataclass
class Call:
    """One generated call: how it is signed and the (name, value) pairs it sends, repeats possible."""

    operation: Operation
    kind: str
    pairs: list[tuple[str, str]] = field(default_factory=list)

    def describe(self) -> str:
        shown = [(k[:60], v[:60]) for k, v in self.pairs]
        return f"{self.operation.action} ({self.kind}) {shown}"


def operations(description: Mapping[str, Any]) -> list[Operation]:
    """Every operation of the description, with its parameters and the fields of its success body."""
    found = []
    for item in description["paths"].values():
        op = item["get"]
        consts = {
            p["name"]: p["schema"]["const"]
            for p in op["parameters"]
            if p.get("name") in ("Action", "Version")
        }
        params = []
        for p in op["parameters"]:
            if "name" not in p or p["name"] in consts:
                continue
            kind = "json" if p.get("x-hpcplane-json") else p["schema"].get("type", "string")
            params.append(Param(p["name"], kind, bool(p.get("x-hpcplane-list"))))
        schema = op["responses"]["200"]["content"]["application/json"]["schema"]
        found.append(
            Operation(consts["Action"], consts["Version"], tuple(params), frozenset(schema["properties"]))
        )
    return found


def _json_values() -> st.SearchStrategy[str]:
    leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TEXT
    tree = st.recursive(
        leaves, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(_TEXT, kids, max_size=3)
    )
    return tree.map(lambda v: json.dumps(v, ensure_ascii=False))


# Other scripts' digits: superscript, Arabic-Indic, full-width (str.isdigit() is True for all of them).
_DIGITS = [
    str.maketrans("0123456789", digits) for digits in ("⁰¹²³⁴⁵⁶⁷⁸⁹", "٠١٢٣٤٥٦٧٨٩", "０１２３４５６７８９")
]


def _mutations(text: str) -> st.SearchStrategy[str]:
    """A real value made hostile: a NUL byte, a newline, beyond any column's width, other digits."""
    return st.sampled_from(
        [
            text + "\x00",
            "\x00" + text,
            text[:1] + "\x00" + text[1:],
            text + "\n",
            f" {text} ",
            (text or "x") * (1 + 300 // max(len(text), 1)),
            text.translate(_DIGITS[0]),
            text.translate(_DIGITS[1]),
            text.translate(_DIGITS[2]),
        ]
    )


def value(param: Param, context: Mapping[str, list[str]]) -> st.SearchStrategy[str]:
    """Plausible values, the context's real ones (cluster and instance ids ...), and hostile ones:
    the catalogue above and mutations of plausible ones."""
    typed: st.SearchStrategy[str]
    if param.kind == "integer":
        typed = st.integers(-3, 120).map(str) | st.integers().map(str)
    elif param.kind == "number":
        typed = st.floats(allow_nan=False).map(str) | st.integers(0, 100).map(str)
    elif param.kind == "boolean":
        typed = st.sampled_from(["True", "False", "true", "false", "TRUE", "yes"])
    elif param.kind == "json":
        typed = _json_values()
    else:
        typed = _TEXT
    known = context.get(param.name, [])
    plausible = st.sampled_from(known) if known else typed
    return st.one_of(plausible, typed, st.sampled_from(HOSTILE), plausible.flatmap(_mutations))


def name(param: Param) -> st.SearchStrategy[str]:
    """The wire name; each N of a list parameter becomes an index, canonical or not."""
    if not param.listed:
        return st.just(param.name)
    parts = param.name.split(".")
    slots = [
        st.sampled_from(INDEXES) | st.integers(1, 120).map(str) if p == "N" else st.just(p) for p in parts
    ]
    return st.tuples(*slots).map(".".join)


@st.composite
def calls(draw: st.DrawFn, ops: list[Operation], context: Mapping[str, list[str]]) -> Call:
    """One call: an operation, a signing kind, some of its parameters, maybe unknown and repeated ones."""
    op = draw(st.sampled_from(ops))
    kind = draw(st.sampled_from(["v1", "v3"]))
    pairs: list[tuple[str, str]] = []
    if draw(st.integers(0, 2)) == 0:  # a plausible call: the context's values only, canonical indexes
        for param in op.params:
            if param.name in context and draw(st.booleans() | st.just(True)):
                spelled = param.name.replace(".N.", f".{draw(st.integers(1, 3))}.")
                pairs.append((spelled, draw(st.sampled_from(context[param.name]))))
        return Call(op, kind, list(dict(pairs).items()))
    wanted = [p for p in op.params if p.name in context and draw(st.integers(0, 3)) > 0]
    others = [p for p in op.params if p not in wanted]
    if others:
        wanted += draw(st.lists(st.sampled_from(others), max_size=4, unique=True))
    for param in wanted:
        for _ in range(draw(st.integers(1, 3)) if param.listed else 1):
            pairs.append((draw(name(param)), draw(value(param, context))))
    if draw(st.integers(0, 9)) == 0:
        pairs.append((draw(_TEXT), draw(_TEXT | st.sampled_from(HOSTILE))))
    unique = dict(pairs)
    if kind == "v3" and pairs and draw(st.integers(0, 9)) == 0:
        return Call(op, kind, [*unique.items(), next(iter(unique.items()))])
    return Call(op, kind, list(unique.items()))
