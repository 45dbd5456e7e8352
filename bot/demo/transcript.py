"""Slack messages as a person reads them: Block Kit to plain text and to HTML.

``alignbot demo`` records every message of its simulated week as :class:`Entry` values and
turns them into a readable text transcript (:meth:`Transcript.to_text`) and a page that looks
like Slack (:meth:`Transcript.to_html`). Everything here is pure: no I/O, no clock.

Slack markup is read the way Slack reads it: ``<@U…>``, ``<#C…>``, ``<!date^…|fallback>``,
``<!channel>`` and ``<url|label>`` are entities, and a literal ``<``, ``>`` or ``&`` typed by a
person arrives escaped (``&lt;``, ``&gt;``, ``&amp;``). So ``&lt;!channel&gt;`` is shown as the
literal text ``<!channel>``, and only a real ``<!channel>`` would be shown as a broadcast.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import statistics
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

import templates as _templates_package

EntryKind = Literal["message", "edit", "delete", "ephemeral", "modal", "home", "typed", "action", "request"]

#: Where the CRM's requests are shown: not a Slack conversation, the app's webhook.
CRM_WEBHOOK = "POST /crm/events"

#: The emoji the bot's templates use, and a few common ones; others stay as ``:name:``.
EMOJI = {
    "white_check_mark": "✅",
    "heavy_check_mark": "✔️",
    "memo": "📝",
    "warning": "⚠️",
    "tada": "🎉",
    "trophy": "🏆",
    "bell": "🔔",
    "rotating_light": "🚨",
    "hourglass_flowing_sand": "⏳",
    "alarm_clock": "⏰",
    "calendar": "📆",
    "spiral_calendar_pad": "🗓️",
    "chart_with_upwards_trend": "📈",
    "chart_with_downwards_trend": "📉",
    "bar_chart": "📊",
    "large_yellow_circle": "🟡",
    "red_circle": "🔴",
    "large_green_circle": "🟢",
    "speech_balloon": "💬",
    "loudspeaker": "📢",
    "mega": "📣",
    "moneybag": "💰",
    "handshake": "🤝",
    "wave": "👋",
    "eyes": "👀",
    "x": "❌",
    "recycle": "♻️",
    "point_right": "👉",
    "star": "⭐",
    "fire": "🔥",
    "rocket": "🚀",
    "clipboard": "📋",
    "information_source": "ℹ️",  # noqa: RUF001 - the emoji itself
    "rewind": "⏪",
    "sparkles": "✨",
    "arrows_counterclockwise": "🔄",
    "white_circle": "⚪",
    "large_blue_circle": "🔵",
    "stopwatch": "⏱️",
    "paperclip": "📎",
}

_ENTITY = re.compile(r"<([^<>\n]*)>")
_EMOJI = re.compile(r":([a-z0-9_+\-]+):")
_PRE = re.compile(r"```(.+?)```", re.DOTALL)
_CODE = re.compile(r"`([^`\n]+)`")
_BOLD = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_ITALIC = re.compile(r"(?<![\w_])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])")
_STRIKE = re.compile(r"(?<![\w~])~(?=\S)([^~\n]+?)(?<=\S)~(?![\w~])")
_HOLD = re.compile("\x00(\\d+)\x00")
_SAFE_SCHEMES = ("http://", "https://", "mailto:")
_RULE = "─" * 40


def slack_unescape(text: str) -> str:
    """Undo Slack's escaping of ``&``, ``<`` and ``>`` (``&amp;`` last, so ``&amp;lt;`` stays ``&lt;``)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def emojize(text: str) -> str:
    """``:memo:`` -> 📝 for the emoji in :data:`EMOJI`; other ``:names:`` are left as they are."""
    return _EMOJI.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), text)


@dataclass(frozen=True)
class Directory:
    """Display names for the IDs in Slack markup: users (``U…``) and channels (``C…``).

    A DM conversation ``D…`` is looked up as the user ``U…`` with the same suffix, which is how
    the fake Slack names DMs.
    """

    users: Mapping[str, str] = field(default_factory=dict)
    channels: Mapping[str, str] = field(default_factory=dict)
    zones: Mapping[str, str] = field(default_factory=dict)  # user ID -> IANA timezone
    reader: str | None = None  # the timezone dates are shown in, as Slack shows them to the reader

    def for_reader(self, conversation: str) -> Directory:
        """This directory, showing dates as the person of a DM ``conversation`` sees them in Slack
        (in their own timezone); unchanged for a channel, whose readers differ."""
        user = self.dm_user(conversation)
        zone = self.zones.get(user) if user else None
        return replace(self, reader=zone) if zone else self

    def user(self, user_id: str) -> str:
        """A person's name, or the raw ID when unknown."""
        return self.users.get(user_id, user_id)

    def channel(self, channel_id: str) -> str:
        """A channel's name without ``#``, or the raw ID when unknown."""
        return self.channels.get(channel_id, channel_id)

    def dm_user(self, conversation: str) -> str | None:
        """The user ID whose DM with the bot ``conversation`` is (a user ID or ``D…``), else None."""
        if conversation[:1] in {"U", "W"}:
            return conversation
        if conversation.startswith("D") and "U" + conversation[1:] in self.users:
            return "U" + conversation[1:]
        return None

    def where(self, conversation: str) -> str:
        """``#voice-of-customer``, ``DM → Ava Ross`` for a direct message with the bot, or
        ``POST /crm/events`` for what the CRM sent."""
        if conversation == CRM_WEBHOOK:
            return CRM_WEBHOOK
        user = self.dm_user(conversation)
        if user is not None:
            return f"DM → {self.user(user)}"
        return "#" + self.channel(conversation)


@dataclass(frozen=True)
class _Entity:
    kind: Literal["user", "channel", "broadcast", "date", "link", "text"]
    label: str
    href: str | None = None


def _entity(inner: str, directory: Directory) -> _Entity:
    target, bar, label = inner.partition("|")
    label = slack_unescape(label) if bar else ""
    if target.startswith("@"):
        return _Entity("user", "@" + (directory.users.get(target[1:]) or label.lstrip("@") or target[1:]))
    if target.startswith("#"):
        return _Entity("channel", "#" + (directory.channels.get(target[1:]) or label.lstrip("#") or target[1:]))
    if target.startswith("!"):
        command = target[1:].split("^", 1)[0]
        if command in {"here", "channel", "everyone"}:
            return _Entity("broadcast", "@" + command)
        if command == "subteam":
            return _Entity("user", label or "@group")
        if command == "date":
            return _Entity("date", _date_for(target, directory.reader) or label or _date_fallback(target))
        return _Entity("text", label or target)
    url = slack_unescape(target)
    return _Entity("link", label or url, href=url)


def _date_for(target: str, zone: str | None) -> str | None:
    """A date token's moment as its reader sees it: ``Tue Nov 17, 20:00 EST`` in ``zone``."""
    if zone is None:
        return None
    try:
        local = dt.datetime.fromtimestamp(int(target.split("^")[1]), dt.UTC).astimezone(ZoneInfo(zone))
    except (IndexError, ValueError, KeyError):
        return None
    return f"{local:%a %b} {local.day}, {local:%H:%M} {local.tzname()}"


def _date_fallback(target: str) -> str:
    parts = target.split("^")
    try:
        return dt.datetime.fromtimestamp(int(parts[1]), dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (IndexError, ValueError):
        return target


# --- mrkdwn -----------------------------------------------------------------------------------


def mrkdwn_to_text(text: str, directory: Directory) -> list[str]:
    """Slack mrkdwn as readable plain lines.

    Entities become names (``@Ava Ross``, ``#voice-of-customer``, a date's fallback, a link's
    label with its URL), escapes become characters, emoji become pictures, and a quoted line
    (a leading ``>``) is shown with a bar. ``*bold*`` and ``_italic_`` markers stay: they read
    as emphasis in plain text too.
    """
    lines: list[str] = []
    for raw in text.split("\n"):
        # A quote marker is a real ">"; one a person typed arrives as "&gt;" and stays text.
        quoted = raw.startswith(">")
        body = raw[1:] if quoted else raw
        lines.append(("│ " if quoted else "") + _inline_text(body, directory))
    return lines


def _inline_text(text: str, directory: Directory) -> str:
    out: list[str] = []
    position = 0
    for match in _ENTITY.finditer(text):
        out.append(emojize(slack_unescape(text[position : match.start()])))
        entity = _entity(match.group(1), directory)
        if entity.kind == "link" and entity.href and entity.label != entity.href:
            out.append(f"{entity.label} ({entity.href})")
        else:
            out.append(entity.label)
        position = match.end()
    out.append(emojize(slack_unescape(text[position:])))
    return "".join(out)


def mrkdwn_to_html(text: str, directory: Directory) -> Markup:
    """Slack mrkdwn as HTML: every character from the data is escaped, then the markup is applied.

    Handles ``*bold*``, ``_italic_``, ``~strike~``, `` `code` ``, fenced code, ``>`` quotes,
    links (only http, https and mailto become ``<a>``), mentions and channels (highlighted),
    broadcasts, dates (their fallback) and emoji.
    """
    held: list[str] = []

    def hold(markup: str) -> str:
        held.append(markup)
        return f"\x00{len(held) - 1}\x00"

    source = text.replace("\x00", "")
    source = _PRE.sub(lambda m: hold(f"<pre>{html.escape(slack_unescape(m.group(1).strip(chr(10))))}</pre>"), source)
    source = _ENTITY.sub(lambda m: hold(_entity_html(_entity(m.group(1), directory))), source)
    blocks: list[tuple[bool, list[str]]] = []
    for raw in source.split("\n"):
        quoted = raw.startswith(">")
        line = _inline_html(raw[1:] if quoted else raw, hold)
        if blocks and blocks[-1][0] == quoted:
            blocks[-1][1].append(line)
        else:
            blocks.append((quoted, [line]))
    parts = []
    for quoted, lines in blocks:
        joined = "<br>".join(lines)
        parts.append(f"<blockquote>{joined}</blockquote>" if quoted else joined)
    rendered = "<br>".join(p for p in parts)
    for _ in range(3):  # held markup may hold more (a mention inside code); bounded
        rendered = _HOLD.sub(lambda m: held[int(m.group(1))], rendered)
    return Markup(rendered)  # noqa: S704 - built from escaped text and our own tags only


def _inline_html(line: str, hold: Any) -> str:
    line = _CODE.sub(lambda m: hold(f"<code>{html.escape(slack_unescape(m.group(1)))}</code>"), line)
    escaped = emojize(html.escape(slack_unescape(line)))
    escaped = _BOLD.sub(r"<b>\1</b>", escaped)
    escaped = _ITALIC.sub(r"<i>\1</i>", escaped)
    return _STRIKE.sub(r"<s>\1</s>", escaped)


def _entity_html(entity: _Entity) -> str:
    label = html.escape(entity.label)
    if entity.kind in {"user", "channel"}:
        return f'<span class="mention">{label}</span>'
    if entity.kind == "broadcast":
        return f'<span class="mention broadcast">{label}</span>'
    if entity.kind == "date":
        return f'<span class="date">{label}</span>'
    if entity.kind == "link" and entity.href and entity.href.lower().startswith(_SAFE_SCHEMES):
        return f'<a href="{html.escape(entity.href, quote=True)}" rel="noopener noreferrer">{label}</a>'
    return label


# --- Block Kit --------------------------------------------------------------------------------


def _text_of(obj: object, directory: Directory) -> list[str]:
    """The lines of a text object (``plain_text`` or ``mrkdwn``)."""
    if not isinstance(obj, Mapping):
        return []
    text = str(obj.get("text") or "")
    if obj.get("type") == "mrkdwn":
        return mrkdwn_to_text(text, directory)
    return [emojize(text)] if obj.get("emoji", True) else [text]


def _element_text(element: Mapping[str, Any], directory: Directory) -> str:
    """An interactive element the way it looks: a button as ``[Acted on]``, a select as ``[Pick ▾]``."""
    kind = element.get("type")
    label = " ".join(_text_of(element.get("text") or element.get("placeholder"), directory))
    if kind == "button":
        return f"[{label}]"
    if kind == "overflow":
        return "[⋯]"
    if kind in {"mrkdwn", "plain_text"}:
        return " ".join(_text_of(element, directory))
    if kind == "image":
        return f"[image: {element.get('alt_text', '')}]"
    if kind == "radio_buttons" or kind == "checkboxes":
        options = [" ".join(_text_of(o.get("text"), directory)) for o in element.get("options") or []]
        return " ".join(f"( ) {o}" for o in options)
    if kind and ("select" in kind or kind.endswith("picker")):
        return f"[{label or 'Choose'} ▾]"
    return f"[{label}]" if label else ""


def _columns(fields: Sequence[list[str]], width: int = 48) -> list[str]:
    """Section fields two by two, side by side as Slack shows them."""
    lines: list[str] = []
    for i in range(0, len(fields), 2):
        left = fields[i]
        right = fields[i + 1] if i + 1 < len(fields) else []
        pad = min(max((len(line) for line in left), default=0), width)
        for row in range(max(len(left), len(right))):
            a = left[row] if row < len(left) else ""
            b = right[row] if row < len(right) else ""
            lines.append(f"{a.ljust(pad)}   {b}".rstrip() if b else a)
    return lines


def blocks_to_text(blocks: Iterable[Mapping[str, Any]], directory: Directory) -> list[str]:
    """Block Kit as readable lines: a header as a title line (underlined), section text and fields
    (two columns), context lines, buttons as ``[Acted on]``, dividers as a rule, inputs as
    ``Label: [Choose ▾]``. Unknown block types are skipped."""
    lines: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            title = " ".join(_text_of(block.get("text"), directory))
            lines += [title, "═" * min(len(title), 60)]
        elif kind == "section":
            lines += _text_of(block.get("text"), directory)
            fields = [_text_of(f, directory) for f in block.get("fields") or []]
            lines += _columns(fields)
            accessory = block.get("accessory")
            if isinstance(accessory, Mapping) and accessory.get("type") != "image":
                lines.append(_element_text(accessory, directory))
        elif kind == "context":
            parts = [_element_text(e, directory) for e in block.get("elements") or [] if isinstance(e, Mapping)]
            lines += "  ".join(p for p in parts if p).split("\n")
        elif kind == "divider":
            lines.append(_RULE)
        elif kind == "actions":
            parts = [_element_text(e, directory) for e in block.get("elements") or [] if isinstance(e, Mapping)]
            lines.append("  ".join(p for p in parts if p))
        elif kind == "image":
            lines.append(f"[image: {block.get('alt_text', '')}]")
        elif kind == "input":
            label = " ".join(_text_of(block.get("label"), directory))
            optional = " (optional)" if block.get("optional") else ""
            element = _mapping(block.get("element"))
            shown = _element_text(element, directory) if element.get("type") != "plain_text_input" else "[ … ]"
            lines.append(f"{label}{optional}: {shown}")
        elif kind == "rich_text":
            lines += _rich_text(block).split("\n")
    return lines


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _rich_text(block: Mapping[str, Any]) -> str:
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            if node.get("type") == "text":
                out.append(str(node.get("text", "")))
            elif node.get("type") == "emoji":
                out.append(EMOJI.get(str(node.get("name")), f":{node.get('name')}:"))
            for child in node.get("elements") or []:
                walk(child)

    walk(block)
    return "".join(out)


def message_to_text(message: Mapping[str, Any], directory: Directory) -> list[str]:
    """A message (``text`` and optional ``blocks``) as readable lines; the blocks win when present.

    A message with ``files`` (an upload, see :func:`file_card`) shows each file under its text:
    its title and name, its size in rows, and the first lines of its content.
    """
    blocks = message.get("blocks")
    if isinstance(blocks, list) and blocks:
        lines = blocks_to_text(blocks, directory)
    else:
        lines = mrkdwn_to_text(str(message.get("text") or ""), directory)
    for shared in _files(message):
        lines.append(f"📎 {shared['title']} ({_file_facts(shared)})")
        # A CSV line has no spaces to wrap at: cut it, as Slack's preview does at its edge.
        lines += [f"│ {_clip(str(line), FILE_PREVIEW_WIDTH)}" for line in shared["preview"]]
        if shared["more"]:
            lines.append(f"│ … {shared['more']} more line{'s' if shared['more'] != 1 else ''}")
    return lines


#: How many lines of an uploaded file the transcript shows, and how much of each, as Slack's preview does.
FILE_PREVIEW_LINES = 4
FILE_PREVIEW_WIDTH = 96


def _clip(line: str, width: int) -> str:
    return line if len(line) <= width else line[: width - 1] + "…"


def file_card(name: str, title: str, content: str | bytes) -> dict[str, Any]:
    """An uploaded file as a message shows it: ``name``, ``title``, its first lines and how many more.

    For a CSV the first line is the header, so ``rows`` counts the lines after it.
    """
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
    lines = text.splitlines()
    return {
        "name": name,
        "title": title or name,
        "rows": max(len(lines) - 1, 0) if name.lower().endswith(".csv") else None,
        "preview": lines[:FILE_PREVIEW_LINES],
        "more": max(len(lines) - FILE_PREVIEW_LINES, 0),
    }


def _files(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    files = message.get("files")
    return [f for f in files if isinstance(f, Mapping)] if isinstance(files, list) else []


def _file_facts(shared: Mapping[str, Any]) -> str:
    kind = str(shared["name"]).rsplit(".", 1)[-1].upper() if "." in str(shared["name"]) else "file"
    rows = shared.get("rows")
    size = f", {rows} row{'s' if rows != 1 else ''}" if rows is not None else ""
    return f"{shared['name']} · {kind}{size}"


def view_to_text(view: Mapping[str, Any], directory: Directory) -> list[str]:
    """A modal, briefly: its text, one line listing its fields, and its submit button."""
    lines: list[str] = []
    fields: list[str] = []
    for block in view.get("blocks") or []:
        if block.get("type") == "input":
            label = " ".join(_text_of(block.get("label"), directory))
            fields.append(label + (" (optional)" if block.get("optional") else ""))
        else:
            lines += blocks_to_text([block], directory)
    if fields:
        lines.append("Fields: " + " · ".join(fields))
    submit = " ".join(_text_of(view.get("submit"), directory))
    close = " ".join(_text_of(view.get("close"), directory))
    buttons = "  ".join(f"[{b}]" for b in (close, submit) if b)
    if buttons:
        lines.append(buttons)
    return lines


def _plain_html(obj: object) -> Markup:
    """A ``plain_text`` object: Slack shows ``&lt;`` in it as ``<`` too, so unescape once, then escape for HTML."""
    if not isinstance(obj, Mapping):
        return Markup("")
    return Markup(emojize(html.escape(slack_unescape(str(obj.get("text") or "")))))  # noqa: S704 - escaped


def _text_html(obj: object, directory: Directory) -> Markup:
    if isinstance(obj, Mapping) and obj.get("type") == "mrkdwn":
        return mrkdwn_to_html(str(obj.get("text") or ""), directory)
    return _plain_html(obj)


def _attr(value: object) -> str:
    """A value for an HTML attribute (quoted by the caller with ``"``)."""
    return html.escape(slack_unescape(str(value)), quote=True)


def _thumb(alt: object) -> str:
    """An image as a grey placeholder: the page loads nothing from the network, so the alt text stands in."""
    return f'<span class="bk-thumb" role="img" aria-label="{_attr(alt)}" title="{_attr(alt)}"></span>'


def _element_html(element: Mapping[str, Any], directory: Directory) -> str:
    kind = element.get("type")
    if kind == "button":
        style = element.get("style")
        css = f"bk-button bk-{style}" if style in {"primary", "danger"} else "bk-button"
        return f'<button type="button" class="{css}">{_plain_html(element.get("text"))}</button>'
    if kind in {"mrkdwn", "plain_text"}:
        return f"<span>{_text_html(element, directory)}</span>"
    if kind == "image":
        return _thumb(element.get("alt_text", "image"))
    if kind in {"radio_buttons", "checkboxes"}:
        mark = "bk-radio" if kind == "radio_buttons" else "bk-radio bk-check"
        options = "".join(
            f'<label class="bk-option"><span class="{mark}"></span>{_plain_html(o.get("text"))}</label>'
            for o in element.get("options") or []
            if isinstance(o, Mapping)
        )
        return f'<div class="bk-options">{options}</div>'
    if kind == "plain_text_input":
        css = "bk-textbox bk-multiline" if element.get("multiline") else "bk-textbox"
        return f'<div class="{css}">{_plain_html(element.get("placeholder"))}</div>'
    if kind == "overflow":
        # Slack shows the options only on click; the tooltip lists them so the page can tell.
        labels = [str(_plain_html(o.get("text"))) for o in element.get("options") or [] if isinstance(o, Mapping)]
        title = f' title="{" · ".join(labels)}"' if labels else ""
        return f'<button type="button" class="bk-button bk-overflow"{title}>⋯</button>'
    placeholder = _plain_html(element.get("placeholder")) or Markup("Choose")
    return f'<div class="bk-select">{placeholder} ▾</div>'


def _section_html(block: Mapping[str, Any], directory: Directory) -> str:
    """A section: its text, its fields two columns wide, and its accessory on the right, as Slack lays it out."""
    inner = ""
    if block.get("text"):
        inner += f'<div class="bk-text">{_text_html(block.get("text"), directory)}</div>'
    fields = [f for f in block.get("fields") or [] if isinstance(f, Mapping)]
    if fields:
        cells = "".join(f'<div class="bk-field">{_text_html(f, directory)}</div>' for f in fields)
        inner += f'<div class="bk-fields">{cells}</div>'
    accessory = block.get("accessory")
    if not isinstance(accessory, Mapping):
        return f'<div class="bk-section">{inner}</div>'
    return (
        f'<div class="bk-section bk-with-accessory"><div class="bk-main">{inner}</div>'
        f'<div class="bk-accessory">{_element_html(accessory, directory)}</div></div>'
    )


def _image_html(block: Mapping[str, Any]) -> str:
    alt = block.get("alt_text", "image")
    title = block.get("title")
    caption = f'<figcaption class="bk-image-title">{_plain_html(title)}</figcaption>' if title else ""
    return (
        f'<figure class="bk-image">{caption}<div class="bk-image-box" role="img" aria-label="{_attr(alt)}">'
        f"🖼 {html.escape(slack_unescape(str(alt)))}</div></figure>"
    )


_RICH_STYLES = (("code", "code"), ("bold", "b"), ("italic", "i"), ("strike", "s"))


def _rich_inline(node: Mapping[str, Any], directory: Directory) -> str:
    """One element of a rich text section. Its text is literal (never Slack-escaped), so it is only HTML-escaped."""
    kind = node.get("type")
    style = _mapping(node.get("style"))
    if kind == "text":
        out = html.escape(str(node.get("text", ""))).replace("\n", "<br>")
    elif kind == "link":
        url = str(node.get("url", ""))
        label = html.escape(str(node.get("text") or url))
        safe = url.lower().startswith(_SAFE_SCHEMES)
        out = f'<a href="{html.escape(url, quote=True)}" rel="noopener noreferrer">{label}</a>' if safe else label
    elif kind == "user":
        out = _entity_html(_Entity("user", "@" + directory.user(str(node.get("user_id", "")))))
    elif kind == "usergroup":
        out = _entity_html(_Entity("user", "@group"))
    elif kind == "channel":
        out = _entity_html(_Entity("channel", "#" + directory.channel(str(node.get("channel_id", "")))))
    elif kind == "broadcast":
        out = _entity_html(_Entity("broadcast", "@" + str(node.get("range", "here"))))
    elif kind == "emoji":
        name = str(node.get("name", ""))
        out = html.escape(EMOJI.get(name) or _codepoints(node.get("unicode")) or f":{name}:")
    elif kind == "date":
        moment = _date_for(f"date^{node.get('timestamp', '')}", directory.reader)
        out = _entity_html(
            _Entity("date", moment or str(node.get("fallback") or _date_fallback(f"date^{node.get('timestamp')}")))
        )
    else:
        return ""
    for key, tag in _RICH_STYLES:
        if style.get(key):
            out = f"<{tag}>{out}</{tag}>"
    return out


def _codepoints(value: object) -> str:
    """``1f44d-1f3fb`` -> 👍🏻: the ``unicode`` of a rich text emoji."""
    try:
        return "".join(chr(int(part, 16)) for part in str(value).split("-")) if value else ""
    except ValueError:
        return ""


def _rich_html(node: Mapping[str, Any], directory: Directory) -> str:
    """A rich text block's sections, lists, quotes and preformatted text, as Slack draws them."""
    kind = node.get("type")
    children = [c for c in node.get("elements") or [] if isinstance(c, Mapping)]
    if kind == "rich_text":
        return "".join(_rich_html(c, directory) for c in children)
    inline = "".join(_rich_inline(c, directory) for c in children)
    if kind == "rich_text_section":
        return f'<div class="rt-section">{inline}</div>'
    if kind == "rich_text_quote":
        return f"<blockquote>{inline}</blockquote>"
    if kind == "rich_text_preformatted":
        return f"<pre>{inline}</pre>"
    if kind == "rich_text_list":
        tag = "ol" if node.get("style") == "ordered" else "ul"
        indent = int(node.get("indent") or 0) if str(node.get("indent") or 0).isdigit() else 0
        items = "".join(f"<li>{_rich_html(c, directory)}</li>" for c in children)
        return f'<{tag} class="rt-list" style="margin-left: {indent * 24}px">{items}</{tag}>'
    return ""


def blocks_to_html(blocks: Iterable[Mapping[str, Any]], directory: Directory) -> Markup:
    """Block Kit as HTML, styled by the page's ``bk-*`` classes; all text from the data is escaped.

    Images are grey placeholders with their alt text: the page loads nothing from the network.
    """
    out: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            out.append(f'<div class="bk-header">{_plain_html(block.get("text"))}</div>')
        elif kind == "section":
            out.append(_section_html(block, directory))
        elif kind == "context":
            parts = "".join(_element_html(e, directory) for e in block.get("elements") or [] if isinstance(e, Mapping))
            out.append(f'<div class="bk-context">{parts}</div>')
        elif kind == "divider":
            out.append('<hr class="bk-divider">')
        elif kind == "actions":
            parts = "".join(_element_html(e, directory) for e in block.get("elements") or [] if isinstance(e, Mapping))
            out.append(f'<div class="bk-actions">{parts}</div>')
        elif kind == "image":
            out.append(_image_html(block))
        elif kind == "input":
            optional = ' <span class="bk-optional">(optional)</span>' if block.get("optional") else ""
            element = _mapping(block.get("element"))
            out.append(
                f'<div class="bk-input"><div class="bk-label">{_plain_html(block.get("label"))}{optional}</div>'
                f"{_element_html(element, directory)}</div>"
            )
        elif kind == "rich_text":
            out.append(f'<div class="bk-rich">{_rich_html(block, directory)}</div>')
    return Markup("".join(out))  # noqa: S704 - every piece above is escaped or our own markup


def message_to_html(message: Mapping[str, Any], directory: Directory) -> Markup:
    """A message as HTML; the blocks win over the fallback ``text`` when present. Its files (an
    upload) follow as cards: title, name and size, and the first lines of the content."""
    blocks = message.get("blocks")
    if isinstance(blocks, list) and blocks:
        body = blocks_to_html(blocks, directory)
    else:
        body = Markup('<div class="bk-text">{}</div>').format(mrkdwn_to_html(str(message.get("text") or ""), directory))
    for shared in _files(message):
        preview = "\n".join(str(line) for line in shared["preview"])
        more = f"\n… {shared['more']} more" if shared["more"] else ""
        body += Markup(
            '<div class="file"><div class="file-title">📎 {}</div><div class="file-facts">{}</div><pre>{}{}</pre></div>'
        ).format(shared["title"], _file_facts(shared), preview, more)
    return body


# --- the transcript ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One thing that happened in Slack (or at the app's door), as the people involved saw it.

    ``kind``: ``message`` (the bot posted), ``edit`` (the bot updated its message ``edits``),
    ``delete`` (the bot deleted its message ``edits``), ``ephemeral`` (an answer only
    ``visible_to`` saw), ``modal`` (a form opened for ``visible_to``; ``payload`` is the view),
    ``home`` (the bot published the App Home of the person ``conversation``; ``payload`` is the
    view; the page shows it, the text transcript leaves it out), ``typed`` (a person typed ``text``), ``action``
    (a person clicked or submitted: ``text`` says what, ``details`` the values), ``request``
    (the CRM called :data:`CRM_WEBHOOK`: ``text`` says what it sent and the answer, ``details``
    the events).
    ``conversation`` is a channel ID, a user ID for the DM between that person and the bot, or
    :data:`CRM_WEBHOOK`. ``thread`` is the ``ts`` of the message whose thread it happened in.
    """

    at: dt.datetime
    conversation: str
    author: str
    kind: EntryKind
    text: str = ""
    payload: Mapping[str, Any] = field(default_factory=dict)
    visible_to: str | None = None
    ts: str | None = None
    edits: str | None = None
    details: tuple[str, ...] = ()
    from_bot: bool = True
    thread: str | None = None
    note: str = ""  # said beside the heading: why a message came when it did


def clock_text(moment: dt.datetime, tz: ZoneInfo) -> str:
    """``Tue Nov 17 10:32 EST``: a moment as wall-clock time in ``tz``."""
    local = moment.astimezone(tz)
    return f"{local:%a %b} {local.day} {local:%H:%M} {local.tzname()}"


def initials(name: str) -> str:
    """``Ava Ross`` -> ``AR``; ``alignbot`` -> ``AL``."""
    words = [w for w in re.split(r"[\s._-]+", name) if w]
    if len(words) >= 2:
        return (words[0][0] + words[-1][0]).upper()
    return (words[0][:2] if words else "?").upper()


def _day_title(local: dt.datetime) -> str:
    return f"{local:%A, %B} {local.day}"


@dataclass
class Transcript:
    """The entries of a run, told as text or as a Slack-like page, in time order.

    ``bot_name`` is how the bot signs its messages; ``tz`` is the timezone the times are shown in.
    """

    directory: Directory
    tz: ZoneInfo
    bot_name: str = "alignbot"
    entries: list[Entry] = field(default_factory=list)

    def add(self, entry: Entry) -> None:
        """Record an entry (any order: they are sorted by time, stably, when told)."""
        self.entries.append(entry)

    def ordered(self) -> list[Entry]:
        """The entries by time; entries of the same moment keep the order they were recorded in."""
        return sorted(self.entries, key=lambda e: e.at)

    def _original(self, edit: Entry) -> Entry | None:
        """The message an edit or a deletion is about, if it was recorded."""
        return next(
            (
                e
                for e in self.entries
                if e.kind == "message" and e.ts == edit.edits and self._same_place(e.conversation, edit.conversation)
            ),
            None,
        )

    def _parent(self, entry: Entry) -> Entry | None:
        """The message whose thread ``entry`` is in, if it was recorded."""
        if entry.thread is None:
            return None
        return next(
            (
                e
                for e in self.entries
                if e.kind == "message"
                and e.ts == entry.thread
                and e.thread is None
                and self._same_place(e.conversation, entry.conversation)
            ),
            None,
        )

    def _thread_title(self, parent: Entry, width: int = 48) -> str:
        """A message named by its first line, as Slack names a thread: ``🏆 Big win: Quarry Labs``."""
        first = next((line for line in message_to_text(parent.payload, self.directory) if line.strip()), "")
        title = first.strip().strip("*~_").strip()
        if len(title) <= width:
            return title
        cut = title[: width - 1]
        return (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip(" ,;:—-") + "…"

    def _same_place(self, a: str, b: str) -> bool:
        return a == b or (self.directory.dm_user(a) or a) == (self.directory.dm_user(b) or b)

    def _place(self, conversation: str) -> str:
        return self.directory.dm_user(conversation) or conversation

    # --- text ---

    def entry_text(self, entry: Entry, width: int = 110) -> list[str]:
        """One entry: a heading line (when, where, who) and its body, indented."""
        when = clock_text(entry.at, self.tz)
        where = self.directory.where(entry.conversation)
        # An edit of a reply is in the thread of the reply it edits.
        subject = self._original(entry) if entry.kind in {"edit", "delete"} else entry
        parent = self._parent(subject) if subject is not None else None
        if parent is not None:
            where += f", in the thread of “{self._thread_title(parent)}”"
        body: list[str] = []
        directory = self.directory.for_reader(entry.conversation)
        if entry.kind == "typed":
            return _hanging(f"{when} · {where} · {entry.author} typed: {entry.text}", width)
        if entry.kind in {"action", "request"}:
            heading = f"{when} · {where} · {entry.author} {entry.text}"
            body = list(entry.details)
        elif entry.kind == "message":
            heading = f"{when} · {where} · {entry.author}" + (f" ({entry.note})" if entry.note else "")
            body = message_to_text(entry.payload, directory)
        elif entry.kind == "ephemeral":
            heading = f"{when} · {where} · {entry.author} (only visible to {entry.visible_to})"
            body = message_to_text(entry.payload, directory)
        elif entry.kind == "edit":
            original = self._original(entry)
            of = f" of {clock_text(original.at, self.tz)}" if original else ""
            heading = f"{when} · {where} · {entry.author} edited its message{of}; it now reads:"
            body = message_to_text(entry.payload, directory)
        elif entry.kind == "delete":
            original = self._original(entry)
            of = f" of {clock_text(original.at, self.tz)}" if original else ""
            heading = f"{when} · {where} · {entry.author} deleted its message{of}"
        else:
            title = " ".join(_text_of(entry.payload.get("title"), self.directory))
            heading = f"{when} · {where} · {entry.author} {entry.text or 'opened'} “{title}” for {entry.visible_to}"
            heading += " (only visible to them)"
            body = view_to_text(entry.payload, directory)
        return [*_hanging(heading, width), *(_wrap(line, width) for line in body if line.strip() or line == "")]

    def to_text(self, width: int = 110) -> str:
        """The whole transcript: entries by time, a line per day, a blank line between entries."""
        lines: list[str] = []
        day: dt.date | None = None
        for entry in self.ordered():
            if entry.kind == "home":
                continue  # a view, not a message: the page shows it in the App Home panel
            local = entry.at.astimezone(self.tz)
            if local.date() != day:
                day = local.date()
                title = f" {_day_title(local)} "
                lines += ["", f"{title:━^{min(width, 80)}}", ""]
            lines += self.entry_text(entry, width)
            lines.append("")
        return "\n".join(lines).strip("\n") + "\n"

    # --- HTML ---

    def conversations(self) -> list[str]:
        """Every channel of the directory (in its order) and any other with entries, then the DMs
        with entries, by name, then :data:`CRM_WEBHOOK` if the CRM sent anything."""
        places = {self._place(e.conversation) for e in self.entries if e.kind != "home"}
        channels = list(self.directory.channels)  # every known channel, even a quiet one
        channels += sorted(
            p for p in places if p not in channels and p != CRM_WEBHOOK and self.directory.dm_user(p) is None
        )
        dms = sorted((p for p in places if self.directory.dm_user(p) is not None), key=self.directory.where)
        return channels + dms + ([CRM_WEBHOOK] if CRM_WEBHOOK in places else [])

    def to_html(self, *, title: str, subtitle: str = "", summary: Sequence[str] = ()) -> str:
        """A self-contained page that looks like Slack: a sidebar of channels and DMs, and each
        conversation's messages with the author, the time and the Block Kit rendered; a thread's
        replies under the message they answer; what the CRM sent in a conversation of its own.

        Rendered by ``templates/demo_transcript.html.j2`` with autoescaping on; the message
        bodies come from :func:`blocks_to_html`, which escapes every value from the data.
        """
        edited: dict[int, Entry] = {}
        deleted: dict[int, Entry] = {}
        for entry in self.ordered():
            if entry.kind in {"edit", "delete"}:
                original = self._original(entry)
                if original is not None:
                    (edited if entry.kind == "edit" else deleted)[id(original)] = entry
        by_place: dict[str, list[dict[str, Any]]] = {}
        threads: dict[tuple[str, str], dict[str, Any]] = {}  # (place, ts) -> the item of a thread's parent
        homes: dict[str, list[Entry]] = {}  # user -> the App Home views published for them
        for entry in self.ordered():
            if entry.kind == "home":
                homes.setdefault(self._place(entry.conversation), []).append(entry)
                continue
            if entry.kind in {"edit", "delete"} and self._original(entry) is not None:
                continue  # shown in place of the message it edits (or deletes), as Slack does
            place = self._place(entry.conversation)
            item = self._html_item(entry, edited.get(id(entry)), deleted.get(id(entry)))
            parent = threads.get((place, entry.thread)) if entry.thread else None
            if parent is not None:
                parent["replies"].append(item)
                continue
            if entry.kind == "message" and entry.ts and entry.thread is None:
                threads[(place, entry.ts)] = item
            by_place.setdefault(place, []).append(item)
        conversations = []
        for index, place in enumerate(self.conversations()):
            days: list[dict[str, Any]] = []
            for item in by_place.get(place, []):
                if not days or days[-1]["label"] != item["day"]:
                    days.append({"label": item["day"], "messages": []})
                days[-1]["messages"].append(item)
            dm = self.directory.dm_user(place)
            conversations.append(
                {
                    "anchor": f"c{index}",
                    "name": self.directory.user(dm) if dm else self.directory.channel(place),
                    "is_dm": dm is not None,
                    "is_webhook": place == CRM_WEBHOOK,
                    "is_home": False,
                    "count": sum(len(d["messages"]) for d in days),
                    "days": days,
                }
            )
        for index, (user, published) in enumerate(sorted(homes.items(), key=lambda h: self.directory.user(h[0]))):
            latest = published[-1]  # views.publish replaces the whole tab: the last one is what they see
            conversations.append(
                {
                    "anchor": f"h{index}",
                    "name": self.directory.user(user),
                    "is_dm": False,
                    "is_webhook": False,
                    "is_home": True,
                    "count": len(published),
                    "when": clock_text(latest.at, self.tz),
                    "body": blocks_to_html(latest.payload.get("blocks") or [], self.directory.for_reader(user)),
                    "days": [],
                }
            )
        return (
            _page_environment()
            .get_template("demo_transcript.html.j2")
            .render(
                title=title,
                subtitle=subtitle,
                bot_name=self.bot_name,
                workspace=title,
                conversations=conversations,
                summary=list(summary),
            )
        )

    def _html_item(self, entry: Entry, edit: Entry | None, deletion: Entry | None = None) -> dict[str, Any]:
        shown = edit if edit is not None else entry
        item: dict[str, Any] = {
            "kind": entry.kind,
            "author": entry.author,
            "initials": initials(entry.author) if not entry.from_bot else "AB",
            "avatar": _avatar_colour(entry.author, entry.from_bot),
            "from_bot": entry.from_bot,
            "time": f"{entry.at.astimezone(self.tz):%H:%M}",
            "when": clock_text(entry.at, self.tz),
            "visible_to": entry.visible_to,
            "text": entry.text,
            "details": list(entry.details),
            "note": entry.note,
            "edited": clock_text(edit.at, self.tz) if edit is not None else None,
            "deleted": clock_text(deletion.at, self.tz) if deletion is not None else None,
            "body": Markup(""),
            "title": "",
            "day": _day_title(entry.at.astimezone(self.tz)),
            "replies": [],
        }
        if entry.kind in {"message", "ephemeral", "edit"}:
            item["body"] = message_to_html(shown.payload, self.directory.for_reader(entry.conversation))
        elif entry.kind == "modal":
            item["title"] = _plain_html(entry.payload.get("title"))
            item["body"] = blocks_to_html(entry.payload.get("blocks") or [], self.directory)
            item["submit"] = _plain_html(entry.payload.get("submit"))
            item["close"] = _plain_html(entry.payload.get("close"))
        return item


_AVATAR_COLOURS = ("#e8912d", "#2eb67d", "#1264a3", "#e01e5a", "#9f6bb6", "#0b8a8a", "#c2563c", "#5a6f1b")


def _avatar_colour(name: str, from_bot: bool) -> str:
    if from_bot:
        return "#4a154b"
    return _AVATAR_COLOURS[sum(map(ord, name)) % len(_AVATAR_COLOURS)]


def _page_environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(Path(_templates_package.__file__).parent),
        undefined=StrictUndefined,
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _hanging(line: str, width: int) -> list[str]:
    """A long heading line wrapped, its continuation lines indented by four spaces."""
    return textwrap.wrap(line, width=width, subsequent_indent="    ", break_long_words=False, break_on_hyphens=False)


def _wrap(line: str, width: int) -> str:
    """Indent a body line by four spaces, wrapping long ones under their own prefix (quote bar)."""
    prefix = "    "
    match = re.match(r"^(│ |\s+)", line)
    hang = prefix + (match.group(1) if match else "")
    if len(prefix + line) <= width:
        return prefix + line
    return textwrap.fill(
        line[len(match.group(1)) :] if match else line,
        width=width,
        initial_indent=hang,
        subsequent_indent=hang,
        break_long_words=False,
        break_on_hyphens=False,
    )


def median_and_max(values: Sequence[int]) -> tuple[float, int]:
    """The median and the maximum of counts (0 and 0 when there are none)."""
    if not values:
        return 0.0, 0
    return float(statistics.median(values)), max(values)
