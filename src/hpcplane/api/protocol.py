"""The Alibaba Cloud RPC envelope: a request's parameters in, JSON bodies out."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote

import orjson

FORM_TYPE = "application/x-www-form-urlencoded"
JSON_TYPE = "application/json;charset=utf-8"
REQUEST_ID_HEADER = "x-acs-request-id"


@dataclass(frozen=True, slots=True)
class RpcRequest:
    """One API call as it arrived: everything the signature and the handler need, decoded once."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str]
    client_ip: str
    secure: bool = False
    form: list[tuple[str, str]] = field(default_factory=list)
    raw_query: str = ""  # the query string as it arrived, still encoded

    @property
    def action(self) -> str | None:
        """From the Action parameter, else the x-acs-action header."""
        return self.params.get("Action") or self.headers.get("x-acs-action") or None

    @property
    def version(self) -> str | None:
        """From the Version parameter, else the x-acs-version header."""
        return self.params.get("Version") or self.headers.get("x-acs-version") or None


def build_request(
    *,
    method: str,
    path: str,
    raw_query: bytes,
    raw_headers: list[tuple[bytes, bytes]],
    body: bytes,
    client_ip: str,
    secure: bool = False,
) -> RpcRequest:
    """Decode the query with form rules (`+` and %20 are spaces, blank values kept) and merge a form body."""
    headers: dict[str, str] = {}
    for name, value in raw_headers:
        headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    raw = raw_query.decode("latin-1")
    query = parse_query(raw)
    form: list[tuple[str, str]] = []
    if headers.get("content-type", "").split(";")[0].strip().lower() == FORM_TYPE and body:
        form = parse_query(body.decode("utf-8", "replace"))
    params = dict(query)
    params.update(form)
    return RpcRequest(
        method=method.upper(),
        path=path or "/",
        query=query,
        headers=headers,
        body=body,
        params=params,
        client_ip=client_ip,
        secure=secure,
        form=form,
        raw_query=raw,
    )


def parse_query(text: str) -> list[tuple[str, str]]:
    """`urllib.parse.parse_qsl(text, keep_blank_values=True)`, pair for pair (`+` and %XX decoded as UTF-8
    with replacement, a name without `=` given an empty value, empty pieces skipped), without its per-pair
    work for the pairs that hold neither `%` nor `+` (most of an SDK's query)."""
    pairs: list[tuple[str, str]] = []
    for piece in text.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        if "%" in piece or "+" in piece:
            name = unquote(name.replace("+", " "))
            value = unquote(value.replace("+", " "))
        pairs.append((name, value))
    return pairs


def render(body: dict[str, object]) -> bytes:
    """A JSON body as the SDKs parse it."""
    return orjson.dumps(body)
