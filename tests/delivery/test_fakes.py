"""The fakes behave like Slack and an SMTP server, as seen through the real client libraries.

Each test drives a fake with the client alerts will use — ``slack_sdk.webhook.WebhookClient``,
``slack_sdk.WebClient(base_url=fake.api_url)`` and ``aiosmtplib`` — and checks what the client sees.
Besides proving the fakes, these tests pin down how the clients report failures (no exception for a
webhook 429, SlackApiError for the Web API, SMTPRecipientsRefused only when every recipient fails...).
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import urllib.error
import urllib.request
from email.message import EmailMessage

import aiosmtplib
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from alerts.clock import FakeClock
from fakes.slack import FakeSlack
from fakes.smtp import FakeSMTP

# ======================================================================== Slack: incoming webhooks


def test_webhook_ok_records_the_payload(fake_slack):
    client = WebhookClient(fake_slack.webhook_url("alerts"))
    response = client.send(text="loss is NaN", blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "*x*"}}])

    assert response.status_code == 200
    assert response.body == "ok"
    assert fake_slack.messages("alerts") == [
        {"text": "loss is NaN", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*x*"}}]}
    ]
    assert fake_slack.messages("other") == []
    [req] = fake_slack.requests
    assert (req.method, req.path, req.kind, req.status) == ("POST", "/services/T000/B000/alerts", "webhook", 200)
    assert req.headers["Content-Type"].startswith("application/json")
    assert fake_slack.webhook_url("alerts").startswith(fake_slack.url + "/services/")


@pytest.mark.parametrize(
    ("error", "status"),
    [
        ("invalid_payload", 400),
        ("no_service", 404),
        ("action_prohibited", 403),
        ("no_team", 404),
        ("channel_is_archived", 410),
    ],
)
def test_webhook_documented_errors(fake_slack, error, status):
    fake_slack.fail_next("alerts", error=error)
    client = WebhookClient(fake_slack.webhook_url("alerts"))

    response = client.send(text="hello")  # WebhookClient does not raise: it hands back the answer

    assert (response.status_code, response.body) == (status, error)
    assert fake_slack.messages() == []
    assert client.send(text="again").status_code == 200  # times=1: the next one goes through
    assert len(fake_slack.messages("alerts")) == 1


def test_webhook_failure_by_status_and_persistent_failure(fake_slack):
    client = WebhookClient(fake_slack.webhook_url("hook"))
    fake_slack.fail_next("hook", status=403, error="no_team")
    assert (client.send(text="a").status_code, client.send(text="a").status_code) == (403, 200)

    fake_slack.fail_next("hook", status=410, times=None)  # until cleared
    answers = [client.send(text="b") for _ in range(3)]
    assert [(r.status_code, r.body) for r in answers] == [(410, "channel_is_archived")] * 3
    fake_slack.clear_failures()
    assert client.send(text="c").status_code == 200


def test_webhook_rejects_real_bad_payloads(fake_slack):
    url = fake_slack.webhook_url("alerts")
    no_text = WebhookClient(url).send_dict({"icon_emoji": ":fire:"})
    assert (no_text.status_code, no_text.body) == (400, "no_text")
    assert WebhookClient(url).send_dict({}).body == "invalid_payload"  # slack_sdk sends {} as `null`

    request = urllib.request.Request(url, data=b"{not json", headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert (info.value.code, info.value.read()) == (400, b"invalid_payload")

    form = urllib.request.Request(url, data=b"payload=%7B%22text%22%3A%22form%22%7D")  # payload={"text":"form"}
    with urllib.request.urlopen(form, timeout=5) as answer:
        assert answer.read() == b"ok"
    assert fake_slack.messages() == [{"text": "form"}]


def test_unknown_webhook_answers_no_service():
    with FakeSlack(webhooks={"alerts"}) as slack:
        assert WebhookClient(slack.webhook_url("alerts")).send(text="x").status_code == 200
        gone = WebhookClient(slack.webhook_url("deleted")).send(text="x")
        assert (gone.status_code, gone.body) == (404, "no_service")


def test_webhook_429_retry_after_is_visible_and_not_retried_by_default(fake_slack):
    fake_slack.fail_next("alerts", status=429, retry_after=7)
    client = WebhookClient(fake_slack.webhook_url("alerts"))

    response = client.send(text="hi")

    assert response.status_code == 429
    assert response.body == "rate_limited"
    # On an error answer, headers is a plain dict; for 429 slack_sdk copies Retry-After to both spellings.
    assert response.headers["Retry-After"] == "7"
    assert response.headers["retry-after"] == "7"
    assert len(fake_slack.requests) == 1  # the default retry handlers do not retry 429
    assert fake_slack.count_429 == 1


def test_webhook_500_answers_html_and_is_not_retried(fake_slack):
    fake_slack.fail_next(status=500)
    response = WebhookClient(fake_slack.webhook_url("alerts")).send(text="hi")

    assert response.status_code == 500
    assert response.body.lstrip().startswith("<!DOCTYPE html>")
    assert len(fake_slack.requests) == 1
    assert fake_slack.messages() == []


def test_webhook_slow_answer_times_the_client_out(fake_slack):
    fake_slack.set_delay(1.0, "alerts")
    client = WebhookClient(fake_slack.webhook_url("alerts"), timeout=0.3)

    with pytest.raises(TimeoutError):  # socket.timeout, raw: not wrapped, and not retried
        client.send(text="slow")

    assert len(fake_slack.requests) == 1
    # As on Slack, the post was processed even though the answer never reached the client.
    assert fake_slack.messages("alerts") == [{"text": "slow"}]


def test_fail_for_follows_the_injected_clock():
    clock = FakeClock(start=1000.0)
    with FakeSlack(clock=clock) as slack:
        client = WebhookClient(slack.webhook_url("alerts"))
        slack.fail_for(30, status=503)
        assert client.send(text="1").status_code == 503
        clock.advance(29.9)
        assert client.send(text="2").status_code == 503
        clock.advance(0.1)
        assert client.send(text="3").status_code == 200
        assert slack.messages() == [{"text": "3"}]
        assert [r.time for r in slack.requests] == [1000.0, 1029.9, 1030.0]


def test_webhook_rate_limit_per_channel():
    clock = FakeClock(start=0.0)
    with FakeSlack(clock=clock, rate_limit_per_channel=1.0) as slack:
        a = WebhookClient(slack.webhook_url("a"))
        b = WebhookClient(slack.webhook_url("b"))
        assert a.send(text="1").status_code == 200
        assert b.send(text="1").status_code == 200  # another channel has its own budget
        clock.advance(0.4)
        limited = a.send(text="2")
        assert (limited.status_code, limited.body, limited.headers["Retry-After"]) == (429, "rate_limited", "1")
        assert slack.requests[-1].rate_limited
        clock.advance(0.6)
        assert a.send(text="3").status_code == 200
        assert slack.count_429 == 1
        assert [m["text"] for m in slack.messages("a")] == ["1", "3"]


def test_a_client_that_keeps_to_one_message_per_second_never_sees_429():
    clock = FakeClock(start=0.0)
    with FakeSlack(clock=clock, rate_limit_per_channel=1.0, burst=2) as slack:
        client = WebhookClient(slack.webhook_url("alerts"))
        for i in range(2):  # the burst
            assert client.send(text=f"burst {i}").status_code == 200
        for i in range(5):
            clock.advance(1.0)
            assert client.send(text=f"steady {i}").status_code == 200
        assert slack.count_429 == 0
        assert len(slack.messages("alerts")) == 7
        assert client.send(text="one too many").status_code == 429


# ======================================================================== Slack: Web API


def test_post_message_ok(fake_slack):
    client = WebClient(token=fake_slack.token, base_url=fake_slack.api_url)

    first = client.chat_postMessage(channel="#alerts", text="run 7 crashed")
    second = client.chat_postMessage(channel="C123", text="again", blocks=[{"type": "divider"}])

    assert first["ok"] is True
    assert first["channel"] == "C123"
    assert first["ts"] == "1700000000.000100"
    assert first["message"]["text"] == "run 7 crashed"
    assert second["ts"] > first["ts"]
    assert [m["text"] for m in fake_slack.messages("#alerts")] == ["run 7 crashed", "again"]
    assert fake_slack.messages("C123") == fake_slack.messages("alerts")
    req = fake_slack.requests[0]
    assert (req.api_method, req.channel, req.authorized) == ("chat.postMessage", "C123", True)
    assert req.headers["Authorization"] == "Bearer <redacted>"
    assert fake_slack.token not in repr(fake_slack.requests)


def test_post_message_as_a_form(fake_slack):
    client = WebClient(token=fake_slack.token, base_url=fake_slack.api_url)
    blocks = [{"type": "section", "text": {"type": "plain_text", "text": "hi"}}]

    response = client.api_call("chat.postMessage", params={"channel": "alerts", "text": "hi",
                                                          "blocks": json.dumps(blocks)})

    assert response["ok"] and response["channel"] == "C123"
    [message] = fake_slack.messages("alerts")
    assert message["blocks"] == blocks
    assert fake_slack.requests[0].headers["Content-Type"] == "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("setup", "kwargs", "error"),
    [
        (None, {"channel": "#does-not-exist", "text": "x"}, "channel_not_found"),
        (("private", False, False), {"channel": "#private", "text": "x"}, "not_in_channel"),
        (("old", True, True), {"channel": "#old", "text": "x"}, "is_archived"),
        (None, {"channel": "#alerts", "text": "x" * 40_001}, "msg_too_long"),
        (None, {"channel": "#alerts", "text": ""}, "no_text"),
    ],
)
@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing:UserWarning")
def test_post_message_errors_are_200_ok_false(fake_slack, setup, kwargs, error):
    if setup:
        name, member, archived = setup
        fake_slack.add_channel(name, member=member, archived=archived)
    client = WebClient(token=fake_slack.token, base_url=fake_slack.api_url)

    with pytest.raises(SlackApiError) as info:
        client.chat_postMessage(**kwargs)

    assert info.value.response.status_code == 200
    assert info.value.response["ok"] is False
    assert info.value.response["error"] == error
    assert fake_slack.messages() == []


def test_wrong_or_missing_token(fake_slack):
    good = WebClient(token=fake_slack.token, base_url=fake_slack.api_url)
    assert good.auth_test()["user_id"] == "U0BOT"

    with pytest.raises(SlackApiError) as info:
        WebClient(token="xoxb-wrong", base_url=fake_slack.api_url).chat_postMessage(channel="#alerts", text="x")
    assert info.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as info:
        WebClient(token="xoxb-wrong", base_url=fake_slack.api_url).auth_test()
    assert info.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as info:
        WebClient(base_url=fake_slack.api_url).auth_test()
    assert info.value.response["error"] == "not_authed"
    assert fake_slack.messages() == []
    assert [r.authorized for r in fake_slack.requests] == [True, False, False, False]


def test_dm_to_a_user(fake_slack):
    client = WebClient(token=fake_slack.token, base_url=fake_slack.api_url)

    opened = client.conversations_open(users="U123")
    assert opened["channel"]["id"] == "D123"
    posted = client.chat_postMessage(channel=opened["channel"]["id"], text="your run finished")
    assert posted["channel"] == "D123"
    assert client.chat_postMessage(channel="U123", text="straight to the user")["channel"] == "D123"
    assert [m["text"] for m in fake_slack.messages("U123")] == ["your run finished", "straight to the user"]

    with pytest.raises(SlackApiError) as info:
        client.conversations_open(users="U999")
    assert info.value.response["error"] == "user_not_found"


def test_api_429_raises_with_retry_after_and_is_not_retried_by_default(fake_slack):
    fake_slack.fail_next("chat.postMessage", status=429, retry_after=30)
    client = WebClient(token=fake_slack.token, base_url=fake_slack.api_url)

    with pytest.raises(SlackApiError) as info:
        client.chat_postMessage(channel="#alerts", text="x")

    response = info.value.response
    assert response.status_code == 429
    assert response["error"] == "ratelimited"
    assert response.headers["Retry-After"] == "30"
    assert response.headers["retry-after"] == "30"
    assert len(fake_slack.requests) == 1  # WebClient's default retry handlers only retry connection errors
    assert client.chat_postMessage(channel="#alerts", text="x")["ok"]


def test_api_500_raises_slack_api_error(fake_slack):
    fake_slack.fail_next(status=500)
    client = WebClient(token=fake_slack.token, base_url=fake_slack.api_url)

    with pytest.raises(SlackApiError) as info:
        client.chat_postMessage(channel="#alerts", text="x")

    assert info.value.response.status_code == 500
    assert info.value.response["ok"] is False
    assert info.value.response["error"].startswith("Received a response in a non-JSON format")
    assert len(fake_slack.requests) == 1


def test_injected_api_error_by_channel(fake_slack):
    fake_slack.add_channel("ops", "C456")
    fake_slack.fail_next("#ops", error="channel_not_found")
    client = WebClient(token=fake_slack.token, base_url=fake_slack.api_url)

    assert client.chat_postMessage(channel="#alerts", text="fine")["ok"]  # another channel: untouched
    with pytest.raises(SlackApiError) as info:
        client.chat_postMessage(channel="C456", text="x")
    assert (info.value.response.status_code, info.value.response["error"]) == (200, "channel_not_found")
    assert client.chat_postMessage(channel="#ops", text="later")["channel"] == "C456"


def test_api_rate_limit_per_channel():
    clock = FakeClock(start=0.0)
    with FakeSlack(clock=clock, rate_limit_per_channel=1.0, channels={"alerts": "C123", "ops": "C456"}) as slack:
        client = WebClient(token=slack.token, base_url=slack.api_url)
        client.chat_postMessage(channel="#alerts", text="1")
        client.chat_postMessage(channel="#ops", text="1")
        with pytest.raises(SlackApiError) as info:
            client.chat_postMessage(channel="C123", text="2")
        assert info.value.response.status_code == 429
        assert info.value.response.headers["Retry-After"] == "1"
        clock.advance(1.0)
        assert client.chat_postMessage(channel="C123", text="3")["ok"]
        assert slack.count_429 == 1


def test_api_slow_answer_times_the_client_out(fake_slack):
    fake_slack.set_delay(1.0)
    client = WebClient(token=fake_slack.token, base_url=fake_slack.api_url, timeout=0.3)

    with pytest.raises(TimeoutError):
        client.chat_postMessage(channel="#alerts", text="slow")

    assert len(fake_slack.requests) == 1  # no retry
    assert len(fake_slack.messages("alerts")) == 1


def test_slack_down_then_up_on_the_same_port(fake_slack):
    url = fake_slack.webhook_url("alerts")
    # retry_handlers=[]: by default slack_sdk retries a refused connection once, after ~0.5 s of backoff.
    client = WebhookClient(url, retry_handlers=[])
    fake_slack.stop()
    with pytest.raises(urllib.error.URLError) as info:
        client.send(text="while down")
    assert isinstance(info.value.reason, ConnectionRefusedError)
    fake_slack.start()
    assert fake_slack.webhook_url("alerts") == url
    assert client.send(text="back").status_code == 200
    assert fake_slack.messages() == [{"text": "back"}]


def test_wait_for_messages_from_another_thread(fake_slack):
    import threading

    url = fake_slack.webhook_url("alerts")
    thread = threading.Thread(target=lambda: [WebhookClient(url).send(text=str(i)) for i in range(3)])
    thread.start()
    assert [m["text"] for m in fake_slack.wait_for_messages(3, "alerts", timeout=5)] == ["0", "1", "2"]
    thread.join()


def test_stop_with_a_keep_alive_connection_does_not_hang():
    slack = FakeSlack().start()
    sock = socket.create_connection((slack.host, slack.port), timeout=5)
    body = b'{"text": "x"}'
    sock.sendall(b"POST /services/T000/B000/alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    answer = b""
    while not answer.endswith(b"\r\n\r\nok"):
        chunk = sock.recv(4096)
        assert chunk, answer
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 200")
    slack.stop()  # the connection is still open: stop must not wait for it
    assert sock.recv(4096) == b""
    sock.close()
    assert slack.messages() == [{"text": "x"}]


# ======================================================================== SMTP


def _mail(to: str = "oncall@example.com", subject: str = "[alerts] loss is NaN") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "alerts@example.org"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = "<run-7.loss-nan@example.org>"
    msg["X-Alert-Id"] = "run-7/loss-nan"
    msg.set_content("The loss of run 7 became NaN at step 1200.")
    return msg


def send(smtp: FakeSMTP, message: EmailMessage, **overrides):
    return asyncio.run(aiosmtplib.send(message, **smtp.client_kwargs(**overrides)))


def test_starttls_and_auth_deliver_the_message(fake_smtp):
    errors, answer = asyncio.run(aiosmtplib.send(
        _mail(), hostname=fake_smtp.host, port=fake_smtp.port, start_tls=True,
        username="alerts", password="s3cret-password", cert_bundle=fake_smtp.ca_path, timeout=5,
    ))

    assert errors == {}
    assert answer.startswith("2.0.0 OK")
    [mail] = fake_smtp.messages
    assert mail.mail_from == "alerts@example.org"
    assert mail.rcpt_tos == ["oncall@example.com"]
    assert mail.username == "alerts"
    assert mail.tls is True
    assert mail.message["Subject"] == "[alerts] loss is NaN"
    assert mail.message["X-Alert-Id"] == "run-7/loss-nan"
    assert mail.message["Message-ID"] == "<run-7.loss-nan@example.org>"
    assert mail.message.get_content().strip() == "The loss of run 7 became NaN at step 1200."
    assert [(a.mechanism, a.login, a.success, a.tls) for a in fake_smtp.auth_attempts] == [
        ("PLAIN", "alerts", True, True)
    ]


def test_the_certificate_is_verified(fake_smtp, fake_smtps):
    # The system CA store does not know the fake's CA. During STARTTLS aiosmtplib lets the raw
    # ssl.SSLCertVerificationError out; with implicit TLS it is wrapped in SMTPConnectError.
    with pytest.raises(ssl.SSLCertVerificationError):
        send(fake_smtp, _mail(), cert_bundle=None)
    with pytest.raises(aiosmtplib.SMTPConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        send(fake_smtps, _mail(), cert_bundle=None)
    send(fake_smtp, _mail(), cert_bundle=None, validate_certs=False)
    send(fake_smtp, _mail(), cert_bundle=None, tls_context=fake_smtp.client_tls_context())
    assert len(fake_smtp.messages) == 2


def test_no_auth_over_plain_text(fake_smtp):
    with pytest.raises(aiosmtplib.SMTPException, match="AUTH extension is not supported"):
        send(fake_smtp, _mail(), start_tls=False)  # AUTH is only offered after STARTTLS
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as info:
        send(fake_smtp, _mail(), start_tls=False, username=None, password=None)
    assert info.value.code == 530
    assert fake_smtp.messages == []


def test_login_mechanism_and_bad_password(fake_smtp):
    async def login(password: str):
        async with aiosmtplib.SMTP(hostname=fake_smtp.host, port=fake_smtp.port, start_tls=True,
                                   cert_bundle=fake_smtp.ca_path, timeout=5) as client:
            await client.ehlo()  # auth_login() does not re-EHLO after STARTTLS (login() does)
            await client.auth_login("alerts", password)
            await client.send_message(_mail())

    asyncio.run(login("s3cret-password"))
    with pytest.raises(aiosmtplib.SMTPAuthenticationError) as info:
        send(fake_smtp, _mail(), password="wrong")
    assert info.value.code == 535
    # aiosmtplib's login() tries every mechanism both sides support before giving up: PLAIN, then LOGIN.
    assert [(a.mechanism, a.success) for a in fake_smtp.auth_attempts] == [
        ("LOGIN", True), ("PLAIN", False), ("LOGIN", False)
    ]
    assert len(fake_smtp.messages) == 1


@pytest.mark.parametrize(("address", "code"), [("busy@example.com", 450), ("nobody@example.com", 550)])
def test_refused_recipient(fake_smtp, address, code):
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as info:
        send(fake_smtp, _mail(to=address))

    [refused] = info.value.recipients
    assert isinstance(refused, aiosmtplib.SMTPRecipientRefused)
    assert (refused.code, refused.recipient) == (code, address)
    assert fake_smtp.messages == []


def test_some_recipients_refused_is_not_an_exception(fake_smtp):
    errors, _ = send(fake_smtp, _mail(), recipients=["oncall@example.com", "busy@example.com", "nobody@example.com"])

    assert {addr: r.code for addr, r in errors.items()} == {"busy@example.com": 450, "nobody@example.com": 550}
    [mail] = fake_smtp.messages
    assert mail.rcpt_tos == ["oncall@example.com"]


def test_programmed_answers(fake_smtp):
    fake_smtp.fail_next("DATA", "451 4.3.0 Temporary local problem")
    with pytest.raises(aiosmtplib.SMTPDataError) as info:
        send(fake_smtp, _mail())
    assert info.value.code == 451
    send(fake_smtp, _mail())  # only the next one failed

    fake_smtp.set_recipient_answer("full@example.com", "452 4.2.2 Mailbox full")
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as info:
        send(fake_smtp, _mail(to="full@example.com"))
    assert info.value.recipients[0].code == 452
    fake_smtp.fail_next("MAIL", "421 4.7.0 Try again later")
    with pytest.raises(aiosmtplib.SMTPResponseException) as info:
        send(fake_smtp, _mail())
    assert info.value.code == 421
    assert len(fake_smtp.messages) == 1


def test_down_then_up_on_the_same_port(fake_smtp):
    port = fake_smtp.port
    send(fake_smtp, _mail(subject="before"))

    fake_smtp.go_down()
    assert not fake_smtp.is_up
    with pytest.raises(aiosmtplib.SMTPConnectError):  # also a ConnectionError
        send(fake_smtp, _mail(subject="while down"))

    fake_smtp.come_up()
    assert fake_smtp.port == port
    send(fake_smtp, _mail(subject="after"))
    with fake_smtp.down():
        with pytest.raises(ConnectionError):
            send(fake_smtp, _mail(subject="down again"))
    send(fake_smtp, _mail(subject="up again"))
    assert [m.message["Subject"] for m in fake_smtp.messages] == ["before", "after", "up again"]


def test_implicit_tls(fake_smtps):
    errors, _ = asyncio.run(aiosmtplib.send(
        _mail(), hostname=fake_smtps.host, port=fake_smtps.port, use_tls=True,
        username="alerts", password="s3cret-password", tls_context=fake_smtps.client_tls_context(), timeout=5,
    ))
    assert errors == {}
    [mail] = fake_smtps.messages
    assert (mail.tls, mail.username) == (True, "alerts")

    # A plain-text client and an SMTPS server each wait for the other to speak first: a timeout.
    with pytest.raises(aiosmtplib.SMTPTimeoutError):
        send(fake_smtps, _mail(), use_tls=False, timeout=0.2)


def test_plain_server_without_auth():
    with FakeSMTP(tls="none", username=None) as smtp:
        assert smtp.ca_path is None
        send(smtp, _mail())
        assert (smtp.messages[0].tls, smtp.messages[0].username) == (False, None)


def test_smtp_slow_answer_times_the_client_out(fake_smtp):
    fake_smtp.set_delay(1.0)
    with pytest.raises(aiosmtplib.SMTPTimeoutError):
        send(fake_smtp, _mail(), timeout=0.2)
    fake_smtp.set_delay(0)
    send(fake_smtp, _mail())
    assert len(fake_smtp.messages) == 1
