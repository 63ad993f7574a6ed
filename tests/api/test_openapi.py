"""GET /openapi.json: a valid OpenAPI 3.1 description of every action of the table, with the SDK's
parameters flattened as they travel; a documented error when the SDK is not installed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from hpcplane.api import openapi
from hpcplane.api.dispatch import VERSIONS
from hpcplane.domain.errors import OpenApiUnavailable
from tests.support.live import LiveServer, free_port
from tests.support.rawcalls import error_of


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server on SQLite (the description does not depend on the store)."""
    server = LiveServer(tmp_path_factory.mktemp("openapi")).start()
    yield server
    server.stop()


def params_of(document: dict[str, Any], action: str) -> dict[str, dict[str, Any]]:
    operation = document["paths"][f"/#Action={action}"]["get"]
    return {p["name"]: p for p in operation["parameters"] if "name" in p}


def test_served_description_is_valid_openapi_31(live: LiveServer) -> None:
    """/openapi.json answers 200 JSON that the OpenAPI 3.1 schema validates, one path per action."""
    response = httpx.get(f"http://{live.endpoint}/openapi.json", timeout=30)
    assert response.status_code == 200
    document = response.json()
    validate(document)
    assert document["openapi"] == "3.1.0"
    described = {op["get"]["operationId"] for op in document["paths"].values()}
    expected = {
        name if version == "2018-04-12" else f"{name}_{version}"
        for version, t in VERSIONS.items()
        for name in t
    }
    assert described == expected


def test_parameters_are_flattened_as_the_sdk_sends_them() -> None:
    """Nested models become dotted names, lists N-indexed ones, with the SDK's types; Action and Version
    are required and fixed."""
    document = openapi.document()
    create = params_of(document, "CreateCluster")
    assert create["EcsOrder.Compute.Count"]["schema"]["type"] == "integer"
    assert create["HaEnable"]["schema"]["type"] == "boolean"
    assert create["AdditionalVolumes.N.Roles.N.Name"]["x-hpcplane-list"] is True
    assert create["Action"] == {
        "name": "Action",
        "in": "query",
        "required": True,
        "schema": {"const": "CreateCluster"},
    }
    stop = params_of(document, "StopNodes")
    assert stop["Instance.N.Id"]["x-hpcplane-list"] is True
    assert set(params_of(document, "ListTasks")) >= {
        "ClusterId",
        "PageNumber",
        "PageSize",
        "TaskId",
        "Archived",
    }


def test_shrink_parameters_are_json_strings() -> None:
    """An SDK "shrink" field (a structure sent as a JSON string) is one string parameter marked as JSON."""
    models = openapi.sdk_models()
    found = {p.name: p for p in openapi.flatten(models.SubmitServerlessJobShrinkRequest)}
    assert found["Container"].json
    assert found["Container"].schema["contentMediaType"] == "application/json"
    assert not found["JobName"].json


def test_missing_sdk_is_open_api_unavailable() -> None:
    """Without the SDK's models, the description is OpenApiUnavailable (501, the JSON envelope)."""
    with pytest.raises(OpenApiUnavailable):
        openapi.sdk_models("hpcplane_no_such_sdk.models")


def test_served_without_sdk_is_the_envelope(live: LiveServer, tmp_path: Path) -> None:
    """A server whose Python cannot import the SDK answers /openapi.json 501 OpenApiUnavailable."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "sitecustomize.py").write_text("import sys\nsys.modules['alibabacloud_ehpc20180412'] = None\n")
    port = free_port()
    home = tmp_path / "home"
    env = {**os.environ, **live.env, "HPCPLANE_PORT": str(port), "HPCPLANE_HOME": str(home)}
    env["PYTHONPATH"] = str(shadow)
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "hpcplane", "serve"], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=5)
                break
            except httpx.TransportError:
                assert process.poll() is None, "server exited"
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        assert response.status_code == 501
        assert error_of(response)["Code"] == "OpenApiUnavailable"
    finally:
        process.terminate()
        process.wait(15)
        log.close()
