"""A small E-HPC client for the CLI: credentials as the aliyun CLI finds them, signing, one call over HTTP."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from hpcplane import API_VERSION, testing

DEFAULT_ENDPOINT = "http://127.0.0.1:9000"
PROFILE_FILE = "profile.json"  # hpcplane's own profile, written by `serve` under HPCPLANE_HOME
TOKEN_FILE = "control-token"  # noqa: S105 (a file name) the control API's token, written by `serve`


class ClientError(Exception):
    """Nothing was sent, or nothing usable came back: no credentials, an unreachable endpoint, not JSON."""


@dataclass(frozen=True, slots=True)
class ApiError(Exception):
    """The server answered with an error body."""

    status: int
    code: str
    message: str
    body: dict[str, Any]

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True, slots=True)
class Credentials:
    """An AccessKey pair (and STS token), the region, and where they came from (for messages only)."""

    access_key_id: str
    access_key_secret: str
    security_token: str | None = None
    region: str | None = None
    source: str = ""
    endpoint: str | None = None


def _aliyun_profile(path: Path, name: str | None) -> Credentials | None:
    """A profile of the aliyun CLI's config.json (its `current` one by default), in AK or StsToken mode."""
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ClientError(f"cannot read {path}: {error}") from None
    wanted = name or config.get("current") or "default"
    for profile in config.get("profiles") or []:
        if profile.get("name") != wanted:
            continue
        mode = profile.get("mode") or "AK"
        if mode not in ("AK", "StsToken"):
            raise ClientError(f"profile {wanted!r} of {path} is in mode {mode}; only AK and StsToken work")
        key, secret = profile.get("access_key_id"), profile.get("access_key_secret")
        if not key or not secret:
            raise ClientError(f"profile {wanted!r} of {path} has no AccessKey pair")
        return Credentials(
            key,
            secret,
            (profile.get("sts_token") or None) if mode == "StsToken" else None,
            profile.get("region_id") or None,
            f"profile {wanted} of {path}",
            profile.get("endpoint") or None,
        )
    return None


def resolve_credentials(
    *,
    access_key_id: str | None,
    access_key_secret: str | None,
    security_token: str | None,
    profile: str | None,
    hpcplane_home: Path,
    env: Mapping[str, str] | None = None,
) -> Credentials:
    """Flags, then ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET/SECURITY_TOKEN, then ~/.aliyun/config.json, then
    hpcplane's own profile (the demo account's, written by `serve` under HPCPLANE_HOME)."""
    env = os.environ if env is None else env
    if access_key_id or access_key_secret:
        if not (access_key_id and access_key_secret):
            raise ClientError("give both --access-key-id and --access-key-secret")
        return Credentials(access_key_id, access_key_secret, security_token, None, "flags")
    key, secret = env.get("ALIBABA_CLOUD_ACCESS_KEY_ID"), env.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
    if key and secret and profile is None:
        token = security_token or env.get("ALIBABA_CLOUD_SECURITY_TOKEN") or None
        return Credentials(key, secret, token, None, "environment")
    home = Path(env.get("HOME") or Path.home())
    found = _aliyun_profile(home / ".aliyun" / "config.json", profile)
    if found is None:
        found = _aliyun_profile(hpcplane_home / PROFILE_FILE, profile)
    if found is not None:
        return found
    if profile is not None:
        raise ClientError(
            f"no profile {profile!r} in ~/.aliyun/config.json or {hpcplane_home / PROFILE_FILE}"
        )
    raise ClientError(
        "no credentials: give --access-key-id/--access-key-secret, set ALIBABA_CLOUD_ACCESS_KEY_ID and "
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET, configure the aliyun CLI, or start `hpcplane serve` (its demo "
        "profile)"
    )


def write_profile(
    home: Path, *, name: str, access_key_id: str, secret: str, region: str, endpoint: str
) -> Path:
    """hpcplane's own profile, in the aliyun CLI's config.json shape, readable by its owner only."""
    profile = {
        "name": name,
        "mode": "AK",
        "access_key_id": access_key_id,
        "access_key_secret": secret,
        "region_id": region,
        "endpoint": endpoint,
    }
    return _private_file(home / PROFILE_FILE, json.dumps({"current": name, "profiles": [profile]}, indent=2))


def _private_file(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    return path


def write_token(home: Path, token: str) -> Path:
    """The control token where `hpcplane control` finds it, readable by its owner only."""
    return _private_file(home / TOKEN_FILE, token + "\n")


def profile_endpoint(home: Path) -> str | None:
    """The endpoint of hpcplane's own profile (where `serve` last listened), if there is one."""
    try:
        found = _aliyun_profile(home / PROFILE_FILE, None)
    except ClientError:
        return None
    return found.endpoint if found else None


def read_token(home: Path) -> str | None:
    path = home / TOKEN_FILE
    return path.read_text().strip() if path.is_file() else None


def normalize_endpoint(endpoint: str) -> str:
    """`HOST:PORT` or a URL; http unless the URL says https."""
    endpoint = endpoint.strip().rstrip("/")
    return endpoint if "://" in endpoint else f"http://{endpoint}"


class Client:
    """Signs (V3 ACS3-HMAC-SHA256 by default, V1 HMAC-SHA1 on request) and sends one call at a time."""

    def __init__(
        self,
        endpoint: str,
        credentials: Credentials,
        *,
        region: str,
        signature_v1: bool = False,
        version: str = API_VERSION,
        timeout: float = 30.0,
    ) -> None:
        self.endpoint = normalize_endpoint(endpoint)
        self.credentials = credentials
        self.region = region
        self.signature_v1 = signature_v1
        self.version = version
        self._http = httpx.Client(base_url=self.endpoint, timeout=timeout, trust_env=False)
        self._host = httpx.URL(self.endpoint).netloc.decode()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, action: str, params: Mapping[str, str]) -> dict[str, Any]:
        """The JSON body of a successful call; ApiError for an error body, ClientError otherwise."""
        creds = self.credentials
        wire = {"RegionId": self.region, **params}
        if self.signature_v1:
            if creds.security_token:
                wire["SecurityToken"] = creds.security_token
            signed = testing.sign_v1(
                action, wire, creds.access_key_id, creds.access_key_secret, version=self.version
            )
        else:
            extra = {"x-acs-security-token": creds.security_token} if creds.security_token else None
            signed = testing.sign_v3(
                action,
                wire,
                creds.access_key_id,
                creds.access_key_secret,
                host=self._host,
                version=self.version,
                extra_headers=extra,
            )
        try:
            response = self._http.request(
                signed.method, signed.url_path, headers=signed.headers, content=signed.body
            )
        except httpx.HTTPError as error:
            raise ClientError(f"cannot reach {self.endpoint}: {error}") from None
        try:
            body = response.json()
        except ValueError:
            raise ClientError(f"{self.endpoint} answered HTTP {response.status_code}, not JSON") from None
        if not isinstance(body, dict):
            raise ClientError(f"{self.endpoint} answered a JSON {type(body).__name__}, not an object")
        if response.is_error:
            raise ApiError(
                response.status_code, str(body.get("Code", "")), str(body.get("Message", "")), body
            )
        return body
