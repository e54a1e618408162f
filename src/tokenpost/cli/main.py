"""Entry point (placeholder until the commands land)."""

from __future__ import annotations

import sys


def main() -> None:
    sys.exit(0)
