"""schemathesis against the OpenAPI document of a live server, as an administrator: for every
operation, data the schema allows (and data it refuses) never gets a 5xx, and every answer fits
the document: its status, its content type, its headers and its body.

The server is the real page under uvicorn with a real SQLite store, its settings on the sandbox
authorization server (loopback). Left out: the connection test, which connects to whatever mail
server the generated settings name (it has its own tests). Every provider address off loopback
goes to a proxy on a closed loopback port, so nothing generated reaches another machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from api_support import Api, served_api
from hypothesis import HealthCheck, Phase
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from test_api import POP, SMTP, provider

from sandbox_support import Sandbox

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES = {schemathesis.GenerationMode.POSITIVE: 30, schemathesis.GenerationMode.NEGATIVE: 10}
LEFT_OUT = ("/api/v1/checks/",)
NOWHERE = {"HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}


@pytest.fixture
async def api(tmp_path: Path, sandbox: Sandbox) -> AsyncIterator[Api]:
    async with served_api(tmp_path / "home", NOWHERE) as running:
        admin = running.admin()
        for path, body in (
            ("/api/v1/settings/providers/sbx", provider(sandbox, "device")),
            ("/api/v1/settings/smtp", SMTP),
            ("/api/v1/settings/pop/fax", POP),
        ):
            assert (await admin.put(path, json=body)).status_code == 200
        yield running


def fuzz(url: str, token: str) -> list[str]:
    """Run every operation's examples; returns what failed (each operation's first failure)."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    headers = {"Authorization": f"Bearer {token}"}
    failed: list[str] = []
    statuses: dict[int, int] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:
        if operation.path.startswith(LEFT_OUT):
            continue
        for mode, examples in EXAMPLES.items():

            @hypothesis.settings(
                max_examples=examples,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                if isinstance(case.body, dict) and case.body.get("proxy"):
                    case.body["proxy"] = None  # a provider's own proxy could be anywhere
                response = case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

            try:
                run()
            except Exception as error:
                failed.append(
                    f"{operation.method.upper()} {operation.path} ({mode.value}): {error}"
                )
    # The run did run: many answers, successes and refusals both.
    assert sum(statuses.values()) > 300, statuses
    assert {200, 404, 422} <= set(statuses), statuses
    return failed


async def test_no_5xx_and_every_answer_fits_the_document(api: Api) -> None:
    failed = await asyncio.to_thread(fuzz, api.url, api.admin_token)
    assert not failed, "\n\n".join(failed)
