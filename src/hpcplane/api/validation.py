"""The checks every request passes before any reader or SQL runs: credential material, parameter names,
repeats, text and sizes; and the cap on what parameters an action does not read may store.

The readers (api/params.py, api/listparams.py) add each parameter's own rules; together they are the
one place that knows both stores' rules (store/limits.py gives each column's width)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping

from hpcplane.api import values
from hpcplane.api.authn import Credentials
from hpcplane.api.protocol import RpcRequest
from hpcplane.domain.errors import AccessKeyNotFound, InvalidParams, SecurityTokenMalformed
from hpcplane.store.limits import width

# A parameter name: ASCII letters, digits and `._:-`; a purely numeric segment is a canonical list index.
NAME_MAX_CHARS = 128
_NAME = re.compile(rf"[A-Za-z][A-Za-z0-9._:-]{{0,{NAME_MAX_CHARS - 1}}}", re.ASCII)
_INDEX_SEGMENT = re.compile(r"[0-9]+", re.ASCII)
MAX_PARAMETERS = 1000
VALUE_MAX_CHARS = 32_768  # any one parameter; readers bound theirs much tighter
PARAMS_MAX_CHARS = 65_536  # names and values of one call together (what a task's Request may store)
# Parameters an action keeps without reading them (CreateCluster's `extra`).
KEPT_VALUE_MAX_CHARS = 1024
KEPT_MAX_PARAMETERS = 200
KEPT_MAX_CHARS = 16_384
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}", re.ASCII)
TOKEN_MAX_CHARS = 4096


def shown(name: str) -> str:
    """A parameter name as an error message may quote it: printable ASCII, at most 64 characters."""
    escaped = name.encode("unicode_escape").decode("ascii")
    return escaped if len(escaped) <= 64 else escaped[:61] + "..."


def check_credentials(creds: Credentials) -> None:
    """Signature material the store can look up: a well-formed AccessKeyId, a nonce that fits its column,
    a token of bounded size; else the documented code."""
    if not _KEY_ID.fullmatch(creds.access_key_id):
        raise AccessKeyNotFound()
    nonce_name = "SignatureNonce" if creds.version == "V1" else "x-acs-signature-nonce"
    values.check_text(nonce_name, creds.nonce)
    limit = width("nonces", "nonce")
    if len(creds.nonce) > limit:
        raise InvalidParams(nonce_name, f"is longer than {limit} characters")
    token = creds.security_token
    if token is not None and (len(token) > TOKEN_MAX_CHARS or not token.isascii() or "\x00" in token):
        raise SecurityTokenMalformed()


def check_request(req: RpcRequest) -> None:
    """Every parameter of the call: a well-formed name given once, text without NUL bytes or lone
    surrogates, sizes within VALUE_MAX_CHARS and PARAMS_MAX_CHARS."""
    check_names(name for name, _ in [*req.query, *req.form])
    for source in (req.query, req.form):
        if len({name for name, _ in source}) == len(source):
            continue  # no name repeated (the common case: no Counter needed to find which)
        repeated = [name for name, count in Counter(name for name, _ in source).items() if count > 1]
        if repeated:
            raise InvalidParams(shown(repeated[0]), "is given more than once")
    given = dict(req.query)
    for name, value in req.form:
        if name in given and given[name] != value:
            raise InvalidParams(shown(name), "is given more than once")
    check_values(req.params)


# Names found well formed before (the SDKs send the same few again and again): checked by one set lookup.
# Bounded, so that made-up names cannot grow it; past the bound, names are checked in full each time.
_WELL_FORMED: set[str] = set()
_WELL_FORMED_MAX = 4096


def check_names(names: Iterable[str]) -> None:
    for count, name in enumerate(names, 1):
        if count > MAX_PARAMETERS:
            raise InvalidParams(shown(name), f"is beyond {MAX_PARAMETERS} parameters")
        if name in _WELL_FORMED:
            continue
        _check_name(name)
        if len(_WELL_FORMED) < _WELL_FORMED_MAX:
            _WELL_FORMED.add(name)


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise InvalidParams(shown(name), "is not a well-formed parameter name")
    for segment in name.split("."):
        if _INDEX_SEGMENT.fullmatch(segment):
            values.list_index(name, segment, 10**values.INDEX_DIGITS - 1)


def check_values(params: Mapping[str, str]) -> None:
    total = 0
    for name, value in params.items():
        values.check_text(name, value)
        if len(value) > VALUE_MAX_CHARS:
            raise InvalidParams(name, f"is longer than {VALUE_MAX_CHARS} characters")
        total += len(name) + len(value)
        if total > PARAMS_MAX_CHARS:
            raise InvalidParams(name, f"takes the call's parameters beyond {PARAMS_MAX_CHARS} characters")


def kept(params: Mapping[str, str]) -> dict[str, str]:
    """Parameters an action stores without reading them, within KEPT_* bounds (else InvalidParams
    naming the first one beyond them): an unknown parameter cannot make the store keep megabytes."""
    if len(params) > KEPT_MAX_PARAMETERS:
        raise InvalidParams(sorted(params)[KEPT_MAX_PARAMETERS], f"beyond {KEPT_MAX_PARAMETERS} parameters")
    total = 0
    for name in sorted(params):
        value = params[name]
        if len(value) > KEPT_VALUE_MAX_CHARS:
            raise InvalidParams(name, f"is longer than {KEPT_VALUE_MAX_CHARS} characters")
        total += len(name) + len(value)
        if total > KEPT_MAX_CHARS:
            raise InvalidParams(name, f"takes the stored parameters beyond {KEPT_MAX_CHARS} characters")
    return dict(params)
