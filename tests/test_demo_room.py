"""The demo is a room of its own: no runtime module imports it, not even through another one."""

from __future__ import annotations

import subprocess
import sys

_CHECK = """
import importlib, pkgutil, sys

def walk(package):
    # pkgutil.walk_packages would import bot.demo itself to look inside it: skip it unopened.
    for module in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        if module.name in ("bot.demo", "bot.migrations"):
            continue
        yield module.name
        if module.ispkg:
            yield from walk(importlib.import_module(module.name))

names = [name for root in ("bot", "handlers", "schedules") for name in walk(importlib.import_module(root))]
for name in names:
    importlib.import_module(name)
print(len(names))
print(" ".join(sorted(m for m in sys.modules if m == "bot.demo" or m.startswith("bot.demo."))))
"""


def test_importing_every_runtime_module_loads_nothing_of_the_demo() -> None:
    # A fresh interpreter: this one has the demo loaded by other tests.
    done = subprocess.run([sys.executable, "-c", _CHECK], capture_output=True, text=True, timeout=120, check=True)
    imported, demo = [*done.stdout.splitlines(), "", ""][:2]
    assert int(imported) > 40  # the walk found the runtime, not an empty package
    assert demo == ""
