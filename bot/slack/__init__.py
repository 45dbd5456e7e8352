"""The Slack side of the house: the outbox relay (pacing, retries, the look-up before a re-send)
and whether the workspace still lets the bot in. Services never import this package."""
