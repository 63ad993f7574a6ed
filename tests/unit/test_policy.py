"""The RAM policy language: matching, every condition operator, the verdict, and malformed documents."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hpcplane.authz.conditions import OPERATORS, wildcard_match
from hpcplane.authz.policy import (
    Policy,
    PolicyError,
    RequestContext,
    Statement,
    Verdict,
    evaluate,
    parse_policy,
)
from tests.support.policies import Doc, allow, deny, document

ACCOUNT = "1234567890123456"
ARN_A = f"acs:ehpc:cn-hangzhou:{ACCOUNT}:cluster/ehpc-hz-abc"
ARN_B = f"acs:ehpc:cn-hangzhou:{ACCOUNT}:cluster/ehpc-hz-xyz"
ARN_OTHER_ACCOUNT = "acs:ehpc:cn-hangzhou:9999999999999999:cluster/ehpc-hz-abc"
ALL = "*"
NOW = datetime(2019, 8, 12, 9, 0, 0, tzinfo=UTC)  # 2019-08-12T17:00:00+08:00
EPOCH = int(NOW.timestamp())


def decide(statements: list[Doc], action: str, resource: str, keys: dict[str, object] | None = None) -> bool:
    policy = parse_policy(document(*statements))
    return evaluate([("p", policy)], RequestContext(action, resource, keys or {})).allowed


# --- actions and resources: (statement, action, resource, allowed)

MATCHING = [
    pytest.param(allow(Action="ehpc:ListTasks"), "ehpc:ListTasks", ALL, True, id="action-exact"),
    pytest.param(allow(Action="ehpc:List*"), "ehpc:ListTasks", ALL, True, id="action-star-suffix"),
    pytest.param(allow(Action="ehpc:List*"), "ehpc:DescribeCluster", ARN_A, False, id="action-star-miss"),
    pytest.param(allow(Action="ehpc:*"), "ehpc:DeleteCluster", ARN_A, True, id="action-service-star"),
    pytest.param(allow(Action="*"), "ecs:DescribeInstances", ALL, True, id="action-bare-star"),
    pytest.param(allow(Action="ehpc:*"), "ecs:DescribeInstances", ALL, False, id="action-other-service"),
    pytest.param(allow(Action="ehpc:ListTask?"), "ehpc:ListTasks", ALL, True, id="action-question-one"),
    pytest.param(
        allow(Action="ehpc:ListTasks?"), "ehpc:ListTasks", ALL, False, id="action-question-not-zero"
    ),
    pytest.param(allow(Action="ehpc:ListTa?"), "ehpc:ListTasks", ALL, False, id="action-question-not-two"),
    pytest.param(allow(Action="EHPC:LISTTASKS"), "ehpc:ListTasks", ALL, True, id="action-case-insensitive"),
    pytest.param(allow(Action="ehpc:list*"), "EHPC:ListTasks", ALL, True, id="action-case-wildcard"),
    pytest.param(allow(Action="ehpc:*Cluster"), "ehpc:StopCluster", ARN_A, True, id="action-star-prefix"),
    pytest.param(
        allow(Action="ehpc:*Cluster"), "ehpc:ListClusters", ALL, False, id="action-star-prefix-miss"
    ),
    pytest.param(
        allow(Action=["ecs:*", "ehpc:ListTasks"]), "ehpc:ListTasks", ALL, True, id="action-list-second"
    ),
    pytest.param(
        {"Effect": "Allow", "NotAction": "ehpc:Delete*", "Resource": "*"},
        "ehpc:ListTasks",
        ALL,
        True,
        id="notaction-other-allowed",
    ),
    pytest.param(
        {"Effect": "Allow", "NotAction": "ehpc:Delete*", "Resource": "*"},
        "ehpc:DeleteCluster",
        ARN_A,
        False,
        id="notaction-listed-excluded",
    ),
    pytest.param(
        {"Effect": "Allow", "NotAction": ["ecs:*", "ehpc:deletecluster"], "Resource": "*"},
        "ehpc:DeleteCluster",
        ARN_A,
        False,
        id="notaction-case-insensitive",
    ),
    pytest.param(
        {"Effect": "Allow", "NotAction": "ehpc:*", "Resource": "*"},
        "ecs:DescribeInstances",
        ALL,
        True,
        id="notaction-other-service",
    ),
    pytest.param(allow(Resource=ARN_A), "ehpc:DescribeCluster", ARN_A, True, id="resource-exact"),
    pytest.param(allow(Resource=ARN_A), "ehpc:DescribeCluster", ARN_B, False, id="resource-other-cluster"),
    pytest.param(
        allow(Resource="acs:ehpc:*:*:cluster/*"),
        "ehpc:DescribeCluster",
        ARN_A,
        True,
        id="resource-star-segments",
    ),
    pytest.param(
        allow(Resource="acs:ehpc:cn-hangzhou:*:cluster/ehpc-hz-a?c"),
        "ehpc:DescribeCluster",
        ARN_A,
        True,
        id="resource-question",
    ),
    pytest.param(
        allow(Resource="acs:ehpc:cn-hangzhou:*:cluster/ehpc-hz-a?c"),
        "ehpc:DescribeCluster",
        ARN_B,
        False,
        id="resource-question-miss",
    ),
    pytest.param(
        allow(Resource=ARN_A.upper()), "ehpc:DescribeCluster", ARN_A, False, id="resource-case-sensitive"
    ),
    pytest.param(
        allow(Resource=f"acs:ehpc:cn-hangzhou:{ACCOUNT}:cluster/*"),
        "ehpc:DescribeCluster",
        ARN_OTHER_ACCOUNT,
        False,
        id="resource-other-account",
    ),
    pytest.param(allow(Resource="*"), "ehpc:DescribeCluster", ARN_A, True, id="resource-star-any-arn"),
    pytest.param(
        allow(Action="ehpc:List*", Resource="*"), "ehpc:ListTasks", ALL, True, id="all-resources-star"
    ),
    pytest.param(allow(Resource=ARN_A), "ehpc:ListTasks", ALL, False, id="all-resources-not-by-arn"),
    pytest.param(
        allow(Resource="acs:ehpc:*:*:*"), "ehpc:ListTasks", ALL, False, id="all-resources-not-by-glob"
    ),
    pytest.param(
        allow(Resource="acs:ehpc:*:*:cluster/*"),
        "ehpc:ListTasks",
        ALL,
        False,
        id="all-resources-not-by-cluster-*",
    ),
    pytest.param(
        allow(Resource=[ARN_B, ARN_A]), "ehpc:DescribeCluster", ARN_A, True, id="resource-list-second"
    ),
    pytest.param(
        {"Effect": "Allow", "Action": "*", "NotResource": ARN_A},
        "ehpc:DescribeCluster",
        ARN_B,
        True,
        id="notresource-other-allowed",
    ),
    pytest.param(
        {"Effect": "Allow", "Action": "*", "NotResource": ARN_A},
        "ehpc:DescribeCluster",
        ARN_A,
        False,
        id="notresource-listed-excluded",
    ),
    pytest.param(
        {"Effect": "Allow", "Action": "*", "NotResource": ARN_A},
        "ehpc:ListTasks",
        ALL,
        True,
        id="notresource-all-resources-outside",
    ),
    pytest.param(
        {"Effect": "Allow", "Action": "*", "NotResource": "*"},
        "ehpc:DescribeCluster",
        ARN_A,
        False,
        id="notresource-star-excludes-all",
    ),
    pytest.param(
        allow(Action="ehpc:Describe*", Resource=ARN_A), "ehpc:DescribeCluster", ARN_A, True, id="describe-own"
    ),
    pytest.param(
        allow(Action="ehpc:Describe*", Resource=ARN_A),
        "ehpc:DescribeCluster",
        ARN_B,
        False,
        id="describe-other",
    ),
]


@pytest.mark.parametrize(("statement", "action", "resource", "allowed"), MATCHING)
def test_action_and_resource_matching(statement: Doc, action: str, resource: str, allowed: bool) -> None:
    """Action and Resource patterns (wildcards, case, Not forms, All Resources) decide whether it applies."""
    assert decide([statement], action, resource) is allowed


# --- conditions: (Condition element, request keys, allowed)

VPC = {"acs:SourceVpc": "vpc-1"}
COUNT = {"ehpc:NodeCount": "5"}
AT_NOW = {"acs:CurrentTime": NOW}
LOCAL = {"acs:SourceIp": "127.0.0.1"}


def when(operator: str, key: str, value: object) -> Doc:
    return {operator: {key: value}}


CONDITIONS = [
    pytest.param(when("StringEquals", "acs:SourceVpc", "vpc-1"), VPC, True, id="StringEquals-true"),
    pytest.param(when("StringEquals", "acs:SourceVpc", "VPC-1"), VPC, False, id="StringEquals-case-false"),
    pytest.param(when("StringNotEquals", "acs:SourceVpc", "vpc-2"), VPC, True, id="StringNotEquals-true"),
    pytest.param(when("StringNotEquals", "acs:SourceVpc", "vpc-1"), VPC, False, id="StringNotEquals-false"),
    pytest.param(
        when("StringEqualsIgnoreCase", "acs:SourceVpc", "VPC-1"), VPC, True, id="EqualsIgnoreCase-true"
    ),
    pytest.param(
        when("StringEqualsIgnoreCase", "acs:SourceVpc", "vpc-2"), VPC, False, id="EqualsIgnoreCase-false"
    ),
    pytest.param(
        when("StringNotEqualsIgnoreCase", "acs:SourceVpc", "VPC-2"), VPC, True, id="NotEqualsIC-true"
    ),
    pytest.param(
        when("StringNotEqualsIgnoreCase", "acs:SourceVpc", "VPC-1"), VPC, False, id="NotEqualsIC-false"
    ),
    pytest.param(when("StringLike", "acs:SourceVpc", "vpc-*"), VPC, True, id="StringLike-star-true"),
    pytest.param(when("StringLike", "acs:SourceVpc", "vpc-?"), VPC, True, id="StringLike-question-true"),
    pytest.param(when("StringLike", "acs:SourceVpc", "VPC-*"), VPC, False, id="StringLike-case-false"),
    pytest.param(when("StringLike", "acs:SourceVpc", "vpc-??"), VPC, False, id="StringLike-question-false"),
    pytest.param(when("StringNotLike", "acs:SourceVpc", "prod-*"), VPC, True, id="StringNotLike-true"),
    pytest.param(when("StringNotLike", "acs:SourceVpc", "vpc-*"), VPC, False, id="StringNotLike-false"),
    pytest.param(when("NumericEquals", "ehpc:NodeCount", 5), COUNT, True, id="NumericEquals-true"),
    pytest.param(when("NumericEquals", "ehpc:NodeCount", "6"), COUNT, False, id="NumericEquals-false"),
    pytest.param(
        when("NumericEquals", "ehpc:NodeCount", 5),
        {"ehpc:NodeCount": "many"},
        False,
        id="NumericEquals-not-number",
    ),
    pytest.param(when("NumericNotEquals", "ehpc:NodeCount", 6), COUNT, True, id="NumericNotEquals-true"),
    pytest.param(
        when("NumericNotEquals", "ehpc:NodeCount", "5.0"), COUNT, False, id="NumericNotEquals-false"
    ),
    pytest.param(when("NumericLessThan", "ehpc:NodeCount", 6), COUNT, True, id="NumericLessThan-true"),
    pytest.param(when("NumericLessThan", "ehpc:NodeCount", 5), COUNT, False, id="NumericLessThan-false"),
    pytest.param(
        when("NumericLessThanEquals", "ehpc:NodeCount", 5), COUNT, True, id="NumericLessThanEquals-true"
    ),
    pytest.param(
        when("NumericLessThanEquals", "ehpc:NodeCount", 4), COUNT, False, id="NumericLessThanEquals-false"
    ),
    pytest.param(
        when("NumericGreaterThan", "ehpc:NodeCount", 4.5), COUNT, True, id="NumericGreaterThan-true"
    ),
    pytest.param(
        when("NumericGreaterThan", "ehpc:NodeCount", 5), COUNT, False, id="NumericGreaterThan-false"
    ),
    pytest.param(
        when("NumericGreaterThanEquals", "ehpc:NodeCount", "5"),
        {"ehpc:NodeCount": 5},
        True,
        id="NumericGTE-true",
    ),
    pytest.param(when("NumericGreaterThanEquals", "ehpc:NodeCount", 6), COUNT, False, id="NumericGTE-false"),
    pytest.param(
        when("DateEquals", "acs:CurrentTime", "2019-08-12T17:00:00+08:00"),
        AT_NOW,
        True,
        id="DateEquals-other-zone",
    ),
    pytest.param(
        when("DateEquals", "acs:CurrentTime", "2019-08-12T09:00:01Z"), AT_NOW, False, id="DateEquals-false"
    ),
    pytest.param(when("DateEquals", "acs:CurrentTime", EPOCH), AT_NOW, True, id="DateEquals-epoch-seconds"),
    pytest.param(
        when("DateNotEquals", "acs:CurrentTime", "2019-08-12T17:00:01+08:00"),
        AT_NOW,
        True,
        id="DateNotEquals-true",
    ),
    pytest.param(
        when("DateNotEquals", "acs:CurrentTime", "2019-08-12T09:00:00Z"),
        AT_NOW,
        False,
        id="DateNotEquals-false",
    ),
    pytest.param(
        when("DateLessThan", "acs:CurrentTime", "2019-08-12T09:00:01Z"), AT_NOW, True, id="DateLT-true"
    ),
    pytest.param(
        when("DateLessThan", "acs:CurrentTime", "2019-08-12T09:00:00Z"), AT_NOW, False, id="DateLT-false"
    ),
    pytest.param(
        when("DateLessThan", "acs:CurrentTime", str(EPOCH + 1)), AT_NOW, True, id="DateLT-epoch-string"
    ),
    pytest.param(
        when("DateLessThanEquals", "acs:CurrentTime", "2019-08-12T17:00:00+08:00"),
        AT_NOW,
        True,
        id="DateLTE-true",
    ),
    pytest.param(
        when("DateLessThanEquals", "acs:CurrentTime", "2019-08-12T08:59:59Z"),
        AT_NOW,
        False,
        id="DateLTE-false",
    ),
    pytest.param(
        when("DateGreaterThan", "acs:CurrentTime", "2019-08-12T08:59:59Z"), AT_NOW, True, id="DateGT-true"
    ),
    pytest.param(
        when("DateGreaterThan", "acs:CurrentTime", "2019-08-12T17:00:00+08:00"),
        AT_NOW,
        False,
        id="DateGT-false",
    ),
    pytest.param(
        when("DateGreaterThanEquals", "acs:CurrentTime", "2019-08-12T09:00:00Z"),
        AT_NOW,
        True,
        id="DateGTE-true",
    ),
    pytest.param(
        when("DateGreaterThanEquals", "acs:CurrentTime", "2019-08-12T09:00:01Z"),
        AT_NOW,
        False,
        id="DateGTE-false",
    ),
    pytest.param(
        when("Bool", "acs:SecureTransport", "true"), {"acs:SecureTransport": True}, True, id="Bool-true"
    ),
    pytest.param(
        when("Bool", "acs:SecureTransport", "true"), {"acs:SecureTransport": False}, False, id="Bool-false"
    ),
    pytest.param(
        when("Bool", "acs:MFAPresent", False), {"acs:MFAPresent": False}, True, id="Bool-json-boolean"
    ),
    pytest.param(
        when("Bool", "acs:MFAPresent", "TRUE"), {"acs:MFAPresent": "true"}, True, id="Bool-string-request"
    ),
    pytest.param(when("IpAddress", "acs:SourceIp", "127.0.0.0/8"), LOCAL, True, id="IpAddress-cidr-true"),
    pytest.param(when("IpAddress", "acs:SourceIp", "10.0.0.0/8"), LOCAL, False, id="IpAddress-cidr-false"),
    pytest.param(when("IpAddress", "acs:SourceIp", "127.0.0.1"), LOCAL, True, id="IpAddress-single-true"),
    pytest.param(when("IpAddress", "acs:SourceIp", "127.0.0.2"), LOCAL, False, id="IpAddress-single-false"),
    pytest.param(
        when("IpAddress", "acs:SourceIp", "2001:db8::/32"),
        {"acs:SourceIp": "2001:db8::7"},
        True,
        id="IpAddress-ipv6",
    ),
    pytest.param(when("IpAddress", "acs:SourceIp", "::1"), LOCAL, False, id="IpAddress-v6-block-v4-request"),
    pytest.param(
        when("IpAddress", "acs:SourceIp", "127.0.0.1"),
        {"acs:SourceIp": "::ffff:127.0.0.1"},
        True,
        id="IpAddress-v4-mapped-request",
    ),
    pytest.param(when("NotIpAddress", "acs:SourceIp", "10.0.0.0/8"), LOCAL, True, id="NotIpAddress-true"),
    pytest.param(when("NotIpAddress", "acs:SourceIp", "127.0.0.1/32"), LOCAL, False, id="NotIpAddress-false"),
    pytest.param(when("StringEquals", "acs:SourceVpc", "vpc-1"), {}, False, id="missing-positive-false"),
    pytest.param(when("IpAddress", "acs:SourceIp", "0.0.0.0/0"), {}, False, id="missing-IpAddress-false"),
    pytest.param(when("StringNotEquals", "acs:SourceVpc", "vpc-1"), {}, True, id="missing-negated-true"),
    pytest.param(
        when("NotIpAddress", "acs:SourceIp", "10.0.0.0/8"), {}, True, id="missing-NotIpAddress-true"
    ),
    pytest.param(
        when("StringEqualsIfExists", "acs:SourceVpc", "vpc-2"), {}, True, id="IfExists-missing-true"
    ),
    pytest.param(when("BoolIfExists", "acs:MFAPresent", "true"), {}, True, id="BoolIfExists-missing-true"),
    pytest.param(
        when("StringEqualsIfExists", "acs:SourceVpc", "vpc-2"), VPC, False, id="IfExists-present-false"
    ),
    pytest.param(
        when("StringEqualsIfExists", "acs:SourceVpc", "vpc-1"), VPC, True, id="IfExists-present-true"
    ),
    pytest.param(
        when("IpAddressIfExists", "acs:SourceIp", "10.0.0.0/8"), LOCAL, False, id="IpIfExists-present-no"
    ),
    pytest.param(
        when("NumericLessThanIfExists", "ehpc:NodeCount", 9), COUNT, True, id="NumericIfExists-present"
    ),
    pytest.param(
        when("StringNotEqualsIfExists", "acs:SourceVpc", "vpc-1"),
        VPC,
        False,
        id="NotEqualsIfExists-present-no",
    ),
    pytest.param(
        when("DateLessThanIfExists", "acs:CurrentTime", "2000-01-01T00:00:00Z"), {}, True, id="DateIfExists"
    ),
    pytest.param(
        when("IpAddress", "acs:SourceIp", ["10.0.0.0/8", "127.0.0.1"]), LOCAL, True, id="values-ored-second"
    ),
    pytest.param(
        when("StringEquals", "acs:SourceVpc", ["vpc-2", "vpc-3"]), VPC, False, id="values-ored-none"
    ),
    pytest.param(
        when("StringNotEquals", "acs:SourceVpc", ["vpc-2", "vpc-1"]), VPC, False, id="negated-must-match-none"
    ),
    pytest.param(
        {"StringEquals": {"acs:SourceVpc": "vpc-1", "ehpc:NodeCount": "5"}},
        {**VPC, **COUNT},
        True,
        id="keys-anded-both",
    ),
    pytest.param(
        {"StringEquals": {"acs:SourceVpc": "vpc-1", "ehpc:NodeCount": "6"}},
        {**VPC, **COUNT},
        False,
        id="keys-anded-one-fails",
    ),
    pytest.param(
        {
            "DateGreaterThan": {"acs:CurrentTime": "2019-08-12T00:00:00Z"},
            "DateLessThan": {"acs:CurrentTime": "2019-08-13T00:00:00Z"},
        },
        AT_NOW,
        True,
        id="operators-anded-window-in",
    ),
    pytest.param(
        {
            "DateGreaterThan": {"acs:CurrentTime": "2019-08-12T00:00:00Z"},
            "IpAddress": {"acs:SourceIp": "10.0.0.0/8"},
        },
        {**AT_NOW, **LOCAL},
        False,
        id="operators-anded-one-fails",
    ),
    pytest.param(when("IpAddress", "ACS:SOURCEIP", "127.0.0.1"), LOCAL, True, id="key-name-case-policy"),
    pytest.param(
        when("IpAddress", "acs:SourceIp", "127.0.0.1"), {"Acs:sourceip": "127.0.0.1"}, True, id="key-case-req"
    ),
]


@pytest.mark.parametrize(("condition", "keys", "allowed"), CONDITIONS)
def test_condition(condition: Doc, keys: dict[str, object], allowed: bool) -> None:
    """Each operator true and false; missing keys, IfExists, values ORed, keys and operators ANDed."""
    assert decide([allow(Condition=condition)], "ehpc:ListTasks", ALL, keys) is allowed


# --- verdicts across policies: (policies, request, verdict)

ALLOW_LIST = ("list", document(allow(Action="ehpc:List*")))
DENY_LOCAL = ("deny-local", document(deny(Condition=when("IpAddress", "acs:SourceIp", "127.0.0.1"))))
DENY_OFFICE = ("deny-office", document(deny(Condition=when("IpAddress", "acs:SourceIp", "10.0.0.0/8"))))
LIST_TASKS_LOCAL = RequestContext("ehpc:ListTasks", ALL, LOCAL)

VERDICTS = [
    pytest.param(
        [ALLOW_LIST],
        LIST_TASKS_LOCAL,
        Verdict(True, "Allow", "list", "Statement[0]"),
        id="allow-reports-statement",
    ),
    pytest.param(
        [ALLOW_LIST, DENY_LOCAL],
        LIST_TASKS_LOCAL,
        Verdict(False, "ExplicitDeny", "deny-local", "Statement[0]"),
        id="deny-over-allow-across-policies",
    ),
    pytest.param(
        [DENY_LOCAL, ALLOW_LIST],
        LIST_TASKS_LOCAL,
        Verdict(False, "ExplicitDeny", "deny-local", "Statement[0]"),
        id="deny-over-allow-any-order",
    ),
    pytest.param(
        [ALLOW_LIST, DENY_OFFICE],
        LIST_TASKS_LOCAL,
        Verdict(True, "Allow", "list", "Statement[0]"),
        id="deny-condition-unmet",
    ),
    pytest.param(
        [("both", document(allow(Action="ehpc:ListTasks"), deny(Action="ehpc:List*")))],
        LIST_TASKS_LOCAL,
        Verdict(False, "ExplicitDeny", "both", "Statement[1]"),
        id="deny-later-in-same-policy",
    ),
    pytest.param(
        [("two", document(allow(Action="ecs:*"), allow(Action="ehpc:ListTasks"), allow()))],
        LIST_TASKS_LOCAL,
        Verdict(True, "Allow", "two", "Statement[1]"),
        id="first-allowing-statement-reported",
    ),
    pytest.param(
        [("arn", document(allow(Resource=ARN_A)))],
        LIST_TASKS_LOCAL,
        Verdict(False, "ImplicitDeny", None, None),
        id="implicit-deny",
    ),
    pytest.param([], LIST_TASKS_LOCAL, Verdict(False, "ImplicitDeny", None, None), id="no-policies"),
    pytest.param(
        [DENY_LOCAL],
        LIST_TASKS_LOCAL,
        Verdict(False, "ExplicitDeny", "deny-local", "Statement[0]"),
        id="deny-alone",
    ),
]


@pytest.mark.parametrize(("policies", "ctx", "expected"), VERDICTS)
def test_verdict(policies: list[tuple[str, str]], ctx: RequestContext, expected: Verdict) -> None:
    """Deny wins over Allow across policies, Allow over default deny; the deciding statement is named."""
    parsed = [(name, parse_policy(text)) for name, text in policies]
    assert evaluate(parsed, ctx) == expected


# --- malformed documents: (document, position)


def with_condition(condition: object) -> str:
    return document(allow(), allow(Condition=condition))


PARSE_ERRORS = [
    pytest.param(
        '{"Version": "1",\n "Statement": [\n  {"Effect": "Allow",, }]}', "line 3, column 22", id="json-syntax"
    ),
    pytest.param("", "line 1, column 1", id="json-empty"),
    pytest.param('{"Version": "1"} x', "line 1, column 18", id="json-trailing"),
    pytest.param("[]", "document", id="root-not-object"),
    pytest.param(json.dumps({"Version": "2", "Statement": [allow()]}), "Version", id="version-wrong"),
    pytest.param(json.dumps({"Version": 1, "Statement": [allow()]}), "Version", id="version-number"),
    pytest.param(json.dumps({"Statement": [allow()]}), "Version", id="version-missing"),
    pytest.param(json.dumps({"Version": "1"}), "Statement", id="statement-missing"),
    pytest.param(json.dumps({"Version": "1", "Statement": []}), "Statement", id="statement-empty"),
    pytest.param(json.dumps({"Version": "1", "Statement": allow()}), "Statement", id="statement-not-list"),
    pytest.param(
        json.dumps({"Version": "1", "Statement": [allow(), "Allow"]}),
        "Statement[1]",
        id="statement-not-object",
    ),
    pytest.param(document({"Action": "*", "Resource": "*"}), "Statement[0].Effect", id="effect-missing"),
    pytest.param(document(allow(Effect="allow")), "Statement[0].Effect", id="effect-lowercase"),
    pytest.param(document(allow(NotAction="ecs:*")), "Statement[0].NotAction", id="action-and-notaction"),
    pytest.param(document({"Effect": "Allow", "Resource": "*"}), "Statement[0].Action", id="action-missing"),
    pytest.param(
        document(allow(NotResource=ARN_A)), "Statement[0].NotResource", id="resource-and-notresource"
    ),
    pytest.param(
        document({"Effect": "Allow", "Action": "*"}), "Statement[0].Resource", id="resource-missing"
    ),
    pytest.param(
        document(allow(Action=["ehpc:ListTasks", "ListTasks"])), "Statement[0].Action[1]", id="action-form"
    ),
    pytest.param(document(allow(Action=[])), "Statement[0].Action", id="action-empty-list"),
    pytest.param(document(allow(Resource=["*", 7])), "Statement[0].Resource[1]", id="resource-not-string"),
    pytest.param(document(allow(Resource="")), "Statement[0].Resource", id="resource-empty"),
    pytest.param(document(allow(Principal={"RAM": "*"})), "Statement[0].Principal", id="unknown-element"),
    pytest.param(
        '{"Version": "1", "Statement": '
        '[{"Effect": "Allow", "Effect": "Deny", "Action": "*", "Resource": "*"}]}',
        "Statement[0].Effect",
        id="duplicate-element",
    ),
    pytest.param(
        with_condition(when("IpAddress", "acs:SourceIp", "10.0.0.0/33")),
        "Statement[1].Condition.IpAddress.acs:SourceIp",
        id="bad-cidr",
    ),
    pytest.param(
        with_condition(when("NotIpAddress", "acs:SourceIp", ["10.0.0.0/8", "10.0.0.300"])),
        "Statement[1].Condition.NotIpAddress.acs:SourceIp[1]",
        id="bad-ip-in-list",
    ),
    pytest.param(
        with_condition(when("StringEqualz", "acs:SourceVpc", "vpc-1")),
        "Statement[1].Condition.StringEqualz",
        id="unknown-operator",
    ),
    pytest.param(
        with_condition(when("NumericLessThan", "ehpc:NodeCount", "ten")),
        "Statement[1].Condition.NumericLessThan.ehpc:NodeCount",
        id="numeric-not-number",
    ),
    pytest.param(
        with_condition(when("NumericEquals", "ehpc:NodeCount", True)),
        "Statement[1].Condition.NumericEquals.ehpc:NodeCount",
        id="numeric-boolean",
    ),
    pytest.param(
        with_condition(when("DateLessThan", "acs:CurrentTime", "2019-13-01T00:00:00Z")),
        "Statement[1].Condition.DateLessThan.acs:CurrentTime",
        id="date-invalid",
    ),
    pytest.param(
        with_condition(when("DateLessThan", "acs:CurrentTime", "2019-08-12T17:00:00")),
        "Statement[1].Condition.DateLessThan.acs:CurrentTime",
        id="date-without-zone",
    ),
    pytest.param(
        with_condition(when("Bool", "acs:SecureTransport", "yes")),
        "Statement[1].Condition.Bool.acs:SecureTransport",
        id="bool-not-boolean",
    ),
    pytest.param(
        with_condition(when("StringEquals", "acs:SourceVpc", [])),
        "Statement[1].Condition.StringEquals.acs:SourceVpc",
        id="values-empty",
    ),
    pytest.param(
        with_condition(when("StringEquals", "acs:SourceVpc", {"a": 1})),
        "Statement[1].Condition.StringEquals.acs:SourceVpc",
        id="value-object",
    ),
    pytest.param(
        with_condition({"StringEquals": "vpc-1"}),
        "Statement[1].Condition.StringEquals",
        id="operator-not-object",
    ),
    pytest.param(with_condition(["StringEquals"]), "Statement[1].Condition", id="condition-not-object"),
    pytest.param(with_condition(None), "Statement[1].Condition", id="condition-null"),
    pytest.param("[" * 100_000, "document", id="nested-too-deeply"),
    pytest.param(
        document(allow()).replace(
            '"Resource": "*"', '"Resource": "*", "Condition": {"NumericEquals": {"k": NaN}}'
        ),
        "Statement[0].Condition.NumericEquals.k",
        id="nan-constant",
    ),
]


@pytest.mark.parametrize(("text", "position"), PARSE_ERRORS)
def test_malformed_document_position(text: str, position: str) -> None:
    """A malformed document is refused with PolicyError naming where: a line and column, or a path."""
    with pytest.raises(PolicyError) as caught:
        parse_policy(text)
    assert caught.value.position == position
    assert str(caught.value)


LOCAL_ONLY = when("IpAddressIfExists", "acs:SourceIp", "127.0.0.1")


def test_parse_builds_statements() -> None:
    """A valid document yields labelled statements with their patterns and parsed conditions."""
    policy = parse_policy(
        document(
            allow(Action="ehpc:List*"),
            {
                "Effect": "Deny",
                "NotAction": ["ehpc:Describe*"],
                "NotResource": ARN_A,
                "Condition": LOCAL_ONLY,
            },
        )
    )
    assert policy.version == "1"
    first, second = policy.statements
    assert (first.label, first.effect, first.actions, first.resources) == (
        "Statement[0]",
        "Allow",
        ("ehpc:List*",),
        ("*",),
    )
    assert (second.not_actions, second.not_resources, second.actions) == (("ehpc:Describe*",), (ARN_A,), None)
    assert [(c.operator, c.key, c.if_exists, c.negated) for c in second.conditions] == [
        ("IpAddressIfExists", "acs:SourceIp", True, False)
    ]


def test_statement_matches_request() -> None:
    """Statement.matches applies action, resource and conditions to one request."""
    (statement,) = parse_policy(document(allow(Condition=LOCAL_ONLY))).statements
    assert statement.matches(LIST_TASKS_LOCAL)
    assert not statement.matches(RequestContext("ehpc:ListTasks", ALL, {"acs:SourceIp": "10.1.1.1"}))


def test_statement_needs_exactly_one_of_each_pair() -> None:
    """A Statement built in code must name exactly one of Action/NotAction and of Resource/NotResource."""
    with pytest.raises(ValueError, match=r"^a Statement takes exactly one of actions and not_actions$"):
        Statement("Statement[0]", "Allow", actions=("*",), not_actions=("*",), resources=("*",))
    with pytest.raises(ValueError, match=r"^a Statement takes exactly one of resources and not_resources$"):
        Statement("Statement[0]", "Allow", actions=("*",))


def test_policy_error_is_a_value_error() -> None:
    """PolicyError is a ValueError whose text is the message, with the position kept apart."""
    with pytest.raises(ValueError, match="unsupported Version") as caught:
        parse_policy(json.dumps({"Version": "2012-10-17", "Statement": [allow()]}))
    assert isinstance(caught.value, PolicyError)
    assert caught.value.position == "Version"


# --- properties

ACTIONS = ["ehpc:ListTasks", "ehpc:DescribeCluster", "ehpc:DeleteCluster", "ecs:DescribeInstances"]
RESOURCES = [ALL, ARN_A, ARN_B, ARN_OTHER_ACCOUNT]
ACTION_PATTERNS = ["*", "ehpc:*", "ehpc:List*", "EHPC:describe?luster", "ecs:*", "ehpc:Delete*", "?*:*Tasks"]
RESOURCE_PATTERNS = [
    "*",
    "?",
    ARN_A,
    ARN_B,
    "acs:ehpc:*:*:cluster/*",
    "acs:ehpc:*:*:cluster/ehpc-hz-a?c",
    "acs:*",
]
KEYS = [
    "acs:SourceIp",
    "acs:CurrentTime",
    "acs:SecureTransport",
    "acs:MFAPresent",
    "acs:SourceVpc",
    "ehpc:Count",
]
FAMILY_VALUES: dict[str, st.SearchStrategy[object]] = {
    "String": st.sampled_from(["vpc-1", "VPC-1", "vpc-*", "true", "127.0.0.1", "?"]),
    "Numeric": st.one_of(st.integers(-3, 3), st.sampled_from(["2", "2.5", "-1"])),
    "Date": st.sampled_from(
        ["2019-08-12T17:00:00+08:00", "2019-08-12T09:00:01Z", "2030-01-01T00:00:00Z", EPOCH]
    ),
    "Bool": st.sampled_from([True, False, "true", "false"]),
    "IpAddress": st.sampled_from(["127.0.0.1", "10.0.0.0/8", "::1", "0.0.0.0/0", "2001:db8::/32"]),
}


def _family(operator: str) -> str:
    if operator.endswith("IpAddress"):
        return "IpAddress"
    return next(name for name in FAMILY_VALUES if operator.startswith(name))


@st.composite
def conditions(draw: st.DrawFn) -> Doc:
    block: Doc = {}
    for _ in range(draw(st.integers(0, 3))):
        base = draw(st.sampled_from(sorted(OPERATORS)))
        operator = base + draw(st.sampled_from(["", "IfExists"]))
        values = draw(st.lists(FAMILY_VALUES[_family(base)], min_size=1, max_size=3))
        block.setdefault(operator, {})[draw(st.sampled_from(KEYS))] = values
    return block


def patterns(choices: list[str]) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(choices), min_size=1, max_size=3)


@st.composite
def statements(draw: st.DrawFn, effect: st.SearchStrategy[str]) -> Doc:
    statement: Doc = {"Effect": draw(effect)}
    statement[draw(st.sampled_from(["Action", "NotAction"]))] = draw(patterns(ACTION_PATTERNS))
    statement[draw(st.sampled_from(["Resource", "NotResource"]))] = draw(patterns(RESOURCE_PATTERNS))
    condition = draw(conditions())
    if condition:
        statement["Condition"] = condition
    return statement


REQUEST_VALUES: dict[str, st.SearchStrategy[object]] = {
    "acs:SourceIp": st.sampled_from(["127.0.0.1", "10.1.2.3", "::1", "192.168.0.1", "2001:db8::9"]),
    "acs:CurrentTime": st.sampled_from([NOW, NOW + timedelta(seconds=1), NOW - timedelta(days=400)]),
    "acs:SecureTransport": st.booleans(),
    "acs:MFAPresent": st.booleans(),
    "acs:SourceVpc": st.sampled_from(["vpc-1", "VPC-1", "vpc-2"]),
    "ehpc:Count": st.sampled_from(["2", "-1", "3", "many"]),
}


@st.composite
def requests(draw: st.DrawFn) -> RequestContext:
    present = draw(st.lists(st.sampled_from(KEYS), unique=True))
    keys = {key: draw(REQUEST_VALUES[key]) for key in present}
    return RequestContext(draw(st.sampled_from(ACTIONS)), draw(st.sampled_from(RESOURCES)), keys)


policy_sets = st.lists(
    st.lists(statements(st.sampled_from(["Allow", "Deny"])), min_size=1, max_size=3), min_size=0, max_size=3
)


def parsed(policy_docs: list[list[Doc]]) -> list[tuple[str, Policy]]:
    return [(f"p{index}", parse_policy(document(*body))) for index, body in enumerate(policy_docs)]


@given(policy_sets, statements(st.just("Deny")), st.integers(0, 3), st.integers(0, 3), requests())
def test_adding_a_deny_never_widens_access(
    policy_docs: list[list[Doc]], denial: Doc, where: int, at: int, ctx: RequestContext
) -> None:
    """Adding a Deny statement anywhere in any policy set never turns a denied request into an allowed one."""
    before = evaluate(parsed(policy_docs), ctx)
    widened = [list(body) for body in policy_docs]
    if where < len(widened):
        widened[where].insert(min(at, len(widened[where])), denial)
    else:
        widened.append([denial])
    after = evaluate(parsed(widened), ctx)
    if not before.allowed:
        assert not after.allowed
    deny_statement = parse_policy(document(denial)).statements[0]
    if deny_statement.matches(ctx):
        assert after.kind == "ExplicitDeny"


def _regex(pattern: str) -> re.Pattern[str]:
    parts = (".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)
    return re.compile("".join(parts), re.DOTALL)


@given(st.text(alphabet="ab*?", max_size=8), st.text(alphabet="ab*?", max_size=8))
def test_wildcard_match_agrees_with_a_regex(pattern: str, text: str) -> None:
    """The linear-time wildcard matcher agrees with the equivalent regular expression."""
    assert wildcard_match(pattern, text) == bool(_regex(pattern).fullmatch(text))
