"""The edge node's ``bdSeq``: one higher at every MQTT session, kept in a file across restarts.

Section numbers are those of the Eclipse Sparkplug 3.0.0 specification. The NDEATH registered
as the will of each MQTT CONNECT carries a ``bdSeq`` one more than the previous CONNECT's,
255 wrapping to 0, and the NBIRTH of that session carries the same (5.4, 6.4.19, 6.4.25);
a host tells an old session's death from the new one's by it. So the number must outlive the
process: as Eclipse Tahu's edge node keeps the next one in a file (``DefaultBdSeqManager``),
:class:`BdSeqStore` keeps it in ``DATA_DIR/sparkplug-bdseq.json``, one entry per edge node.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path

log = logging.getLogger("edgedev.sparkplug")

FILE_NAME = "sparkplug-bdseq.json"
"""The file in the data directory: ``{"GROUP/EDGE_NODE": next bdSeq, ...}``."""


class BdSeqStore:
    """The next ``bdSeq`` of one edge node, in a file (or in memory without a directory).

    :meth:`peek` gives the number the next connection's will carries; :meth:`take` says that
    connection was accepted: the number is the session's, and the next one is stored.

    Args:
        key: the edge node (``GROUP/EDGE_NODE``).
        directory: where the file is; ``None``: in memory, from 0 at every start.
    """

    def __init__(self, key: str, directory: str | Path | None = None) -> None:
        self.key = key
        self.path = Path(directory) / FILE_NAME if directory is not None else None
        self._next = self._load()

    def _load(self) -> int:
        if self.path is None:
            return 0
        try:
            stored = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:
            log.warning("%s: cannot read the bdSeq (%s); starting from 0", self.path, exc)
            return 0
        value = stored.get(self.key) if isinstance(stored, dict) else None
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 255:
            if value is not None:
                log.warning(
                    "%s: bdSeq of %s is %r, not 0-255; starting from 0", self.path, self.key, value
                )
            return 0
        return value

    def peek(self) -> int:
        """The ``bdSeq`` the next MQTT CONNECT's will carries."""
        return self._next

    def take(self) -> int:
        """The connection with :meth:`peek`'s number was accepted: that number, the next stored."""
        taken = self._next
        self._next = (taken + 1) % 256
        self._store()
        return taken

    def _store(self) -> None:
        """Write the next number (in a new file, renamed over the old: never half written)."""
        if self.path is None:
            return
        try:
            stored = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stored = {}
        if not isinstance(stored, dict):
            stored = {}
        stored[self.key] = self._next
        partial = self.path.with_name(self.path.name + ".partial")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps(stored, sort_keys=True), encoding="utf-8")
            os.replace(partial, self.path)
        except OSError as exc:
            log.warning(
                "%s: cannot keep the bdSeq (%s): after a restart the edge node's deaths may "
                "not be told apart",
                self.path,
                exc,
            )
            with contextlib.suppress(OSError):
                partial.unlink()
