"""Every word a person reads has a German translation: a test that fails on a missing one.

What a person reads comes from six places, and each is checked:

1. Messages in the code: `_()`, `gettext()`, `N_()`, `Text()`, every TokenpostError's message and
   tokenpost's own log lines above DEBUG. babel extracts their literal msgids; each must have a
   German translation with the same placeholders.
2. Messages that would escape extraction: an f-string, a concatenation, ``.format()``, ``%`` or
   ``str()`` as the message of those calls, and English words printed by ``click.echo`` or asked
   by a prompt without ``_()``. An AST check refuses them.
3. Help: every command's docstring and every option's ``help=``, found by walking the command
   tree; each must be translated, and each command must be of a class that translates it.
4. click's own messages ("Missing option", "No such command", "Usage:"): every msgid in click's
   source must be in tokenpost's catalog.
5. The web page's templates: every ``{% trans %}`` and ``_()`` (babel's Jinja2 extractor) must
   be translated, and no English words may stand in a template outside them.
6. The catalog itself (test_i18n.py): complete, compiled, placeholders kept.

The sandbox (test peers) is not the product and is not checked.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir, extract_from_file
from babel.messages.pofile import read_po

import tokenpost
from tokenpost.errors import TokenpostError
from tokenpost.i18n import LOCALE_DIR

PACKAGE_DIR = Path(tokenpost.__file__).parent
GERMAN_PO = LOCALE_DIR / "de" / "LC_MESSAGES" / "tokenpost.po"
LOG_METHODS = frozenset({"info", "warning", "error", "exception", "critical"})
ECHO_CALLS = frozenset({"echo", "secho", "confirm", "prompt", "fail"})


def product_modules() -> Iterator[Path]:
    yield from sorted(PACKAGE_DIR.rglob("*.py"))


def error_classes() -> frozenset[str]:
    """The names of TokenpostError and every subclass anywhere in the product."""
    for info in pkgutil.walk_packages([str(PACKAGE_DIR)], prefix="tokenpost."):
        skipped = ("tokenpost.adapters.migrations", "tokenpost.__main__")
        if not info.name.startswith(skipped):
            importlib.import_module(info.name)
    names: set[str] = set()
    todo: list[type] = [TokenpostError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return frozenset(names)


def keywords() -> dict[str, Any]:
    found: dict[str, Any] = {"_": None, "gettext": None, "N_": None, "ngettext": (1, 2)}
    found["Text"] = None
    found.update(dict.fromkeys(error_classes()))
    found.update(dict.fromkeys(LOG_METHODS))
    return found


def german_catalog() -> Catalog:
    with GERMAN_PO.open("rb") as po:
        return read_po(po)


def translated(catalog: Catalog, msgid: str) -> bool:
    entry = catalog.get(msgid)
    if entry is None or entry.fuzzy:
        return False
    parts = entry.string if isinstance(entry.string, tuple) else (entry.string,)
    return all(parts)


def own_msgids(tree: ast.AST, path: str, errors: frozenset[str]) -> dict[str, str]:
    """Messages babel's keywords miss: an error class passing its own msgid up
    (``super().__init__("...", ...)``) and Text making one of itself (``cls("{text}", ...)``)."""
    found: dict[str, str] = {}
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        bases = {b.id for b in cls.bases if isinstance(b, ast.Name)}
        if cls.name != "Text" and not bases & errors:
            continue
        for call in (n for n in ast.walk(cls) if isinstance(n, ast.Call) and n.args):
            first = call.args[0]
            is_own = _call_name(call) in {"__init__", "cls"}
            if is_own and isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.setdefault(first.value, f"{path}:{call.lineno}")
    return found


def code_msgids() -> dict[str, str]:
    """msgid → where it is (file:line), from every product module."""
    found: dict[str, str] = {}
    errors = error_classes()
    spec = keywords()
    for path in product_modules():
        for line, message, _comments, _context in extract_from_file(
            "python", str(path), keywords=spec
        ):
            msgid = message[0] if isinstance(message, tuple) else message
            if isinstance(msgid, str) and msgid:
                found.setdefault(msgid, f"{path.relative_to(PACKAGE_DIR)}:{line}")
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for msgid, where in own_msgids(tree, str(path.relative_to(PACKAGE_DIR)), errors).items():
            found.setdefault(msgid, where)
    return found


def test_extraction_sees_errors_texts_and_logs() -> None:
    # Guards the test below against passing vacuously.
    messages = code_msgids()
    assert "tokenpost: error: {message}" in messages  # _() in cli/main.py
    assert "Please answer y or n." in messages  # _() in cli/prompts.py
    assert "give a Text or a msgid with parameters, not both" not in messages  # TypeError
    spec = keywords()
    assert {"NotFoundError", "OAuthError", "Text", "warning"} <= set(spec)


def test_every_message_in_the_code_has_a_german_translation() -> None:
    catalog = german_catalog()
    missing = {m: where for m, where in code_msgids().items() if not translated(catalog, m)}
    assert not missing, f"add German translations to {GERMAN_PO}: {missing}"


def help_texts() -> set[str]:
    """Every command's docstring and option help, as the help pages show them."""
    texts: set[str] = set()
    for _path, command in commands():
        texts.update(t for t in [command.help, command.short_help] if t)
        texts.update(p.help for p in command.params if isinstance(p, click.Option) and p.help)
    return texts


def test_every_catalog_entry_is_used() -> None:
    # A message reworded in the code leaves its old entry behind: the catalog keeps only what is
    # shown (the code's messages, help texts, click's own messages).
    used = set(code_msgids()) | help_texts() | click_msgids() | set(template_msgids())
    unused = sorted(
        key
        for key in (m.id[0] if isinstance(m.id, tuple) else m.id for m in german_catalog())
        if key and key not in used
    )
    assert not unused, f"remove from {GERMAN_PO}: {unused}"


# --- messages that would escape extraction ------------------------------------------------------

_WORDS = re.compile(r"[A-Za-z]{2,}[ ,] ?[A-Za-z]{2,}")


def _call_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _receiver(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return func.value.id
    return ""


def _built_message(node: ast.expr) -> bool:
    """True for a message built at run time, which babel cannot extract."""
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mod):
        return True
    return isinstance(node, ast.Call) and _call_name(node) in {"format", "str", "join"}


def _english_literal(node: ast.expr) -> bool:
    """A literal (or the literal parts of an f-string) with English words in it."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return bool(_WORDS.search(node.value))
    if isinstance(node, ast.JoinedStr):
        # A placeholder counts as a word: f"provider {name} saved" is English.
        parts = [str(v.value) if isinstance(v, ast.Constant) else "Xx" for v in node.values]
        literal = "".join(str(v.value) for v in node.values if isinstance(v, ast.Constant))
        return bool(re.search("[A-Za-z]{2,}", literal) and _WORDS.search("".join(parts)))
    return False


def violations(tree: ast.AST, errors: frozenset[str]) -> Iterator[tuple[int, str]]:
    message_calls = errors | {"Text", "_", "gettext", "N_"}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        name, first = _call_name(node), node.args[0]
        is_log = name in LOG_METHODS and _receiver(node) in {"log", "logger", "logging"}
        if (name in message_calls or is_log) and _built_message(first):
            yield node.lineno, f"{name}() gets a message built at run time: use a literal msgid"
        if name in errors:
            for keyword in node.keywords:
                if keyword.arg == "fix" and isinstance(keyword.value, ast.Constant | ast.JoinedStr):
                    yield node.lineno, "fix= must be a Text"
        if name in ECHO_CALLS and _receiver(node) in {"click", ""} and _english_literal(first):
            yield node.lineno, f"{name}() shows English words without _()"


def test_no_message_escapes_extraction() -> None:
    errors = error_classes()
    found = []
    for path in product_modules():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        found += [
            f"{path.relative_to(PACKAGE_DIR)}:{line}: {why}"
            for line, why in violations(tree, errors)
        ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    ("source", "flagged"),
    [
        ('raise NotFoundError(f"no setting {name}")', True),
        ('raise NotFoundError("no setting " + name)', True),
        ('raise NotFoundError("no setting {n}".format(n=name))', True),
        ("raise NotFoundError(str(error))", True),
        ('raise NotFoundError("no setting {name!r}", name=name)', False),
        ('log.warning(f"refresh of {x} failed")', True),
        ('log.warning("refresh of %s failed", x)', False),
        ('click.echo(f"provider {name} saved")', True),
        ('click.echo(_("Provider {name} saved.").format(name=name))', False),
        ('click.echo(f"{key}: {value}")', False),
        ('click.echo(f"pop:{p.name}\\t{p.server}")', False),
        ('confirm("Remove it?")', True),
        ('confirm(_("Remove it?"))', False),
        ('click.prompt(f"{question} {suffix}")', False),
        ('raise MailPolicyError(Text("m"), fix="do this")', True),
        ('Text(f"a {b}")', True),
    ],
)
def test_the_escape_check_itself(source: str, flagged: bool) -> None:
    errors = frozenset({"NotFoundError", "MailPolicyError"})
    assert bool(list(violations(ast.parse(source), errors))) is flagged


# --- help texts ---------------------------------------------------------------------------------


def commands() -> Iterator[tuple[str, click.Command]]:
    from tokenpost.cli.main import cli

    todo: list[tuple[str, click.Command]] = [("tokenpost", cli)]
    while todo:
        path, command = todo.pop()
        yield path, command
        if isinstance(command, click.Group):
            ctx = click.Context(command)
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                todo.append((f"{path} {name}", sub))


def test_every_command_translates_its_help() -> None:
    from tokenpost.cli.translated import TranslatedCommand, TranslatedGroup

    for path, command in commands():
        assert isinstance(command, TranslatedCommand | TranslatedGroup), path


def test_every_help_text_has_a_german_translation() -> None:
    catalog = german_catalog()
    missing = []
    for path, command in commands():
        texts = [command.help] + [p.help for p in command.params if isinstance(p, click.Option)]
        missing += [f"{path}: {t!r}" for t in texts if t and not translated(catalog, t)]
    assert not missing, "\n".join(missing)


# --- click's own messages -----------------------------------------------------------------------


def click_msgids() -> set[str]:
    """click's msgids; a plural message by its singular (the catalog's key for it)."""
    found: set[str] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        Path(click.__file__).parent,
        method_map=[("**.py", "python")],
        keywords={"_": None, "ngettext": (1, 2)},
    ):
        msgid = message[0] if isinstance(message, tuple) else message
        if isinstance(msgid, str) and msgid:
            found.add(msgid)
    return found


def test_click_has_messages_to_translate() -> None:
    assert {"Missing option", "No such command {name!r}.", "Usage:"} <= click_msgids()


def test_every_click_message_has_a_german_translation() -> None:
    catalog = german_catalog()
    missing = sorted(m for m in click_msgids() if not translated(catalog, m))
    assert not missing, f"add German translations of click's messages to {GERMAN_PO}: {missing}"


def percent_placeholders(text: str) -> list[str]:
    return re.findall(r"%[sdgrf%]", text)


def test_translations_keep_percent_placeholders() -> None:
    for message in german_catalog():
        if isinstance(message.id, str) and message.id and isinstance(message.string, str):
            assert percent_placeholders(message.string) == percent_placeholders(message.id), (
                message.id
            )


def test_translations_keep_brace_placeholders() -> None:
    def fields(text: str) -> set[str]:
        return {f for _l, f, _s, _c in string.Formatter().parse(text) if f is not None}

    for message in german_catalog():
        if isinstance(message.id, str) and message.id and isinstance(message.string, str):
            assert fields(message.string) == fields(message.id), message.id


# --- the web page's templates ---------------------------------------------------------------------

TEMPLATES = PACKAGE_DIR / "web" / "templates"
# Shown as they are in every language: the product's name and each language's own name.
UNTRANSLATED_WORDS = frozenset({"tokenpost", "English", "Deutsch"})


def template_msgids(directory: Path = TEMPLATES) -> dict[str, str]:
    """msgid → where it is (template:line), by babel's Jinja2 extractor."""
    found: dict[str, str] = {}
    for filename, line, message, _comments, _context in extract_from_dir(
        directory,
        method_map=[("**.html", "jinja2.ext:babel_extract")],
        options_map={"**.html": {"extensions": "jinja2.ext.i18n"}},
        keywords={"_": None, "gettext": None, "ngettext": (1, 2)},
    ):
        msgid = message[0] if isinstance(message, tuple) else message
        if isinstance(msgid, str) and msgid:
            found.setdefault(msgid, f"{filename}:{line}")
    return found


def missing_in_templates(directory: Path = TEMPLATES) -> dict[str, str]:
    catalog = german_catalog()
    return {m: w for m, w in template_msgids(directory).items() if not translated(catalog, m)}


def test_extraction_sees_the_templates() -> None:
    messages = template_msgids()
    assert {"Log in", "Connection test", "{minutes} min left"} <= set(messages)


def test_every_message_in_the_templates_has_a_german_translation() -> None:
    missing = missing_in_templates()
    assert not missing, f"add German translations to {GERMAN_PO}: {missing}"


def test_the_template_check_fails_on_a_missing_translation(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text(
        "<p>{{ _('Log in') }}</p><p>{% trans %}A sentence nobody translated{% endtrans %}</p>"
    )
    assert set(missing_in_templates(tmp_path)) == {"A sentence nobody translated"}


def english_outside_messages(source: str) -> list[str]:
    """Words in a template's literal text: outside trans blocks, expressions, statements,
    comments and HTML tags."""
    text = re.sub(r"{%-?\s*trans\b.*?endtrans\s*-?%}", "", source, flags=re.S)
    text = re.sub(r"{#.*?#}|{{.*?}}|{%.*?%}", "", text, flags=re.S)
    text = re.sub(r'[\w-]+="[^"]*"', " ", text)  # attributes written by a macro
    text = re.sub(r"<[^>]*>", " ", text)
    return [w for w in re.findall(r"[A-Za-z]{2,}", text) if w not in UNTRANSLATED_WORDS]


def test_no_english_outside_messages_in_the_templates() -> None:
    found = {
        str(path.relative_to(TEMPLATES)): words
        for path in sorted(TEMPLATES.rglob("*.html"))
        if (words := english_outside_messages(path.read_text(encoding="utf-8")))
    }
    assert not found, f"put these words in {{% trans %}} or _(): {found}"


def test_the_template_english_check_itself() -> None:
    assert english_outside_messages("<p>Hello there</p>") == ["Hello", "there"]
    assert english_outside_messages('<p class="x">{{ _("Hello") }} {{ name }}</p>') == []
    assert english_outside_messages("<p>{% trans %}Hello{% endtrans %}</p>") == []
