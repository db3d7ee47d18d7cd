"""What ``edgedev discover`` tells on stderr: what was looked at, what became of it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from edgedev._text import plural
from edgedev.discover._documents import Documents


@dataclass(frozen=True, slots=True)
class Skipped:
    """Something found that did not become a property, and why.

    Attributes:
        item: what it is, as the user would find it (a browse path, ``holding 40``).
        reason: why it was left out (``array (ValueRank 1): the driver reads scalars``).
    """

    item: str
    reason: str


@dataclass(slots=True)
class Summary:
    """A discoverer's account of its work, printed on stderr after the documents are written.

    Attributes:
        target: what was discovered (``opc.tcp://plc:4840``, ``tcp 10.0.0.5:502``).
        lines: what was browsed or probed, and where a limit stopped it.
        requests: requests sent, by service or function (``Browse``, ``read holding``).
        skipped: everything found that did not become a property, with the reason.
    """

    target: str
    lines: list[str] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)

    def note(self, line: str) -> None:
        """Add a line to tell."""
        self.lines.append(line)

    def sent(self, request: str, count: int = 1) -> None:
        """Count ``count`` requests of kind ``request``."""
        self.requests[request] = self.requests.get(request, 0) + count

    def skip(self, item: str, reason: str) -> None:
        """Record that ``item`` was left out, and why."""
        self.skipped.append(Skipped(item, reason))

    @property
    def total_requests(self) -> int:
        """Every request sent."""
        return sum(self.requests.values())


def _requests(requests: Mapping[str, int]) -> str:
    total = sum(requests.values())
    if not requests:
        return plural(total, "request")
    kinds = ", ".join(f"{kind} {count}" for kind, count in requests.items())
    return f"{plural(total, 'request')} ({kinds})"


def summary_text(summary: Summary, made: Documents, seconds: float) -> str:
    """The summary: the target, the work, what became documents, every item skipped."""
    lines = [
        f"discovered {summary.target} in {seconds:.1f} s with {_requests(summary.requests)}",
        *(f"  {line}" for line in summary.lines),
        "made {}, {} and {}".format(
            plural(made.models, "DeviceModel"),
            plural(made.devices, "Device"),
            plural(made.properties, "property", "properties"),
        ),
    ]
    if made.renamed:
        lines.append(
            f"  {plural(made.renamed, 'property name')} changed to fit EdgeCore's rules "
            "(letters, digits, -_.,:/@#; at most 128) or to be unique"
        )
    if summary.skipped:
        lines.append(f"skipped {len(summary.skipped)}:")
        lines += [f"  {s.item}: {s.reason}" for s in summary.skipped]
    return "\n".join(lines)
