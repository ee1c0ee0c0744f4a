"""``tune_malloc``: threads started after it share one glibc arena (counted with ``malloc_info``).

Each case runs in a fresh interpreter, because ``mallopt`` settings and arenas are per process.
The control runs the same threads without ``tune_malloc`` and sees one arena per thread.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent(
    """
    import ctypes, os, sys, tempfile, threading
    from opsbackup.backup.malloc import tune_malloc

    if sys.argv[1] == "tuned":
        assert tune_malloc()
        assert tune_malloc()  # once per process; a second call changes nothing
    barrier = threading.Barrier(4)
    kept = []

    def work():
        kept.append([bytes(300_000) for _ in range(4)])  # over the default mmap threshold: a heap
        barrier.wait()  # all four alive at once, so none inherits an arena another left

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    libc = ctypes.CDLL(None)
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    fd, path = tempfile.mkstemp()
    os.close(fd)
    stream = libc.fopen(path.encode(), b"w")
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    print(open(path).read().count("<heap nr="))
    os.unlink(path)
    """
)


def _arenas(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True, timeout=60
    )
    return int(done.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt and malloc_info")
def test_threads_share_one_arena_after_tune_malloc() -> None:
    assert _arenas("tuned") == 1
    assert _arenas("default") >= 4  # the control: without it, each thread made its own
