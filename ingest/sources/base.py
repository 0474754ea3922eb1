"""What every source returns: the report of one fetch, and its errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

from tileserver.core.timeutil import format_utc

if TYPE_CHECKING:
    from tileserver.store import Store


class FetchError(RuntimeError):
    """A fetch cannot run at all (bad options, endpoint or bucket unusable); one line.

    When it stops a fetch midway, ``report`` holds what was done before.
    """

    report: FetchReport | None = None


@dataclass(frozen=True)
class FetchOptions:
    """What to fetch; each source refuses, in one line, the options it has no use for."""

    now: datetime | None = None  # default: the clock
    since: timedelta | None = None  # observations: backfill window
    run: datetime | None = None  # models: the run (default: newest complete)
    leads: Sequence[int] | None = None  # models: hours after the run
    layers: Sequence[str] | None = None  # default: every layer the source fills
    progress: bool = True


class FrameRef(NamedTuple):
    layer: str
    time: datetime  # valid time
    run: datetime | None  # model run; None for observations

    def __str__(self) -> str:
        run = f" run {format_utc(self.run)}" if self.run else ""
        return f"{self.layer} {format_utc(self.time)}{run}"


@dataclass(frozen=True)
class Failure:
    """One file that did not go in (or not for some layers), and why, in one line."""

    source: str  # s3://bucket/key
    reason: str
    layers: tuple[str, ...] = ()

    def __str__(self) -> str:
        layers = f" [{', '.join(self.layers)}]" if self.layers else ""
        return f"{self.source}: {self.reason}{layers}"


@dataclass
class FetchReport:
    source: str
    ingested: list[FrameRef] = field(default_factory=list)
    skipped: list[FrameRef] = field(default_factory=list)  # already in the store
    failures: list[Failure] = field(default_factory=list)
    bytes_downloaded: int = 0  # response bodies, including .idx files
    requests: int = 0  # successful GET requests (HEAD and LIST not counted)
    # Sizes of the data objects read from (whole objects, also when only ranges were read).
    object_bytes: int = 0
    run: datetime | None = None  # the model run fetched

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        run = f" run {format_utc(self.run)}" if self.run else ""
        ratio = ""
        if self.object_bytes and self.bytes_downloaded:
            ratio = f" of {_mb(self.object_bytes)} in the objects"
        return (
            f"{self.source}{run}: {len(self.ingested)} ingested, {len(self.skipped)} already stored, "
            f"{len(self.failures)} failed, {_mb(self.bytes_downloaded)} downloaded{ratio} in {self.requests} requests"
        )


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


@contextlib.contextmanager
def fetching(store: Store, report: FetchReport) -> Iterator[None]:
    """Around a source's downloads: a FetchError that stops them carries what
    went in before it, and every layer that changed is pruned either way."""
    try:
        yield
    except FetchError as exc:
        exc.report = report
        raise
    finally:
        for layer_id in sorted({ref.layer for ref in report.ingested}):
            store.prune(layer_id)
