"""A malformed policy document's PolicyError: its wording and its position together, root level included."""

from __future__ import annotations

import json

import pytest

from hpcplane.authz.policy import PolicyError, parse_policy
from tests.support.policies import allow, deny, document

ALLOW_ALL = '{"Effect": "Allow", "Action": "*", "Resource": "*"'
STATEMENT_ELEMENTS = "Effect, Action, NotAction, Resource, NotResource, Condition"


def with_raw_condition(condition: str) -> str:
    """A document whose one statement has this Condition, written as raw JSON (to repeat a name)."""
    return '{"Version": "1", "Statement": [' + ALLOW_ALL + ', "Condition": ' + condition + "}]}"


ERRORS = [
    # The root: its elements, their duplicates, its type, Version and Statement.
    pytest.param(
        json.dumps({"Version": "1", "Statement": [allow()], "Id": "x"}),
        "unknown element 'Id'; expected Version, Statement",
        "Id",
        id="root-unknown-element",
    ),
    pytest.param(
        '{"Version": "1", "Version": "1", "Statement": [' + ALLOW_ALL + "}]}",
        "element given more than once",
        "Version",
        id="root-duplicate-element",
    ),
    pytest.param("[]", "must be a JSON object, not a list", "document", id="root-list"),
    pytest.param("7", "must be a JSON object, not 7", "document", id="root-number"),
    pytest.param(
        json.dumps({"Statement": [allow()]}),
        'Version is required and must be "1"',
        "Version",
        id="no-version",
    ),
    pytest.param(
        json.dumps({"Version": "2", "Statement": [allow()]}),
        'unsupported Version "2": must be the string "1"',
        "Version",
        id="version-2",
    ),
    pytest.param(
        json.dumps({"Version": 1, "Statement": [allow()]}),
        'unsupported Version 1: must be the string "1"',
        "Version",
        id="version-number",
    ),
    pytest.param(
        '{"Version": NaN, "Statement": []}',
        'unsupported Version NaN: must be the string "1"',
        "Version",
        id="version-nan",
    ),
    pytest.param(
        json.dumps({"Version": "1", "Statement": allow()}),
        "Statement is required and must be a non-empty list of statements",
        "Statement",
        id="statement-object",
    ),
    pytest.param(
        '{"Version": "1",\n "Statement": [\n  {"Effect": "Allow",, }]}',
        "invalid JSON: Expecting property name enclosed in double quotes",
        "line 3, column 22",
        id="json-syntax",
    ),
    pytest.param("[" * 100_000, "invalid JSON: nested too deeply", "document", id="json-too-deep"),
    # A statement's elements.
    pytest.param(
        document(allow(Principal="*")),
        f"unknown element 'Principal'; expected {STATEMENT_ELEMENTS}",
        "Statement[0].Principal",
        id="statement-unknown-element",
    ),
    pytest.param(
        json.dumps({"Version": "1", "Statement": [allow(), "Allow"]}),
        'must be a JSON object, not "Allow"',
        "Statement[1]",
        id="statement-string",
    ),
    pytest.param(
        document(allow(Effect={})),
        'Effect is an object: it must be "Allow" or "Deny"',
        "Statement[0].Effect",
        id="effect-object",
    ),
    pytest.param(
        document({"Action": "*", "Resource": "*"}),
        'Effect is required: it must be "Allow" or "Deny"',
        "Statement[0].Effect",
        id="effect-missing",
    ),
    pytest.param(
        document(allow(Action=["ecs:A", []])),
        "must be a non-empty string, not a list",
        "Statement[0].Action[1]",
        id="action-item-list",
    ),
    pytest.param(
        document(allow(Resource=" *")),
        "' *' has leading or trailing spaces",
        "Statement[0].Resource",
        id="resource-spaces",
    ),
    pytest.param(
        document({"Effect": "Deny", "NotAction": [], "Resource": "*"}),
        "must name at least one pattern",
        "Statement[0].NotAction",
        id="notaction-empty",
    ),
    pytest.param(
        document(deny(NotResource="*")),
        "gives both Resource and NotResource: give exactly one",
        "Statement[0].NotResource",
        id="resource-and-notresource",
    ),
    pytest.param(
        document({"Effect": "Allow", "Resource": "*"}),
        "Action (or NotAction) is required",
        "Statement[0].Action",
        id="action-missing",
    ),
    pytest.param(
        document(allow(Action="ListTasks")),
        "'ListTasks' is not an action: write service:Api (wildcards * and ?)",
        "Statement[0].Action",
        id="action-without-service",
    ),
    # Conditions: an operator or a key given twice (json would keep only the last).
    pytest.param(
        with_raw_condition('{"StringEquals": {"acs:SourceVpc": "a", "acs:SourceVpc": "b"}}'),
        "condition key given more than once",
        "Statement[0].Condition.StringEquals.acs:SourceVpc",
        id="condition-key-twice",
    ),
    pytest.param(
        with_raw_condition('{"StringEquals": {"a": "1", "b": "2", "b": "3", "a": "4"}}'),
        "condition key given more than once",
        "Statement[0].Condition.StringEquals.a",
        id="condition-keys-twice-first-named",
    ),
    pytest.param(
        with_raw_condition('{"StringEquals": {"a": "1"}, "StringEquals": {"b": "2"}}'),
        "element given more than once",
        "Statement[0].Condition.StringEquals",
        id="condition-operator-twice",
    ),
]


@pytest.mark.parametrize(("text", "message", "position"), ERRORS)
def test_policy_error_wording_and_position(text: str, message: str, position: str) -> None:
    """Each malformed document is refused by the check meant for it: its own message at its own place."""
    with pytest.raises(PolicyError) as caught:
        parse_policy(text)
    assert (caught.value.message, caught.value.position) == (message, position)
    assert str(caught.value) == message


def test_condition_keys_given_once_each_are_accepted() -> None:
    """Two different keys under one operator, and one key under two operators, are a valid document."""
    policy = parse_policy(
        with_raw_condition('{"StringEquals": {"a": "1", "b": "2"}, "StringLike": {"a": "1*"}}')
    )
    assert [c.key for c in policy.statements[0].conditions] == ["a", "b", "a"]
