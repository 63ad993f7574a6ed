"""The error catalogue is closed: every error has a stable code, a message and an HTTP status."""

from __future__ import annotations

import inspect

import pytest

from hpcplane.api.errors import STATUS, error_response
from hpcplane.domain import errors

ALL = [
    cls
    for _, cls in inspect.getmembers(errors, inspect.isclass)
    if issubclass(cls, errors.HpcplaneError) and cls is not errors.HpcplaneError
]


@pytest.mark.parametrize("cls", ALL, ids=lambda cls: cls.__name__)
def test_every_error_has_a_status(cls: type[errors.HpcplaneError]) -> None:
    """No error falls back to the 500 of an unknown class."""
    assert cls in STATUS


def test_codes_are_unique() -> None:
    """Two errors never share a code."""
    codes = [cls.code for cls in ALL]
    assert len(codes) == len(set(codes))


@pytest.mark.parametrize(
    ("error", "status", "code", "message"),
    [
        (
            errors.InvalidParams("PageSize"),
            400,
            "InvalidParams",
            "The specified parameter PageSize is invalid.",
        ),
        (errors.NotEnabled(), 400, "NotEnabled", "You have not enabled this service"),
        (errors.ClusterNotFound(), 404, "ClusterNotFound", "The specified cluster does not exist."),
        (errors.DbError(), 406, "DbError", "A database service error occurred."),
        (errors.RedisError(), 406, "RedisError", "A Redis service error occurred."),
        (errors.NotAuthorized(), 407, "NotAuthorized", "You are not authorized by RAM for this request."),
        (errors.UnknownError(), 500, "UnknownError", "An unknown error occurred."),
        (
            errors.ServiceUnavailable(),
            503,
            "ServiceUnavailable",
            "The request has failed due to a temporary failure of the server",
        ),
    ],
)
def test_the_specs_eight(error: errors.HpcplaneError, status: int, code: str, message: str) -> None:
    """The ListTasks error table: status, code and message exactly, in the five-field body."""
    response = error_response(error, "RID", "ehpc.cn-hangzhou.aliyuncs.com")
    assert response.status == status
    assert response.body == {
        "RequestId": "RID",
        "HostId": "ehpc.cn-hangzhou.aliyuncs.com",
        "Code": code,
        "Message": message,
        "Recommend": f"https://api.aliyun.com/troubleshoot?q={code}&product=EHPC&requestId=RID",
    }
