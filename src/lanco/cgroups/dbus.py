"""A small D-Bus client: just what lanco's conversation with a systemd manager needs, over one unix socket.

It speaks the wire protocol of the D-Bus specification (marshalling, the EXTERNAL authentication, method calls,
replies, errors and signals) for the types systemd's Manager interface uses here (``y b n q i u x t d s o g a ( )
{ } v``; no file descriptors). It exists because every ``lanco run`` of an ordinary user on a systemd host talks
to the user manager once, and the general clients cost more to import than the whole conversation: jeepney, the
pure-Python client Debian packages, pulls in typing, enum and socket (23 ms natively, 195 ms in the project's
emulated guest, whose bare interpreter starts in 160 ms), and dbus-python or sd-bus bindings are C extensions
that lanco must not require. Here only ``_socket`` and ``struct`` are loaded. tests/unit/test_dbus.py checks
the encoding against jeepney's.

    connection = Connection.open("/run/user/1000/systemd/private", bus=False)
    serial = connection.call(SYSTEMD, MANAGER_PATH, MANAGER, "StopUnit", "ss", ("x.scope", "replace"))
    reply = connection.reply_to(serial, deadline)        # a Message, or raises BusError / BusTimeout
"""

from __future__ import annotations

import _socket
import os
import struct
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SYSTEMD = "org.freedesktop.systemd1"
MANAGER_PATH = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
_BUS_NAME = "org.freedesktop.DBus"
_BUS_PATH = "/org/freedesktop/DBus"

METHOD_CALL, METHOD_RETURN, ERROR, SIGNAL = 1, 2, 3, 4
_PATH, _INTERFACE, _MEMBER, _ERROR_NAME, _REPLY_SERIAL, _DESTINATION, _SENDER, _SIGNATURE = range(1, 9)
_HEADER_FIELD_TYPES = {_PATH: "o", _INTERFACE: "s", _MEMBER: "s", _ERROR_NAME: "s", _REPLY_SERIAL: "u",
                       _DESTINATION: "s", _SENDER: "s", _SIGNATURE: "g", 9: "u"}
_FIXED = {"y": (1, "B"), "b": (4, "I"), "n": (2, "h"), "q": (2, "H"), "i": (4, "i"), "u": (4, "I"),
          "x": (8, "q"), "t": (8, "Q"), "d": (8, "d"), "h": (4, "I")}
_ALIGN = {**{code: size for code, (size, _) in _FIXED.items()}, "s": 4, "o": 4, "g": 1, "a": 4, "(": 8, "{": 8,
          "v": 1}
_MAX_MESSAGE = 1 << 27


class BusError(Exception):
    """An error reply (``name`` is the D-Bus error name, e.g. ``org.freedesktop.systemd1.UnitExists``), or a
    connection that failed or broke."""

    def __init__(self, name: str, text: str) -> None:
        super().__init__(f"{text} ({name})" if text else name)
        self.name = name
        self.text = text


class BusTimeout(BusError):
    """The peer did not answer in time."""


class Message:
    """A message as read: its header now, its body when first asked for. A manager's private socket carries every
    signal it sends (units and their properties, as they change) to every client, and a run reads past many of
    them while it waits for its own reply and job: decoding those would cost it more than the conversation."""

    __slots__ = ("_body", "_raw", "error_name", "interface", "kind", "member", "path", "reply_serial", "serial")

    def __init__(self, kind: int, serial: int, fields: dict[int, Any], body: tuple[Any, ...] | None = None,
                 raw: tuple[bytes, int, bool] | None = None) -> None:
        self.kind = kind
        self.serial = serial
        self.path = fields.get(_PATH)
        self.interface = fields.get(_INTERFACE)
        self.member = fields.get(_MEMBER)
        self.error_name = fields.get(_ERROR_NAME)
        self.reply_serial = fields.get(_REPLY_SERIAL)
        self._body = body
        self._raw = (raw, str(fields.get(_SIGNATURE, "")))

    @property
    def body(self) -> tuple[Any, ...]:
        if self._body is None:
            raw, signature = self._raw
            values: list[Any] = []
            if raw is not None:
                data, position, little = raw
                for member in split_signature(signature):
                    value, position = unmarshal(data, position, member, little)
                    values.append(value)
            self._body = tuple(values)
        return self._body


# -- marshalling ---------------------------------------------------------------------------------------------

def split_signature(signature: str) -> list[str]:
    """The complete types of ``signature``: ``"sa(sv)u"`` -> ``["s", "a(sv)", "u"]``."""
    types, index = [], 0
    while index < len(signature):
        end = _type_end(signature, index)
        types.append(signature[index:end])
        index = end
    return types


def _type_end(signature: str, index: int) -> int:
    code = signature[index]
    if code == "a":
        return _type_end(signature, index + 1)
    if code in "({":
        closing, depth = {"(": ")", "{": "}"}[code], 0
        for position in range(index, len(signature)):
            if signature[position] == code:
                depth += 1
            elif signature[position] == closing:
                depth -= 1
                if depth == 0:
                    return position + 1
        raise ValueError(f"unbalanced D-Bus signature {signature!r}")
    if code in _FIXED or code in "sogv":
        return index + 1
    raise ValueError(f"unknown D-Bus type {code!r} in {signature!r}")


def _pad(buffer: bytearray, alignment: int) -> None:
    buffer.extend(b"\0" * (-len(buffer) % alignment))


def marshal(buffer: bytearray, signature: str, value: Any) -> None:
    """Append ``value`` as the single complete type ``signature`` (little-endian). A variant's value is a pair
    ``(signature, value)``; a struct's a tuple; a dict entry's a pair; an array's a list."""
    code = signature[0]
    _pad(buffer, _ALIGN[code])
    if code in _FIXED:
        buffer.extend(struct.pack("<" + _FIXED[code][1], value))
    elif code in "so":
        encoded = value.encode()
        buffer.extend(struct.pack("<I", len(encoded)) + encoded + b"\0")
    elif code == "g":
        buffer.extend(bytes((len(value),)) + value.encode() + b"\0")
    elif code == "v":
        inner, content = value
        marshal(buffer, "g", inner)
        marshal(buffer, inner, content)
    elif code == "a":
        element = signature[1:]
        length_at = len(buffer)
        buffer.extend(b"\0\0\0\0")
        _pad(buffer, _ALIGN[element[0]])
        start = len(buffer)
        items = value.items() if isinstance(value, dict) else value
        for item in items:
            marshal(buffer, element, item)
        struct.pack_into("<I", buffer, length_at, len(buffer) - start)
    else:  # ( or {
        for member, item in zip(split_signature(signature[1:-1]), value, strict=True):
            marshal(buffer, member, item)


def unmarshal(data: bytes, position: int, signature: str, little: bool) -> tuple[Any, int]:
    """The value of the complete type ``signature`` at ``position``, and the position after it."""
    code = signature[0]
    position += -position % _ALIGN[code]
    order = "<" if little else ">"
    if code in _FIXED:
        size, fmt = _FIXED[code]
        (value,) = struct.unpack_from(order + fmt, data, position)
        return (bool(value) if code == "b" else value), position + size
    if code in "so":
        (length,) = struct.unpack_from(order + "I", data, position)
        start = position + 4
        return data[start:start + length].decode(), start + length + 1
    if code == "g":
        length = data[position]
        return data[position + 1:position + 1 + length].decode(), position + length + 2
    if code == "v":
        inner, position = unmarshal(data, position, "g", little)
        return unmarshal(data, position, inner, little)
    if code == "a":
        (length,) = struct.unpack_from(order + "I", data, position)
        element = signature[1:]
        position += 4
        position += -position % _ALIGN[element[0]]
        end = position + length
        items = []
        while position < end:
            item, position = unmarshal(data, position, element, little)
            items.append(item)
        return (dict(items) if element[0] == "{" else items), end
    values = []
    for member in split_signature(signature[1:-1]):
        value, position = unmarshal(data, position, member, little)
        values.append(value)
    return tuple(values), position


def encode_message(kind: int, serial: int, fields: dict[int, Any], signature: str = "",
                   body: tuple[Any, ...] = (), no_reply: bool = False) -> bytes:
    payload = bytearray()
    for member, value in zip(split_signature(signature), body, strict=True):
        marshal(payload, member, value)
    if signature:
        fields = {**fields, _SIGNATURE: signature}
    header = bytearray(b"l" + bytes((kind, 1 if no_reply else 0, 1)))
    header.extend(struct.pack("<II", len(payload), serial))
    marshal(header, "a(yv)", [(code, (_HEADER_FIELD_TYPES[code], value)) for code, value in fields.items()])
    _pad(header, 8)
    return bytes(header + payload)


def message_length(data: bytes) -> int | None:
    """The length of the message at the start of ``data``, or None while its fixed header is incomplete."""
    if len(data) < 16:
        return None
    order = "<" if data[:1] == b"l" else ">"
    body_length, _, fields_length = struct.unpack_from(order + "III", data, 4)
    return int(16 + fields_length + (-fields_length % 8) + body_length)


def decode_message(data: bytes) -> Message:
    """The message in ``data``: its header decoded, its body on demand."""
    little = data[:1] == b"l"
    order = "<" if little else ">"
    kind = data[1]
    (serial,) = struct.unpack_from(order + "I", data, 8)
    raw_fields, position = unmarshal(data, 12, "a(yv)", little)
    position += -position % 8
    return Message(kind, serial, dict(raw_fields), raw=(data, position, little))


# -- the connection --------------------------------------------------------------------------------------------

class Connection:
    """One authenticated connection: to a manager's private socket (peer to peer, ``bus=False``) or to a bus
    daemon (``bus=True``: the connection says Hello first, and names the destination of every call)."""

    def __init__(self, sock: Any, bus: bool) -> None:
        self._sock = sock
        self.bus = bus
        self._serial = 0
        self._buffer = b""
        self._pending: list[Message] = []
        self._path: str | None = None
        """The socket's path while the server's answer to the authentication is still unread."""
        self._timeout = 10.0

    @classmethod
    def open(cls, path: str, *, bus: bool, timeout: float = 10.0) -> Connection:
        """Connect to the unix socket ``path`` and start authenticating as this process's effective user. The
        server's answer is read at the first call (or :meth:`reply_to`), so that its round trip overlaps whatever
        the caller does in between; a refusal is a BusError there."""
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        connection = cls(sock, bus)
        try:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(b"\0AUTH EXTERNAL " + str(os.geteuid()).encode().hex().encode() + b"\r\n")
        except OSError as exc:
            connection.close()
            raise BusError("org.freedesktop.DBus.Error.NoServer",
                           f"cannot talk to {path}: {exc.strerror or exc}") from None
        connection._path = path
        connection._timeout = timeout
        return connection

    def _authenticated(self) -> None:
        if self._path is None:
            return
        path, self._path = self._path, None
        line = self._auth_line(time.monotonic() + self._timeout)
        if not line.startswith(b"OK "):
            raise BusError("org.freedesktop.DBus.Error.AuthFailed",
                           f"{path} refused the authentication: {line.decode(errors='replace')}")
        self._send(b"BEGIN\r\n")
        if self.bus:
            self.call(_BUS_NAME, _BUS_PATH, _BUS_NAME, "Hello")

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _auth_line(self, deadline: float) -> bytes:
        while b"\r\n" not in self._buffer:
            self._receive(deadline)
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        return line

    def call(self, destination: str, path: str, interface: str, member: str, signature: str = "",
             body: tuple[Any, ...] = ()) -> int:
        """Send a method call; returns its serial, for :meth:`reply_to`. Calls may be sent back to back before
        any reply is read (they are answered in order)."""
        self._authenticated()
        self._serial += 1
        fields: dict[int, Any] = {_PATH: path, _INTERFACE: interface, _MEMBER: member}
        if self.bus:
            fields[_DESTINATION] = destination
        self._send(encode_message(METHOD_CALL, self._serial, fields, signature, body))
        return self._serial

    def _send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise BusError("org.freedesktop.DBus.Error.Disconnected",
                           f"the connection broke: {exc.strerror or exc}") from None

    def reply_to(self, serial: int, deadline: float) -> Message:
        """The reply to call ``serial`` (signals and other replies that come first are kept for
        :meth:`next_message`); raises BusError for an error reply, BusTimeout past ``deadline``."""
        self._authenticated()
        for index, message in enumerate(self._pending):
            if message.reply_serial == serial and message.kind in (METHOD_RETURN, ERROR):
                del self._pending[index]
                return _checked(message)
        while True:
            message = self._read(deadline)
            if message.reply_serial == serial and message.kind in (METHOD_RETURN, ERROR):
                return _checked(message)
            self._pending.append(message)

    def next_message(self, deadline: float) -> Message:
        """The next message not yet taken: kept ones first, then what arrives (BusTimeout past ``deadline``)."""
        self._authenticated()
        if self._pending:
            return self._pending.pop(0)
        return self._read(deadline)

    def _read(self, deadline: float) -> Message:
        while True:
            length = message_length(self._buffer)
            if length is not None and length > _MAX_MESSAGE:
                raise BusError("org.freedesktop.DBus.Error.LimitsExceeded", f"a message of {length} bytes")
            if length is not None and len(self._buffer) >= length:
                data, self._buffer = self._buffer[:length], self._buffer[length:]
                return decode_message(data)
            self._receive(deadline)

    def _receive(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BusTimeout("org.freedesktop.DBus.Error.Timeout", "no answer in time")
        self._sock.settimeout(remaining)
        try:
            chunk = self._sock.recv(65536)
        except TimeoutError:
            raise BusTimeout("org.freedesktop.DBus.Error.Timeout", "no answer in time") from None
        except OSError as exc:
            raise BusError("org.freedesktop.DBus.Error.Disconnected", f"the connection broke: {exc.strerror}") from exc
        if not chunk:
            raise BusError("org.freedesktop.DBus.Error.Disconnected", "the peer closed the connection")
        self._buffer += chunk


def _checked(message: Message) -> Message:
    if message.kind == ERROR:
        text = message.body[0] if message.body and isinstance(message.body[0], str) else ""
        raise BusError(str(message.error_name or "org.freedesktop.DBus.Error.Failed"), text)
    return message
