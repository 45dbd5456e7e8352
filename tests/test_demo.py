"""``alignbot demo``: a simulated week, told as a transcript a person can read, and its Slack-like page."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import bot.demo.runner as demo_runner
from bot.cli import main
from bot.config import EXAMPLE_CONFIG
from bot.demo.fakeslack import FakeSlack, SlackCall
from bot.demo.transcript import (
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
    seconds: float


class _Warnings(logging.Handler):
    """Collects every warning or error logged during a run: the demo must log none."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _run(monkeypatch: pytest.MonkeyPatch, tmp: Path, **kwargs: Any) -> DemoRun:
    monkeypatch.setattr(demo_runner, "FakeSlack", _CapturedFake)
    out = io.StringIO()
    page = tmp / "demo.html"
    warnings = _Warnings()
    logging.getLogger().addHandler(warnings)
    started = time.perf_counter()
    try:
        status = demo_runner.run_demo(out=out, html=str(page), today=TODAY, **kwargs)
    finally:
        logging.getLogger().removeHandler(warnings)
    seconds = time.perf_counter() - started
    assert _CapturedFake.last is not None
    text, fake = out.getvalue(), _CapturedFake.last
    return DemoRun(status, text, page.read_text(encoding="utf-8"), fake, warnings.records, seconds)


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """One default 7-day run, shared by the tests that read it.

    A CRM request only stores its events, as in production: the demo applies them itself, with
    the projector, or no win, clock or nudge of these tests would be seen.
    """
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
    assert week.seconds < 10  # the contract says a minute (PRODUCT.md section 3); it takes a few seconds


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
        eastern = moment.replace(tzinfo=ZoneInfo("America/New_York"))
        local = eastern.astimezone(ZoneInfo(zones.get(typed.group(2), "America/New_York")))
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


def _feedback_dms(fake: FakeSlack) -> list[SlackCall]:
    """The DMs telling a rep that marketing acted on their feedback."""
    return [p for p in fake.posts() if p.body["channel"].startswith("U") and _key(p).startswith("feedback:")]


def test_marketing_acts_on_feedback_and_the_rep_hears_back(week: DemoRun) -> None:
    dms = _feedback_dms(week.fake)
    assert dms, "no rep was told that marketing acted on their feedback"
    assert all(p.body["channel"] in {"U0AVA", "U0BEN", "U0CHLOE", "U0DIEGO", "U0MIA"} for p in dms)
    assert all("acted on your" in p.body["blocks"][0]["text"]["text"] for p in dms)
    entries = _entries(week.transcript)
    dm = next(
        e for e in entries if re.search(r" · DM → [\w ]+ · alignbot", e[0]) and "in marketing acted on your" in e[1]
    )
    assert re.match(r"✅ @\w+ \w+ in marketing acted on your \*[\w ]+\* feedback", dm[1])
    assert dm[2].startswith("│ ")  # the marketer's note, quoted
    updates = [u for u in week.fake.calls_to("chat.update") if u.body["channel"] == "C0VOC"]
    assert len(updates) == len(dms)
    assert all("Acted on by" in json.dumps(u.body["blocks"]) for u in updates)
    assert re.search(r"#voice-of-customer · alignbot edited its message of \w{3} \w{3} \d+ \d\d:\d\d", week.transcript)


def test_a_second_click_on_a_closed_item_is_told_it_was_already_acted_on(week: DemoRun) -> None:
    answers = [c for c in week.fake.calls_to("response_url") if "Already acted on" in str(c.body.get("text"))]
    assert len(answers) == 1
    assert answers[0].body["response_type"] == "ephemeral"
    assert re.search(r"alignbot \(only visible to [\w ]+\)\n    Already acted on by @\w+ \w+", week.transcript)


def test_the_monday_digest_reaches_marketing_with_counts(week: DemoRun) -> None:
    # The scorecard posts to #marketing on Monday too: the digest is the post its outbox key names.
    digests = [p for p in week.fake.posts("C0MKTG") if _key(p).startswith("feedback-digest:")]
    assert len(digests) == 1
    entry = next(
        e for e in _entries(week.transcript) if " · #marketing · alignbot" in e[0] and e[1].startswith("Customer")
    )
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
    assert page.lower().count("<script") == 1  # the page's own channel switcher, and nothing from the data
    assert "&lt;!channel&gt; heads up" in page  # the attempt, escaped, not a broadcast


# --- the CRM's week and the wins it brings ------------------------------------------------------

SALES = {"U0AVA", "U0BEN", "U0CHLOE", "U0DIEGO", "U0MIA"}
MARKETING = {"U0OMAR", "U0PRIYA", "U0SAM", "U0LENA"}


def _text(blocks: list[dict[str, Any]]) -> str:
    """Every text of a message's blocks, as Slack received it."""
    parts: list[str] = []
    for block in blocks:
        if isinstance(block.get("text"), dict):
            parts.append(block["text"]["text"])
        for element in block.get("elements", []) + block.get("fields", []):
            if isinstance(element, dict) and isinstance(element.get("text"), str):
                parts.append(element["text"])
    return "\n".join(parts)


def _win_posts(fake: FakeSlack) -> list[SlackCall]:
    return [c for c in fake.posts("C0WINS") if "thread_ts" not in c.body]


def _thread(fake: FakeSlack, post: SlackCall) -> list[SlackCall]:
    return [c for c in fake.posts("C0WINS") if c.body.get("thread_ts") == post.response["ts"]]


def _key(call: SlackCall) -> str:
    return str(call.body["metadata"]["event_payload"]["key"])


def _big_win(fake: FakeSlack) -> SlackCall:
    [big] = [p for p in _win_posts(fake) if p.body["blocks"][0]["type"] == "header"]
    return big


def test_a_big_win_reaches_wins_crediting_sales_and_marketing_with_the_model(week: DemoRun) -> None:
    big = _big_win(week.fake)
    assert big.body["blocks"][0]["text"]["text"].startswith(":trophy: Big win: ")
    shown = _text(big.body["blocks"])
    closed = re.search(r"\*\$(\d{2,3}),(\d{3})\* · closed by <@(U\w+)> with <@(U\w+)>", shown)
    assert closed, shown
    assert int(closed.group(1) + closed.group(2)) >= 50_000
    assert {closed.group(3), closed.group(4)} <= SALES and closed.group(3) != closed.group(4)
    # Five touches under the W-shaped model: 30% first, lead creation and last, 5% each for the two others.
    shares = re.findall(r"• \*(\d+)%\* .+ · <@(U\w+)>", shown)
    assert sorted(int(share) for share, _ in shares) == [5, 5, 30, 30, 30]
    assert {who for _, who in shares} <= MARKETING and len({who for _, who in shares}) >= 2
    assert "(webinar, first touch)" in shown and "lead creation touch)" in shown and "last touch)" in shown
    assert re.search(r"Credit by the W-shaped model over 180 days: thank you <@U0(OMAR|PRIYA|SAM|LENA)> \d+%", shown)
    assert _key(big).startswith("win:006")

    journey = _text(_thread(week.fake, big)[0].body["blocks"])
    assert journey.startswith("*The journey*")
    assert ":handshake: Handed off to sales as MQL" in journey and ":handshake: Moved to Opportunity" in journey
    assert re.search(r"`Oct 14` :trophy: Closed won · <@" + closed.group(3) + ">", journey)


def test_every_win_is_posted_once_and_the_outbound_one_credits_sales_alone(week: DemoRun) -> None:
    posts = _win_posts(week.fake)
    wins = [p for p in posts if _key(p).startswith("win:")]
    assert len(wins) == 4 and len({_key(p) for p in wins}) == 4
    assert all(len(_thread(week.fake, p)) >= 1 for p in wins)  # each with its journey
    outbound = [p for p in wins if "No marketing touch is recorded" in _text(p.body["blocks"])]
    assert len(outbound) == 1
    assert not re.search(r"<@U0(OMAR|PRIYA|SAM|LENA)>", _text(outbound[0].body["blocks"]))
    split = [p for p in wins if len(set(re.findall(r"<@(U0(?:OMAR|PRIYA|SAM|LENA))>", _text(p.body["blocks"])))) >= 3]
    assert len(split) >= 2  # the big win and the one whose credit is split four ways


def test_the_backfill_posts_nothing(week: DemoRun) -> None:
    history = [e for e in _entries(week.transcript) if re.search(r" events \(history \d of \d\) → 202, ", e[0])]
    assert len(history) >= 2
    assert all(e[0].startswith("Tue Oct 13 00:00 EDT · POST /crm/events · CRM sent a batch of") for e in history)
    assert re.search(r"^\d+ touch\.recorded · \d+ lead\.\w+", history[0][1])
    assert re.search(r"^happened from (Jul|Aug) \d+ to \w{3} \d+, on [5-8] accounts$", history[0][2])
    before_the_week = [e for e in _entries(week.transcript) if e[0].startswith("Tue Oct 13 00:0")]
    assert all(" · POST /crm/events · " in e[0] for e in before_the_week)
    assert all(p.body["blocks"] for p in week.fake.posts("C0WINS"))


def test_a_corrected_amount_edits_the_post_in_place(week: DemoRun) -> None:
    edits = [u for u in week.fake.calls_to("chat.update") if u.body["channel"] == "C0WINS"]
    amount = re.compile(r"\$\d{1,3}(?:,\d{3})*")
    corrected = []
    for post in _win_posts(week.fake):
        for edit in edits:
            if edit.body["ts"] == post.response["ts"] and "Withdrawn" not in _text(edit.body["blocks"]):
                before = amount.search(_text(post.body["blocks"]))
                after = amount.search(_text(edit.body["blocks"]))
                assert before and after
                corrected.append((before.group(0), after.group(0)))
    assert len(corrected) == 1
    assert corrected[0][0] != corrected[0][1]
    assert "(amount corrected: seats added before countersigning)" in _flat(week.transcript)


def test_a_reopened_win_is_marked_withdrawn(week: DemoRun) -> None:
    withdrawn = [
        u
        for u in week.fake.calls_to("chat.update")
        if u.body["channel"] == "C0WINS" and ":rewind: *Withdrawn*" in _text(u.body["blocks"])
    ]
    assert len(withdrawn) == 1
    [post] = [p for p in _win_posts(week.fake) if p.response["ts"] == withdrawn[0].body["ts"]]
    assert withdrawn[0].body["text"].startswith("~")
    assert "was reopened in the CRM, so this win no longer counts" in _text(withdrawn[0].body["blocks"])
    entry = next(e for e in _entries(week.transcript) if e[0].startswith("Mon Oct 19") and "#wins" in e[0])
    assert "alignbot edited its message of Tue Oct 13" in entry[0]
    assert entry[1].startswith("⏪ *Withdrawn*:")
    assert _key(post).startswith("win:")


def test_a_small_win_waits_for_the_five_oclock_digest(week: DemoRun) -> None:
    [digest] = [p for p in _win_posts(week.fake) if _key(p).startswith("wins-digest:")]
    shown = _text(digest.body["blocks"])
    assert shown.startswith(":sparkles: *Today's other wins*")
    line = re.search(r"• \*(.+?)\* · \$(\d,\d{3}) · <@(U\w+)>", shown)
    assert line and line.group(3) in SALES
    assert not any(line.group(1) in _text(p.body["blocks"]) for p in _win_posts(week.fake) if p is not digest)
    entry = next(e for e in _entries(week.transcript) if "Today's other wins" in " ".join(e))
    assert re.match(r"^\w{3} Oct \d+ 17:00 EDT · #wins · alignbot$", entry[0])


def test_the_owner_of_the_big_win_tells_how_it_was_won_in_its_thread(week: DemoRun) -> None:
    big = _big_win(week.fake)
    owner = re.search(r"closed by <@(U\w+)>", _text(big.body["blocks"])).group(1)  # type: ignore[union-attr]
    stories = [c for c in _thread(week.fake, big) if "How we won it" in _text(c.body["blocks"])]
    assert len(stories) == 1
    story = _text(stories[0].body["blocks"])
    assert story.startswith(f":speech_balloon: *How we won it*, by <@{owner}>\n>Their RevOps lead came in through")
    opened = [c for c in week.fake.calls_to("views.open") if c.body["view"]["callback_id"] == "win_story"]
    assert len(opened) == 1
    assert re.search(
        r"#wins, in the thread of “🏆 Big win: .+” · \w+ \w+ clicked \[Share how we won\]", _flat(week.transcript)
    )
    assert "submitted “How we won”" in week.transcript


def test_a_redelivered_event_is_answered_as_a_duplicate_and_posts_nothing(week: DemoRun) -> None:
    entries = _entries(week.transcript)
    [again] = [e for e in entries if "CRM sent deal.closed_won again" in e[0]]
    assert again[0].endswith("→ 202, 0 accepted, 1 duplicate")
    assert again[1].startswith("a redelivery of the event sent at ")
    big = _big_win(week.fake)
    assert sum(1 for p in _win_posts(week.fake) if _key(p) == _key(big)) == 1
    summary = week.transcript[week.transcript.index("Summary: ") :]
    sent = re.search(r"CRM events in \(POST /crm/events\): (\d+) sent in (\d+) signed requests", summary)
    counts = re.search(r"^  (\d+) accepted, 1 duplicate \(redelivered, stored once\), 0 ignored, 0 req", summary, re.M)
    assert sent and counts
    assert int(counts.group(1)) + 1 == int(sent.group(1))


def test_late_events_are_told_as_late_and_leads_arrive_in_working_hours(week: DemoRun) -> None:
    entries = _entries(week.transcript)
    late = [e for e in entries if " · POST /crm/events · " in e[0] and "before it arrived" in " ".join(e)]
    assert any("(marketing sync)" in e[0] for e in late)
    assert any("CRM sent lead.contacted" in e[0] for e in late)  # a call logged after the fact
    assert any("CRM sent deal.closed_lost" in e[0] for e in late)
    assert any("CRM sent lead.recycled" in e[0] for e in entries)
    for entry in entries:
        handed = re.match(
            r"^(\w{3}) \w{3} \d+ (\d\d):\d\d E[DS]T · POST /crm/events · CRM sent lead\.handed_off", entry[0]
        )
        if handed:
            assert handed.group(1) not in {"Sat", "Sun"} and 9 <= int(handed.group(2)) < 20, entry[0]


def test_the_summary_counts_the_win_messages_and_the_deals(week: DemoRun) -> None:
    summary = week.transcript[week.transcript.index("Summary: ") :]
    for kind, count in (("win.post", 4), ("win.journey", 4), ("win.digest", 1), ("win.story", 1)):
        assert re.search(rf"^  {re.escape(kind)}\s+{count}$", summary, re.MULTILINE), kind
    assert re.search(r"^  win\.update\s+[2-9]$", summary, re.MULTILINE)  # the correction and the withdrawal
    assert "Deals closed: 5 won (4 announced in #wins, 1 in the daily digest of smaller wins), 2 lost" in summary
    assert "1 reopened after its announcement: its post is marked withdrawn" in summary


def test_the_page_shows_wins_with_its_posts_and_threads(week: DemoRun) -> None:
    page = week.page
    assert '<span># wins</span><span class="count">5</span>' in page  # four wins and a digest
    visible = _flat(html.unescape(re.sub(r"<[^>]+>", " ", page)))
    for post in _win_posts(week.fake):
        names = re.findall(r"(?:win: |• \*)([^*,]+ — [^*,]+)", post.body["text"] + _text(post.body["blocks"]))
        assert names, post.body
        assert all(_flat(html.unescape(name)) in visible for name in names)
    assert '<div class="bk-header">🏆 Big win: ' in page
    wins = page[page.index('data-name="wins"') :]
    wins = wins[: wins.index("</section>")]
    assert wins.count('<div class="thread-count">') == 4  # each announced win's journey
    assert '<button type="button" class="bk-button">Share how we won</button>' in page
    assert "CRM → POST /crm/events</span>" in page


# --- the lead-handoff SLA, as the team lives it -------------------------------------------------

REPS = {"U0AVA": "Ava Ross", "U0BEN": "Ben Okafor", "U0CHLOE": "Chloe Park", "U0DIEGO": "Diego Alvarez"}
ZONES = {"Ava Ross": "America/Los_Angeles", "Chloe Park": "America/Chicago"}  # the others: New York
MIA = "mia.chen@northwind.example"


def _sla_posts(fake: FakeSlack, pattern: str) -> list[SlackCall]:
    """Messages Slack received whose outbox key matches ``pattern`` (``sla:<clock>:yellow``, …)."""
    return [p for p in fake.posts() if re.fullmatch(pattern, _key(p))]


def _lead_of(post: SlackCall) -> str:
    """The lead a nudge is about: its name, bold, first in the message."""
    found = re.search(r"\*([^*]+)\* at ", _text(post.body["blocks"]))
    assert found, post.body
    return found.group(1)


def _buttons(post: SlackCall) -> list[dict[str, Any]]:
    return [e for b in post.body["blocks"] if b["type"] == "actions" for e in b["elements"]]


def _local(heading: str, name: str) -> dt.datetime:
    """The moment of a transcript heading ("Tue Oct 13 10:32 EDT · …") in ``name``'s timezone."""
    eastern = dt.datetime.strptime("2026 " + heading[:16], "%Y %a %b %d %H:%M")
    moment = eastern.replace(tzinfo=ZoneInfo("America/New_York"))
    return moment.astimezone(ZoneInfo(ZONES.get(name, "America/New_York")))


def test_every_rep_gets_leads_handed_off_in_their_own_hours(week: DemoRun) -> None:
    owners: list[str] = []
    for entry in _entries(week.transcript):
        if "CRM sent lead.handed_off" in entry[0]:
            owner = re.search(r" → ([A-Z]\w+ [A-Z]\w+) as MQL", entry[1])
            assert owner, entry
            owners.append(owner.group(1))
            local = _local(entry[0], owner.group(1))
            assert local.weekday() < 5 and 9 <= local.hour < 17, entry  # in their 09:00-17:00
    assert set(owners) == set(REPS.values()) and len(owners) >= 15
    assert {p.body["channel"] for p in _sla_posts(week.fake, r"sla:\d+:yellow")} == set(REPS)


def test_a_yellow_flag_reaches_the_owner_with_its_buttons_and_due_time_in_their_zone(week: DemoRun) -> None:
    yellows = _sla_posts(week.fake, r"sla:\d+:yellow")
    assert 5 <= len(yellows) <= 12  # several, not one per lead: most leads are called well within the SLA
    for post in yellows:
        shown = _text(post.body["blocks"])
        assert shown.startswith(":large_yellow_circle: *"), shown
        assert "is waiting for your first touch: *1h* of business time left, due <!date^" in shown
        assert "SLA *mql-first-touch* (version 2026-09)" in shown
        buttons = _buttons(post)
        assert [b["action_id"] for b in buttons] == ["sla_contacted", "sla_recycle", "open_in_crm"]
        assert [b["text"]["text"] for b in buttons] == ["Mark contacted", "Recycle", "Open in CRM"]
        assert buttons[0]["value"] == buttons[1]["value"] == _key(post).split(":")[1]
        assert buttons[2]["url"].startswith("https://northwind.example.my.salesforce.com/00Q")
    zones = {p.body["channel"]: re.search(r"\|[^>]* (P|C|E)DT>", _text(p.body["blocks"])) for p in yellows}
    assert zones["U0AVA"] and zones["U0AVA"].group(1) == "P"  # Ava reads her due time in Los Angeles time
    assert zones["U0CHLOE"] and zones["U0CHLOE"].group(1) == "C"
    assert zones["U0BEN"] and zones["U0BEN"].group(1) == "E"


def test_after_a_yellow_flag_the_rep_calls_logged_in_the_crm_or_with_the_button(week: DemoRun) -> None:
    yellow = {_lead_of(p): p for p in _sla_posts(week.fake, r"sla:\d+:yellow")}
    red = {_lead_of(p) for p in _sla_posts(week.fake, r"sla:\d+:red")}
    clicked = [
        c
        for c in week.fake.calls_to("response_url")
        if c.body.get("replace_original") and "agenda item" not in str(c.body.get("text"))  # not /agenda's Covered
    ]
    assert len(clicked) == 2
    for answer in clicked:
        assert "marked contacted: the SLA was met" in _text(answer.body["blocks"])
    by_button = {_lead_of(c) for c in clicked}
    assert by_button <= set(yellow) and not by_button & red
    entries = _entries(week.transcript)
    assert sum(1 for e in entries if re.search(r" · DM → \w+ \w+ · \w+ \w+ clicked \[Mark contacted\]", e[0])) == 2
    edits = [e for e in entries if re.search(r" · DM → \w+ \w+ · alignbot edited its message of ", e[0])]
    assert sum(1 for e in edits if "marked contacted" in "\n".join(e)) == 2
    assert sum(1 for e in edits if "recycled to marketing" in "\n".join(e)) == 1  # the recycled lead's nudge
    in_crm = {
        name
        for name in set(yellow) - red - by_button
        if any("CRM sent lead.contacted" in e[0] and e[1].startswith(f"{name}, ") for e in entries)
    }
    assert len(in_crm) >= 2


def test_a_breach_sends_a_red_flag_and_escalates_to_the_manager_once_a_day(week: DemoRun) -> None:
    reds = _sla_posts(week.fake, r"sla:\d+:red")
    assert len(reds) == 4  # three breaches, and the one corrected later
    for post in reds:
        shown = _text(post.body["blocks"])
        assert shown.startswith(":red_circle: *") and "has reached its SLA deadline" in shown
        assert [b["action_id"] for b in _buttons(post)] == ["sla_contacted", "sla_recycle", "open_in_crm"]
    escalations = _sla_posts(week.fake, rf"sla:\d+:red:{re.escape(MIA)}")
    assert {p.body["channel"] for p in escalations} == {"U0MIA"}
    assert len(escalations) == 3
    for post in escalations:
        shown = _text(post.body["blocks"])
        assert re.match(r":red_circle: <@U0(AVA|BEN|CHLOE|DIEGO)> has not yet touched \*", shown), shown
        assert [b["action_id"] for b in _buttons(post)] == ["open_in_crm"]
    # Two breaches on one day: the manager gets the first by DM and the second in the 16:30 summary.
    entries = _entries(week.transcript)
    told = [e for e in entries if " · DM → Mia Chen · alignbot" in e[0] and e[1].startswith("🔴")]
    assert len({e[0][:10] for e in told}) == len(told)  # one breach DM a day
    [summary] = _sla_posts(week.fake, r"sla-summary:.+")
    assert summary.body["channel"] == "U0MIA"
    late = _text(summary.body["blocks"])
    assert "*Past the SLA* (2)" in late
    unescalated = [p for p in reds if not any(_key(e).startswith(_key(p) + ":") for e in escalations)]
    assert len(unescalated) == 1
    assert f"<@{unescalated[0].body['channel']}>: *{_lead_of(unescalated[0])}*" in late
    [entry] = [
        e for e in entries if " · DM → Mia Chen · alignbot" in e[0] and e[1] == "Your team's lead hand-offs today"
    ]
    assert re.match(r"^Thu Oct 15 16:30 EDT", entry[0])


def test_a_breach_due_at_the_owners_closing_time_reaches_the_manager_in_the_morning(week: DemoRun) -> None:
    entries = _entries(week.transcript)
    [held] = [e for e in entries if " · DM → Mia Chen · alignbot (queued " in e[0]]
    assert held[0].startswith("Wed Oct 14 08:00 EDT · DM → Mia Chen · alignbot (queued Tue Oct 13 20:00 in Mia")
    assert "quiet hours" in " ".join(held)
    assert any(line.startswith("🔴 @Ava Ross has not yet touched") for line in held)
    assert "Tue Oct 13 20:00 EDT · DM → Ava Ross · alignbot" in week.transcript  # 17:00 in Los Angeles


def test_a_lead_recycled_from_the_nudge_reaches_marketing_with_its_reason(week: DemoRun) -> None:
    [form] = [c for c in week.fake.calls_to("views.open") if c.body["view"]["callback_id"] == "sla_recycle"]
    [reason] = [b for b in form.body["view"]["blocks"] if b.get("block_id") == "reason"]
    assert "bad_fit" in [o["value"] for o in reason["element"]["options"]]
    [post] = [p for p in week.fake.posts("C0MKTG") if _key(p).startswith("lead:")]
    shown = _text(post.body["blocks"])
    assert re.match(
        r":recycle: <@U0\w+> sent \*[^*]+\* at [^*]+ back to marketing: \*Bad fit\*\n>8-person agency", shown
    )
    assert post.body["text"].startswith("Lead recycled to marketing: *")
    lead = _lead_of(post)
    yellow = [p for p in _sla_posts(week.fake, r"sla:\d+:yellow") if _lead_of(p) == lead]
    assert len(yellow) == 1 and f"<@{yellow[0].body['channel']}>" in shown  # the owner, from their nudge
    assert re.search(
        r"submitted “Recycle the lead”\n    Why: Bad fit\n    A note for marketing: 8-person", week.transcript
    )
    assert re.search(r"clicked \[Recycle\] on the yellow flag about " + re.escape(lead), _flat(week.transcript))


def test_a_contact_logged_before_the_deadline_but_synced_after_the_red_flag_is_corrected(week: DemoRun) -> None:
    corrections = _sla_posts(week.fake, r"sla:\d+:correction(:.+)?")
    assert sorted(p.body["channel"] for p in corrections) == ["U0BEN", "U0MIA"]
    clock = _key(corrections[0]).split(":")[1]
    [red] = _sla_posts(week.fake, rf"sla:{clock}:red")
    assert _sla_posts(week.fake, rf"sla:{clock}:red:{re.escape(MIA)}")  # the manager heard of it
    for post in corrections:
        shown = _text(post.body["blocks"])
        assert shown.startswith(f":large_green_circle: Correction: *{_lead_of(red)}*") and "*met* the SLA" in shown
    entries = _entries(week.transcript)
    synced = next(e for e in entries if "CRM sent lead.contacted" in e[0] and e[1].startswith(_lead_of(red) + ","))
    assert "logged from the phone, synced late · happened at " in synced[1]
    assert week.transcript.index(synced[0]) > week.transcript.index(f"🔴 *{_lead_of(red)}*")


def test_a_reassigned_lead_tells_both_owners(week: DemoRun) -> None:
    moved = _sla_posts(week.fake, r"sla:\d+:moved:0:(from|to)")
    assert {p.body["channel"]: _key(p).rsplit(":", 1)[1] for p in moved} == {"U0AVA": "from", "U0BEN": "to"}
    to = next(p for p in moved if p.body["channel"] == "U0BEN")
    assert re.search(
        r"is now yours \(from <@U0AVA>\), with \*\d+h( \d+m)?\* of business time left", _text(to.body["blocks"])
    )
    [gone] = [p for p in moved if p.body["channel"] == "U0AVA"]
    assert "moved to <@U0BEN>" in _text(gone.body["blocks"])
    # The reassignment is in New York's morning, Ava's night: her note waits for her 08:00.
    assert "Fri Oct 16 11:00 EDT · DM → Ava Ross · alignbot (queued 09:" in week.transcript


def test_a_friday_afternoon_hand_off_is_due_on_monday_and_sla_explains_why(week: DemoRun) -> None:
    entries = _entries(week.transcript)
    typed = [i for i, e in enumerate(entries) if re.search(r" · #sales · \w+ \w+ typed: /sla 00Q\w{15}$", e[0])]
    assert len(typed) == 1
    answer = entries[typed[0] + 1]
    assert "(only visible to" in answer[0]
    shown = "\n".join(answer)
    assert re.search(r"Started Fri Oct 16, 16:3\d EDT \(the hand-off to MQL\)", shown)
    assert re.search(r"due \*Mon Oct 19, 12:3\d EDT\*", _flat(shown))
    assert re.search(r"• Fri Oct 16 16:3\d–17:00\n• Mon Oct 19 09:00–12:3\d", shown)


def test_sla_lists_a_reps_open_clocks_soonest_first(week: DemoRun) -> None:
    entries = _entries(week.transcript)
    [typed] = [i for i, e in enumerate(entries) if e[0].endswith(" · #sales · Ben Okafor typed: /sla")]
    answer = entries[typed + 1]
    assert answer[0].endswith("· #sales · alignbot (only visible to Ben Okafor)")
    assert answer[1] == "*Your open SLA clocks*, soonest first (times in America/New_York):"
    dues = re.findall(r"left, due \w{3} (\d\d:\d\d)", _flat(" ".join(answer)))
    assert len(dues) >= 2 and dues == sorted(dues)
    reassigned = _lead_of(next(p for p in _sla_posts(week.fake, r"sla:\d+:moved:0:to")))
    assert f"*{reassigned}*" in " ".join(answer)


def test_no_dm_is_delivered_in_its_recipients_quiet_hours(week: DemoRun) -> None:
    dms = [e for e in _entries(week.transcript) if re.search(r" · DM → [\w ]+ · alignbot( \(queued |$)", e[0])]
    assert len(dms) == len([p for p in week.fake.posts() if p.body["channel"].startswith("U")])
    for entry in dms:
        name = re.search(r" · DM → ([\w ]+) · alignbot", entry[0]).group(1)  # type: ignore[union-attr]
        local = _local(entry[0], name)
        assert 8 <= local.hour < 20, entry[0]
    assert sum(1 for e in dms if "quiet hours" in " ".join(e)) >= 2  # held, then delivered in the morning
    assert "delivered in the recipient's quiet hours" not in week.transcript


def test_the_summary_reports_the_sla_and_a_low_dm_count(week: DemoRun) -> None:
    summary = week.transcript[week.transcript.index("Summary: ") :]
    assert "Lead-handoff SLA mql-first-touch 2026-09: first touch within 4h of business time" in summary
    started = re.search(
        r"^  (\d+) clocks started, (\d+) closed: (\d+) met, (\d+) met late, (\d+) recycled", summary, re.MULTILINE
    )
    assert started, summary
    count, closed, met, late, recycled = (int(g) for g in started.groups())
    assert (late, recycled) == (3, 2) and met + late + recycled == closed <= count
    assert met >= count // 2  # most are met
    assert re.search(
        r"^  of the \d+ met: 4 after a yellow flag, 1 after a red flag that was then corrected$", summary, re.M
    )
    attainment = re.search(r"^  SLA attainment (\d+)%: (\d+) of (\d+) closed clocks met on time", summary, re.M)
    assert attainment
    share, on_time, of = (int(g) for g in attainment.groups())
    assert on_time == met + recycled and of == closed and share == round(100 * on_time / of)
    assert (
        "  3 breached (a red flag to the owner): 2 escalated to the manager by DM, 1 in the manager's daily" in summary
    )
    for kind, count in (("sla.red", 4), ("sla.red.manager", 3), ("sla.correction", 2), ("sla.reassigned", 2)):
        assert re.search(rf"^  {re.escape(kind)}\s+{count}$", summary, re.MULTILINE), kind
    assert re.search(r"^  lead\.recycled\s+1$", summary, re.MULTILINE)
    dm_line = re.search(r"^Bot DMs per person per workday: median (\d+(?:\.\d+)?), max (\d+)", summary, re.MULTILINE)
    assert dm_line and float(dm_line.group(1)) <= 1 and int(dm_line.group(2)) <= 5  # well within the budget of 8


def test_the_page_shows_the_nudges_in_the_reps_dms(week: DemoRun) -> None:
    page = week.page
    assert '<button type="button" class="bk-button bk-primary">Mark contacted</button>' in page
    assert "alignbot → Mia Chen</span>" in page
    assert '<div class="note">queued Tue Oct 13 20:00 in Mia Chen&#39;s quiet hours' in page


# --- the joint meeting, the scorecard and the shared vocabulary ------------------------------------


def _reminders(fake: FakeSlack) -> list[SlackCall]:
    return [p for p in fake.posts("C0SALES") if _key(p).startswith("meeting:weekly-pipeline-review:")]


def _agenda_added(entries: list[list[str]]) -> list[tuple[str, str, str]]:
    """(when, who, item) of each ``/agenda add`` typed in #sales, the item as typed."""
    added = []
    for entry in entries:
        typed = re.match(r"^(\w{3} \w{3} \d+ \d\d:\d\d) EDT · #sales · ([\w ]+) typed: /agenda add (.+)", entry[0])
        if typed:
            added.append((typed.group(1), typed.group(2), " ".join([typed.group(3), *entry[1:]])))
    return added


def test_the_meeting_reminders_reach_its_channel_once_per_offset(week: DemoRun) -> None:
    # The week runs Tue Oct 13 to Mon Oct 19: the 10:00 meeting on the first day gets its 15-minute
    # reminder (its 24-hour one was due before the week), the next Tuesday's its 24-hour one on Monday.
    reminders = _reminders(week.fake)
    assert sorted(_key(p) for p in reminders) == [
        "meeting:weekly-pipeline-review:2026-10-13T14:00Z:15m",
        "meeting:weekly-pipeline-review:2026-10-20T14:00Z:24h",
    ]
    headings = [e[0] for e in _entries(week.transcript) if e[1:2] == ["📆 Weekly pipeline review"]]
    assert headings == ["Tue Oct 13 09:45 EDT · #sales · alignbot", "Mon Oct 19 10:00 EDT · #sales · alignbot"]
    assert "(in 15 minutes)" in reminders[0].body["text"] and "(in 24 hours)" in reminders[1].body["text"]


def test_the_reminder_before_the_meeting_brings_the_weeks_numbers_and_items(week: DemoRun) -> None:
    entries = _entries(week.transcript)
    monday = next(e for e in entries if e[0] == "Mon Oct 19 10:00 EDT · #sales · alignbot")
    body = "\n".join(monday)
    assert "*Weekly pipeline review* is *tomorrow at 10:00 EDT* (in 24 hours) in #sales." in body
    assert "The numbers cover Tue Oct 13, 10:00 until Mon Oct 19, 10:00 EDT." in body
    # Every win of the week so far (the reopened one is reopened on Monday after 10:00), with its credit.
    flat = _flat(body)  # long lines are wrapped in the transcript
    wins = re.search(r"\*🏆 Joint wins\*: (\d+) won, \$[\d,]+ \(credit by the W-shaped model\)", flat)
    assert wins and int(wins.group(1)) == 5
    assert re.search(r"closed by [\w ]+ with [\w ]+ · marketing: [\w ]+ \d+%", flat)
    sla = re.search(r"\*⏱️ Lead hand-off SLA\*: \*(\d+)%\* met on time \((\d+) of (\d+) due\)", flat)
    assert sla and int(sla.group(1)) == round(100 * int(sla.group(2)) / int(sla.group(3)))
    assert int(sla.group(2)) < int(sla.group(3)) and "*Breaches*" in flat  # the week's breaches, listed
    feedback = re.search(r"\*💬 Customer feedback\*: (\d+) new, \d+ not yet acted on (.+?) Competitors named:", flat)
    assert feedback and 0 < int(feedback.group(1)) <= len(week.fake.posts("C0VOC"))
    themes = dict(re.findall(r"([\w ]+) — (\d+)", feedback.group(2)))
    assert sum(map(int, themes.values())) == int(feedback.group(1)) and "Pricing" in {t.strip() for t in themes}
    assert re.search(r"Competitors named: (Globex|Initech|Hooli) — \d+", flat)
    assert re.search(r"\*♻️ Recycled leads\*: [1-9]\d* sent back to marketing", flat)

    # The items people added with /agenda add, each credited; the one not covered last week carried over.
    added = _agenda_added(entries)
    items = _flat(body[body.index("*📝 Items*") :])
    later = [(who, text) for when, who, text in added if not when.startswith("Tue Oct 13 09")]
    assert later and all(_flat(text) in items and f"@{who}" in items for who, text in later)
    assert items.count("(carried over from Oct 13)") == 1


def test_agenda_items_are_added_by_both_teams_and_one_is_ticked_covered_after_the_meeting(week: DemoRun) -> None:
    entries = _entries(week.transcript)
    added = _agenda_added(entries)
    marketers, reps = (
        {"Omar Haddad", "Priya Nair", "Sam Weber", "Lena Fischer"},
        {"Ava Ross", "Ben Okafor", "Chloe Park", "Diego Alvarez"},
    )
    assert len(added) == 4 and {who for _, who, _ in added} & marketers and {who for _, who, _ in added} & reps
    for index, entry in enumerate(entries):  # each gets its answer, only they see it
        if " typed: /agenda add " in entry[0]:
            who = re.search(r"· ([\w ]+) typed:", entry[0]).group(1)  # type: ignore[union-attr]
            assert entries[index + 1][0].endswith(f"· #sales · alignbot (only visible to {who})")
            assert entries[index + 1][1] == "✅ Added to the agenda:"
    # Both items of Tuesday's meeting were added before its 09:45 reminder, and it lists them.
    tuesday = [(who, text) for when, who, text in added if when.startswith("Tue Oct 13 09")]
    assert len(tuesday) == 2
    reminder = _flat("\n".join(next(e for e in entries if e[0] == "Tue Oct 13 09:45 EDT · #sales · alignbot")))
    assert all(_flat(text) in reminder for _, text in tuesday)
    # After the meeting its chair ticks one Covered: it is on no later agenda; the other carries over.
    click = next(i for i, e in enumerate(entries) if " clicked [Covered] on “" in e[0])
    assert re.match(r"Tue Oct 13 1[0-6]:\d\d EDT · #sales · Mia Chen clicked \[Covered\]", entries[click][0])
    assert entries[click - 2][0].endswith("Mia Chen typed: /agenda")
    covered = next(text for _, text in tuesday if _flat(text).startswith(entries[click][0].split("“")[1][:30]))
    kept = next(text for _, text in tuesday if text != covered)
    monday = _flat("\n".join(next(e for e in entries if e[0] == "Mon Oct 19 10:00 EDT · #sales · alignbot")))
    assert _flat(covered) not in monday and f"{_flat(kept)} — @" in monday
    after = _flat("\n".join(entries[click + 1]))
    assert (
        "(only visible to Mia Chen)" in entries[click + 1][0] and _flat(covered) not in after and _flat(kept) in after
    )


def test_the_scorecard_reaches_both_channels_with_the_same_numbers(week: DemoRun) -> None:
    cards = {p.body["channel"]: p for p in week.fake.posts() if _key(p).startswith("scorecard:")}
    assert set(cards) == {"C0SALES", "C0MKTG"}
    assert cards["C0SALES"].body["blocks"] == cards["C0MKTG"].body["blocks"]
    assert cards["C0SALES"].body["text"] == cards["C0MKTG"].body["text"]
    headings = [e[0] for e in _entries(week.transcript) if e[1:2] == ["Scorecard · week of Oct 12–18"]]
    assert headings == ["Mon Oct 19 08:00 EDT · #sales · alignbot", "Mon Oct 19 08:00 EDT · #marketing · alignbot"]


def test_show_the_rows_uploads_the_csv_into_the_scorecard_thread_after_the_click(week: DemoRun) -> None:
    card = next(p for p in week.fake.posts("C0MKTG") if _key(p).startswith("scorecard:"))
    [upload] = week.fake.calls_to("files.completeUploadExternal")
    assert upload.body["channel_id"] == "C0MKTG" and upload.body["thread_ts"] == card.response["ts"]
    assert upload.at > card.at
    figure = re.search(r"\*SLA attainment\*: \*(\d+)%\* · (\d+) of (\d+) clocks met", _text(card.body["blocks"]))
    assert figure
    rows = list(csv.DictReader(io.StringIO(upload.body["content"])))
    assert len(rows) == int(figure.group(3))  # the rows behind the figure, one per clock due that week
    assert sum(r["outcome"] == "met" for r in rows) == int(figure.group(2))
    assert "asked for the rows behind *SLA attainment*" in upload.body["initial_comment"]

    entries = _entries(week.transcript)
    click = next(i for i, e in enumerate(entries) if "clicked [Show the rows]" in e[0])
    assert re.match(
        r"Mon Oct 19 \d\d:\d\d EDT · #marketing · Omar Haddad clicked \[Show the rows\] on “SLA", entries[click][0]
    )
    shared = entries[click + 1]
    assert shared[0].endswith("· #marketing, in the thread of “Scorecard · week of Oct 12–18” · alignbot")
    assert shared[0][:20] == entries[click][0][:20]  # at the moment of the click
    assert any(line.startswith("📎 SLA attainment, week of Oct 12–18 (scorecard-sla_attainment-") for line in shared)
    assert f"CSV, {len(rows)} rows" in "\n".join(shared)


def test_define_answers_only_the_person_who_asked(week: DemoRun) -> None:
    entries = _entries(week.transcript)
    asked = {}
    for index, entry in enumerate(entries):
        typed = re.search(r"· #(sales|marketing) · ([\w ]+) typed: /define ?(\w*)$", entry[0])
        if typed:
            answer = entries[index + 1]
            assert answer[0].endswith(f"· #{typed.group(1)} · alignbot (only visible to {typed.group(2)})")
            asked[typed.group(3)] = "\n".join(answer[1:])
    assert set(asked) == {"MQL", "", "SQLL", "SQL"}
    assert asked["MQL"].startswith("*MQL* · owned by marketing · version 2026-09\n│ Scored 60+")
    assert "SLA on it: mql-first-touch" in asked["MQL"]
    assert "*The shared vocabulary*, in funnel order:" in asked[""] and "4. *Opportunity*" in asked[""]
    assert asked["SQLL"].startswith("“SQLL” is not in the shared vocabulary. Did you mean SQL")
    assert asked["SQL"].startswith("*SQL* · owned by sales")
    # An answer to a command is not a message in the channel.
    assert not [p for p in week.fake.posts() if "shared vocabulary" in json.dumps(p.body)]


def test_the_summary_counts_reminders_scorecards_and_the_upload(week: DemoRun) -> None:
    summary = week.transcript[week.transcript.index("Summary: ") :]
    assert re.search(r"^  meeting\.reminder\s+2$", summary, re.MULTILINE)
    assert re.search(r"^  scorecard\s+2$", summary, re.MULTILINE)
    assert re.search(r"^  file uploads\s+1 ", summary, re.MULTILINE)
    assert (
        "Weekly pipeline review (#sales): 2 reminders (15m before Tue Oct 13 10:00; 24h before Tue Oct 20 10:00)"
        in summary
    )
    assert "4 agenda items added with /agenda add, 1 ticked Covered, 1 carried over to the next meeting" in summary


def test_the_page_shows_the_reminder_and_the_csv_in_the_scorecard_thread(week: DemoRun) -> None:
    page = week.page
    assert '<div class="bk-header">📆 Weekly pipeline review</div>' in page
    marketing = page[page.index('data-name="marketing"') :]
    marketing = marketing[: marketing.index("</section>")]
    assert '<div class="thread-count">1 reply</div>' in marketing
    assert '<div class="file-title">📎 SLA attainment, week of Oct 12–18</div>' in marketing
    assert "<pre>clock_id,lead_id,sla," in marketing


def test_a_one_day_run_still_holds_the_meeting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    run = _run(monkeypatch, tmp_path, days=1, seed=3)
    assert run.status == 0 and not run.warnings
    assert [_key(p) for p in _reminders(run.fake)] == ["meeting:weekly-pipeline-review:2026-10-13T14:00Z:15m"]
    assert re.search(r"Tue Oct 13 1\d:\d\d EDT · #sales · Mia Chen clicked \[Covered\]", run.transcript)
    assert "Weekly pipeline review (#sales): 1 reminder (15m before Tue Oct 13 10:00)" in run.transcript


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
    assert " · POST /crm/events · CRM sent deal.closed_won → 202, 1 accepted" in first.transcript

    def wins_received(run: DemoRun) -> list[dict[str, Any]]:  # the fake's ts come from the wall clock
        return [{k: v for k, v in c.body.items() if k != "thread_ts"} for c in run.fake.posts("C0WINS")]

    assert wins_received(first) == wins_received(second) != []


def test_names_from_the_config_are_escaped_in_the_page(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    hostile = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    for rep in ("Ava Ross", "Ben Okafor", "Chloe Park", "Diego Alvarez"):
        hostile = hostile.replace(f'name = "{rep}"', f'name = "{rep} <script>alert(1)</script>"')
    config = tmp_path / "alignment.toml"
    config.write_text(hostile, encoding="utf-8")
    run = _run(monkeypatch, tmp_path, days=2, seed=7, config=str(config))
    assert run.status == 0
    assert run.page.lower().count("<script") == 1  # the page's own channel switcher only
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
    dms = sorted(when(e[0]) for e in entries if " · DM → " in e[0] and "in marketing acted on your" in " ".join(e))
    assert dms and len(dms) <= len(acted)
    assert all(dm - dt.timedelta(hours=3) in acted for dm in dms)  # not at the next scripted step


def test_the_command_line_demo_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--days", "2"]) == 0
    out = capsys.readouterr().out
    assert "alignbot demo: 2 simulated days" in out
    assert "Bot DMs per person per workday: median" in out


def test_a_bad_day_count_is_refused() -> None:
    out = io.StringIO()
    assert demo_runner.run_demo(days=0, out=out) == 2
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
    tz = ZoneInfo("America/New_York")
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


def test_a_date_in_a_dm_is_shown_in_its_readers_timezone_and_in_a_channel_as_its_fallback() -> None:
    directory = Directory(users={"U0AVA": "Ava Ross"}, zones={"U0AVA": "America/Los_Angeles"})
    token = "<!date^1794963600^{date_short_pretty} at {time}|Tue Nov 17, 20:00 EST>"  # 01:00 UTC on Nov 18
    transcript = Transcript(directory, ZoneInfo("America/New_York"))
    at = dt.datetime(2026, 11, 17, 20, 0, tzinfo=dt.UTC)
    for place in ("U0AVA", "C0SALES"):
        transcript.add(Entry(at, place, "alignbot", "message", payload={"text": f"due {token}"}, ts="1.0"))
    text = transcript.to_text()
    assert "DM → Ava Ross · alignbot\n    due Tue Nov 17, 17:00 PST" in text
    assert "#C0SALES · alignbot\n    due Tue Nov 17, 20:00 EST" in text
    page = transcript.to_html(title="t")
    assert '<span class="date">Tue Nov 17, 17:00 PST</span>' in page
    assert '<span class="date">Tue Nov 17, 20:00 EST</span>' in page
