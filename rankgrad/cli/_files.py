"""Files of the command line: the outputs of one command as one transaction, inputs that are read twice,
and cleanup when the process is told to stop.

Output policy (every command that writes files: ``advantages`` OUT, ``prompts`` OUT and --draws-out,
``weights -o``):

* every output path is checked before any input is read: its folder exists and is writable; it is not a
  directory, FIFO, device or other non-regular file; a symbolic link or a read-only file is replaced
  only with ``--force`` (the link itself is replaced by the new file, never written through);
* an output is never an input (the same path, or the same file by device and inode, hard and symbolic
  links included), and two outputs of one command are never the same file;
* every output is written to a temporary file in its own folder (``.NAME.XXXX.rankgrad-tmp``); the
  temporary files are renamed over their outputs only at the end, all of them together, when the
  whole command succeeded; on any error, Ctrl-C or terminating signal they are removed and every
  existing output is left as it was;
* ``-`` as an output is stdout (``advantages`` OUT, ``prompts`` OUT, ``weights -o`` for text and
  JSON): it is spooled to a temporary file and copied to stdout at the end, so a failed run prints
  nothing.

Input policy: ``-`` as an input is stdin; stdin and other inputs that cannot be read twice (a FIFO, a
process substitution such as ``<(zcat x.jsonl.gz)``) are first copied to a temporary file, removed at
the end.

Signals: while a command runs, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM and SIGXCPU
(those not ignored) raise :class:`Terminated`, which unwinds the command (removing its temporary
files); :func:`rankgrad.cli.main` then exits with 128 + the signal number. SIGINT is Python's
KeyboardInterrupt (exit 130). The previous handlers are restored afterwards.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import shutil
import signal
import stat
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from rankgrad.cli._common import CliError

STDIO = "-"
TMP_SUFFIX = ".rankgrad-tmp"
_SYSTEM = ("/dev/", "/proc/")  # /dev/stdout, /proc/self/fd/1: never replaced, even with --force
_SIGNALS = tuple(getattr(signal, name) for name in
                 ("SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGXCPU")
                 if hasattr(signal, name))


# ------------------------------------------------------------------ signals
class Terminated(BaseException):
    """A terminating signal arrived while a command ran (a BaseException, like KeyboardInterrupt, so
    that no ``except Exception`` swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """While the block runs, terminating signals raise :class:`Terminated` (the first one; later ones
    are ignored so that the cleanup they trigger is not cut short). Signals set to be ignored stay
    ignored (``nohup``). Only in the main thread (the only one that can handle signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if fired:
            return
        fired.append(signum)
        raise Terminated(signum)

    previous = {}
    for sig in _SIGNALS:
        old = signal.getsignal(sig)
        if old is signal.SIG_IGN or old is None:  # None: installed outside Python; leave it alone
            continue
        previous[sig] = old
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def _signals_blocked() -> Iterator[None]:
    """Delay the handled signals (not lose them) while temporary files are created, renamed or removed,
    so that none is left behind half-registered."""
    mask = getattr(signal, "pthread_sigmask", None)
    if mask is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    old = mask(signal.SIG_BLOCK, _SIGNALS)
    try:
        yield
    finally:
        mask(signal.SIG_SETMASK, old)


# ------------------------------------------------------------------ outputs
@dataclass
class Output:
    """One output of a command: ``path`` as given (``-`` = stdout), ``what`` names its argument."""

    path: str
    what: str
    tmp: str = ""

    @property
    def is_stdout(self) -> bool:
        return self.path == STDIO


def _same_file(a: str, b: str) -> bool:
    """Whether two paths name the same file: equal resolved paths, or equal (device, inode)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_output_path(path: str, what: str, *, force: bool, stdout_ok: bool) -> None:
    """The checks of one output path that need no other path (see the module docstring)."""
    stdout_hint = "; give '-' for stdout" if stdout_ok else ""
    if path == "":
        raise CliError(f"{what}: empty file name.")
    if path.endswith(("/", os.sep)):
        raise CliError(f"{what} {path!r}: names a folder; give a file name.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CliError(f"{what} {path!r}: folder {folder!r} does not exist.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CliError(f"{what} {path!r}: folder {folder!r} is not writable (the file is written there "
                       "first, then renamed).")
    here = os.path.abspath(path)
    link = os.path.normpath(os.path.join(folder, os.readlink(path))) if os.path.islink(path) else ""
    if here.startswith(_SYSTEM) or link.startswith(_SYSTEM):
        raise CliError(f"{what} {path!r}: is a device or process file, not a regular file; rankgrad writes a "
                       f"new file and renames it into place{stdout_hint}.")
    try:
        target = os.stat(path)  # follows a symbolic link
    except FileNotFoundError:
        target = None
    except OSError as err:
        raise CliError(f"{what} {path!r}: {err.strerror}.") from None
    if target is not None and stat.S_ISDIR(target.st_mode):
        raise CliError(f"{what} {path!r}: is a directory; give a file name.")
    if target is not None and not stat.S_ISREG(target.st_mode):
        raise CliError(f"{what} {path!r}: is {_kind(target.st_mode)}, not a regular file; rankgrad writes "
                       f"a new file and renames it into place{stdout_hint}.")
    if os.path.islink(path) and not force:
        dest = os.readlink(path)
        raise CliError(f"{what} {path!r}: is a symbolic link (to {dest!r}); the new file would replace the "
                       "link, not its target. Give the target's path, or pass --force to replace the link.")
    read_only = target is not None and (not os.access(path, os.W_OK) or not target.st_mode & 0o222)
    if read_only and not force:
        raise CliError(f"{what} {path!r}: is read-only; pass --force to replace it.")


class Transaction:
    """The files one command writes: checked before any input is read, written to temporary files,
    renamed into place together by :meth:`commit`; anything left is removed when the ``with`` block
    ends (error, interrupt or signal). Also holds scratch files (spooled inputs), always removed."""

    def __init__(self, force: bool) -> None:
        self.force = force
        self.outputs: list[Output] = []
        self.inputs: list[tuple[str, str]] = []
        self._scratch: list[str] = []
        self._committed = False

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def output(self, path: str, what: str, *, stdout_ok: bool = False) -> Output:
        """Register and check one output (``-`` = stdout where ``stdout_ok``)."""
        if path == STDIO and not stdout_ok:
            raise CliError(f"{what}: '-' (stdout) is not available here; give a file name.")
        if path != STDIO:
            check_output_path(path, what, force=self.force, stdout_ok=stdout_ok)
        out = Output(path, what)
        self.outputs.append(out)
        return out

    def protect(self, path: str, what: str) -> None:
        """Register an input, which no output may be."""
        if path != STDIO:
            self.inputs.append((path, what))

    def begin(self) -> None:
        """Check the outputs against each other and the inputs, then create their temporary files (which
        proves the folders writable before any work is done)."""
        for i, out in enumerate(self.outputs):
            for other in self.outputs[:i]:
                if out.is_stdout and other.is_stdout:
                    raise CliError(f"{other.what} and {out.what} are both '-' (stdout); give a file name "
                                   "for one of them.")
                if not out.is_stdout and not other.is_stdout and _same_file(out.path, other.path):
                    raise CliError(f"{other.what} {other.path!r} and {out.what} {out.path!r} are the same "
                                   "file; give two different files.")
            if out.is_stdout:
                continue
            for path, what in self.inputs:
                if _same_file(out.path, path):
                    raise CliError(f"{out.what} {out.path!r} is the input {what} {path!r}; the input is "
                                   "never overwritten: write to another file.")
        for out in self.outputs:
            with _signals_blocked():
                try:
                    if out.is_stdout:
                        fd, out.tmp = tempfile.mkstemp(prefix="rankgrad-stdout.", suffix=TMP_SUFFIX)
                    else:
                        folder = os.path.dirname(os.path.abspath(out.path))
                        fd, out.tmp = tempfile.mkstemp(prefix=f".{os.path.basename(out.path)}.",
                                                       suffix=TMP_SUFFIX, dir=folder)
                except OSError as err:
                    where = "a temporary file for stdout" if out.is_stdout else f"a file next to {out.path!r}"
                    raise CliError(f"{out.what}: cannot create {where}: {err.strerror}.") from None
                os.close(fd)

    def scratch(self, name: str) -> str:
        """A new empty temporary file (for a spooled input), removed when the transaction ends."""
        with _signals_blocked():
            fd, path = tempfile.mkstemp(prefix=f"rankgrad-{name}.", suffix=TMP_SUFFIX)
            self._scratch.append(path)
        os.close(fd)
        return path

    def commit(self) -> None:
        """Give every file output its final mode, rename them all into place, then copy the stdout ones."""
        files = [o for o in self.outputs if not o.is_stdout]
        with _signals_blocked():
            for out in files:
                os.chmod(out.tmp, _final_mode(out.path))
            for out in files:
                os.replace(out.tmp, out.path)
                out.tmp = ""
            self._committed = True
        for out in self.outputs:
            if out.is_stdout:
                _copy_to_stdout(out.tmp)

    def cleanup(self) -> None:
        """Remove every temporary and scratch file still there."""
        with _signals_blocked():
            for path in [o.tmp for o in self.outputs if o.tmp] + self._scratch:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            for out in self.outputs:
                out.tmp = ""
            self._scratch.clear()


def _final_mode(path: str) -> int:
    """The mode of the file being replaced (not of a link's target), else the default for a new file."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISREG(st.st_mode):
        return st.st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _copy_to_stdout(path: str) -> None:
    out: IO[bytes] | None = getattr(sys.stdout, "buffer", None)
    sys.stdout.flush()
    with open(path, "rb") as f:
        if out is not None:
            shutil.copyfileobj(f, out, 1 << 20)
            out.flush()
        else:  # a text-only stdout (an embedding application): the outputs on stdout are UTF-8 text
            decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
            for chunk in iter(lambda: f.read(1 << 20), b""):
                sys.stdout.write(decode(chunk))
            sys.stdout.write(decode(b"", final=True))
            sys.stdout.flush()
