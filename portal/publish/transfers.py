"""Running many target operations at once: uploads, deletions and checks, at most a window of them in flight.

Shared by publish and the shard publish and reconcile. The first failure stops the run (nothing after it is
started, what is in flight is cancelled where possible) and becomes one PublishError line naming the target, what
was being done and to which path; a failed upload says that nothing was deleted, since deletions only start once
every upload succeeded (portal/publish/plan.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from portal.publish.objects import LocalFile, PublishError
from portal.publish.plan import RemoteState
from portal.publish.targets import Target

DEFAULT_WORKERS = 16  # requests in flight at once: one thread-safe boto3 client, a pool of this many threads

Progress = Callable[[int, int], None]


def check_unsure(pool: ThreadPoolExecutor, target: Target, state: RemoteState, local: dict[str, LocalFile],
                 workers: int) -> dict[str, str | None]:
    """Read the sha256 of paths whose content the target's manifest cannot vouch for."""
    todo = [p for p in sorted(state.unsure & set(local))
            if p not in state.sizes or state.sizes[p] == local[p].size]
    checked: dict[str, str | None] = {}

    def check(path: str) -> int:
        checked[path] = target.remote_sha(path)
        return 0

    run_all(pool, check, todo, workers * 4, lambda _n: None, target.name, "checking")
    return checked


def counted(operation: Callable) -> Callable:
    """`operation` returning how many paths it handled (one file, or a batch of paths), for progress."""
    def run(item: LocalFile | list[str]) -> int:
        operation(item)
        return len(item) if isinstance(item, list) else 1
    return run


def run_all(pool: ThreadPoolExecutor, operation: Callable, items: Iterable, window: int,
            on_done: Callable[[int], None], where: str, doing: str) -> None:
    """Run `operation` over `items` with at most `window` in flight; stop at the first failure."""
    pending: dict[Future, object] = {}

    def collect(futures: set[Future]) -> None:
        for future in futures:
            item = pending.pop(future)
            try:
                on_done(future.result())
            except PublishError:
                raise
            except Exception as exc:  # noqa: BLE001 - any other failure becomes one clear line
                what = item.path if isinstance(item, LocalFile) else str(item)[:80]
                raise PublishError(f"{where}: {doing} {what} failed: {exc}") from exc

    try:
        for item in items:
            pending[pool.submit(operation, item)] = item
            if len(pending) >= window:
                collect(wait(pending, return_when=FIRST_COMPLETED).done)
        while pending:
            collect(wait(pending, return_when=FIRST_COMPLETED).done)
    except BaseException as exc:
        for future in pending:
            future.cancel()
        if isinstance(exc, PublishError) and doing == "uploading":
            raise PublishError(f"{exc.message}; nothing was deleted: publish again to finish") from exc
        raise


def batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
