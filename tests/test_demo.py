"""``alignbot demo``: a simulated week, told as a transcript a person can read, and its Slack-like page."""

from __future__ import annotations

import datetime as dt
import html
import io
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import bot.demo
from bot.cli import main
from bot.config import EXAMPLE_CONFIG
from bot.fakeslack import FakeSlack, SlackCall
from bot.transcript import (
    Directory,
    Entry,
    Transcript,
    blocks_to_html,
    blocks_to_text,
    mrkdwn_to_html,
    mrkdwn_to_text,
)

# A week with a Monday feedback digest and no US holiday: Tue Oct 13 to Mon Oct 19, 2026.
TODAY = dt.date(2026, 10, 21)
DIRECTORY = Directory(
    users={"U0AVA": "Ava Ross", "U0SAM": "Sam Weber"},
    channels={"C0VOC": "voice-of-customer", "C0MKTG": "marketing"},
)


class _CapturedFake(FakeSlack):
    """The demo's fake Slack, kept after the run so a test can read what Slack received."""

    last: FakeSlack | None = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _CapturedFake.last = self


@dataclass
class DemoRun:
    status: int
    transcript: str
    page: str
    fake: FakeSlack
    warnings: list[logging.LogRecord]


class _Warnings(logging.Handler):
    """Collects every warning or error logged during a run: the demo must log none."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _run(monkeypatch: pytest.MonkeyPatch, tmp: Path, **kwargs: Any) -> DemoRun:
    monkeypatch.setattr(bot.demo, "FakeSlack", _CapturedFake)
    out = io.StringIO()
    page = tmp / "demo.html"
    warnings = _Warnings()
    logging.getLogger().addHandler(warnings)
    try:
        status = bot.demo.run_demo(out=out, html=str(page), today=TODAY, **kwargs)
    finally:
        logging.getLogger().removeHandler(warnings)
    assert _CapturedFake.last is not None
    return DemoRun(status, out.getvalue(), page.read_text(encoding="utf-8"), _CapturedFake.last, warnings.records)


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """One default 7-day run, shared by the tests that read it."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        return _run(monkeypatch, tmp_path_factory.mktemp("week"), days=7, seed=11)


def _entries(transcript: str) -> list[list[str]]:
    """The transcript's entries: a heading line ("Tue Oct 13 10:32 EDT · where · who…") and its body."""
    entries: list[list[str]] = []
    for line in transcript.splitlines():
        if re.match(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) \w{3} \d{1,2} \d\d:\d\d ", line):
            entries.append([line])
        elif entries and line.startswith("    "):
            entries[-1].append(line.strip())
        elif entries and not line.strip():
            entries.append([])
    return [e for e in entries if e]


def _flat(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


def _quoted_feedback(post: SlackCall) -> str:
    """The customer's words in a feedback post Slack received, as a person reads them."""
    section = post.body["blocks"][0]["text"]["text"]
    quote = "\n".join(line[1:] for line in section.split("\n") if line.startswith(">"))
    return quote.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


# --- the week, as people see it -----------------------------------------------------------------


def test_the_week_runs_clean_and_fast_enough(week: DemoRun) -> None:
    assert week.status == 0
    assert [r.getMessage() for r in week.warnings] == []
    assert week.transcript.startswith("alignbot demo: 7 simulated days, Tue Oct 13 to Mon Oct 19, seed 11")


def test_reps_feedback_reaches_voice_of_customer_crediting_them(week: DemoRun) -> None:
    posts = week.fake.posts("C0VOC")
    assert len(posts) >= 8  # 2-5 a workday over five workdays, less the ones after hours on Monday
    reps = {"U0AVA", "U0BEN", "U0CHLOE", "U0DIEGO", "U0MIA"}
    credited = {m for p in posts for m in re.findall(r"<@(U\w+)>", p.body["blocks"][0]["text"]["text"])}
    assert credited and credited <= reps
    categories = {re.match(r"\*(.+?)\*", p.body["blocks"][0]["text"]["text"]).group(1) for p in posts}  # type: ignore[union-attr]
    assert categories == {"Objection", "Competitor", "Pricing", "Messaging", "Product gap", "Praise"}

    voc = [e for e in _entries(week.transcript) if e[0].endswith(" · #voice-of-customer · alignbot")]
    assert len(voc) == len(posts)
    names = {"Ava Ross", "Ben Okafor", "Chloe Park", "Diego Alvarez", "Mia Chen"}
    for entry in voc:
        who = re.search(r"feedback from @([A-Z][a-z]+ [A-Z][a-z]+)", entry[1])
        assert who and who.group(1) in names, entry
        assert "[Acted on]" in entry or any(line.startswith("✅ Acted on by @") for line in entry)


def test_feedback_is_sent_during_each_reps_working_hours(week: DemoRun) -> None:
    zones = {"Ava Ross": "America/Los_Angeles", "Chloe Park": "America/Chicago"}
    for entry in _entries(week.transcript):
        typed = re.match(r"^(\w{3} \w{3} \d+ \d\d:\d\d) E[DS]T · #sales · ([A-Za-z ]+) typed: /feedback", entry[0])
        if not typed:
            continue
        moment = dt.datetime.strptime(f"2026 {typed.group(1)}", "%Y %a %b %d %H:%M")
        eastern = moment.replace(tzinfo=bot.demo.ZoneInfo("America/New_York"))
        local = eastern.astimezone(bot.demo.ZoneInfo(zones.get(typed.group(2), "America/New_York")))
        assert local.weekday() < 5 and 9 <= local.hour < 17, entry[0]


def test_a_channel_broadcast_typed_by_a_rep_is_escaped(week: DemoRun) -> None:
    received = json.dumps([c.body for c in week.fake.calls if c.method.startswith("chat.")])
    assert "<!channel>" not in received and "<!here>" not in received and "<!everyone>" not in received
    attempt = [p for p in week.fake.posts("C0VOC") if "&lt;!channel&gt;" in p.body["blocks"][0]["text"]["text"]]
    assert len(attempt) == 1
    assert "│ <!channel> heads up:" in week.transcript  # shown literally, as Slack shows it
    assert "@channel" not in week.transcript


def test_a_mistyped_category_gets_the_usage_then_the_retyped_one_goes_through(week: DemoRun) -> None:
    entries = _entries(week.transcript)
    usage = next(i for i, e in enumerate(entries) if any("is not a feedback category. Did you mean" in x for x in e))
    assert "(only visible to" in entries[usage][0]
    retyped = entries[usage + 1][0]
    assert "typed: /feedback" in retyped
    assert "Thanks! Your" in " ".join(entries[usage + 2])


def test_the_form_is_opened_and_submitted(week: DemoRun) -> None:
    assert re.search(r"· #sales · \w+ \w+ typed: /feedback\n", week.transcript)
    assert re.search(r"alignbot opened “Customer feedback” for [\w ]+ \(only visible to them\)", week.transcript)
    assert re.search(r"submitted “Customer feedback”\n    Category: \w+", week.transcript)
    strengths = ("Mentioned in passing", "Came up repeatedly", "Deal-breaker")  # only the form asks for it
    contexts = [p.body["blocks"][1]["elements"][0]["text"] for p in week.fake.posts("C0VOC")]
    assert any(strength in context for context in contexts for strength in strengths)


def test_marketing_acts_on_feedback_and_the_rep_hears_back(week: DemoRun) -> None:
    dms = [p for p in week.fake.posts() if p.body["channel"].startswith("U")]
    assert dms, "no rep was told that marketing acted on their feedback"
    assert all(p.body["channel"] in {"U0AVA", "U0BEN", "U0CHLOE", "U0DIEGO", "U0MIA"} for p in dms)
    assert all("acted on your" in p.body["blocks"][0]["text"]["text"] for p in dms)
    entries = _entries(week.transcript)
    dm = next(e for e in entries if re.search(r" · DM → [\w ]+ · alignbot$", e[0]))
    assert re.match(r"✅ @\w+ \w+ in marketing acted on your \*[\w ]+\* feedback", dm[1])
    assert dm[2].startswith("│ ")  # the marketer's note, quoted
    updates = week.fake.calls_to("chat.update")
    assert len(updates) == len(dms)
    assert all("Acted on by" in json.dumps(u.body["blocks"]) for u in updates)
    assert re.search(r"#voice-of-customer · alignbot edited its message of \w{3} \w{3} \d+ \d\d:\d\d", week.transcript)


def test_a_second_click_on_a_closed_item_is_told_it_was_already_acted_on(week: DemoRun) -> None:
    answers = [c for c in week.fake.calls_to("response_url") if "Already acted on" in str(c.body.get("text"))]
    assert len(answers) == 1
    assert answers[0].body["response_type"] == "ephemeral"
    assert re.search(r"alignbot \(only visible to [\w ]+\)\n    Already acted on by @\w+ \w+", week.transcript)


def test_the_monday_digest_reaches_marketing_with_counts(week: DemoRun) -> None:
    digests = week.fake.posts("C0MKTG")
    assert len(digests) == 1
    entry = next(e for e in _entries(week.transcript) if " · #marketing · alignbot" in e[0])
    assert entry[0].startswith("Mon Oct 19 09:00 EDT")
    assert entry[1] == "Customer feedback, Oct 12 – Oct 18"
    total = len([p for p in week.fake.posts("C0VOC") if p is not None])
    body = "\n".join(entry)
    assert re.search(r"\*(\d+)\* items this week", body)
    week_count = int(re.search(r"\*(\d+)\* items this week", body).group(1))  # type: ignore[union-attr]
    assert 0 < week_count <= total
    assert re.search(r"Pricing: \*\d+\* \(▲ \d+ vs\. 0\)", body)
    assert "*Accounts named most*" in body and "*Competitors named most*" in body


def test_the_summary_counts_messages_by_kind_and_dms_per_person(week: DemoRun) -> None:
    summary = week.transcript[week.transcript.index("Summary: ") :]
    posts = len(week.fake.posts("C0VOC"))
    assert re.search(rf"^  feedback\.post\s+{posts}$", summary, re.MULTILINE)
    assert re.search(r"^  feedback\.acted_dm\s+\d+$", summary, re.MULTILINE)
    assert re.search(r"^  feedback\.post_update\s+\d+$", summary, re.MULTILINE)
    assert re.search(r"^  feedback\.digest\s+1$", summary, re.MULTILINE)
    assert re.search(r"^  ephemeral answers\s+\d+", summary, re.MULTILINE)
    dm_line = re.search(r"^Bot DMs per person per workday: median (\d+(?:\.\d+)?), max (\d+)", summary, re.MULTILINE)
    assert dm_line
    dms = [p for p in week.fake.posts() if p.body["channel"].startswith("U")]
    assert int(dm_line.group(2)) >= 1 and float(dm_line.group(1)) <= int(dm_line.group(2))
    assert "over 9 people and 5 workdays each" in summary
    assert f"{len(dms)} DMs in all" in summary


def test_the_page_looks_like_slack_and_escapes_the_data(week: DemoRun) -> None:
    page = week.page
    assert page.startswith("<!DOCTYPE html>")
    for channel in ("voice-of-customer", "marketing", "sales"):
        assert f"# {channel}</span>" in page  # in the sidebar
    visible = _flat(html.unescape(re.sub(r"<[^>]+>", " ", page)))
    for post in week.fake.posts("C0VOC"):
        assert _flat(_quoted_feedback(post)) in visible
    assert '<span class="mention">@' in page
    assert '<button type="button" class="bk-button bk-primary">Acted on</button>' in page
    assert "<script" not in page.lower()
    assert "&lt;!channel&gt; heads up" in page  # the attempt, escaped, not a broadcast


# --- same seed, same week; the CLI ----------------------------------------------------------------


def test_the_same_seed_gives_the_same_transcript_and_another_seed_another(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first = _run(monkeypatch, tmp_path, days=3, seed=5)
    second = _run(monkeypatch, tmp_path, days=3, seed=5)
    other = _run(monkeypatch, tmp_path, days=3, seed=6)
    assert first.transcript == second.transcript
    assert first.page == second.page
    assert other.transcript != first.transcript


def test_names_from_the_config_are_escaped_in_the_page(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    hostile = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    for rep in ("Ava Ross", "Ben Okafor", "Chloe Park", "Diego Alvarez"):
        hostile = hostile.replace(f'name = "{rep}"', f'name = "{rep} <script>alert(1)</script>"')
    config = tmp_path / "alignment.toml"
    config.write_text(hostile, encoding="utf-8")
    run = _run(monkeypatch, tmp_path, days=2, seed=7, config=str(config))
    assert run.status == 0
    assert "<script" not in run.page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in run.page


def test_a_message_the_bot_holds_back_goes_out_when_due_on_the_simulated_clock(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import bot.services.feedback as feedback

    enqueue = feedback.enqueue

    def held_for_three_hours(session: Any, **kwargs: Any) -> bool:
        if kwargs["kind"] == "feedback.acted_dm":
            kwargs["not_before"] = kwargs["now"] + dt.timedelta(hours=3)
        return enqueue(session, **kwargs)

    monkeypatch.setattr(feedback, "enqueue", held_for_three_hours)
    run = _run(monkeypatch, tmp_path, days=7, seed=11)
    assert run.status == 0

    def when(heading: str) -> dt.datetime:
        return dt.datetime.strptime("2026 " + heading[:16], "%Y %a %b %d %H:%M")

    entries = _entries(run.transcript)
    acted = sorted(when(e[0]) for e in entries if "submitted “Acted on”" in e[0])
    dms = sorted(when(e[0]) for e in entries if " · DM → " in e[0])
    assert dms and len(dms) <= len(acted)
    assert all(dm - dt.timedelta(hours=3) in acted for dm in dms)  # not at the next scripted step


def test_the_command_line_demo_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--days", "2"]) == 0
    out = capsys.readouterr().out
    assert "alignbot demo: 2 simulated days" in out
    assert "Bot DMs per person per workday: median" in out


def test_a_bad_day_count_is_refused() -> None:
    out = io.StringIO()
    assert bot.demo.run_demo(days=0, out=out) == 2
    assert "--days must be 1 or more" in out.getvalue()


# --- Block Kit as a person reads it ---------------------------------------------------------------

DIGEST_BLOCKS: list[dict[str, Any]] = [
    {"type": "header", "text": {"type": "plain_text", "text": "Customer feedback, Nov 9 – Nov 15"}},
    {"type": "section", "text": {"type": "mrkdwn", "text": "*13* items this week, ▲ 13 against the week before (0)."}},
    {
        "type": "section",
        "fields": [
            {"type": "mrkdwn", "text": "*Accounts named most*\nHarbor &amp; Finch — 2\nCobalt Freight — 1"},
            {"type": "mrkdwn", "text": "*Competitors named most*\nHooli — 2"},
        ],
    },
    {"type": "divider"},
    {
        "type": "section",
        "text": {
            "type": "mrkdwn",
            "text": ":white_check_mark: <@U0SAM> acted on feedback from <@U0AVA|ava> in <#C0VOC>:\n"
            ">They said &lt;!channel&gt; &amp; <https://example.com/tco|the TCO page> helped\n"
            "&gt; not a quote",
        },
    },
    {
        "type": "context",
        "elements": [
            {"type": "mrkdwn", "text": "Due <!date^1763046000^{date_short_pretty} at {time}|Thu Nov 13, 10:00 EST>"},
            {"type": "plain_text", "text": "#4"},
        ],
    },
    {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "action_id": "a",
                "text": {"type": "plain_text", "text": "Acted on"},
                "style": "primary",
            },
            {"type": "static_select", "action_id": "b", "placeholder": {"type": "plain_text", "text": "Snooze"}},
        ],
    },
]


def test_block_kit_to_text_reads_like_the_message() -> None:
    assert blocks_to_text(DIGEST_BLOCKS, DIRECTORY) == [
        "Customer feedback, Nov 9 – Nov 15",
        "═" * len("Customer feedback, Nov 9 – Nov 15"),
        "*13* items this week, ▲ 13 against the week before (0).",
        "*Accounts named most*   *Competitors named most*",
        "Harbor & Finch — 2      Hooli — 2",
        "Cobalt Freight — 1",
        "─" * 40,
        "✅ @Sam Weber acted on feedback from @Ava Ross in #voice-of-customer:",
        "│ They said <!channel> & the TCO page (https://example.com/tco) helped",
        "> not a quote",
        "Due Thu Nov 13, 10:00 EST  #4",
        "[Acted on]  [Snooze ▾]",
    ]


def test_mrkdwn_to_text_resolves_entities_and_unknown_ids() -> None:
    assert mrkdwn_to_text("<@U0NOBODY> in <#C0NEW|deals> <!here> <mailto:a@b.example>", DIRECTORY) == [
        "@U0NOBODY in #deals @here mailto:a@b.example"
    ]
    assert mrkdwn_to_text("&amp;lt; stays &amp;lt; :memo: :custom_emoji:", DIRECTORY) == [
        "&lt; stays &lt; 📝 :custom_emoji:"
    ]


def test_mrkdwn_to_html_formats_and_escapes() -> None:
    rendered = str(
        mrkdwn_to_html(
            "*Pricing* feedback from <@U0AVA> _today_ ~old~ `code &lt;b&gt;`\n"
            '>&lt;script&gt;alert(1)&lt;/script&gt; said "hi"\n'
            "<javascript:alert(1)|click> <https://example.com?a=1&amp;b=2|ok> <!channel>",
            DIRECTORY,
        )
    )
    assert rendered.startswith('<b>Pricing</b> feedback from <span class="mention">@Ava Ross</span> <i>today</i>')
    assert "<s>old</s> <code>code &lt;b&gt;</code>" in rendered
    assert "<blockquote>&lt;script&gt;alert(1)&lt;/script&gt; said &quot;hi&quot;</blockquote>" in rendered
    assert "javascript:" not in rendered.replace("click", "")  # an unsafe link is shown as its label only
    assert '<a href="https://example.com?a=1&amp;b=2" rel="noopener noreferrer">ok</a>' in rendered
    assert '<span class="mention broadcast">@channel</span>' in rendered
    assert "<script" not in rendered


def test_snake_case_and_names_with_underscores_are_not_italicised() -> None:
    directory = Directory(users={"U1": "_Ann_"})
    rendered = str(mrkdwn_to_html("product_gap <@U1> *bold_text*", directory))
    assert rendered == 'product_gap <span class="mention">@_Ann_</span> <b>bold_text</b>'


def test_block_kit_to_html_escapes_every_value() -> None:
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "<img src=x onerror=alert(1)>"}},
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": "*A*\n&lt;b&gt;"}, {"type": "plain_text", "text": "<b>"}],
        },
        {"type": "context", "elements": [{"type": "image", "image_url": "https://x", "alt_text": "<i>"}]},
        {"type": "divider"},
        {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "<u>Go</u>"}}]},
    ]
    rendered = str(blocks_to_html(blocks, DIRECTORY))
    assert "<img" not in rendered and "<u>" not in rendered and "<i>" not in rendered
    assert '<div class="bk-header">&lt;img src=x onerror=alert(1)&gt;</div>' in rendered
    assert '<div class="bk-fields"><div class="bk-field"><b>A</b><br>&lt;b&gt;</div>' in rendered
    assert '<hr class="bk-divider">' in rendered
    assert '<button type="button" class="bk-button">&lt;u&gt;Go&lt;/u&gt;</button>' in rendered


def test_an_edit_replaces_the_message_in_the_page_and_is_told_in_the_text() -> None:
    tz = bot.demo.ZoneInfo("America/New_York")
    at = dt.datetime(2026, 11, 10, 15, 32, tzinfo=dt.UTC)
    transcript = Transcript(DIRECTORY, tz)
    post = {"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "first version"}}]}
    edit = {"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "second version"}}]}
    transcript.add(Entry(at, "C0VOC", "alignbot", "message", payload=post, ts="1.000001"))
    transcript.add(Entry(at + dt.timedelta(hours=2), "C0VOC", "alignbot", "edit", payload=edit, edits="1.000001"))
    transcript.add(Entry(at, "U0AVA", "alignbot", "message", payload={"text": "hello <@U0AVA>"}, ts="1.000002"))
    text = transcript.to_text()
    assert "Tue Nov 10 10:32 EST · #voice-of-customer · alignbot\n    first version" in text
    assert "Tue Nov 10 12:32 EST · #voice-of-customer · alignbot edited its message of Tue Nov 10 10:32 EST" in text
    assert "Tue Nov 10 10:32 EST · DM → Ava Ross · alignbot\n    hello @Ava Ross" in text
    page = transcript.to_html(title="t")
    assert "second version" in page and "first version" not in page and "(edited)" in page
    assert "alignbot → Ava Ross" in page
