"""Yes/no questions in the process's language.

click's own `confirm` offers ``[y/N]`` and understands only y/yes/n/no, whatever the language. A
German administrator is offered ``[j/N]`` and may answer j, ja, n or nein (y, yes and no are
understood too: they are what English-speaking habits type). An empty answer is the default; any
other answer asks again. End of input or Ctrl-C is `click.Abort`.
"""

from __future__ import annotations

from typing import Final

import click

# Per language: the answers meaning yes, and those meaning no.
_ANSWERS: Final = {
    "en": (frozenset({"y", "yes"}), frozenset({"n", "no"})),
    "de": (frozenset({"j", "ja", "y", "yes"}), frozenset({"n", "nein", "no"})),
}


def confirm(question: str, *, default: bool = False, abort: bool = False) -> bool:
    """Ask `question` (already translated); True for yes.

    Raises:
        click.Abort: the answer was no and `abort` is set, or input ended.
    """
    from tokenpost.i18n import active, active_language

    _ = active().gettext
    yes, no = _ANSWERS[active_language()]
    suffix = _("[Y/n]") if default else _("[y/N]")

    def parse(answer: str) -> bool:
        word = answer.strip().lower()
        if not word:
            return default
        if word in yes:
            return True
        if word in no:
            return False
        raise click.BadParameter(_("Please answer y or n."))

    answer = click.prompt(f"{question} {suffix}", default="", show_default=False, value_proc=parse)
    if abort and not answer:
        raise click.Abort
    return bool(answer)
