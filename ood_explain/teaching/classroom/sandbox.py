"""Limits for running a student's notebook: memory, CPU time, file size, and which files it may touch.

:func:`confine` is called in the grading worker before it starts the student's kernel; the kernel and
everything it starts inherit the limits:

* ``RLIMIT_AS`` (address space) and ``RLIMIT_CPU`` (CPU seconds): a memory bomb gets a ``MemoryError``
  and a busy loop that ignores interrupts is killed with SIGXCPU;
* ``RLIMIT_FSIZE``: no file larger than `file_bytes`;
* Landlock (Linux >= 5.13, no root needed): writes only inside the working directory (and ``/dev``),
  reads only the system folders, Python's installation and packages and the working directory, so the
  student's code cannot write the grades, read or change other students' files, or read the solutions.

This is not a container: the network, other processes and the reads of system folders stay open, and
on a kernel without Landlock the file rules are missing (:func:`confine` says so; the limits still hold).
"""

from __future__ import annotations

import ctypes
import os
import resource
import sys
from dataclasses import dataclass
from pathlib import Path

# Landlock's ABI (include/uapi/linux/landlock.h); the syscall numbers are the same on every architecture.
_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38
_EXECUTE, _WRITE_FILE, _READ_FILE, _READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_WRITES_V1 = sum(1 << bit for bit in range(4, 13))  # remove dir/file, make char/dir/reg/sock/fifo/block/sym
_REFER, _TRUNCATE = 1 << 13, 1 << 14  # ABI 2 and 3

SYSTEM_READS = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/opt", "/proc", "/sys", "/dev", "/run")


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


@dataclass(frozen=True)
class Limits:
    """Per-notebook limits: `memory_bytes` of address space, `cpu_seconds` of CPU time for the kernel,
    `file_bytes` per written file."""

    memory_bytes: int = 4 << 30
    cpu_seconds: int = 300
    file_bytes: int = 64 << 20


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def landlock_abi() -> int:
    """Landlock's ABI version on this kernel, 0 when it has none."""
    if not sys.platform.startswith("linux"):
        return 0
    version = _libc().syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    return max(int(version), 0)


def readable_roots(protected: list[Path]) -> list[Path]:
    """Folders the kernel must read: system folders, Python's prefixes and every import path, except any
    that holds a `protected` path (a sys.path entry at a repository root would expose its solutions)."""
    protected = [p.resolve() for p in protected]
    candidates = [Path(p) for p in SYSTEM_READS]
    candidates += [Path(p) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}]
    candidates += [Path(p) for p in sys.path if p]
    package = Path(__file__).resolve().parents[2]  # ood_explain itself, wherever it is installed from
    roots = []
    for path in [*candidates, package]:
        if not path.is_dir():
            continue
        path = path.resolve()
        if any(guarded == path or path in guarded.parents for guarded in protected):
            continue
        roots.append(path)
    return sorted(set(roots))


def _add_rule(libc: ctypes.CDLL, ruleset: int, path: Path, access: int) -> None:
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        rule = _PathBeneathAttr(access, fd)
        if libc.syscall(_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), 0) != 0:
            raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
    finally:
        os.close(fd)


def _landlock(workdir: Path, protected: list[Path], abi: int) -> None:
    writes = _WRITE_FILE | _WRITES_V1 | (_REFER if abi >= 2 else 0) | (_TRUNCATE if abi >= 3 else 0)
    reads = _EXECUTE | _READ_FILE | _READ_DIR
    libc = _libc()
    attr = _RulesetAttr(writes | reads)
    ruleset = libc.syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)), 0)
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        for root in readable_roots(protected):
            _add_rule(libc, ruleset, root, reads)
        _add_rule(libc, ruleset, workdir, reads | writes)
        _add_rule(libc, ruleset, Path("/dev"), reads | _WRITE_FILE | (_TRUNCATE if abi >= 3 else 0))
        if Path("/dev/shm").is_dir():  # shared memory of multiprocessing and torch
            _add_rule(libc, ruleset, Path("/dev/shm"), reads | writes)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        if libc.syscall(_RESTRICT_SELF, ruleset, 0) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)


def confine(workdir: Path, limits: Limits, protected: list[Path]) -> str:
    """Apply `limits` and the file rules to this process (and what it starts); returns a one-line note
    of what holds. `protected` folders (submissions, grades, solutions) are never readable."""
    for limit, value in (
        (resource.RLIMIT_AS, limits.memory_bytes),
        (resource.RLIMIT_CPU, limits.cpu_seconds),
        (resource.RLIMIT_FSIZE, limits.file_bytes),
    ):
        _soft, hard = resource.getrlimit(limit)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(limit, (value, hard))
    abi = landlock_abi()
    if abi == 0:
        return "memory, CPU and file-size limits; no file rules (this kernel has no Landlock)"
    _landlock(Path(workdir).resolve(), protected, abi)
    return f"memory, CPU and file-size limits; Landlock ABI {abi}: writes only in the working folder"
