"""The sandbox's control API: how tests play the user and the operator of the provider.

JSON in and out, no authentication, loopback peers only, under `/control/`:

    POST reset                       clear every grant, code, fault, counter and knob
    POST approve {user_code, user?}  the user approves a device code (user: browser_user knob)
    POST deny    {user_code}         the user denies it
    POST expire  {user_code}         the device code expires now
    GET  config                      the knobs
    POST config  {knob: value, ...}  change knobs (see `models.Knobs`); answers the new knobs
    POST fault   {endpoint, kind, count?}  the next `count` (default 1) requests get `kind`
    POST revoke_user {user}          every grant of that user is revoked
    GET  stats                       request counts, grants by type, replays, revocations

Bad input answers 400 with `{"error": "invalid_request", "problems": [{field, rule}]}`; an
unknown user code answers 404.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Mapping

from flask import Blueprint, Response, jsonify, request

from tokenpost.errors import FieldProblem, NotFoundError, ValidationError
from tokenpost_sandbox.models import (
    FAULTABLE_ENDPOINTS,
    DeviceDecision,
    Endpoint,
    Fault,
    FaultKind,
    User,
)
from tokenpost_sandbox.store import SandboxStore

_OK = {"ok": True}


def control_blueprint(store: SandboxStore) -> Blueprint:
    """The `/control/` routes acting on `store`."""
    bp = Blueprint("control", __name__, url_prefix="/control")

    @bp.before_request
    def loopback_only() -> Response | None:
        peer = request.remote_addr or ""
        if not _is_loopback(peer):
            return _error("forbidden", "the control API answers loopback peers only", 403)
        return None

    @bp.errorhandler(ValidationError)
    def invalid(error: ValidationError) -> Response:
        problems = [{"field": p.field, "rule": p.rule} for p in error.problems]
        response = jsonify({"error": "invalid_request", "problems": problems})
        response.status_code = 400
        return response

    @bp.errorhandler(NotFoundError)
    def not_found(error: NotFoundError) -> Response:
        return _error("not_found", str(error), 404)

    @bp.post("/reset")
    def reset() -> Response:
        store.reset()
        return jsonify(_OK)

    @bp.post("/approve")
    def approve() -> Response:
        body = _body()
        user = _optional_text(body, "user") or store.knobs.browser_user
        store.decide_device(_text(body, "user_code"), DeviceDecision.APPROVED, User(user))
        return jsonify(_OK)

    @bp.post("/deny")
    def deny() -> Response:
        store.decide_device(_text(_body(), "user_code"), DeviceDecision.DENIED, None)
        return jsonify(_OK)

    @bp.post("/expire")
    def expire() -> Response:
        store.expire_device(_text(_body(), "user_code"), time.time())
        return jsonify(_OK)

    @bp.get("/config")
    def get_config() -> Response:
        return jsonify(store.knobs.to_json())

    @bp.post("/config")
    def set_config() -> Response:
        return jsonify(store.update_knobs(_body()).to_json())

    @bp.post("/fault")
    def fault() -> Response:
        endpoint, armed = _parse_fault(_body())
        store.set_fault(endpoint, armed)
        return jsonify(_OK)

    @bp.post("/revoke_user")
    def revoke_user() -> Response:
        return jsonify({"revoked": store.revoke_user(_text(_body(), "user"))})

    @bp.get("/stats")
    def stats() -> Response:
        return jsonify(store.stats(time.time()).to_json())

    return bp


def _parse_fault(body: Mapping[str, object]) -> tuple[Endpoint, Fault]:
    endpoint = next((e for e in FAULTABLE_ENDPOINTS if e.value == body.get("endpoint")), None)
    kind = next((k for k in FaultKind if k.value == body.get("kind")), None)
    count = body.get("count", 1)
    valid_count = isinstance(count, int) and not isinstance(count, bool) and count >= 0
    problems: list[FieldProblem] = []
    if endpoint is None:
        names = sorted(e.value for e in FAULTABLE_ENDPOINTS)
        problems.append(FieldProblem("endpoint", "must be one of: " + ", ".join(names)))
    if kind is None:
        problems.append(FieldProblem("kind", "must be one of: " + ", ".join(FaultKind)))
    if not valid_count:
        problems.append(FieldProblem("count", "must be an integer >= 0"))
    if endpoint is None or kind is None or not isinstance(count, int) or problems:
        raise ValidationError(problems, subject="fault")
    return endpoint, Fault(kind, count)


def _body() -> Mapping[str, object]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValidationError([FieldProblem("body", "must be a JSON object")])
    return body


def _text(body: Mapping[str, object], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ValidationError([FieldProblem(name, "is required and must be a non-empty string")])
    return value


def _optional_text(body: Mapping[str, object], name: str) -> str | None:
    return None if body.get(name) is None else _text(body, name)


def _error(error: str, description: str, status: int) -> Response:
    response = jsonify({"error": error, "error_description": description})
    response.status_code = status
    return response


def _is_loopback(peer: str) -> bool:
    try:
        return ipaddress.ip_address(peer).is_loopback
    except ValueError:
        return False
