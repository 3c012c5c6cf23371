"""The simulated node's keys when the local stack's environments start side by side on a fresh
TIMMY_DATA_DIR: every process gets the one key, whole (a process that read a key another was still
writing signed nothing: a 500 on POST /api/jobs in the 24 x 6 concurrent jobs test)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from timmy.adapters.lightning_simulated import SimulatedLightning
from timmy.clock import SystemClock

PROCESSES = 8
ROUNDS = 6


def _start(data_dir: str, barrier: multiprocessing.synchronize.Barrier, keys: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    barrier.wait()
    node = SimulatedLightning(data_dir, SystemClock())
    node.create_invoice(21, "a first invoice", 600, "test:keys", "http://127.0.0.1:9/webhook")  # signed, stored
    keys.put((node._node_key, node._wallet_key))


def test_environments_starting_at_once_on_a_fresh_folder_share_one_whole_key(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    for round_ in range(ROUNDS):
        data_dir = tmp_path / f"data-{round_}"
        barrier, keys = context.Barrier(PROCESSES), context.Queue()
        processes = [context.Process(target=_start, args=(str(data_dir), barrier, keys)) for _ in range(PROCESSES)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(30)
        assert [process.exitcode for process in processes] == [0] * PROCESSES
        seen = {keys.get(timeout=5) for _ in processes}
        assert len(seen) == 1, seen
        ((node_key, wallet_key),) = seen
        assert len(node_key) == len(wallet_key) == 64 and node_key != wallet_key
        assert sorted(path.name for path in data_dir.iterdir() if path.name.endswith(".key")) == [
            "lightning-node.key",
            "lightning-wallet.key",
        ]
        assert not [path for path in data_dir.iterdir() if path.name.startswith(".")]  # no draft left behind
