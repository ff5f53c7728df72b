"""A run folder has one writer: a lock held for the life of the run.

The lock is an advisory lock (flock) on OUT/.lock, which the operating system drops when its
process ends, however it ends: a second run into a folder in use is refused, and a lock
left by a killed run never blocks --resume.

In a data-parallel run the writer is the process of global rank 0. The other ranks run the
same command (started by Lightning, torchrun or srun), use the folder's paths and write
nothing there themselves.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from neurojoule.util.files import atomic_write_text

LOCK = ".lock"
# where the launchers put a process's rank before torch.distributed starts: torchrun (RANK),
# Lightning's own launcher (NODE_RANK, LOCAL_RANK), SLURM's srun (SLURM_PROCID)
RANK_VARIABLES = ("RANK", "NODE_RANK", "LOCAL_RANK", "SLURM_PROCID")


def is_main_process() -> bool:
    """Whether this process writes the run folder: the only process of an ordinary run, the
    one of global rank 0 in a data-parallel run."""
    return all(os.environ.get(name, "0") == "0" for name in RANK_VARIABLES)


class RunFolder:
    """`with RunFolder(out, resume) as folder:` checks `out` against --resume and holds its
    lock until the block ends."""

    def __init__(self, out: str | Path, resume: bool):
        self.path = Path(out)
        self.resume = resume
        self.writer = is_main_process()
        self._lock = None

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.ckpt"

    def __enter__(self) -> RunFolder:
        if not self.writer:
            return self
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(
                f"--out {self.path} is a file; expected a run folder (new or to resume)"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        self._acquire()
        try:
            self._check_resume()
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._release()

    def _acquire(self) -> None:
        handle = open(self.path / LOCK, "a+")  # noqa: SIM115 (held until __exit__)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise ValueError(
                f"{self.path} is in use by another run (process {holder}); wait for it to end "
                "or pick another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock = handle

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file drops the flock
            self._lock = None

    def _check_resume(self) -> None:
        if self.resume and not self.last.is_file():
            raise ValueError(f"--resume: no checkpoint at {self.last}")
        if not self.resume and self.last.is_file():
            raise ValueError(
                f"{self.path} already holds a run; pass --resume to continue it or pick --out"
            )

    def add_seconds(self, seconds: dict[str, float]) -> None:
        """timing.json: seconds spent in training (validation included) and in the final
        test; a resumed run adds its training time to that of the runs before it."""
        if not self.writer:
            return
        path = self.path / "timing.json"
        before = json.loads(path.read_text()) if self.resume and path.is_file() else {}
        totals = {
            f"{stage}_seconds": value
            + (before.get(f"{stage}_seconds", 0.0) if stage != "test" else 0.0)
            for stage, value in seconds.items()
        }
        atomic_write_text(path, json.dumps(totals, indent=2))
