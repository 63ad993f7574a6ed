"""Identifiers in the shapes Alibaba Cloud uses."""

from __future__ import annotations

import secrets
import ssl
import string
import uuid

_ALNUM = string.ascii_letters + string.digits
_VARIANT = "89AB"  # the RFC 4122 variant: the top two bits of the clock_seq_hi byte are 10
_REGION_SHORT = {
    "cn-hangzhou": "hz",
    "cn-shanghai": "sh",
    "cn-beijing": "bj",
    "cn-shenzhen": "sz",
    "cn-zhangjiakou": "zjk",
    "cn-hongkong": "hk",
}


def _token(n: int, alphabet: str = _ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def request_id() -> str:
    """An upper-case random (version 4) UUID, as the RequestId of every response: written from 16 random
    bytes directly (every call makes one: uuid.UUID's object and str() cost three times as much). The bytes
    are OpenSSL's CSPRNG (reseeded by OpenSSL after a fork), not os.urandom: getrandom() releases the GIL,
    and on the event loop's thread, where every call's id is made, that handed the GIL to a call thread
    and left the loop waiting to take it back (docs/benchmarks.md, session 12)."""
    h = ssl.RAND_bytes(16).hex().upper()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def task_id() -> str:
    """An upper-case UUID, as E-HPC's TaskId."""
    return str(uuid.uuid4()).upper()


def account_id() -> str:
    """A 16-digit numeric uid."""
    return str(secrets.randbelow(9 * 10**15) + 10**15)


def access_key_id() -> str:
    """An AccessKeyId such as LTAI5tQ2...: 24 characters."""
    return "LTAI" + _token(20)


def access_key_secret() -> str:
    """A 30-character AccessKey secret."""
    return _token(30)


def cluster_id(region: str) -> str:
    """A ClusterId such as ehpc-hz-FYUr32abcd."""
    short = _REGION_SHORT.get(region, region.split("-")[-1][:3])
    return f"ehpc-{short}-{_token(10)}"


def instance_id() -> str:
    """An ECS instance id such as i-bp1inb1j2xz8pnoi1234."""
    return "i-bp" + _token(18, string.ascii_lowercase + string.digits)
