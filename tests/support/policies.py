"""RAM policy documents for tests: `document(allow(...), deny(...))`, `trust(principal, ...)`."""

from __future__ import annotations

import json
from typing import Any

Doc = dict[str, Any]


def document(*statements: Doc) -> str:
    return json.dumps({"Version": "1", "Statement": list(statements)})


def allow(**fields: Any) -> Doc:
    return {"Effect": "Allow", "Action": "*", "Resource": "*", **fields}


def deny(**fields: Any) -> Doc:
    return {"Effect": "Deny", "Action": "*", "Resource": "*", **fields}


def trust(*principals: str) -> str:
    """A trust policy letting the given RAM principals assume the role."""
    return json.dumps(
        {
            "Version": "1",
            "Statement": [
                {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"RAM": list(principals)}}
            ],
        }
    )
