"""The console verifies admin tokens from the identity provider's JWKS, like the gateway."""

from __future__ import annotations

from typing import Any

from tests.console import ConsoleClient, ledger_url
from tests.fakes.identity_provider import IdentityProvider
from tests.stack import ServiceStack, wait_for

TTL_S = 2


async def test_a_provider_token_signs_in_and_a_removed_key_signs_the_operator_out(
    make_stack: Any, idp: IdentityProvider
) -> None:
    stack: ServiceStack = await make_stack(
        jwt_jwks_url=idp.jwks_url,
        jwt_algorithms=["RS256"],
        jwt_jwks_ttl_s=TTL_S,
        jwt_jwks_cooldown_s=1.0,
    )
    async with ConsoleClient(ledger_url(stack)) as operator:
        assert (await operator.sign_in(stack.token("ops", ("admin",)))).status == 401  # HS256
        assert (await operator.sign_in(idp.foreign_token("current", "ops"))).status == 401
        assert (await operator.sign_in(idp.token("current", "ops", ["admin"]))).status == 303
        assert (await operator.get("/console/dead-letters"))[0] == 200

        idp.add_key("next")  # a provider never publishes an empty set while rotating
        idp.remove_key("current")

        async def signed_out() -> bool:
            return (await operator.get("/console/dead-letters"))[0] == 303

        await wait_for(signed_out, 3 * TTL_S, "the removed key to end the console session")
