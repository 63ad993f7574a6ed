"""RAM policy documents for tests: `document(allow(...), deny(...))`."""

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
