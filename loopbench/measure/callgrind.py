"""Callgrind's client requests from this process: counting switched on where the step clock's window
opens, and the count dumped where it closes, so a run's count covers its measured steps and nothing else.

A client request is a no-op instruction sequence that valgrind recognises (valgrind.h documents it);
Python cannot emit it, so a 29-byte function holding it is put in an executable page and called
through ctypes: x86-64 Linux only. The process under valgrind is started by loopbench.launch.valgrind.
"""

from __future__ import annotations

import ctypes
import mmap
import os

ENV = "LOOPBENCH_COUNTING"  # set in the process under valgrind: the step clock then sends the requests


# uint64 request(uint64 *args, uint64 default): valgrind.h's amd64 client request, args in rax, result in rdx
_CODE = bytes.fromhex(
    "4889f8"  # mov rax, rdi      (the request's argument block)
    "4889f2"  # mov rdx, rsi      (the default answer, when not under valgrind)
    "48c1c703" "48c1c70d" "48c1c73d" "48c1c733"  # rol rdi, 3, 13, 61, 51: the preamble (128 bits: rdi unchanged)
    "4887db"  # xchg rbx, rbx     (the request itself)
    "4889d0"  # mov rax, rdx
    "c3"  # ret
)  # fmt: skip


_BASE = (ord("C") << 24) | (ord("T") << 16)  # VG_USERREQ_TOOL_BASE('C', 'T'): callgrind's requests


DUMP_STATS_AT, ZERO_STATS, START, STOP = _BASE + 3, _BASE + 1, _BASE + 4, _BASE + 5


_request = None


_page = None


def _send(code: int, *args: int) -> int:
    global _request, _page
    if _request is None:
        _page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        _page.write(_CODE)
        address = ctypes.addressof(ctypes.c_char.from_buffer(_page))
        _request = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.POINTER(ctypes.c_uint64), ctypes.c_uint64)(address)
    block = (ctypes.c_uint64 * 6)(code, *args, *([0] * (5 - len(args))))
    return _request(block, 0)


def counting() -> bool:
    return os.environ.get(ENV) == "1"


def window_opens() -> None:
    """Count from here (the step clock's window opens): zero the counters, instrument."""
    _send(START)
    _send(ZERO_STATS)


def window_closes(label: str) -> None:
    """Stop counting (the window closes) and dump the count under `label`."""
    name = ctypes.create_string_buffer(label.encode())
    _send(DUMP_STATS_AT, ctypes.addressof(name))
    _send(STOP)


LABEL = {"run": "0"}  # the label of the run in flight: its index in the request
