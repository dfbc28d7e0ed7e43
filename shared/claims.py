"""Which account and roles a verified token grants, whatever identity provider issued it.

Pure: no I/O. Providers name things differently: Keycloak nests realm roles
(`realm_access.roles`), Auth0 lists `permissions`, Cognito has `cognito:groups`, Okta
`groups`, OAuth scopes are one space-separated string, and the reference implementation
sends `{"GenerateLlmMeme": true}`. Settings name the claims (a path, dot-separated) and
a table from the provider's names to MaaS roles.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# The roles MaaS grants: `ai` may order AI memes, `admin` runs accounts and the console.
AI_ROLE = "ai"
ADMIN_ROLE = "admin"


class ClaimsError(ValueError):
    """The token is signed and valid, but its claims do not name an account or roles."""


@dataclass(frozen=True, slots=True)
class ClaimsMapping:
    account_claim: str = "sub"
    roles_claim: str = "roles"
    # Provider name -> MaaS role. Only names in the table grant anything, so a provider's
    # unrelated "admin" group grants nothing; an empty table grants no role at all.
    role_map: Mapping[str, str] = field(default_factory=dict)

    def account(self, claims: Mapping[str, Any]) -> str:
        value = claim_at(claims, self.account_claim)
        if not isinstance(value, str):
            raise ClaimsError(f"token has no {self.account_claim!r} claim naming the account")
        return value

    def roles(self, claims: Mapping[str, Any]) -> frozenset[str]:
        names = granted_names(claim_at(claims, self.roles_claim), self.roles_claim)
        return frozenset(self.role_map[name] for name in names if name in self.role_map)

    def claims_for(self, account: str, roles: Iterable[str]) -> dict[str, Any]:
        """The claims a token for `account` with `roles` carries under this mapping."""
        names = [name for role in roles for name in self._names_granting(role)]
        claims: dict[str, Any] = {}
        place(claims, self.account_claim, account)
        place(claims, self.roles_claim, names)
        return claims

    def _names_granting(self, role: str) -> list[str]:
        return [name for name, granted in self.role_map.items() if granted == role]


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The claim named `path`, or nested along its dots (`realm_access.roles`).

    A claim whose own name has dots (`https://example.com/roles`) is found whole first.
    """
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def place(claims: dict[str, Any], path: str, value: Any) -> None:
    *parents, name = path.split(".")
    for part in parents:
        claims = claims.setdefault(part, {})
    claims[name] = value


def granted_names(value: Any, claim: str) -> list[str]:
    """A list of names, a space-separated string (`scope`) or a `{name: bool}` map."""
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list) and all(isinstance(name, str) for name in value):
        return value
    if isinstance(value, dict) and all(isinstance(flag, bool) for flag in value.values()):
        return [name for name, flag in value.items() if flag]
    raise ClaimsError(
        f"token claim {claim!r} must be a list of names, a space-separated string "
        "or a map of names to true/false"
    )
