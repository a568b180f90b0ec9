"""Each sink against a local stand-in of its API: the request exactly as the API documents it."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest
from pydantic import TypeAdapter

from mergebot.config import NotifyEvent, NotifySink
from mergebot.notify.conversation import after
from mergebot.notify.http import DeliveryError, HttpClient, MessageGoneError
from mergebot.notify.sinks import SIGNATURE_HEADER, Message, Sink, build_sink
from mergebot.notify.view import JSON_FORMATS, Format, Links, notification_context, template_name
from mergebot.render import Renderer
from tests import notify_data as data
from tests.chatstandin import (
    DISCORD_ID,
    DISCORD_TOKEN,
    SLACK_BOT_TOKEN,
    SLACK_HOOK_PATH,
    TELEGRAM_TOKEN,
    ChatStandIn,
    markdown_v2_problem,
)
from tests.notifykit import HOOK_SECRET, environ, sink

ADAPTER: TypeAdapter[NotifySink] = TypeAdapter(NotifySink)
LINKS = Links("https://mergebot.example.com", "https://github.com")


@pytest.fixture
async def standin() -> AsyncIterator[ChatStandIn]:
    server = await ChatStandIn().start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    async with aiohttp.ClientSession() as session:
        yield HttpClient(session, timeout=3.0)


def _message(
    fmt_sink: Sink, kind: NotifyEvent = NotifyEvent.BLOCKED, *, hostile: bool = True
) -> Message:
    n = data.notification(kind, hostile=hostile)
    ctx = notification_context(n, data.previous(NotifyEvent.STARTED), LINKS)
    renderer = Renderer()
    text = renderer.render(template_name(Format.PLAIN, kind), ctx)
    name = template_name(fmt_sink.format, kind)
    body = (
        renderer.render_json(name, ctx)
        if fmt_sink.format in JSON_FORMATS
        else renderer.render(name, ctx)
    )
    return Message(n.id, str(kind), n.repo, n.slug, body, text, n.envelope)


def _sink(kind: str, standin: ChatStandIn, http: HttpClient, **extra: str) -> Sink:
    return build_sink(ADAPTER.validate_python(sink(kind, standin, **extra)), http, environ(standin))


async def test_telegram_send_then_edit_as_the_bot_api_documents(
    standin: ChatStandIn, http: HttpClient
) -> None:
    tg = _sink("telegram", standin, http)
    message = _message(tg)
    message_id = await tg.post(message)
    sent = standin.to("telegram")[-1]
    assert sent.method == "POST"
    assert sent.path == f"/bot{TELEGRAM_TOKEN}/sendMessage"
    assert sent.headers["Content-Type"].startswith("application/json")
    body = sent.json
    assert body["chat_id"] == "-1001234567890"
    assert body["parse_mode"] == "MarkdownV2"
    assert body["link_preview_options"] == {"is_disabled": True}
    assert markdown_v2_problem(body["text"]) is None
    # The hostile branch name and message arrive escaped: _*[]()~>#+-=|{}.! each behind a \.
    assert r"\_\*\[\]\(\)\~\`\>\#\+\-\=\|\{\}\.\!" in body["text"]
    assert message_id == "1001"
    resumed = _message(tg, NotifyEvent.RESUMED)
    await tg.edit(message_id, resumed)
    edit = standin.to("telegram")[-1]
    assert edit.path == f"/bot{TELEGRAM_TOKEN}/editMessageText"
    assert edit.json["message_id"] == 1001
    assert edit.json["chat_id"] == "-1001234567890"
    assert standin.messages["telegram:1001"]["text"] == resumed.body


async def test_telegram_edit_of_a_vanished_message_says_so(
    standin: ChatStandIn, http: HttpClient
) -> None:
    tg = _sink("telegram", standin, http)
    with pytest.raises(MessageGoneError):
        await tg.edit("999999", _message(tg))


async def test_telegram_text_over_the_limit_falls_back_to_plain_text(
    standin: ChatStandIn, http: HttpClient
) -> None:
    tg = _sink("telegram", standin, http)
    message = _message(tg)
    huge = Message(message.notification_id, message.kind, message.repo, message.slug,
                   message.body + "x" * 5000, "plain " * 2000, message.envelope)  # fmt: skip
    await tg.post(huge)
    sent = standin.to("telegram")[-1].json
    assert "parse_mode" not in sent
    assert len(sent["text"]) <= 4096


async def test_discord_executes_with_wait_and_edits_by_message_id(
    standin: ChatStandIn, http: HttpClient
) -> None:
    dc = _sink("discord", standin, http)
    message_id = await dc.post(_message(dc))
    sent = standin.to("discord")[-1]
    assert sent.method == "POST"
    assert sent.path == f"/api/webhooks/{DISCORD_ID}/{DISCORD_TOKEN}"
    assert sent.query == {"wait": "true"}
    assert sent.headers["Content-Type"].startswith("application/json")
    assert sent.json["allowed_mentions"] == {"parse": []}
    embed = sent.json["embeds"][0]
    assert embed["title"] == "⛔ acme/widgets pr-42"
    assert len(embed["description"]) <= 4096
    assert message_id == "1001"
    await dc.edit(message_id, _message(dc, NotifyEvent.RESUMED))
    edit = standin.to("discord")[-1]
    assert edit.method == "PATCH"
    assert edit.path == f"/api/webhooks/{DISCORD_ID}/{DISCORD_TOKEN}/messages/1001"
    assert standin.messages["discord:1001"]["embeds"][0]["title"].startswith("↩️")
    with pytest.raises(MessageGoneError):
        await dc.edit("424242", _message(dc))


async def test_slack_incoming_webhook_posts_block_kit(
    standin: ChatStandIn, http: HttpClient
) -> None:
    sl = _sink("slack", standin, http)
    assert not sl.can_edit
    assert await sl.post(_message(sl)) is None
    sent = standin.to("slack_hook")[-1]
    assert sent.path == SLACK_HOOK_PATH
    assert sent.headers["Content-Type"].startswith("application/json")
    assert sent.json["text"].startswith(":no_entry: acme/widgets pr-42")
    assert sent.json["blocks"][0]["type"] == "section"
    assert "<!channel>" not in json.dumps(sent.json)


async def test_slack_bot_posts_with_chat_post_message_and_edits_with_chat_update(
    standin: ChatStandIn, http: HttpClient
) -> None:
    sl = _sink("slack_bot", standin, http)
    assert sl.can_edit
    message_id = await sl.post(_message(sl, NotifyEvent.STARTED))
    sent = standin.to("slack_api")[-1]
    assert sent.path == "/slack/api/chat.postMessage"
    assert sent.headers["Authorization"] == f"Bearer {SLACK_BOT_TOKEN}"
    assert sent.headers["Content-Type"] == "application/json; charset=utf-8"
    assert sent.json["channel"] == "#merges"
    assert message_id is not None
    channel, ts = message_id.split(" ")
    assert channel == "C024BE91L"
    await sl.edit(message_id, _message(sl))
    update = standin.to("slack_api")[-1]
    assert update.path == "/slack/api/chat.update"
    assert (update.json["channel"], update.json["ts"]) == (channel, ts)
    with pytest.raises(MessageGoneError):
        await sl.edit("C024BE91L 1.000", _message(sl))


async def test_generic_webhook_posts_the_envelope_and_the_text_signed(
    standin: ChatStandIn, http: HttpClient
) -> None:
    wh = _sink("webhook", standin, http)
    message = _message(wh)
    await wh.post(message)
    sent = standin.to("webhook")[-1]
    assert sent.headers["Content-Type"] == "application/json"
    expected = "sha256=" + hmac.new(HOOK_SECRET.encode(), sent.body, hashlib.sha256).hexdigest()
    assert sent.headers[SIGNATURE_HEADER] == expected
    assert sent.headers["X-Mergebot-Event"] == "blocked"
    assert sent.headers["X-Mergebot-Delivery"] == message.notification_id
    assert sent.json == {"event": message.envelope, "text": message.text}


async def test_log_sink_writes_one_line(
    caplog: pytest.LogCaptureFixture, http: HttpClient, standin: ChatStandIn
) -> None:
    lg = _sink("log", standin, http)
    with caplog.at_level(logging.INFO, logger="mergebot.notify.sinks"):
        await lg.post(_message(lg, NotifyEvent.COMPLETED, hostile=False))
    [record] = [r for r in caplog.records if r.name == "mergebot.notify.sinks"]
    assert "\n" not in record.getMessage()
    assert "integrated into main" in record.getMessage()


async def test_errors_never_carry_the_secret(standin: ChatStandIn, http: HttpClient) -> None:
    tg = _sink("telegram", standin, http)
    standin.fail_next(
        "telegram", 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
    )
    with pytest.raises(DeliveryError) as refused:
        await tg.post(_message(tg))
    assert not refused.value.retryable
    assert TELEGRAM_TOKEN not in str(refused.value)
    closed = build_sink(
        ADAPTER.validate_python(sink("telegram", standin, api_url="http://127.0.0.1:9")),
        http,
        environ(standin),
    )
    with pytest.raises(DeliveryError) as unreachable:
        await closed.post(_message(closed))
    assert unreachable.value.retryable
    assert TELEGRAM_TOKEN not in str(unreachable.value)
    assert "127.0.0.1" not in str(unreachable.value)


async def test_a_missing_secret_is_a_permanent_error_naming_the_variable(
    standin: ChatStandIn, http: HttpClient
) -> None:
    tg = build_sink(ADAPTER.validate_python(sink("telegram", standin)), http, {})
    with pytest.raises(DeliveryError, match="TG_TOKEN is not set") as missing:
        await tg.post(_message(tg))
    assert not missing.value.retryable
    assert standin.requests == []


def test_conversation_after_keeps_the_message_id() -> None:
    n = data.notification(NotifyEvent.QUEUED)
    assert after(n, "m1").message_id == "m1"
