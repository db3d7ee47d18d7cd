"""``edgedev run`` on files, until every property of their Devices has been reported."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from edgedev.bus._client import Bus
from edgedev.bus._outbox import Message
from edgedev.testing._documents import unique_root
from edgedev.testing._process import edgedev_process
from edgedev.testing._recorder import Recorder


def _wanted(files: Sequence[Path]) -> dict[str, set[str]]:
    """Device name -> its property names, over the Devices of ``files``."""
    wanted: dict[str, set[str]] = {}
    for path in files:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(doc, dict) and doc.get("kind") == "Device":
                props = doc["spec"].get("properties") or []
                wanted[doc["metadata"]["name"]] = {p["name"] for p in props}
    return wanted


def _collect(
    wanted: dict[str, set[str]], twins: dict[str, dict[str, str]]
) -> Callable[[Message], bool]:
    def predicate(message: Message) -> bool:
        if message.topic.endswith("/twin/update"):
            device = message.topic.split("/")[-3]
            for name, entry in json.loads(message.payload)["twin"].items():
                twins.setdefault(device, {})[name] = entry["actual"]["value"]
        return all(names <= set(twins.get(d, {})) for d, names in wanted.items())

    return predicate


async def reported_values(
    broker: str, files: Sequence[str | Path], *, timeout: float = 60.0
) -> dict[str, dict[str, str]]:
    """Run ``edgedev run -f FILES`` as a process until every property has been reported.

    Args:
        broker: the broker's URL.
        files: Device and DeviceModel files.
        timeout: seconds until every property of every Device must have been reported.

    Returns:
        Device name -> property -> the last value reported (the twin's text).

    Raises:
        TimeoutError: some property was not reported in time.
    """
    paths = [Path(f) for f in files]
    twins: dict[str, dict[str, str]] = {}
    topic_root = unique_root("reported")
    async with Bus(broker) as bus, Recorder(bus, f"{topic_root}/device/#") as recorder:
        args = [arg for path in paths for arg in ("-f", str(path))]
        with edgedev_process(
            "run", *args, "--broker", broker, "--topic-root", topic_root, output=False
        ):
            await recorder.wait_for(_collect(_wanted(paths), twins), timeout=timeout)
    return twins
