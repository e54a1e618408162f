"""Mail: send a test message with an attachment through the SMTP setting (`tokenpost send`), and
receive now on a POP setting (`tokenpost receive NAME`), with what each POP setting has stored.

Sending and receiving are an administrator's; a viewer sees the page without its forms (what each
POP setting has stored), as it sees every page. The attachment is uploaded with the form and held
in memory: at most `MAX_ATTACHMENT_OCTETS`; `UploadLimit` refuses a larger request before it is
read.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.datastructures import Headers, UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tokenpost.errors import TokenpostError
from tokenpost.i18n import show, translator
from tokenpost.mime import OCTET_STREAM, Attachment, Draft
from tokenpost.settings.model import PopSetting
from tokenpost.text import N_
from tokenpost.web import forms, language
from tokenpost.web.security import NO_PAGE, Refused
from tokenpost.web.visit import Visit, VisitDep

log = logging.getLogger("tokenpost.web")
router = APIRouter()

SEND_PATH: Final = "/mail/send"
MAX_ATTACHMENT_OCTETS: Final = 10 * 1024 * 1024
# The whole request: the attachment, the text fields and the multipart framing.
MAX_REQUEST_OCTETS: Final = MAX_ATTACHMENT_OCTETS + 1024 * 1024
LISTED: Final = 20
FIELDS: Final = ("to", "subject", "body", "attachment")
_SEPARATORS: Final = re.compile(r"[\s,;]+")
TOO_LARGE: Final = N_("Refused: the attachment is larger than {limit} MiB.")


def _admin_only(visit: Visit) -> None:
    if not visit.is_admin:
        raise Refused(403, N_("Refused: only an administrator may change this."))


async def _page(
    visit: Visit,
    *,
    values: dict[str, str] | None = None,
    problems: forms.Problems | None = None,
    status: int = 200,
) -> Response:
    app = visit.web.app
    settings = sorted(await app.store.list_pop(), key=lambda p: p.name)
    received = {p.name: await app.delivered(p.deliver_to, LISTED) for p in settings}
    return visit.page(
        "pages/mail.html",
        status=status,
        values=values or {},
        problems=problems or forms.Problems(),
        pop_settings=settings,
        received=received,
        limit_mib=MAX_ATTACHMENT_OCTETS // (1024 * 1024),
    )


@router.get("/mail")
async def mail_page(visit: VisitDep) -> Response:
    return await _page(visit)


@router.post(SEND_PATH)
async def send_message(request: Request, visit: VisitDep) -> Response:
    _admin_only(visit)
    form = await request.form()
    typed = forms.values(form, {"csrf"})
    upload = form.get("attachment")
    attachments: tuple[Attachment, ...] = ()
    if isinstance(upload, UploadFile) and upload.filename:
        data = await upload.read(MAX_ATTACHMENT_OCTETS + 1)
        if len(data) > MAX_ATTACHMENT_OCTETS:
            problems = forms.Problems(
                fields={"attachment": visit.gettext(TOO_LARGE).format(limit=_limit_mib())}
            )
            return await _page(visit, values=typed, problems=problems, status=413)
        name = re.split(r"[/\\]", upload.filename)[-1]
        content_type = upload.content_type or OCTET_STREAM
        attachments = (Attachment.of_bytes(name, data, content_type),)
    recipients = tuple(a for a in _SEPARATORS.split(forms.text(form, "to") or "") if a)
    draft = Draft(
        to=recipients,
        subject=forms.text(form, "subject") or "",
        body=_field(form, "body"),
        attachments=attachments,
    )
    try:
        message_id = await visit.web.app.sender().send(
            draft, allow_plaintext=visit.web.config.allow_plaintext
        )
    except TokenpostError as error:
        problems = forms.Problems.of(error, visit.lang, FIELDS)
        return await _page(visit, values=typed, problems=problems, status=400)
    log.info("web: message %s sent with %d attachments", message_id, len(attachments))
    notice = visit.gettext("Message sent: {message_id}").format(message_id=message_id)
    visit.notice(notice)
    return visit.redirect("/mail")


@router.post("/mail/receive/{name}")
async def receive_now(name: str, visit: VisitDep) -> Response:
    _admin_only(visit)
    app = visit.web.app
    setting: PopSetting | None = await app.store.get_pop(name)
    if setting is None:
        raise Refused(404, NO_PAGE)
    report = await app.receiver().receive(name, allow_plaintext=visit.web.config.allow_plaintext)
    for outcome in report.settings:
        if outcome.error is not None:
            line = visit.gettext("{setting}: receiving failed: {reason}").format(
                setting=outcome.setting_id, reason=show(outcome.error, visit.lang)
            )
        else:
            line = visit.gettext(
                "{setting}: {fetched} new, {deleted} deleted on the server, "
                "{left} left on the server"
            ).format(
                setting=outcome.setting_id,
                fetched=outcome.fetched,
                deleted=outcome.deleted,
                left=outcome.failed,
            )
        visit.notice(line)
    return visit.redirect("/mail")


def _field(form: Any, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _limit_mib() -> int:
    return MAX_ATTACHMENT_OCTETS // (1024 * 1024)


class _TooLarge(Exception):
    pass


class UploadLimit:
    """ASGI middleware: a request to `SEND_PATH` larger than `MAX_REQUEST_OCTETS` (by its
    Content-Length, or counted as it arrives) gets 413 before the form is parsed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != SEND_PATH:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_REQUEST_OCTETS):
            await self._refuse(headers, scope, receive, send)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > MAX_REQUEST_OCTETS:
                    raise _TooLarge
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _TooLarge:
            if started:
                raise
            await self._refuse(headers, scope, receive, send)

    @staticmethod
    async def _refuse(headers: Headers, scope: Scope, receive: Receive, send: Send) -> None:
        lang = language.choose(None, headers.get("accept-language"))
        text = translator(lang).gettext(TOO_LARGE).format(limit=_limit_mib())
        log.warning("web: a message to send was refused: larger than %d octets", MAX_REQUEST_OCTETS)
        response = PlainTextResponse(text, status_code=413, headers={"Connection": "close"})
        await response(scope, receive, send)
