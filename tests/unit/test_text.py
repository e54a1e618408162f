"""Text: msgid and parameters, English by str(), translated on demand, stored as JSON."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenpost.errors import (
    FieldProblem,
    MailAuthError,
    MailPolicyError,
    MailRejectedError,
    NotFoundError,
    OAuthError,
    ValidationError,
)
from tokenpost.secret import Secret
from tokenpost.text import Text, as_text, translate

GERMAN = {
    "no POP setting {name!r}": "keine POP-Einstellung {name!r}",
    "refresh failed: {reason}": "Erneuern fehlgeschlagen: {reason}",
    "the provider is unreachable": "der Anbieter ist nicht erreichbar",
    "must be 1-65535": "muss 1-65535 sein",
    "{field}: {rule}": "{field}: {rule}",
    "broken {placeholder}": "kaputt {other}",
}


def german(message: str) -> str:
    return GERMAN.get(message, message)


def test_english_is_the_msgid_filled_in() -> None:
    assert str(Text("no POP setting {name!r}", name="fax")) == "no POP setting 'fax'"


def test_translation_fills_the_translated_template() -> None:
    assert Text("no POP setting {name!r}", name="fax").translate(german) == (
        "keine POP-Einstellung 'fax'"
    )


def test_nested_texts_and_errors_are_translated_too() -> None:
    inner = NotFoundError("no POP setting {name!r}", name="fax")
    outer = Text("refresh failed: {reason}", reason=inner)
    assert str(outer) == "refresh failed: no POP setting 'fax'"
    assert outer.translate(german) == "Erneuern fehlgeschlagen: keine POP-Einstellung 'fax'"


def test_tuples_are_joined() -> None:
    text = Text("refresh failed: {reason}", reason=(Text("the provider is unreachable"), "x"))
    assert text.translate(german) == "Erneuern fehlgeschlagen: der Anbieter ist nicht erreichbar; x"


def test_a_translation_with_wrong_placeholders_falls_back_to_english() -> None:
    assert Text("broken {placeholder}", placeholder="p").translate(german) == "broken p"


def test_a_msgid_whose_placeholders_do_not_fit_is_shown_as_it_is() -> None:
    assert str(Text("missing {x}")) == "missing {x}"


def test_verbatim_text_is_never_looked_up() -> None:
    text = Text.verbatim("no POP setting {name!r}")
    assert text.translate(german) == "no POP setting {name!r}"


def test_other_values_become_strings_and_secrets_stay_hidden() -> None:
    text = Text("refresh failed: {reason}", reason=Secret("s3cret"))
    assert "s3cret" not in str(text)
    assert "s3cret" not in repr(text)
    assert "s3cret" not in str(text.to_json())


def test_equality_hash_pickle_and_immutability() -> None:
    one = Text("no POP setting {name!r}", name="fax")
    assert one == Text("no POP setting {name!r}", name="fax")
    assert hash(one) == hash(Text("no POP setting {name!r}", name="fax"))
    assert one != Text("no POP setting {name!r}", name="scan")
    assert pickle.loads(pickle.dumps(one)) == one  # noqa: S301 - our own bytes
    with pytest.raises(AttributeError):
        one.msgid = "x"


_params = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.tuples(inner, inner) | st.builds(lambda v: Text("{v}", v=v), inner),
    max_leaves=8,
)


@given(st.text(max_size=30), st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True), _params))
def test_json_round_trip(msgid: str, params: dict[str, object]) -> None:
    text = Text(msgid, **params)
    assert Text.from_json(text.to_json()) == text
    str(text)  # never raises


def test_from_json_refuses_what_is_not_a_text() -> None:
    with pytest.raises(TypeError):
        Text.from_json({"@text": 3})
    with pytest.raises(TypeError):
        Text.from_json({"@text": "x", "params": {"a": {"b": 1}}})


def test_as_text_and_translate_accept_any_message_like_value() -> None:
    error = NotFoundError("no POP setting {name!r}", name="fax")
    assert as_text(error) is error.text
    assert as_text("plain") == Text.verbatim("plain")
    assert translate(error, german) == "keine POP-Einstellung 'fax'"
    assert translate(FieldProblem("port", "must be 1-65535"), german) == "port: muss 1-65535 sein"


def test_an_error_takes_a_text_or_a_msgid_with_parameters_not_both() -> None:
    with pytest.raises(TypeError):
        NotFoundError(Text("x"), name="fax")


def test_validation_errors_translate_each_rule() -> None:
    error = ValidationError([FieldProblem("port", "must be 1-65535")], subject="smtp")
    assert str(error) == "smtp: port: must be 1-65535"
    assert error.translate(german) == "smtp: port: muss 1-65535 sein"


@pytest.mark.parametrize(
    ("error", "english"),
    [
        (MailAuthError("refused: {reply}", reply="535 5.7.3"), "refused: 535 5.7.3"),
        (
            MailPolicyError("refused: {reply}; {fix}", fix=Text("enable it"), reply="535"),
            "refused: 535; enable it",
        ),
        (MailRejectedError("refused: {reply}", reply="552 too big"), "refused: 552 too big"),
        (
            OAuthError("{error}: {description}", error="invalid_grant", description="gone"),
            "invalid_grant: gone",
        ),
    ],
)
def test_fields_of_an_error_class_also_fill_its_message(error: Exception, english: str) -> None:
    assert str(error) == english
