"""``alignbot demo`` and what it stands on: a room the runtime never imports.

- :mod:`bot.demo.runner`: the simulated week, run against the real app (``run_demo``), with its
  planners, the people's actions, the recorder and the report beside it and its script in
  ``week.toml``;
- :mod:`bot.demo.fakeslack`: the fake Slack Web API server the demo and the tests talk to;
- :mod:`bot.demo.slack_signing`: requests as Slack signs and sends them;
- :mod:`bot.demo.transcript`: what Slack received, as text and as a Slack-like page.

Only ``alignbot demo`` (:func:`bot.cli.cmd_demo`), the tests and the benchmarks import it. The
package itself imports nothing, so a test or a benchmark that only wants the fake Slack does not
load the app with it.
"""
