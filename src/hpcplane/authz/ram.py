"""The RAM authorizer: the account's keys are allowed; users, groups and role sessions by their policies."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from hpcplane.authz import Decision
from hpcplane.authz.policy import Policy, RequestContext, Verdict, evaluate, parse_policy
from hpcplane.domain.accounts import Principal
from hpcplane.store import ram as store
from hpcplane.store.db import Database

SESSION_POLICY = "session policy"


@lru_cache(maxsize=4096)
def cached_policy(document: str) -> Policy:
    """Documents were validated when they were created; parsing each once per process is enough."""
    return parse_policy(document)


def _reason(verdict: Verdict) -> str:
    if verdict.kind == "ImplicitDeny":
        return "ImplicitDeny: no statement allows it"
    return f"{verdict.kind}: {verdict.policy} {verdict.statement}"


@dataclass
class RamAuthorizer:
    """Evaluates the principal's policies (a role session's must also pass its session policy)."""

    db: Database

    def decide(self, principal: Principal, ctx: RequestContext) -> Decision:
        if principal.is_account:
            return Decision(True, "the account's own AccessKey")
        with self.db.read() as conn:
            if principal.sts is not None:
                documents = store.role_policies(conn, principal.sts.role_id)
            else:
                assert principal.user_id is not None
                documents = store.user_policies(conn, principal.user_id)
        verdict = evaluate([(name, cached_policy(doc)) for name, doc in documents], ctx)
        if not verdict.allowed:
            return Decision(False, _reason(verdict))
        if principal.sts is not None and principal.sts.session_policy:
            session = evaluate([(SESSION_POLICY, cached_policy(principal.sts.session_policy))], ctx)
            if not session.allowed:
                return Decision(False, _reason(session))
        return Decision(True, _reason(verdict))
