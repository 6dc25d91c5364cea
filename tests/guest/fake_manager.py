"""A stand-in for a systemd user manager's private socket that misbehaves on purpose, for the tests of what a run
does when its manager does: ``python3 fake_manager.py SOCKET MODE``, MODE one of

- ``refuse``: answers every method call with an error, as a manager refusing the job would;
- ``silent``: authenticates, then never answers;
- ``hangup``: closes the connection at the first call.

It serves connections for at most 120 s, then exits; it touches SOCKET.ready once it listens."""

from __future__ import annotations

import socket
import sys
import time

from jeepney import MessageType, Parser, new_error


def serve(conn: socket.socket, mode: str) -> None:
    data = b""
    while b"BEGIN\r\n" not in data:
        if b"AUTH" in data and b"\r\n" in data and not data.endswith(b"OK sent"):
            conn.sendall(b"OK 0123456789abcdef0123456789abcdef\r\n")
            data += b"OK sent"
        chunk = conn.recv(4096)
        if not chunk:
            return
        data += chunk
    parser = Parser()
    parser.add_data(data.split(b"BEGIN\r\n", 1)[1])
    serial = 0
    while True:
        message = parser.get_next_message()
        if message is None:
            chunk = conn.recv(4096)
            if not chunk:
                return
            parser.add_data(chunk)
            continue
        if message.header.message_type != MessageType.method_call:
            continue
        if mode == "hangup":
            return
        if mode == "refuse":
            serial += 1
            conn.sendall(new_error(message, "org.freedesktop.systemd1.TestRefused", "s",
                                   ("refused by the test's stand-in manager",)).serialise(serial=serial))


def main(path: str, mode: str) -> int:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)
    listener.settimeout(1.0)
    open(path + ".ready", "w").close()
    open_connections = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        conn.settimeout(30)
        try:
            serve(conn, mode)
        except OSError:
            pass
        if mode == "silent":
            open_connections.append(conn)  # kept open: the client must give up by itself
        else:
            conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
