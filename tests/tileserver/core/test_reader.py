"""DatasetPool: handles are reused, and what it keeps idle is bounded per frame and in all."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import numpy as np

from tests.conftest import write_latlon_geotiff
from tileserver.core.reader import DatasetPool


def _files(folder: Path, count: int) -> list[str]:
    return [str(write_latlon_geotiff(folder / f"f{i}.tif", np.full((20, 40), float(i), dtype=np.float32))) for i in range(count)]


def _idle(pool: DatasetPool) -> dict[str, int]:
    return {path: len(handles) for path, handles in pool._idle.items() if handles}


def test_a_hot_frame_keeps_a_handle_per_thread_and_the_total_stays_bounded(tmp_path: Path) -> None:
    paths = _files(tmp_path, 6)
    pool = DatasetPool(max_paths=4, idle_per_path=3, max_idle=5)
    with ExitStack() as stack:  # three readers of one frame at once
        first = [stack.enter_context(pool.open(paths[0])) for _ in range(3)]
    assert _idle(pool) == {paths[0]: 3}
    with pool.open(paths[0]) as again:
        assert any(again is handle for handle in first)  # reused, not reopened
    for path in paths[1:4]:
        with ExitStack() as stack:
            for _ in range(2):
                stack.enter_context(pool.open(path))
    idle = _idle(pool)
    assert sum(idle.values()) == 5 and max(idle.values()) <= 3
    # The least recently used frame gave its handles up first.
    assert idle.get(paths[0], 0) < 3 and idle[paths[3]] == 2
    for path in paths[4:]:
        with pool.open(path):
            pass
    assert len(pool._idle) <= 4 and sum(_idle(pool).values()) <= 5
    assert pool._idle_count == sum(len(h) for h in pool._idle.values())
    pool.forget(paths[5])
    assert pool._idle_count == sum(len(h) for h in pool._idle.values())
    pool.close()
    assert pool._idle_count == 0 and not pool._idle
