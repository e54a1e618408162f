"""Documentation generated from code stays in step with it."""

from __future__ import annotations

from pathlib import Path

from tokenpost.tokens.machine import make_state_diagram

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_token_state_diagram_matches_the_transition_table() -> None:
    page = (DOCS / "token-states.md").read_text(encoding="utf-8")
    assert f"```mermaid\n{make_state_diagram()}\n```" in page
