"""Tests for bot.demo.fakeslack, driven through real slack_sdk WebClient HTTP calls."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from bot.demo.fakeslack import FakeSlack, SlackCall


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


@pytest.fixture
def client(fake: FakeSlack) -> WebClient:
    return WebClient(token="xoxb-test", base_url=fake.url)


def test_url_shape_and_auth_test(fake: FakeSlack, client: WebClient) -> None:
    assert fake.url.startswith("http://127.0.0.1:")
    assert fake.url.endswith("/api/")
    response = client.auth_test()
    assert response["ok"] is True
    assert response["user_id"] == "UBOT"
    assert response["bot_id"] == "B0ALIGN"
    assert response["team_id"] == "T0ALIGN"
    assert response["team"] == "Alignbot Demo"
    assert response["url"]
    call = fake.calls_to("auth.test")[0]
    assert call.headers["authorization"] == "Bearer xoxb-test"
    assert call.status == 200


def test_post_to_channel_and_to_user_maps_dm(fake: FakeSlack, client: WebClient) -> None:
    first = client.chat_postMessage(channel="C123", text="hello channel")
    second = client.chat_postMessage(channel="U42", text="hello you")

    assert first["channel"] == "C123"
    assert second["channel"] == "D42"
    assert first["message"]["user"] == "UBOT"
    assert first["message"]["text"] == "hello channel"
    assert float(second["ts"]) > float(first["ts"])
    assert len(second["ts"].split(".")[1]) == 6

    assert [c.body["text"] for c in fake.posts()] == ["hello channel", "hello you"]
    assert [c.body["text"] for c in fake.posts("C123")] == ["hello channel"]
    assert [c.body["text"] for c in fake.posts("U42")] == ["hello you"]
    assert [c.body["text"] for c in fake.posts("D42")] == ["hello you"]
    assert fake.posts("C999") == []

    opened = client.conversations_open(users="U42")
    assert opened["channel"]["id"] == "D42"


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_post_requires_text_or_blocks(fake: FakeSlack, client: WebClient) -> None:
    with pytest.raises(SlackApiError) as info:
        client.chat_postMessage(channel="C1")
    assert info.value.response["error"] == "no_text"
    assert fake.posts() == []
    assert len(fake.calls_to("chat.postMessage")) == 1

    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]
    client.chat_postMessage(channel="C1", blocks=blocks)
    assert fake.posts("C1")[0].body["blocks"] == blocks


def test_metadata_recorded_and_returned_by_history(fake: FakeSlack, client: WebClient) -> None:
    metadata = {"event_type": "alignbot_digest", "event_payload": {"week": "2024-W10"}}
    posted = client.chat_postMessage(channel="C1", text="digest", metadata=metadata)
    client.chat_postMessage(channel="C1", text="reply", thread_ts=posted["ts"])
    client.chat_postMessage(channel="C2", text="elsewhere")

    assert fake.posts("C1")[0].body["metadata"] == metadata
    assert posted["message"]["metadata"] == metadata

    history = client.conversations_history(channel="C1", include_all_metadata=True)
    messages = history["messages"]
    assert [m["text"] for m in messages] == ["digest"]  # as in Slack, replies stay in their thread
    assert messages[0]["metadata"] == metadata
    replies = client.conversations_replies(channel="C1", ts=posted["ts"], include_all_metadata=True)
    assert [m["text"] for m in replies["messages"]] == ["digest", "reply"]
    assert replies["messages"][1]["thread_ts"] == posted["ts"]

    plain = client.conversations_history(channel="C1")
    assert all("metadata" not in m for m in plain["messages"])

    later = client.chat_postMessage(channel="C1", text="later")
    bounded = client.conversations_history(channel="C1", oldest=posted["ts"])
    assert [m["text"] for m in bounded["messages"]] == ["later"]
    assert later["ok"]

    dm = client.chat_postMessage(channel="U7", text="dm")
    dm_history = client.conversations_history(channel=dm["channel"])
    assert [m["text"] for m in dm_history["messages"]] == ["dm"]


def test_history_limit_and_cursor(fake: FakeSlack, client: WebClient) -> None:
    for n in range(5):
        client.chat_postMessage(channel="C1", text=f"m{n}")
    page = client.conversations_history(channel="C1", limit=2)
    assert [m["text"] for m in page["messages"]] == ["m4", "m3"]
    assert page["has_more"] is True
    cursor = page["response_metadata"]["next_cursor"]
    rest = client.conversations_history(channel="C1", limit=10, cursor=cursor)
    assert [m["text"] for m in rest["messages"]] == ["m2", "m1", "m0"]
    assert rest["has_more"] is False


def test_chat_update(fake: FakeSlack, client: WebClient) -> None:
    posted = client.chat_postMessage(channel="C1", text="draft")
    updated = client.chat_update(channel="C1", ts=posted["ts"], text="final")
    assert updated["ok"] is True
    assert updated["ts"] == posted["ts"]
    assert updated["text"] == "final"
    history = client.conversations_history(channel="C1")
    assert [m["text"] for m in history["messages"]] == ["final"]

    with pytest.raises(SlackApiError) as info:
        client.chat_update(channel="C1", ts="1.000001", text="nope")
    assert info.value.response["error"] == "message_not_found"


def test_fail_next_429_surfaces_retry_after(fake: FakeSlack) -> None:
    client = WebClient(token="xoxb-test", base_url=fake.url, retry_handlers=[])
    fake.fail_next("chat.postMessage", status=429, retry_after=7)
    with pytest.raises(SlackApiError) as info:
        client.chat_postMessage(channel="C1", text="hi")
    assert info.value.response.status_code == 429
    assert info.value.response["error"] == "ratelimited"
    assert info.value.response.headers["Retry-After"] == "7"
    assert fake.posts() == []
    failed = fake.calls_to("chat.postMessage")[0]
    assert failed.status == 429
    assert not failed.ok

    assert client.chat_postMessage(channel="C1", text="hi")["ok"] is True
    assert len(fake.posts("C1")) == 1


def test_fail_next_429_default_retry_after_and_count(fake: FakeSlack) -> None:
    client = WebClient(token="xoxb-test", base_url=fake.url, retry_handlers=[])
    fake.fail_next("chat.postMessage", status=429, count=2)
    for _ in range(2):
        with pytest.raises(SlackApiError) as info:
            client.chat_postMessage(channel="C1", text="hi")
        assert info.value.response.headers["Retry-After"] == "1"
    assert client.chat_postMessage(channel="C1", text="hi")["ok"] is True


def test_fail_next_500_and_api_error(fake: FakeSlack, client: WebClient) -> None:
    fake.fail_next("chat.postMessage", status=500)
    with pytest.raises(SlackApiError) as info:
        client.chat_postMessage(channel="C1", text="hi")
    assert info.value.response.status_code == 500
    assert fake.posts() == []

    fake.fail_next("chat.postMessage", status=200, error="channel_not_found")
    with pytest.raises(SlackApiError) as info:
        client.chat_postMessage(channel="C1", text="hi")
    assert info.value.response.status_code == 200
    assert info.value.response["error"] == "channel_not_found"
    assert fake.posts() == []
    assert [c.status for c in fake.calls_to("chat.postMessage")] == [500, 200]


def test_enforce_rate_limit_per_channel(fake: FakeSlack) -> None:
    client = WebClient(token="xoxb-test", base_url=fake.url, retry_handlers=[])
    fake.enforce_rate_limit(1.0)
    client.chat_postMessage(channel="C1", text="one")
    with pytest.raises(SlackApiError) as info:
        client.chat_postMessage(channel="C1", text="two")
    assert info.value.response.status_code == 429
    assert info.value.response["error"] == "ratelimited"
    assert int(info.value.response.headers["Retry-After"]) >= 1
    assert client.chat_postMessage(channel="C2", text="other channel")["ok"] is True
    assert fake.rate_limited == 1
    assert [c.body["text"] for c in fake.posts()] == ["one", "other channel"]

    fake.enforce_rate_limit(None)
    assert client.chat_postMessage(channel="C1", text="three")["ok"] is True


def test_users_lookup_by_email_case_insensitive(fake: FakeSlack, client: WebClient) -> None:
    fake.add_user("U1", "Dana.Rep@Example.com", tz="Europe/Berlin", real_name="Dana Rep")
    found = client.users_lookupByEmail(email="dana.rep@example.COM")
    assert found["user"]["id"] == "U1"
    assert found["user"]["tz"] == "Europe/Berlin"
    assert found["user"]["real_name"] == "Dana Rep"
    assert found["user"]["profile"]["email"] == "Dana.Rep@Example.com"

    info = client.users_info(user="U1")
    assert info["user"]["name"] == "Dana.Rep"

    with pytest.raises(SlackApiError) as missing:
        client.users_lookupByEmail(email="nobody@example.com")
    assert missing.value.response["error"] == "users_not_found"


def test_files_upload_v2_records_content(fake: FakeSlack, client: WebClient) -> None:
    csv_text = "account,owner\nAcme,U1\n"
    result = client.files_upload_v2(
        channel="C1", filename="pipeline.csv", content=csv_text, title="Pipeline", initial_comment="weekly"
    )
    assert result["ok"] is True
    assert result["file"]["title"] == "Pipeline"

    complete = fake.calls_to("files.completeUploadExternal")
    assert len(complete) == 1
    assert complete[0].body["content"] == csv_text
    assert complete[0].body["files"][0]["id"] == result["file"]["id"]
    assert fake.calls_to("upload")[0].body["content"] == csv_text
    shared = client.conversations_history(channel="C1")["messages"]
    assert shared[0]["text"] == "weekly"


def test_views_open_echoes_view(fake: FakeSlack, client: WebClient) -> None:
    view = {"type": "modal", "title": {"type": "plain_text", "text": "Log"}, "blocks": []}
    opened = client.views_open(trigger_id="123.456", view=view)
    assert opened["view"]["id"].startswith("V")
    assert opened["view"]["hash"]
    assert opened["view"]["title"] == view["title"]
    assert fake.calls_to("views.open")[0].body["view"] == view
    updated = client.views_update(view_id=opened["view"]["id"], view=view)
    assert updated["view"]["id"] == opened["view"]["id"]


def test_response_url_post_recorded(fake: FakeSlack) -> None:
    url = fake.response_url("tok1")
    assert url.endswith("/response/tok1")
    assert fake.response_url() != fake.response_url()
    webhook = WebhookClient(url)
    response = webhook.send(text="done", replace_original=True)
    assert response.status_code == 200
    assert response.body == "ok"
    [call] = fake.calls_to("response_url")
    assert call.body == {"text": "done", "replace_original": True}
    assert call.path == "/response/tok1"


def test_not_authed_without_token(fake: FakeSlack) -> None:
    anonymous = WebClient(base_url=fake.url)
    with pytest.raises(SlackApiError) as info:
        anonymous.chat_postMessage(channel="C1", text="hi")
    assert info.value.response["error"] == "not_authed"
    assert fake.posts() == []

    # A token form field is accepted as well as the Authorization header.
    form = WebClient(base_url=fake.url)
    assert form.api_call("auth.test", params={"token": "xoxb-form"})["ok"] is True


def test_unknown_method_is_ok_and_unknown_path_404(fake: FakeSlack, client: WebClient) -> None:
    assert client.api_call("reactions.add", params={"channel": "C1", "name": "tada"})["ok"] is True
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(fake.url.replace("/api/", "/nowhere"), timeout=5)  # noqa: S310
    assert info.value.code == 404


def test_wait_for_returns_when_call_arrives(fake: FakeSlack, client: WebClient) -> None:
    timer = threading.Timer(0.1, lambda: client.chat_postMessage(channel="C1", text="later"))
    timer.start()
    try:
        calls = fake.wait_for(lambda cs: any(c.method == "chat.postMessage" for c in cs), timeout=5)
    finally:
        timer.join()
    assert calls[-1].body["text"] == "later"


def test_wait_for_times_out_with_summary(fake: FakeSlack, client: WebClient) -> None:
    client.chat_postMessage(channel="C1", text="only this")
    started = time.monotonic()
    with pytest.raises(AssertionError) as info:
        fake.wait_for(lambda cs: len(fake.posts("C2")) > 0, timeout=0.3)
    assert 0.25 <= time.monotonic() - started < 3
    assert "chat.postMessage" in str(info.value)
    assert "only this" in str(info.value)


def test_delay_after_effect_posts_although_client_times_out(fake: FakeSlack) -> None:
    impatient = WebClient(token="xoxb-test", base_url=fake.url, timeout=0.3, retry_handlers=[])  # type: ignore[arg-type]
    fake.delay_next("chat.postMessage", seconds=1.0)
    with pytest.raises(OSError):
        impatient.chat_postMessage(channel="C1", text="slow")
    assert [c.body["text"] for c in fake.posts("C1")] == ["slow"]


def test_reset_forgets_calls_and_faults_keeps_users(fake: FakeSlack, client: WebClient) -> None:
    fake.add_user("U1", "a@example.com")
    client.chat_postMessage(channel="C1", text="x")
    fake.fail_next("chat.postMessage", status=500)
    fake.reset()
    assert fake.get_calls() == []
    assert client.chat_postMessage(channel="C1", text="y")["ok"] is True
    assert client.users_info(user="U1")["user"]["id"] == "U1"
    assert isinstance(fake.calls[0], SlackCall)
