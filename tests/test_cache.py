"""advisor.cache: the lock that runs and cache builders share, and leftovers of killed writers."""

from __future__ import annotations

import os
import threading
import time

from advisor.cache import FileLock, atomic_path, remove_stale_temporaries


def test_a_waiter_locks_the_file_that_is_there_after_the_holder_deletes_it(tmp_path):
    path = tmp_path / ".entry.lock"
    holder, waiter = FileLock(path), FileLock(path)
    assert holder.acquire(blocking=False)
    taken = threading.Event()
    thread = threading.Thread(target=lambda: (waiter.acquire(), taken.set()))
    thread.start()
    time.sleep(0.2)
    assert not taken.is_set(), "the waiter waits while the lock is held"
    holder.release()  # deletes the file, then unlocks: the waiter must not keep the deleted one
    thread.join(timeout=10)
    assert taken.is_set() and path.exists() and waiter.holder() == str(os.getpid())
    assert not FileLock(path).acquire(blocking=False), "the waiter holds the file at the path"
    waiter.release()
    assert FileLock(path).acquire(blocking=False)


def test_temporaries_of_killed_writers_are_removed_and_live_ones_kept(tmp_path):
    stale = tmp_path / ".abc.npy.x1y2.tmp.npy"  # what a writer killed by kill -9 leaves
    stale.write_bytes(b"half")
    os.utime(stale, (time.time() - 7 * 3600,) * 2)
    entry = tmp_path / "abc.npy"
    with atomic_path(entry, suffix=".npy") as live:
        live.write_bytes(b"in progress")
        assert remove_stale_temporaries(tmp_path) == 1
        assert live.exists() and not stale.exists()
    assert entry.read_bytes() == b"in progress"
