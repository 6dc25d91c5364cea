"""``lanco -H [USER@]HOST[:PORT] ...``: the same command line run by the remote host's lanco, through OpenSSH.

As ``systemctl -H``: ssh carries one command line to the remote login shell, so every word is quoted here for a
POSIX shell (single quotes, the quote itself as ``'\\''``) and arrives as given, spaces, quotes, ``$``,
backslashes, newlines and empty words included. ``LANCO_SSH`` replaces the ssh command (split as shell words, so
``ssh -F /path/cfg`` works); ``LANCO_REMOTE_LANCO`` is the remote command (default ``lanco``), inserted as written,
so it may be ``sudo lanco`` or ``/opt/lanco/bin/lanco``.

Exit codes: the remote lanco's own pass through, and ssh's own failure, its exit 255, is told apart from a remote
exit 255 (``wait`` of a task that exited 255) by two marker lines the remote shell writes on stderr, one before the
remote lanco starts and one with its exit code after it ended; this side takes them out of the stream. No start
marker: ssh did not reach the remote shell ("cannot reach HOST"); a start marker and no end marker: the connection
was lost on the way ("lost the connection to HOST"). Both are one line, with ssh's last stderr line, and exit 255.
With a terminal (``-t``), where the remote stderr shares the terminal with stdout, there are no markers and a 255
is said to be ssh's.
"""

from __future__ import annotations

import os
import subprocess
import sys

from lanco.errors import HostUnreachable, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import BinaryIO

_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789@%+=:,./_-")
"""Characters no POSIX shell gives a meaning to: a word made of them alone needs no quotes (readable in -dd)."""

START_MARK = "\x1elanco-remote-start"
END_MARK = "\x1elanco-remote-exit "
"""The record separator (0x1e) never begins a line lanco writes: messages begin with a timestamp."""


def quote(word: str) -> str:
    """``word`` as one word of a POSIX shell command line, exactly."""
    if word and all(c in _PLAIN for c in word):
        return word
    return "'" + word.replace("'", "'\\''") + "'"


class Target:
    """``[USER@]HOST[:PORT]``, or ``[USER@][ADDRESS]:PORT`` for an IPv6 address with a port."""

    def __init__(self, text: str) -> None:
        self.text = text
        user, at, rest = text.rpartition("@")
        self.user = user if at else None
        port = None
        if rest.startswith("["):
            host, bracket, tail = rest[1:].partition("]")
            if not bracket or (tail and not tail.startswith(":")):
                raise UsageError(f"invalid host {text!r}: expected [USER@]HOST[:PORT] or [ADDRESS]:PORT")
            port = tail[1:] if tail else None
        elif rest.count(":") == 1:
            host, _, port = rest.partition(":")
        else:
            host = rest  # a name, or a bare IPv6 address (several colons): no port
        if not host or host.startswith("-") or any(c.isspace() for c in host):
            raise UsageError(f"invalid host {text!r}: expected [USER@]HOST[:PORT]")
        if self.user is not None and (not self.user or self.user.startswith("-")
                                      or any(c.isspace() for c in self.user)):
            raise UsageError(f"invalid user in host {text!r}")
        if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
            raise UsageError(f"invalid port in host {text!r}: expected 1 to 65535")
        self.host = host
        self.port = port

    def __str__(self) -> str:
        return self.text


def ssh_command() -> list[str]:
    import shlex

    given = os.environ.get("LANCO_SSH", "").strip()
    try:
        words = shlex.split(given) if given else ["ssh"]
    except ValueError as exc:
        raise UsageError(f"invalid LANCO_SSH {given!r}: {exc}") from exc
    return words or ["ssh"]


def remote_line(words: Sequence[str], *, marked: bool) -> str:
    """The command line the remote login shell runs (a POSIX shell: sh, bash, dash, zsh, ksh; not csh or fish)."""
    lanco = os.environ.get("LANCO_REMOTE_LANCO", "").strip() or "lanco"
    line = " ".join([lanco, *(quote(w) for w in words)])
    if not marked:
        return line
    return (f"printf '\\036lanco-remote-start\\n' >&2; {line}; s=$?; "
            "printf '\\036lanco-remote-exit %d\\n' \"$s\" >&2; exit \"$s\"")


def ssh_argv(target: Target, words: Sequence[str], *, tty: bool, marked: bool) -> list[str]:
    # LogLevel=ERROR: ssh's notes ("Warning: Permanently added ...", "Connection to HOST closed." after -t) would be
    # lines of their own beside lanco's one; its errors still show. An -o in LANCO_SSH comes first, and wins.
    return [*ssh_command(), "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-t" if tty else "-T",
            *(["-p", target.port] if target.port else []), *(["-l", target.user] if target.user else []),
            target.host, "--", remote_line(words, marked=marked)]


def wants_tty(words: Sequence[str]) -> bool:
    """A terminal on the remote side when this side has one to give it, in and out, and the output is for a
    person: top's live screen, Ctrl-C reaching ``logs -f``; never for ``--json`` or ``dump``, whose bytes a
    terminal's line discipline would change (``\\n`` to ``\\r\\n``)."""
    if _command_options(words) & {"--json", "dump"}:
        return False
    try:
        return os.isatty(sys.stdin.fileno()) and os.isatty(sys.stdout.fileno())
    except (OSError, ValueError):
        return False


def _command_options(words: Sequence[str]) -> set[str]:
    """The command word and its options up to its first argument (a task's argv is not looked into)."""
    at = 0
    while at < len(words) and words[at].startswith("-"):
        at += 2 if words[at] in ("-D", "--cgroup-mode", "--cgroup-base") else 1
    found: set[str] = set()
    if words[at:at + 1] == ["ls"] or words[at:at + 1] == ["logs"]:
        at -= 1  # the namespace-less commands: no namespace word before them
    for word in words[at + 1:]:
        if found and not word.startswith("-"):
            break
        found.add(word)
    return found


class Session:
    """One ssh run: stdin and stdout are the caller's (streamed as they come), stderr is read here to take the
    markers out and to keep ssh's last line; every other line is passed on, the last one held until the end, as it
    may be ssh's own farewell that a 255 message replaces."""

    def __init__(self, target: Target, words: Sequence[str], *, tty: bool = False,
                 stdout: int | None = None, stdin: int | None = None) -> None:
        self.target = target
        self.marked = not tty
        self.argv = ssh_argv(target, words, tty=tty, marked=self.marked)
        self.stdout, self.stdin = stdout, stdin
        self.reached = False
        self.remote_exit: int | None = None
        self.last_line = ""
        self.passed: list[str] = []
        """Lines passed on to the caller's stderr: kept for the Python API, which reads the remote's message."""
        self.output = b""
        self.exit_code = 0
        """The remote lanco's exit code (or ssh's), once the session has ended."""

    def run(self, relay: bool = True, sink: BinaryIO | None = None) -> int:
        """Run ssh to its end; its exit code, or the remote lanco's. ``relay``: pass stderr lines on to this
        process's stderr (the command line) rather than only keeping them in :attr:`passed` (the API). With
        ``stdout=PIPE``, what the remote prints is written to ``sink`` as it comes, or kept in :attr:`output`."""
        for chunk in self.stream(relay):
            if sink is not None:
                sink.write(chunk)
                sink.flush()
            else:
                self.output += chunk
        return self.exit_code

    def lines(self, relay: bool = False) -> Iterator[bytes]:
        """What the remote prints (``stdout=PIPE``), line by line as each comes; :attr:`exit_code` once done."""
        pending = b""
        for chunk in self.stream(relay):
            *whole, pending = (pending + chunk).split(b"\n")
            yield from whole
        if pending:
            yield pending

    def stream(self, relay: bool = True) -> Iterator[bytes]:
        """:meth:`run` as the chunks of stdout come; the exit code is :attr:`exit_code` once it is exhausted."""
        import selectors

        from lanco import messages

        messages.debug("-H", f"ssh command line: {self.argv!r}")
        try:
            process = subprocess.Popen(self.argv, stdin=self.stdin, stdout=self.stdout, stderr=subprocess.PIPE)
        except OSError as exc:
            raise HostUnreachable(f"cannot reach {self.target}: cannot run {self.argv[0]}: "
                                  f"{exc.strerror or exc}") from exc
        assert process.stderr is not None
        streams = selectors.DefaultSelector()
        streams.register(process.stderr.fileno(), selectors.EVENT_READ, "err")
        if process.stdout is not None:
            streams.register(process.stdout.fileno(), selectors.EVENT_READ, "out")
        held: str | None = None
        pending = b""
        interrupted = False
        try:
            while streams.get_map():
                try:
                    ready = streams.select()
                except KeyboardInterrupt:
                    # Ctrl-C (ssh had it too when in the same process group): ssh ends, what it still says is
                    # read, then the interrupt goes on (the command line's 130, the API caller's exception).
                    interrupted = True
                    if process.poll() is None:
                        process.terminate()
                    continue
                for key, _ in ready:
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        streams.unregister(key.fd)
                        continue
                    if key.data == "out":
                        yield chunk
                        continue
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for raw in lines:
                        held = self._line(raw, held, relay)
            if pending:
                held = self._line(pending, held, relay)
            code = self._wait(process)
        finally:
            streams.close()
            for pipe in (process.stdout, process.stderr):
                if pipe is not None:
                    pipe.close()
            if process.poll() is None:
                process.kill()
                process.wait()
        if held is not None:
            self.last_line = held.rstrip("\r")
        if interrupted:
            if held is not None:
                self._pass(held, relay)
            raise KeyboardInterrupt
        if self.remote_exit is not None:
            if held is not None:
                self._pass(held, relay)
            self.exit_code = self.remote_exit
            return
        if code < 0:
            code = 128 - code  # ssh ended by a signal, as a shell says it
        if code == 255:
            said = f": {self.last_line}" if self.last_line else ""
            if self.reached:
                raise HostUnreachable(f"lost the connection to {self.target}: ssh exited 255{said}")
            raise HostUnreachable(f"cannot reach {self.target}: ssh exited 255{said}")
        if held is not None:
            self._pass(held, relay)
        self.exit_code = code

    def _line(self, raw: bytes, held: str | None, relay: bool) -> str | None:
        """One stderr line in: the previous one held is passed on, this one held instead (markers taken out)."""
        line = self._take_markers(raw.decode(errors="replace"))
        if line is None:
            return held
        if held is not None:
            self._pass(held, relay)
        return line

    @staticmethod
    def _wait(process: subprocess.Popen[bytes]) -> int:
        while True:
            try:
                return process.wait()
            except KeyboardInterrupt:
                continue

    def _take_markers(self, line: str) -> str | None:
        """The line without a marker, or None when nothing else was on it."""
        if self.marked and START_MARK in line:
            self.reached = True
            line = line.replace(START_MARK, "")
            return line or None
        if self.marked and END_MARK in line:
            before, _, code = line.partition(END_MARK)
            if code.strip().isdigit():
                self.remote_exit = int(code.strip())
            return before or None
        return line

    def _pass(self, line: str, relay: bool) -> None:
        self.passed.append(line)
        if relay:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()


def run_remote(host: str, words: Sequence[str]) -> int:
    """``lanco -H HOST WORDS...``: the global options before the namespace go along; the exit code is the remote
    lanco's, or 255 (raised as HostUnreachable) when ssh failed."""
    target = Target(host)
    return Session(target, words, tty=wants_tty(words)).run()
