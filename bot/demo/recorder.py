"""What Slack received, as transcript entries at the simulated time."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from bot.config import Alignment, Person
from bot.demo.fakeslack import SlackCall
from bot.demo.people import name_of
from bot.demo.simulated_clock import SimulatedClock
from bot.demo.transcript import Entry, EntryKind, Transcript, file_card

BOT_NAME = "alignbot"


class Recorder:
    """Turns each call the fake Slack receives into a transcript entry, at the simulated time.

    The demo sets :attr:`actor` and :attr:`place` while a person's request is in flight, so a
    modal or a response-URL answer is shown to that person, where they were.
    """

    def __init__(self, transcript: Transcript, clock: SimulatedClock, alignment: Alignment) -> None:
        self.transcript = transcript
        self.clock = clock
        self.alignment = alignment
        self.actor: Person | None = None
        self.place: str = alignment.channels.sales
        self.thread: str | None = None
        self.origin: str | None = None
        self.posts: dict[str, SlackCall] = {}  # outbox key -> the chat.postMessage Slack received
        self.uploads: list[SlackCall] = []  # files shared (files.completeUploadExternal)
        self.failed: list[SlackCall] = []
        self._lock = threading.Lock()

    def on_call(self, call: SlackCall) -> None:
        """The fake's listener: record messages, edits, modals and response-URL answers."""
        with self._lock:
            self._record(call)

    def _record(self, call: SlackCall) -> None:
        if not call.ok:
            self.failed.append(call)
            return
        at = self.clock.now()
        body = call.body
        viewer = name_of(self.actor) if self.actor else None
        if call.method == "chat.postMessage":
            key = ((body.get("metadata") or {}).get("event_payload") or {}).get("key")
            if key:
                self.posts[str(key)] = call
            thread = body.get("thread_ts")
            self.transcript.add(
                Entry(
                    at,
                    str(body.get("channel")),
                    BOT_NAME,
                    "message",
                    payload=body,
                    ts=call.response.get("ts"),
                    thread=str(thread) if thread else None,
                )
            )
        elif call.method == "chat.update":
            self.transcript.add(
                Entry(at, str(body.get("channel")), BOT_NAME, "edit", payload=body, edits=body.get("ts"))
            )
        elif call.method == "chat.postEphemeral":
            user = self.alignment.person_by_slack_id(str(body.get("user")))
            shown = name_of(user) if user else str(body.get("user"))
            self.transcript.add(
                Entry(
                    at,
                    str(body.get("channel")),
                    BOT_NAME,
                    "ephemeral",
                    payload=body,
                    visible_to=shown,
                    thread=body.get("thread_ts") or None,
                )
            )
        elif call.method in {"views.open", "views.push"} and isinstance(body.get("view"), dict):
            self.transcript.add(
                Entry(at, self.place, BOT_NAME, "modal", payload=body["view"], visible_to=viewer, thread=self.thread)
            )
        elif call.method == "views.update" and isinstance(body.get("view"), dict):
            self.transcript.add(
                Entry(
                    at,
                    self.place,
                    BOT_NAME,
                    "modal",
                    "updated",
                    payload=body["view"],
                    visible_to=viewer,
                    thread=self.thread,
                )
            )
        elif call.method == "files.completeUploadExternal":
            # The last step of files_upload_v2: the file is shared in the channel (or a thread) with its comment.
            self.uploads.append(call)
            cards = [
                file_card(str(u.get("filename") or ""), str(u.get("title") or ""), u.get("content") or "")
                for u in body.get("uploads") or []
            ]
            thread = body.get("thread_ts")
            self.transcript.add(
                Entry(
                    at,
                    str(body.get("channel_id") or self.place),
                    BOT_NAME,
                    "message",
                    payload={"text": str(body.get("initial_comment") or ""), "files": cards},
                    thread=str(thread) if thread else None,
                )
            )
        elif call.method == "views.publish" and isinstance(body.get("view"), dict):
            owner = str(body.get("user_id"))  # whose Home tab it is
            self.transcript.add(Entry(at, owner, BOT_NAME, "home", payload=body["view"], visible_to=owner))
        elif call.method == "response_url" and body.get("replace_original") and self.origin:
            # The clicked message, replaced: shown as an edit of it, as Slack shows it.
            self.transcript.add(Entry(at, self.place, BOT_NAME, "edit", payload=body, edits=self.origin))
        elif call.method == "response_url":
            kind: EntryKind = "message" if body.get("response_type") == "in_channel" else "ephemeral"
            self.transcript.add(
                Entry(at, self.place, BOT_NAME, kind, payload=body, visible_to=viewer, thread=self.thread)
            )

    @contextlib.contextmanager
    def acting(
        self, person: Person, place: str, thread: str | None = None, origin: str | None = None
    ) -> Iterator[None]:
        """Attribute the calls made while ``person`` does something in ``place`` (in the
        ``thread`` of a message, if given) to them; ``origin`` is the ``ts`` of the message whose
        button they clicked, which an answer with ``replace_original`` replaces."""
        self.actor, self.place, self.thread, self.origin = person, place, thread, origin
        try:
            yield
        finally:
            self.actor, self.thread, self.origin = None, None, None
