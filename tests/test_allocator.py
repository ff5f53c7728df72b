"""keep_freed_memory: a freed large block is reused without page faults (glibc only)."""

import platform
import subprocess
import sys

import pytest

_MB = 2**20
_PAGE = 4096

# Allocates and touches a 64 MB block twice and prints the page faults of the second touch.
_PROBE = """
import resource, sys
from neurojoule.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def touch():
    block = bytearray(64 * 2**20)  # zero-filled: writes every page
    return len(block)
touch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
touch()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _second_touch_faults(mode: str) -> int:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True
    )
    return int(result.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's")
def test_freed_block_is_reused_without_page_faults():
    pages = 64 * _MB // _PAGE
    assert _second_touch_faults("default") > pages // 2  # glibc maps the block afresh
    assert _second_touch_faults("keep") < pages // 100
