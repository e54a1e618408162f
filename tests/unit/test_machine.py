"""The token state machine: every (state, event) pair of 4 x 9, properties, and the diagram."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenpost.errors import OperationError
from tokenpost.oauth.authcode import BrowserPending
from tokenpost.oauth.grant import TokenGrant
from tokenpost.oauth.rfc8628 import DevicePending
from tokenpost.secret import Secret
from tokenpost.text import Text
from tokenpost.tokens.machine import (
    EVENT_TYPES,
    SETTINGS_CHANGED,
    TRANSITIONS,
    AuthorizationEnded,
    AuthorizationStarted,
    BindingChanged,
    Deleted,
    Granted,
    GrantRevoked,
    IllegalTransition,
    PollScheduled,
    Refreshed,
    RefreshFailed,
    TokenEvent,
    apply,
    make_state_diagram,
)
from tokenpost.tokens.state import (
    Acquired,
    Invalid,
    NotAcquired,
    PendingFlow,
    TokenState,
    WaitingForAuthorization,
)
from tokenpost.tokens.state_id import StateId

DEVICE = DevicePending(
    device_code=Secret("s3cr3t-dc-1"),
    user_code="ABCD-EFGH",
    verification_uri="https://microsoft.com/devicelogin",
    expires_at=1900.0,
    interval=5.0,
    next_poll_at=1005.0,
)
DEVICE_LATER = replace(DEVICE, interval=10.0, next_poll_at=1015.0)
BROWSER = BrowserPending(
    authorization_url="https://accounts.example/authorize?x=1",
    redirect_uri="http://127.0.0.1:8400/callback",
    state=Secret("s3cr3t-st"),
    verifier=Secret("s3cr3t-ver"),
    expires_at=1600.0,
)

OLD = Acquired(
    access_token=Secret("s3cr3t-at-old"),
    expires_at=4000.0,
    obtained_at=400.0,
    refresh_token=Secret("s3cr3t-rt-old"),
    scope=("a", "b"),
    failures=2,
    retry_at=950.0,
    last_error=Text.verbatim("HTTP 503"),
)
INVALID = Invalid(Text.verbatim("invalid_grant: consent revoked"), since=500.0)
NOT_ACQUIRED = NotAcquired(note=Text.verbatim("denied"))
WAITING = WaitingForAuthorization(DEVICE, started_at=900.0, previous=OLD)

SAMPLE_STATES: dict[StateId, TokenState] = {
    StateId.NOT_ACQUIRED: NOT_ACQUIRED,
    StateId.WAITING_FOR_AUTHORIZATION: WAITING,
    StateId.ACQUIRED: OLD,
    StateId.INVALID: INVALID,
}

GRANT = TokenGrant(
    access_token=Secret("s3cr3t-at-new"),
    expires_at=4600.0,
    refresh_token=Secret("s3cr3t-rt-new"),
    scope=("a",),
)
BARE_GRANT = TokenGrant(access_token=Secret("s3cr3t-at-bare"), expires_at=4700.0)

SAMPLE_EVENTS: dict[type[TokenEvent], TokenEvent] = {
    AuthorizationStarted: AuthorizationStarted(BROWSER, now=1000.0),
    PollScheduled: PollScheduled(DEVICE_LATER),
    Granted: Granted(GRANT, now=1001.0),
    Refreshed: Refreshed(BARE_GRANT, now=1002.0),
    RefreshFailed: RefreshFailed(Text.verbatim("connection refused"), retry_at=1040.0, now=1010.0),
    GrantRevoked: GrantRevoked(Text.verbatim("invalid_grant"), now=1003.0),
    AuthorizationEnded: AuthorizationEnded(Text.verbatim("access_denied")),
    Deleted: Deleted(),
    BindingChanged: BindingChanged(),
}

NEW_ACQUIRED = Acquired(
    access_token=Secret("s3cr3t-at-new"),
    expires_at=4600.0,
    obtained_at=1001.0,
    refresh_token=Secret("s3cr3t-rt-new"),
    scope=("a",),
)
STARTED_OVER = WaitingForAuthorization(BROWSER, started_at=1000.0, previous=None)
REFRESHED_OLD = Acquired(
    access_token=Secret("s3cr3t-at-bare"),
    expires_at=4700.0,
    obtained_at=1002.0,
    refresh_token=Secret("s3cr3t-rt-old"),
    scope=("a", "b"),
)
FAILED_OLD = replace(
    OLD,
    failures=3,
    retry_at=1040.0,
    last_error=Text.verbatim("connection refused"),
    failing_since=1010.0,
)
REVOKED_OLD = Invalid(Text.verbatim("invalid_grant"), since=1003.0)

# Written out by hand from the brief, independently of machine.py: the expected state for every
# allowed pair. The first test asserts these keys are exactly the table's.
EXPECTED: dict[tuple[StateId, type[TokenEvent]], TokenState] = {
    (StateId.NOT_ACQUIRED, AuthorizationStarted): STARTED_OVER,
    (StateId.ACQUIRED, AuthorizationStarted): replace(STARTED_OVER, previous=OLD),
    (StateId.INVALID, AuthorizationStarted): replace(STARTED_OVER, previous=INVALID),
    (StateId.WAITING_FOR_AUTHORIZATION, AuthorizationStarted): replace(STARTED_OVER, previous=OLD),
    (StateId.WAITING_FOR_AUTHORIZATION, PollScheduled): replace(WAITING, flow=DEVICE_LATER),
    (StateId.WAITING_FOR_AUTHORIZATION, Granted): NEW_ACQUIRED,
    (StateId.NOT_ACQUIRED, Granted): NEW_ACQUIRED,
    (StateId.ACQUIRED, Granted): NEW_ACQUIRED,
    (StateId.INVALID, Granted): NEW_ACQUIRED,
    (StateId.ACQUIRED, Refreshed): REFRESHED_OLD,
    # OLD predates failing_since (a row written before it existed): the run starts now.
    (StateId.ACQUIRED, RefreshFailed): FAILED_OLD,
    (StateId.ACQUIRED, GrantRevoked): REVOKED_OLD,
    # A pending re-authorization keeps its previous token refreshed; the flow goes on.
    (StateId.WAITING_FOR_AUTHORIZATION, Refreshed): replace(WAITING, previous=REFRESHED_OLD),
    (StateId.WAITING_FOR_AUTHORIZATION, RefreshFailed): replace(WAITING, previous=FAILED_OLD),
    (StateId.WAITING_FOR_AUTHORIZATION, GrantRevoked): replace(WAITING, previous=REVOKED_OLD),
    (StateId.WAITING_FOR_AUTHORIZATION, AuthorizationEnded): OLD,
    **{(state, Deleted): NotAcquired() for state in StateId},
    **{(state, BindingChanged): NotAcquired(note=SETTINGS_CHANGED) for state in StateId},
}


def test_expected_table_covers_exactly_the_transitions() -> None:
    assert set(EXPECTED) == set(TRANSITIONS)
    assert set(EVENT_TYPES) == set(SAMPLE_EVENTS)
    assert len(EVENT_TYPES) == 9


@pytest.mark.parametrize(
    ("state_id", "event_type"),
    list(itertools.product(StateId, EVENT_TYPES)),
    ids=lambda value: getattr(value, "__name__", str(value)),
)
def test_every_state_event_pair(state_id: StateId, event_type: type[TokenEvent]) -> None:
    state, event = SAMPLE_STATES[state_id], SAMPLE_EVENTS[event_type]
    if (state_id, event_type) in TRANSITIONS:
        result = apply(state, event)
        assert result == EXPECTED[state_id, event_type]
        assert result.id in TRANSITIONS[state_id, event_type]
    else:
        with pytest.raises(IllegalTransition) as caught:
            apply(state, event)
        assert caught.value.state is state_id
        assert caught.value.event == event_type.__name__


def test_the_refused_pairs_are_the_ones_the_brief_forbids() -> None:
    refused = {pair for pair in itertools.product(StateId, EVENT_TYPES) if pair not in TRANSITIONS}
    assert refused == {
        (StateId.NOT_ACQUIRED, PollScheduled),
        (StateId.ACQUIRED, PollScheduled),
        (StateId.INVALID, PollScheduled),
        (StateId.NOT_ACQUIRED, Refreshed),
        (StateId.INVALID, Refreshed),
        (StateId.NOT_ACQUIRED, RefreshFailed),
        (StateId.INVALID, RefreshFailed),
        (StateId.NOT_ACQUIRED, GrantRevoked),
        (StateId.INVALID, GrantRevoked),
        (StateId.NOT_ACQUIRED, AuthorizationEnded),
        (StateId.ACQUIRED, AuthorizationEnded),
        (StateId.INVALID, AuthorizationEnded),
    }


@pytest.mark.parametrize(
    ("previous", "expected"),
    [
        (None, NotAcquired(note=Text.verbatim("expired_token"))),
        (OLD, OLD),
        (INVALID, INVALID),
    ],
)
def test_authorization_ended_falls_back_to_previous(
    previous: Acquired | Invalid | None, expected: TokenState
) -> None:
    waiting = WaitingForAuthorization(DEVICE, started_at=1.0, previous=previous)
    assert apply(waiting, AuthorizationEnded(Text.verbatim("expired_token"))) == expected


@pytest.mark.parametrize("previous", [None, INVALID], ids=["no previous", "invalid previous"])
@pytest.mark.parametrize("event_type", [Refreshed, RefreshFailed, GrantRevoked])
def test_a_flow_without_a_token_in_force_has_nothing_to_refresh(
    previous: Invalid | None, event_type: type[TokenEvent]
) -> None:
    waiting = WaitingForAuthorization(DEVICE, started_at=1.0, previous=previous)
    with pytest.raises(IllegalTransition):
        apply(waiting, SAMPLE_EVENTS[event_type])


def test_a_refreshed_previous_is_what_an_ended_flow_restores() -> None:
    waiting = apply(OLD, AuthorizationStarted(DEVICE, now=1000.0))
    refreshed = apply(waiting, Refreshed(GRANT, now=1100.0))
    assert isinstance(refreshed, WaitingForAuthorization)
    assert refreshed.flow == DEVICE
    restored = apply(refreshed, AuthorizationEnded(Text("the authorization was denied")))
    assert isinstance(restored, Acquired)
    assert restored.access_token == Secret("s3cr3t-at-new")
    assert restored.refresh_token == Secret("s3cr3t-rt-new")


def test_a_revoked_previous_stays_behind_the_flow_and_comes_back_when_it_ends() -> None:
    waiting = WaitingForAuthorization(DEVICE, started_at=1.0, previous=OLD)
    revoked = apply(waiting, GrantRevoked(Text.verbatim("invalid_grant"), now=5.0))
    assert isinstance(revoked, WaitingForAuthorization)
    with pytest.raises(IllegalTransition):
        apply(revoked, Refreshed(GRANT, now=6.0))
    granted = apply(revoked, Granted(GRANT, now=7.0))
    assert isinstance(granted, Acquired)
    ended = apply(revoked, AuthorizationEnded(Text.verbatim("expired_token")))
    assert ended == Invalid(Text.verbatim("invalid_grant"), since=5.0)


def test_the_owner_of_a_flow_is_recorded_and_kept_by_polls() -> None:
    started = apply(OLD, AuthorizationStarted(DEVICE, now=1.0, owner_host="h", owner_id="ab12"))
    polled = apply(started, PollScheduled(DEVICE_LATER))
    refreshed = apply(polled, Refreshed(GRANT, now=2.0))
    for state in (started, polled, refreshed):
        assert isinstance(state, WaitingForAuthorization)
        assert (state.owner_host, state.owner_id) == ("h", "ab12")


def test_refreshed_takes_a_rotated_refresh_token_and_resets_failures() -> None:
    result = apply(OLD, Refreshed(GRANT, now=2000.0))
    assert result == Acquired(
        access_token=Secret("s3cr3t-at-new"),
        expires_at=4600.0,
        obtained_at=2000.0,
        refresh_token=Secret("s3cr3t-rt-new"),
        scope=("a",),
    )


def test_failing_since_marks_the_first_failure_of_a_run_until_a_refresh_succeeds() -> None:
    fresh = replace(OLD, failures=0, retry_at=None, last_error=None)
    first = apply(fresh, RefreshFailed(Text.verbatim("HTTP 503"), retry_at=1010.0, now=1000.0))
    second = apply(first, RefreshFailed(Text.verbatim("timeout"), retry_at=1030.0, now=1020.0))
    assert (first.failing_since, second.failing_since) == (1000.0, 1000.0)
    assert isinstance(second, Acquired)
    assert (second.failures, second.last_error) == (2, Text.verbatim("timeout"))
    recovered = apply(second, Refreshed(GRANT, now=1100.0))
    assert isinstance(recovered, Acquired)
    assert recovered.failing_since is None
    again = apply(recovered, RefreshFailed(Text.verbatim("HTTP 502"), retry_at=1210.0, now=1200.0))
    assert isinstance(again, Acquired)
    assert again.failing_since == 1200.0  # a new run
    regranted = apply(again, Granted(GRANT, now=1300.0))
    assert isinstance(regranted, Acquired)
    assert regranted.failing_since is None


def test_illegal_transition_is_an_operation_error_without_secrets() -> None:
    with pytest.raises(IllegalTransition) as caught:
        apply(NOT_ACQUIRED, Refreshed(GRANT, now=1.0))
    assert isinstance(caught.value, OperationError)
    assert caught.value.exit_code == 1
    message = str(caught.value)
    assert "Refreshed" in message
    assert "not_acquired" in message
    assert "s3cr3t" not in message


def test_settings_changed_note_is_a_translatable_text() -> None:
    from tokenpost.i18n import translator

    assert Text("settings changed") == SETTINGS_CHANGED
    assert SETTINGS_CHANGED.translate(translator("de").gettext) != "settings changed"


# ---------------------------------------------------------------- properties over event sequences

secrets = st.text(max_size=8).map(lambda text: Secret("s3cr3t-" + text))
times = st.floats(min_value=0, max_value=1e10, allow_nan=False)
reasons = st.text(max_size=20).map(Text.verbatim)
scopes = st.lists(st.sampled_from(["a", "b", "c"]), max_size=3, unique=True).map(tuple)
grants = st.builds(
    TokenGrant,
    access_token=secrets,
    expires_at=times,
    refresh_token=st.none() | secrets,
    scope=scopes,
)
devices = st.builds(
    DevicePending,
    device_code=secrets,
    user_code=st.just("WXYZ"),
    verification_uri=st.just("https://example.test/device"),
    expires_at=times,
    interval=st.floats(min_value=1, max_value=60),
    next_poll_at=times,
)
browsers = st.builds(
    BrowserPending,
    authorization_url=st.just("https://example.test/authorize"),
    redirect_uri=st.just("http://127.0.0.1:1/cb"),
    state=secrets,
    verifier=secrets,
    expires_at=times,
)
flows: st.SearchStrategy[PendingFlow] = devices | browsers
events: st.SearchStrategy[TokenEvent] = st.one_of(
    st.builds(AuthorizationStarted, flow=flows, now=times),
    st.builds(PollScheduled, flow=flows),
    st.builds(Granted, grant=grants, now=times),
    st.builds(Refreshed, grant=grants, now=times),
    st.builds(RefreshFailed, reason=reasons, retry_at=times, now=times),
    st.builds(GrantRevoked, reason=reasons, now=times),
    st.builds(AuthorizationEnded, reason=reasons),
    st.just(Deleted()),
    st.just(BindingChanged()),
)


def _step(state: TokenState, event: TokenEvent) -> TokenState:
    try:
        return apply(state, event)
    except IllegalTransition:
        # Refused by the table, or a refresh event in a Waiting state with no token in force.
        assert (state.id, type(event)) not in TRANSITIONS or (
            isinstance(state, WaitingForAuthorization)
            and not isinstance(state.previous, Acquired)
            and isinstance(event, Refreshed | RefreshFailed | GrantRevoked)
        )
        return state


def _subject(state: TokenState) -> TokenState | None:
    """What a refresh event acts on: the state itself, or the previous token of a flow."""
    return state.previous if isinstance(state, WaitingForAuthorization) else state


@given(st.lists(events, max_size=30))
def test_random_sequences_keep_the_invariants(sequence: list[TokenEvent]) -> None:
    state: TokenState = NotAcquired()
    # The token a pending flow must fall back to, tracked independently of the machine.
    fallback: Acquired | Invalid | None = None
    for event in sequence:
        before = state
        state = _step(state, event)
        if state is before:
            continue
        assert state.id in TRANSITIONS[before.id, type(event)]
        refresh_event = isinstance(event, Refreshed | RefreshFailed | GrantRevoked)
        if not isinstance(before, WaitingForAuthorization) and isinstance(
            state, WaitingForAuthorization
        ):
            fallback = before if isinstance(before, Acquired | Invalid) else None
        if isinstance(before, WaitingForAuthorization) and refresh_event:
            # Refreshing in Waiting changes only the token in force; the flow goes on.
            assert isinstance(state, WaitingForAuthorization)
            assert (state.flow, state.started_at) == (before.flow, before.started_at)
            assert isinstance(before.previous, Acquired)
            assert isinstance(state.previous, Acquired | Invalid)
            fallback = state.previous
        if isinstance(state, WaitingForAuthorization):
            assert state.previous == fallback
        if isinstance(state, Acquired):
            assert state.access_token
        subject_before, subject = _subject(before), _subject(state)
        match event:
            case AuthorizationEnded(reason=reason):
                assert state == (fallback or NotAcquired(note=reason))
            case Granted():
                assert isinstance(state, Acquired)
                assert (state.failures, state.retry_at, state.last_error) == (0, None, None)
                assert state.failing_since is None
            case Refreshed():
                assert isinstance(subject_before, Acquired)
                assert isinstance(subject, Acquired)
                assert (subject.failures, subject.retry_at, subject.last_error) == (0, None, None)
                assert subject.failing_since is None
                if subject_before.refresh_token is not None:
                    assert subject.refresh_token is not None
            case RefreshFailed(retry_at=retry_at, now=now):
                assert isinstance(subject_before, Acquired)
                assert isinstance(subject, Acquired)
                assert subject.failures == subject_before.failures + 1
                assert subject.retry_at == retry_at
                assert subject.failing_since == (
                    now if subject_before.failing_since is None else subject_before.failing_since
                )
                assert subject.access_token == subject_before.access_token
            case GrantRevoked(reason=reason, now=now):
                assert isinstance(subject_before, Acquired)
                assert subject == Invalid(reason, since=now)


@given(events)
def test_delete_and_binding_change_always_reset(event: TokenEvent) -> None:
    for state in SAMPLE_STATES.values():
        after = _step(state, event)
        assert apply(after, Deleted()) == NotAcquired()
        assert apply(after, BindingChanged()) == NotAcquired(note=SETTINGS_CHANGED)


@given(events, st.sampled_from(list(SAMPLE_STATES.values())))
def test_repr_of_any_result_holds_no_secret(event: TokenEvent, state: TokenState) -> None:
    after = _step(state, event)
    assert "s3cr3t" not in repr(after)
    assert "s3cr3t" not in str(after)


# ---------------------------------------------------------------- the generated diagram


def test_diagram_mentions_every_allowed_pair() -> None:
    diagram = make_state_diagram()
    assert diagram.startswith("stateDiagram-v2\n")
    edges = [line.strip() for line in diagram.splitlines() if " : " in line]
    expected = {
        f"{source.value} --> {target.value} : {event.__name__}"
        for (source, event), targets in TRANSITIONS.items()
        for target in targets
    }
    assert set(edges) == expected
    for state in StateId:
        assert f" as {state.value}" in diagram
