"""External tools (ImageMagick, ffmpeg, Ghostscript, LibreOffice, poppler): found, named
by version, and run under a timeout and a memory limit with their output captured.

Every conversion and every check that decodes content runs a program preserve did
not write, on files preserve did not choose. Each run is therefore bounded: a
memory limit (`prlimit --as`, util-linux, so no Python code runs between fork and
exec in a process that holds Go and thread state), a wall-clock timeout after
which the whole process group is killed (LibreOffice starts children), and its
messages kept (the last 4 KiB of each stream) for the PREMIS event that says why
it failed. Large outputs (decoded pixels, samples) are read as a stream, never
held whole.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import cache

from preserve.errors import ToolFailure
from preserve.system.locks import pid_alive

KEEP_BYTES = 4096  # of each captured stream: enough for a message, bounded for a log
CHUNK = 1 << 20
# How each known tool says its version (the first line matching, first group).
VERSION_ARGS = {
    "convert": (["-version"], r"Version: ImageMagick ([^ ]+)"),
    "identify": (["-version"], r"Version: ImageMagick ([^ ]+)"),
    "ffmpeg": (["-version"], r"ffmpeg version ([^ ]+)"),
    "ffprobe": (["-version"], r"ffprobe version ([^ ]+)"),
    "gs": (["--version"], r"([0-9][^ \n]*)"),
    "soffice": (["--version"], r"LibreOffice ([^ ]+)"),
    "pdftoppm": (["-v"], r"pdftoppm version ([^ \n]+)"),
    "pdftotext": (["-v"], r"pdftotext version ([^ \n]+)"),
}


_LIVE: set[subprocess.Popen] = set()  # every tool running now, to stop on Ctrl-C
_LIVE_LOCK = threading.Lock()
_STOPPED = threading.Event()  # set by kill_all: no new tool starts until allow_tools()


def kill_all() -> None:
    """Stop every tool this process started that still runs, and start no more (an
    interrupted migration: tools run in sessions of their own, so the terminal's Ctrl-C
    does not reach them, and the threads that ran them must not start the next step)."""
    _STOPPED.set()
    with _LIVE_LOCK:
        live = list(_LIVE)
    for proc in live:
        _kill_group(proc)


def allow_tools() -> None:
    """Tools may run again (a new run after an interrupted one, in the same process)."""
    _STOPPED.clear()


@contextmanager
def _tracked(proc: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """The tool known to kill_all while it runs. A tool started as kill_all ran (Ctrl-C
    between its start and this) is stopped here: kill_all sets _STOPPED before it looks
    at _LIVE, so one of the two always sees the other."""
    with _LIVE_LOCK:
        _LIVE.add(proc)
        stopped = _STOPPED.is_set()
    if stopped:
        _kill_group(proc)
    try:
        yield proc
    finally:
        with _LIVE_LOCK:
            _LIVE.discard(proc)


class ToolTimeout(ToolFailure):
    """The tool ran past its time and was killed (with every process it started)."""


@dataclass
class ToolRun:
    argv: list[str]
    returncode: int
    seconds: float
    stdout: str  # the last KEEP_BYTES, decoded leniently
    stderr: str

    def summary(self) -> str:
        said = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return f"exit {self.returncode}" + (f": {said[-1][:300]}" if said else "")


def find_tool(name: str) -> str | None:
    return shutil.which(name)


@cache
def tool_version(name: str) -> str | None:
    """The version a tool reports, or None when it is not installed (or says nothing)."""
    path = find_tool(name)
    if path is None:
        return None
    args, pattern = VERSION_ARGS.get(name, (["--version"], r"([0-9][^ \n]*)"))
    try:
        done = subprocess.run([path, *args], capture_output=True, timeout=30,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (done.stdout + done.stderr).decode("utf-8", "replace")
    m = re.search(pattern, text)
    return m.group(1) if m else (text.strip().splitlines() or ["unknown"])[0][:80]


# Every tool runs under a small supervisor, so that no tool outlives preserve, however it
# ends (red-team 2026-12 cases 41, 45, 60: after a kill -9 of migrate or of a worker, the
# tool and its children kept writing into a folder the next run removes). setpriv (util-
# linux) gives the supervisor a parent-death signal; the supervisor (dash, in a session of
# its own with the tool) then kills every process that carries this run's mark in its
# environment (a child that started a session of its own included), then its own group.
_SUPERVISOR = ('trap \'for p in /proc/[0-9]*; do [ "${p#/proc/}" = "$$" ] || '
               '! grep -qsa "PRESERVE_TOOL=$PRESERVE_TOOL" "$p/environ" || '
               'kill -9 "${p#/proc/}" 2>/dev/null; done; kill -9 0\' TERM INT HUP; '
               '"$@" & wait $!')
MARK = "PRESERVE_TOOL"  # <owner pid>-<random>: which run of which process a tool belongs to


def _supervised(argv: list[str], env: dict | None) -> tuple[list[str], dict, str]:
    """(argv, environment, mark) of a tool run under the supervisor, where setpriv is
    there (it is on every Debian: util-linux); the mark alone elsewhere."""
    mark = f"{os.getpid()}-{uuid.uuid4().hex}"
    env = dict(os.environ if env is None else env, **{MARK: mark})
    setpriv, sh = find_tool("setpriv"), find_tool("sh")
    if setpriv and sh:
        argv = [setpriv, "--pdeathsig", "TERM", "--", sh, "-c", _SUPERVISOR, "sh", *argv]
    return argv, env, mark


def _marked_processes() -> Iterator[tuple[int, str]]:
    """(pid, mark) of every process of this machine whose environment carries a tool
    mark (read from /proc; processes we may not read are not ours)."""
    needle = f"{MARK}=".encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            continue
        for item in environ.split(b"\0"):
            if item.startswith(needle):
                yield int(entry.name), item[len(needle):].decode("ascii", "replace")


def kill_marked(prefix: str) -> int:
    """Kill every process whose environment carries a tool mark starting with `prefix` (a
    run's whole mark, or "<pid>-" for all tools of a process); how many were found."""
    killed = 0
    for pid, mark in _marked_processes():
        if mark.startswith(prefix):
            with suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
    return killed


def kill_orphaned_tools() -> list[str]:
    """Tools left running by processes of preserve that have ended (a kill -9 before the
    supervisor could act, or where there is no setpriv): killed, a line each."""
    owners = {int(mark.split("-", 1)[0]) for _, mark in _marked_processes()
              if mark.split("-", 1)[0].isdigit()}
    gone = [pid for pid in owners if not pid_alive(pid)]
    return [f"stopped {n} tool process(es) left running by process {pid}, which has ended"
            for pid in gone for n in (kill_marked(f"{pid}-"),) if n]


@cache
def _network_namespaces() -> bool:
    """Whether this machine lets a process leave the network behind (`unshare --net` in a
    user namespace of its own: root, or a kernel that allows unprivileged ones)."""
    unshare = find_tool("unshare")
    if unshare is None:
        return False
    try:
        return subprocess.run([unshare, "--map-root-user", "--net", "--", "true"],
                              capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _limited(argv: list[str], memory_mb: int | None, isolated: bool = False) -> list[str]:
    if _STOPPED.is_set():
        raise ToolFailure(f"{argv[0]} was not started: the run is being stopped")
    path = find_tool(argv[0])
    if path is None:
        raise ToolFailure(f"the program '{argv[0]}' is not installed on this machine",
                          hint="install it (scripts/setup.sh installs the default tools), "
                               "or change the pathway in policies/formats.yaml")
    argv = [path, *argv[1:]]
    if isolated and _network_namespaces():  # no network: nothing to send a file's bytes to
        argv = [find_tool("unshare"), "--map-root-user", "--net", "--", *argv]
    prlimit = find_tool("prlimit")
    if memory_mb and prlimit:
        argv = [prlimit, f"--as={memory_mb * 1024 * 1024}", "--", *argv]
    return argv


def run_tool(argv: list[str], *, timeout: float, memory_mb: int | None = None,
             cwd: str | None = None, env: dict | None = None,
             isolated: bool = False) -> ToolRun:
    """Run a tool to the end; its exit status is the caller's to judge. Raises ToolTimeout
    when it runs past `timeout` (its process group killed), ToolFailure when it cannot
    start. `isolated`: in a network namespace of its own, where the machine allows one
    (the validators' child: it reads files preserve did not choose)."""
    full = _limited(argv, memory_mb, isolated)
    command, env, mark = _supervised(full, env)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        try:
            proc = subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                    cwd=cwd, env=env, start_new_session=True)
            proc.mark = mark
        except OSError as e:
            raise ToolFailure(f"cannot start {argv[0]}: {e.strerror or e}") from e
        try:
            with _tracked(proc):
                code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise ToolTimeout(f"{argv[0]} ran longer than {timeout:g} s and was stopped",
                              hint="raise timeout_seconds of the pathway in "
                                   "policies/formats.yaml if the file is that large") from None
        except BaseException:
            _kill_group(proc)  # Ctrl-C: no tool is left running behind us
            raise
        finally:
            seconds = time.monotonic() - started
        return ToolRun(full, code, seconds, _tail(out), _tail(err))


def start_tool(argv: list[str], *, memory_mb: int | None = None, isolated: bool = False,
               pass_fds: tuple[int, ...] = (), stderr=None) -> subprocess.Popen:
    """A tool that keeps running (a server of requests), under the same sandbox as
    run_tool's, its standard output a pipe. The supervisor gives a tool in the background
    /dev/null as standard input, so requests go through one of `pass_fds`. Stopped by
    stop_tool, by kill_all (Ctrl-C), or with the thread that started it."""
    full = _limited(argv, memory_mb, isolated)
    command, env, mark = _supervised(full, None)
    try:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                                pass_fds=pass_fds)
    except OSError as e:
        raise ToolFailure(f"cannot start {argv[0]}: {e.strerror or e}") from e
    proc.mark = mark
    with _LIVE_LOCK:
        _LIVE.add(proc)
        stopped = _STOPPED.is_set()
    if stopped:  # started as kill_all ran (see _tracked)
        _kill_group(proc)
    return proc


def stop_tool(proc: subprocess.Popen) -> None:
    _kill_group(proc)
    with _LIVE_LOCK:
        _LIVE.discard(proc)


def _kill_group(proc: subprocess.Popen) -> None:
    """The tool's process group, and any of its processes that left it (case 41)."""
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if getattr(proc, "mark", None):
        kill_marked(proc.mark)
    with suppress(Exception):
        proc.wait(timeout=10)


def _tail(f) -> str:
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(max(0, size - KEEP_BYTES))
    return f.read().decode("utf-8", "replace")


@contextmanager
def streamed(argv: list[str], *, timeout: float, memory_mb: int | None = None
             ) -> Iterator[Iterator[bytes]]:
    """A tool's standard output as chunks, for decoded content too large to hold. The tool
    must end well (exit 0) within `timeout`, or ToolFailure is raised when the block ends."""
    full = _limited(argv, memory_mb)
    command, env, mark = _supervised(full, None)
    deadline = time.monotonic() + timeout
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, env=env,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        proc.mark = mark
        timer = _Watchdog(proc, deadline)

        def chunks() -> Iterator[bytes]:
            while chunk := proc.stdout.read(CHUNK):
                yield chunk

        try:
            with _tracked(proc):
                yield chunks()
                proc.stdout.read()  # drain what the caller left
                code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            code = None
        except BaseException:
            _kill_group(proc)
            raise
        finally:
            timer.cancel()
            proc.stdout.close()
        if code is None or timer.fired:
            _kill_group(proc)
            raise ToolTimeout(f"{argv[0]} ran longer than {timeout:g} s and was stopped")
        if code != 0:
            said = _tail(err).strip().splitlines()
            raise ToolFailure(f"{argv[0]} failed (exit {code})"
                              + (f": {said[-1][:300]}" if said else ""))


class _Watchdog:
    """Kills a streaming tool's process group at its deadline (a read may block forever)."""

    def __init__(self, proc: subprocess.Popen, deadline: float):
        self.fired = False
        self._proc = proc
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        _kill_group(self._proc)

    def cancel(self) -> None:
        self._timer.cancel()


def hash_output(argv: list[str], *, timeout: float, memory_mb: int | None = None
                ) -> tuple[str, int]:
    """sha256 and length of a tool's standard output, read as a stream."""
    digest, length = hashlib.sha256(), 0
    with streamed(argv, timeout=timeout, memory_mb=memory_mb) as chunks:
        for chunk in chunks:
            digest.update(chunk)
            length += len(chunk)
    return digest.hexdigest(), length


def output_text(argv: list[str], *, timeout: float, memory_mb: int | None = None,
                limit: int = 64 << 20) -> str:
    """A tool's standard output as text (at most `limit` bytes: a report, not content)."""
    parts, size = [], 0
    with streamed(argv, timeout=timeout, memory_mb=memory_mb) as chunks:
        for chunk in chunks:
            if size < limit:
                parts.append(chunk[: limit - size])
            size += len(chunk)
    return b"".join(parts).decode("utf-8", "replace")
