"""The signed requests the tests and the demo send are ones slack_sdk's verifier (Bolt's) accepts."""

from __future__ import annotations

import time

from slack_sdk.signature import SignatureVerifier

from bot.demo.slack_signing import command_body, sign


def test_a_signed_command_is_valid_for_its_secret_only() -> None:
    body = command_body("/feedback", "pricing: too dear", user_id="U0AVA")
    headers = sign("s3cret", body)
    assert SignatureVerifier("s3cret").is_valid_request(body, headers)
    assert not SignatureVerifier("another").is_valid_request(body, headers)
    assert not SignatureVerifier("s3cret").is_valid_request(body + "&text=tampered", headers)


def test_an_old_timestamp_is_signed_as_given_and_refused_as_a_replay() -> None:
    body = command_body("/sla", "", user_id="U0AVA")
    old = int(time.time()) - 6 * 60
    headers = sign("s3cret", body, old)
    assert headers["x-slack-request-timestamp"] == str(old)
    assert not SignatureVerifier("s3cret").is_valid_request(body, headers)
