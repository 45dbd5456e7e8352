"""``alignbot demo --html``: the page opened in a real headless Chromium, read from the DOM after its script ran.

Chromium's ``--dump-dom`` prints the document as it stands once the page has loaded (the inline
script included), so the tests assert on what a person would see: which conversation is shown,
its messages, and text with no Slack markup or HTML escapes left in it.

Skipped only when no Chromium is installed; ``ALIGNBOT_REQUIRE_CHROMIUM=1`` (set by ``.ci/run``)
turns that skip into a failure.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.cli import main
from bot.config import EXAMPLE_CONFIG, load_alignment
from bot.demo.transcript import CRM_WEBHOOK, Directory, Entry, Transcript, file_card

# --- a browser, and the DOM it leaves ------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> str:
    """The Chromium executable; a skip (or, in CI, a failure) when there is none."""
    found = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if found is None:
        reason = "Chromium is not installed (Debian: apt-get install chromium); the page is not checked in a browser"
        if os.environ.get("ALIGNBOT_REQUIRE_CHROMIUM") == "1":
            pytest.fail(reason + ", and ALIGNBOT_REQUIRE_CHROMIUM=1 requires it")
        pytest.skip(reason)
    return found


def dump_dom(chromium: str, page: Path, anchor: str = "") -> Node:
    """The page's DOM after it loaded and its script ran, as Chromium serialises it."""
    with tempfile.TemporaryDirectory(prefix="alignbot-chromium-") as profile:
        done = subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                f"--user-data-dir={profile}",
                "--dump-dom",
                page.resolve().as_uri() + anchor,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0 and "<html" in done.stdout, done.stderr[-2000:]
    return parse(done.stdout)


_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Node:
    """An element of the dumped DOM: enough of a tree to find elements and read their text."""

    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def iter(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter()

    def find_all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Node]:
        return [
            n
            for n in self.iter()
            if (tag is None or n.tag == tag)
            and (cls is None or cls in n.classes())
            and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def text(self) -> str:
        """The text a reader sees (script and style left out), whitespace collapsed."""
        if self.tag in {"script", "style", "title"}:
            return ""
        parts = [c if isinstance(c, str) else c.text() for c in self.children]
        return " ".join(" ".join(parts).split())


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(markup: str) -> Node:
    builder = _Builder()
    builder.feed(markup)
    builder.close()
    return builder.root


def _visible(dom: Node) -> list[Node]:
    return [s for s in dom.find_all("section", "conversation") if "hidden" not in s.attrs]


def _messages(section: Node) -> list[Node]:
    return section.find_all(cls="msg")


# --- the demo's own page ---------------------------------------------------------------------------


@dataclass
class Demo:
    page: Path
    stdout: str


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """``alignbot demo --days 2 --html page.html``, through the command line's entry point."""
    page = tmp_path_factory.mktemp("demo") / "page.html"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["demo", "--days", "2", "--html", str(page)]) == 0
    return Demo(page, out.getvalue())


def _transcript_counts(stdout: str) -> Counter[str]:
    """Entries per conversation in the text transcript, as the page names them; an edit is not an entry
    of its own on the page (it replaces the message it edits)."""
    counts: Counter[str] = Counter()
    lines = stdout.splitlines()
    for number, line in enumerate(lines):
        heading = re.match(r"^\w{3} \w{3} \d{1,2} \d\d:\d\d \w+ · (#[\w-]+|DM → [^·,]+|POST /crm/events)[ ·,]", line)
        wrapped = " ".join([line, *lines[number + 1 : number + 2]])  # a long heading goes on for a line
        if heading and not re.search(r"· alignbot\s+edited\s+its\s+message", wrapped):
            counts[heading.group(1).strip().removeprefix("DM → ")] += 1
    return counts


def test_the_page_opens_in_chromium_on_the_first_channel_with_every_conversation_in_the_dom(
    chromium: str, demo: Demo
) -> None:
    dom = dump_dom(chromium, demo.page)
    [html] = dom.find_all("html")
    assert "js" in html.classes()  # the script ran
    [shown] = _visible(dom)
    assert shown.attrs["data-kind"] == "channel" and shown.attrs["data-name"] == "wins"
    [active] = dom.find_all("a", "active")
    assert active.attrs["href"] == "#" + shown.attrs["id"] and active.attrs["aria-current"] == "page"

    alignment = load_alignment(EXAMPLE_CONFIG)
    sections = {(s.attrs["data-kind"], s.attrs["data-name"]): s for s in dom.find_all("section", "conversation")}
    for channel in ("wins", "voice-of-customer", "sales", "marketing"):
        assert ("channel", channel) in sections
    dms = [name for kind, name in sections if kind == "dm"]
    assert dms and set(dms) <= {p.name for p in alignment.people}  # DMs are named by the person
    for name in dms:  # and listed in the sidebar under that name
        assert any(a.text().startswith(f"alignbot → {name}") for a in dom.find_all("a"))

    # Each conversation holds the messages the text transcript tells for it, in the same order of time.
    expected = _transcript_counts(demo.stdout)
    shown_counts = {
        ("#" + name if kind == "channel" else name): len(_messages(s))
        for (kind, name), s in sections.items()
        if kind in {"channel", "dm", "webhook"}
    }
    # Everyone opened the app at the end: each App Home is shown as published.
    homes = [name for kind, name in sections if kind == "home"]
    assert sorted(homes) == sorted(p.name for p in alignment.people if p.slack_id)
    assert all("Your open SLA clocks" in sections[("home", name)].text() for name in homes)
    assert expected and {k: shown_counts.get(k, 0) for k in expected} == dict(expected)
    assert sum(expected.values()) > 40
    for section in sections.values():
        for day in section.find_all(cls="day"):
            assert day.text()
        times = [t.text() for t in section.find_all("time")]
        assert all(re.fullmatch(r"\d\d:\d\d", t) for t in times)

    # Slack markup never shows through, nor an HTML escape: everything is shown once, as text.
    main_text = dom.find_all("main")[0].text()
    for raw in ("<!date", "<@U", "<#C", "&lt;", "&gt;", "&amp;", "<http"):
        assert raw not in main_text, raw
    mentions = [m.text() for m in dom.find_all("span", "mention")]
    people = {"@" + p.name for p in alignment.people}
    channels = {"#" + name for kind, name in sections if kind == "channel"}
    assert set(mentions) & people and set(mentions) <= people | channels | {"@here", "@channel"}
    assert any(d.text() for d in dom.find_all("span", "date"))
    # The bot signs its messages; nothing is loaded from anywhere.
    assert any(n.text() == "alignbot" for n in dom.find_all("span", "name"))
    assert not [n for n in dom.iter() if "src" in n.attrs or n.tag in {"link", "iframe", "object"}]
    assert "url(" not in "".join(str(c) for s in dom.find_all("style") for c in s.children)


def test_the_sidebar_switches_to_a_dm_by_its_anchor(chromium: str, demo: Demo) -> None:
    first = parse(demo.page.read_text(encoding="utf-8"))
    dm = next(s for s in first.find_all("section", "conversation") if s.attrs["data-kind"] == "dm")
    dom = dump_dom(chromium, demo.page, "#" + dm.attrs["id"])
    [shown] = _visible(dom)
    assert shown.attrs["id"] == dm.attrs["id"] and _messages(shown)
    assert shown.find_all("header")[0].text().startswith(dm.attrs["data-name"] + " direct messages with alignbot")
    [active] = dom.find_all("a", "active")
    assert active.text().startswith("alignbot → " + dm.attrs["data-name"])


def test_without_javascript_every_conversation_is_readable(demo: Demo) -> None:
    dom = parse(demo.page.read_text(encoding="utf-8"))
    sections = dom.find_all("section", "conversation")
    assert len(sections) >= 8 and not [s for s in sections if "hidden" in s.attrs]


# --- every kind of thing the page draws, and what it must not run --------------------------------

TZ = ZoneInfo("America/New_York")
AT = dt.datetime(2026, 11, 17, 15, 0, tzinfo=dt.UTC)
PWN = "document.documentElement.setAttribute('data-pwned', '{}')"
DIRECTORY = Directory(
    users={"U0AVA": "Ava Ross", "U0SAM": "Sam <script>" + PWN.format("name") + "</script>"},
    channels={"C0VOC": "voice-of-customer", "C0WINS": "wins"},
    zones={"U0AVA": "America/Los_Angeles"},
)


def _section(text: str, **extra: object) -> dict[str, object]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}, **extra}


def _everything() -> Transcript:
    transcript = Transcript(DIRECTORY, TZ)

    def add(minutes: int, where: str, kind: str, **kwargs: object) -> None:
        transcript.add(Entry(AT + dt.timedelta(minutes=minutes), where, "alignbot", kind, **kwargs))  # type: ignore[arg-type]

    feedback = {
        "text": "fallback",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "Feedback &amp; <b>wins</b>"}},
            _section(
                "*Pricing* from <@U0AVA> in <#C0VOC>: _soon_ ~old~ `a &lt; b` due "
                "<!date^1794963600^{date_short_pretty}|Tue Nov 17, 20:00 EST>\n"
                ">&lt;script&gt;" + PWN.format("quote") + "&lt;/script&gt;\n"
                '&lt;img src=x onerror="' + PWN.format("img") + '"&gt; <javascript:alert(1)|click me> '
                "<https://example.com/a?b=1&amp;c=2|the TCO page>\n```SELECT 1 &gt; 0```",
                accessory={
                    "type": "overflow",
                    "action_id": "o",
                    "options": [{"text": {"type": "plain_text", "text": "Snooze"}, "value": "s"}],
                },
            ),
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": "*Account*\nHarbor &amp; Finch"},
                    {"type": "plain_text", "text": "Q4"},
                ],
            },
            {
                "type": "context",
                "elements": [
                    {"type": "image", "image_url": "https://example.com/x.png", "alt_text": "logo"},
                    {"type": "mrkdwn", "text": "#1 · small print"},
                ],
            },
            {"type": "divider"},
            {"type": "image", "image_url": "https://example.com/chart.png", "alt_text": "pipeline chart"},
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "a",
                        "text": {"type": "plain_text", "text": "Acted on"},
                        "style": "primary",
                    },
                    {
                        "type": "button",
                        "action_id": "b",
                        "text": {"type": "plain_text", "text": "Drop"},
                        "style": "danger",
                    },
                ],
            },
            {
                "type": "rich_text",
                "elements": [
                    {
                        "type": "rich_text_section",
                        "elements": [
                            {"type": "text", "text": "Typed <b>raw</b> ", "style": {"bold": True}},
                            {"type": "user", "user_id": "U0AVA"},
                            {"type": "emoji", "name": "tada"},
                        ],
                    },
                    {
                        "type": "rich_text_list",
                        "style": "bullet",
                        "elements": [
                            {"type": "rich_text_section", "elements": [{"type": "text", "text": "one"}]},
                            {"type": "rich_text_section", "elements": [{"type": "text", "text": "two"}]},
                        ],
                    },
                ],
            },
        ],
    }
    add(0, "C0VOC", "message", payload=feedback, ts="1.1")
    add(1, "C0VOC", "message", payload={"text": "a reply in the thread"}, ts="1.2", thread="1.1")
    add(2, "C0VOC", "message", payload={"text": "another reply"}, ts="1.3", thread="1.1")
    add(3, "C0VOC", "message", payload={"text": "first version"}, ts="1.4")
    add(4, "C0VOC", "edit", payload={"text": "second version"}, edits="1.4")
    add(5, "C0VOC", "message", payload={"text": "about to go"}, ts="1.5")
    add(6, "C0VOC", "delete", edits="1.5")
    add(7, "C0VOC", "ephemeral", payload={"text": "just for you"}, visible_to="Ava Ross")
    add(8, "U0AVA", "message", payload={"text": "due <!date^1794963600^{time}|Tue Nov 17, 20:00 EST>"}, ts="2.1")
    modal = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Acted on"},
        "submit": {"type": "plain_text", "text": "Tell the rep"},
        "blocks": [
            {
                "type": "input",
                "label": {"type": "plain_text", "text": "What did you do?"},
                "element": {"type": "plain_text_input", "multiline": True},
            }
        ],
    }
    add(9, "C0VOC", "modal", payload=modal, visible_to="Sam Weber")
    home = {"type": "home", "blocks": [_section("*Your open SLA clocks*\n&lt;none&gt; <@U0AVA>")]}
    add(10, "U0AVA", "home", payload={"type": "home", "blocks": [_section("old home")]})
    add(11, "U0AVA", "home", payload=home)
    transcript.add(
        Entry(
            AT + dt.timedelta(minutes=12),
            CRM_WEBHOOK,
            "CRM",
            "request",
            "sent lead.created → 202",
            details=("<script>" + PWN.format("crm") + "</script>",),
            from_bot=False,
        )
    )
    # A file shared with its comment (the scorecard's "Show the rows"): a CSV whose cells are data.
    csv_text = "metric,owner\n<script>" + PWN.format("csv") + "</script>,Ava\nb,Ben\nc,Chloe\nd,Diego\n"
    shared = file_card("rows.csv", "Rows <b>behind</b> it", csv_text)
    add(13, "C0WINS", "message", payload={"text": "<@U0AVA> asked for the rows", "files": [shared]}, ts="3.1")
    return transcript


def test_every_block_kind_renders_and_nothing_from_the_data_runs(chromium: str, tmp_path: Path) -> None:
    transcript = _everything()
    page = tmp_path / "everything.html"
    page.write_text(transcript.to_html(title="t"), encoding="utf-8")
    dom = dump_dom(chromium, page, "#all")
    [html] = dom.find_all("html")
    assert "data-pwned" not in html.attrs  # no script, handler or link from the data ran
    assert not dom.find_all("img") and len(dom.find_all("script")) == 1
    assert dom.find_all("body")[0].attrs["data-showing"] == "all" and len(_visible(dom)) == 5

    voc = next(s for s in dom.find_all("section") if s.attrs.get("data-name") == "voice-of-customer")
    text = voc.text()
    # Escaped text is shown once as the character; a typed tag is text, never markup.
    assert "Feedback & <b>wins</b>" in text and "Harbor & Finch" in text and "SELECT 1 > 0" in text
    assert "<script>document.documentElement" in text and '<img src=x onerror="document' in text
    assert "Typed <b>raw</b>" in text
    assert [m.text() for m in voc.find_all("span", "mention")][:2] == ["@Ava Ross", "#voice-of-customer"]
    assert voc.find_all("span", "date")[0].text() == "Tue Nov 17, 20:00 EST"  # a channel sees the fallback
    assert [n.tag for n in voc.find_all("b")][:1] == ["b"] and voc.find_all("s") and voc.find_all("pre")
    assert voc.find_all("blockquote")[0].text().startswith("<script>")
    [link] = voc.find_all("a")
    assert link.attrs["href"] == "https://example.com/a?b=1&c=2" and link.text() == "the TCO page"
    assert "click me" in text and "javascript" not in str(voc.attrs) + "".join(a.attrs["href"] for a in [link])
    # Layout: fields in two columns, an accessory beside its text, buttons with their styles.
    assert len(voc.find_all(cls="bk-field")) == 2 and voc.find_all(cls="bk-with-accessory")
    assert [b.text() for b in voc.find_all("button", "bk-primary")] == ["Acted on", "Tell the rep"]
    assert [b.text() for b in voc.find_all("button", "bk-danger")] == ["Drop"]
    assert voc.find_all(cls="bk-overflow")[0].attrs["title"] == "Snooze"
    assert voc.find_all(cls="bk-thumb")[0].attrs["aria-label"] == "logo"
    assert "pipeline chart" in voc.find_all("figure", "bk-image")[0].text()
    assert [li.text() for li in voc.find_all("li")] == ["one", "two"] and "🎉" in text
    # A thread under its parent; an edit in place; a deletion as Slack leaves it; an ephemeral's label.
    [thread] = voc.find_all(cls="thread")
    assert thread.text().startswith("2 replies") and "another reply" in thread.text()
    assert "second version" in text and "first version" not in text and "(edited)" in text
    assert "about to go" not in text and "This message was deleted." in text
    assert "Only visible to you (Ava Ross)" in text
    assert "Acted on" in voc.find_all(cls="modal")[0].text()

    dm = next(s for s in dom.find_all("section") if s.attrs.get("data-kind") == "dm")
    assert dm.attrs["data-name"] == "Ava Ross" and "Tue Nov 17, 17:00 PST" in dm.text()  # her own timezone
    [home] = [s for s in dom.find_all("section") if s.attrs.get("data-kind") == "home"]
    assert "Your open SLA clocks <none> @Ava Ross" in home.text() and "old home" not in home.text()
    assert "published 2 times" in home.text()
    crm = next(s for s in dom.find_all("section") if s.attrs.get("data-kind") == "webhook")
    assert "<script>document" in crm.text()
    wins = next(s for s in dom.find_all("section") if s.attrs.get("data-name") == "wins")
    [card] = wins.find_all(cls="file")
    assert card.find_all(cls="file-title")[0].text() == "📎 Rows <b>behind</b> it"
    assert card.find_all(cls="file-facts")[0].text() == "rows.csv · CSV, 4 rows"
    preview = "".join(map(str, card.find_all("pre")[0].children))  # text() folds the line breaks
    assert preview.startswith("metric,owner\n<script>document") and preview.endswith("c,Chloe\n… 1 more")
    # The text transcript tells the deletion and leaves the App Home out, as before.
    told = transcript.to_text()
    assert "alignbot deleted its message of Tue Nov 17 10:05 EST" in told and "Your open SLA" not in told
