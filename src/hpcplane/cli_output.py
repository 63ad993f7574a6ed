"""What `hpcplane call` does with parameters and bodies: wire parameters from arguments, tables, pages."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import click


def wire_params(args: Sequence[str]) -> dict[str, str]:
    """`--Name value` and `--Name=value` pairs, named as on the wire (`--EcsOrder.Compute.Count 2`)."""
    params: dict[str, str] = {}
    index = 0
    while index < len(args):
        arg = args[index]
        if not arg.startswith("--") or len(arg) == 2:
            raise click.UsageError(f"expected a parameter like --ClusterId VALUE, got {arg!r}")
        name, sep, value = arg[2:].partition("=")
        if not sep:
            if index + 1 >= len(args):
                raise click.UsageError(f"parameter --{name} needs a value")
            index += 1
            value = args[index]
        if not name[:1].isupper():
            raise click.UsageError(f"no such option --{name} (wire parameters start with a capital)")
        params[name] = value
        index += 1
    return params


def parse_output(spec: str) -> tuple[list[str], str | None]:
    """`cols=A,B,rows=Path.To[]` (or space-separated) into the columns and the rows' path."""
    cols: list[str] = []
    rows: str | None = None
    current: str | None = None
    for part in spec.replace(" ", ",").split(","):
        part = part.strip()
        if not part:
            continue
        if part.startswith("cols="):
            current, part = "cols", part[len("cols=") :]
        elif part.startswith("rows="):
            current, rows = "rows", part[len("rows=") :]
            continue
        if current != "cols":
            raise click.UsageError(f"--output {spec!r}: expected cols=A,B[,rows=PATH]")
        if part:
            cols.append(part)
    if not cols:
        raise click.UsageError(f"--output {spec!r}: give the columns, e.g. cols=TaskId,Status")
    return cols, rows


def list_key(body: dict[str, Any]) -> str | None:
    """The key of a List* body that holds its items: the one whose value is a list (or {X: [...]})."""
    for key, value in body.items():
        if isinstance(value, list):
            return key
    for key, value in body.items():
        if isinstance(value, dict) and len(value) == 1 and isinstance(next(iter(value.values())), list):
            return key
    return None


def items_at(body: dict[str, Any], key: str) -> list[Any]:
    value = body.get(key)
    if isinstance(value, dict):
        value = next(iter(value.values()), [])
    return list(value) if isinstance(value, list) else []


def rows_at(body: dict[str, Any], path: str | None, cols: list[str] | None = None) -> list[Any]:
    """The rows named by a dotted path (`[]` suffixes allowed); without one, the body itself when it has
    one of the columns (`--output cols=TaskId` of AddNodes), else its list."""
    if path is None:
        if any(col.split(".")[0] in body for col in cols or []):
            return [body]
        key = list_key(body)
        return items_at(body, key) if key else [body]
    value: Any = body
    for part in path.split("."):
        part = part.removesuffix("[]")
        if not part:
            continue
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def table(rows: list[Any], cols: list[str]) -> str:
    """An aligned text table, as the aliyun CLI's `--output cols=...` prints it."""

    def cell(row: Any, col: str) -> str:
        value: Any = row
        for part in col.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            return ""
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))

    grid = [cols, ["-" * len(col) for col in cols], *[[cell(row, col) for col in cols] for row in rows]]
    widths = [max(len(line[i]) for line in grid) for i in range(len(cols))]
    return "\n".join(
        " | ".join(text.ljust(widths[i]) for i, text in enumerate(line)).rstrip() for line in grid
    )


def merge_pages(
    fetch: Callable[[dict[str, str]], dict[str, Any]], params: dict[str, str], max_pages: int = 10_000
) -> dict[str, Any]:
    """Every page of a List* action (PageNumber/PageSize/TotalCount) merged into the first page's body."""
    size = params.get("PageSize", "50")
    number = int(params.get("PageNumber", "1"))
    first = fetch({**params, "PageNumber": str(number), "PageSize": size})
    key = list_key(first)
    if key is None or "TotalCount" not in first:
        return first
    items = items_at(first, key)
    total = int(first["TotalCount"])
    for _ in range(max_pages):
        if len(items) >= total:
            break
        number += 1
        page = items_at(fetch({**params, "PageNumber": str(number), "PageSize": size}), key)
        if not page:
            break
        items.extend(page)
    merged = dict(first)
    wrapped = first[key]
    if isinstance(wrapped, dict):
        merged[key] = {next(iter(wrapped)): items}
    else:
        merged[key] = items
    merged["PageNumber"] = 1
    merged["PageSize"] = len(items)
    return merged


def render_json(body: dict[str, Any], pretty: bool) -> str:
    if pretty:
        return json.dumps(body, indent=2, ensure_ascii=False)
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)
