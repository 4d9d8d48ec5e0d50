"""The `console` sink: one compact protojson line per asset on stdout."""

from __future__ import annotations

import sys
import threading

from merkl.catalog.asset import Asset, dump_asset
from merkl.catalog.plugin import PluginConfig, PluginInfo, Sink

# Recipes run concurrently; a line is written whole.
_STDOUT_LOCK = threading.Lock()


class ConsoleConfig(PluginConfig):
    pass


class ConsoleSink(Sink[ConsoleConfig]):
    """Prints each asset as Meteor's console sink does (ndjson on stdout)."""

    name = "console"
    Config = ConsoleConfig
    info = PluginInfo(
        description="Print assets to standard output, one JSON line each",
        tags=("console", "log", "sink"),
    )

    def sink(self, assets: list[Asset]) -> None:
        text = "".join(dump_asset(asset).decode() + "\n" for asset in assets)
        with _STDOUT_LOCK:
            sys.stdout.write(text)
            sys.stdout.flush()
