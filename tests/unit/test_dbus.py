"""lanco's small D-Bus client against jeepney's encoding (the reference here), and its connection against a server
in this process that speaks as systemd's private socket and a bus daemon do."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jeepney import DBusAddress, HeaderFields, MessageType, Parser, new_error, new_method_return, new_signal
from jeepney.low_level import Message as JeepneyMessage

from lanco.cgroups import dbus
from lanco.cgroups.dbus import BusError, BusTimeout, Connection, decode_message, encode_message, split_signature

MANAGER = DBusAddress(dbus.MANAGER_PATH, bus_name=dbus.SYSTEMD, interface=dbus.MANAGER)
PROPERTIES = [("Slice", ("s", "lanco-ns.slice")), ("Description", ("s", "lanco ns t")), ("Delegate", ("b", True)),
              ("PIDs", ("au", [4242, 7])), ("CPUWeight", ("t", 2**40)), ("Nice", ("i", -5))]


def parse_with_jeepney(data: bytes) -> JeepneyMessage:
    parser = Parser()
    parser.add_data(data)
    message = parser.get_next_message()
    assert message is not None
    return message


def test_signatures_split_into_complete_types() -> None:
    assert split_signature("ssa(sv)a(sa(sv))") == ["s", "s", "a(sv)", "a(sa(sv))"]
    assert split_signature("a{sv}uo") == ["a{sv}", "u", "o"]
    with pytest.raises(ValueError, match="unbalanced"):
        split_signature("a(sv")


def test_a_start_transient_unit_call_reads_back_in_jeepney() -> None:
    data = encode_message(dbus.METHOD_CALL, 3, {1: dbus.MANAGER_PATH, 2: dbus.MANAGER, 3: "StartTransientUnit",
                                                6: dbus.SYSTEMD}, "ssa(sv)a(sa(sv))",
                          ("lanco-ns-t-01.scope", "fail", PROPERTIES, []))
    message = parse_with_jeepney(data)
    assert message.header.message_type == MessageType.method_call
    assert message.header.serial == 3
    fields = message.header.fields
    assert (fields[HeaderFields.member], fields[HeaderFields.destination]) == ("StartTransientUnit", dbus.SYSTEMD)
    assert fields[HeaderFields.signature] == "ssa(sv)a(sa(sv))"
    name, mode, properties, aux = message.body
    assert (name, mode, aux) == ("lanco-ns-t-01.scope", "fail", [])
    assert properties == [(key, (sig, value)) for key, (sig, value) in PROPERTIES]


def test_replies_errors_and_signals_from_jeepney_decode() -> None:
    call = JeepneyMessage.from_buffer(encode_message(dbus.METHOD_CALL, 9, {1: "/", 2: "i.f", 3: "M"}))
    reply = decode_message(new_method_return(call, "o", ("/org/freedesktop/systemd1/job/77",)).serialise(serial=5))
    assert (reply.kind, reply.serial, reply.reply_serial) == (dbus.METHOD_RETURN, 5, 9)
    assert reply.body == ("/org/freedesktop/systemd1/job/77",)
    error = decode_message(new_error(call, "org.freedesktop.systemd1.UnitExists", "s",
                                     ("Unit x.scope already exists.",)).serialise(serial=6))
    assert (error.kind, error.error_name, error.body) == (dbus.ERROR, "org.freedesktop.systemd1.UnitExists",
                                                          ("Unit x.scope already exists.",))
    signal = decode_message(new_signal(MANAGER, "JobRemoved", "uoss",
                                       (77, "/org/freedesktop/systemd1/job/77", "x.scope", "done")).serialise(serial=7))
    assert (signal.kind, signal.member, signal.body) == (dbus.SIGNAL, "JobRemoved",
                                                         (77, "/org/freedesktop/systemd1/job/77", "x.scope", "done"))


@given(st.lists(st.tuples(st.text(min_size=1, max_size=20), st.integers(0, 2**32 - 1),
                          st.lists(st.integers(-(2**63), 2**63 - 1), max_size=4), st.booleans()), max_size=5),
       st.dictionaries(st.text(max_size=8), st.integers(0, 255), max_size=4))
def test_any_value_encodes_as_jeepney_reads_it(rows: list[tuple[str, int, list[int], bool]],
                                               table: dict[str, int]) -> None:
    body = (rows, table, ("g", "sa{sy}"))
    data = encode_message(dbus.SIGNAL, 1, {1: "/x", 2: "i.f", 3: "S"}, "a(suaxb)a{sy}v", body)
    parsed = parse_with_jeepney(data)
    expected_rows: list[tuple[object, ...]] = [tuple(row) for row in rows]
    assert parsed.body == (expected_rows, table, ("g", "sa{sy}"))
    assert decode_message(data).body == (expected_rows, table, "sa{sy}")


# -- the connection against a server in this process ------------------------------------------------------------

Behaviour = Callable[[socket.socket, Parser], None]


def serve(path: Path, behaviour: Behaviour) -> threading.Thread:
    """A one-connection server at ``path``: the authentication as sd-bus answers it, then ``behaviour``."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def run() -> None:
        conn, _ = listener.accept()
        listener.close()
        with conn:
            data = b""
            while b"\r\n" not in data:
                data += conn.recv(4096)
            assert data.startswith(b"\0AUTH EXTERNAL " + str(os.geteuid()).encode().hex().encode())
            conn.sendall(b"OK 0123456789abcdef0123456789abcdef\r\n")
            parser = Parser()
            rest = b""
            while b"BEGIN\r\n" not in rest:
                rest += conn.recv(4096)
            parser.add_data(rest.split(b"BEGIN\r\n", 1)[1])
            behaviour(conn, parser)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def next_call(conn: socket.socket, parser: Parser) -> JeepneyMessage:
    while (message := parser.get_next_message()) is None:
        chunk = conn.recv(4096)
        assert chunk, "the client hung up"
        parser.add_data(chunk)
    return message


@pytest.fixture
def socket_path(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "private"


def test_a_job_is_started_and_its_end_awaited(socket_path: Path) -> None:
    from lanco.cgroups import systemd

    seen: list[JeepneyMessage] = []

    def manager(conn: socket.socket, parser: Parser) -> None:
        call = next_call(conn, parser)
        seen.append(call)
        job = "/org/freedesktop/systemd1/job/5"
        # An unrelated job's end comes first, then the reply, then this job's end.
        conn.sendall(new_signal(MANAGER, "JobRemoved", "uoss", (4, "/org/freedesktop/systemd1/job/4", "o.scope",
                                                                "failed")).serialise(serial=1))
        conn.sendall(new_method_return(call, "o", (job,)).serialise(serial=2))
        conn.sendall(new_signal(MANAGER, "JobRemoved", "uoss", (5, job, "x.scope", "done")).serialise(serial=3))

    thread = serve(socket_path, manager)
    deadline = time.monotonic() + 5
    with Connection.open(str(socket_path), bus=False) as connection:
        serial = systemd.start_scope(connection, "x.scope", "lanco-ns.slice", "lanco ns t", 4242)
        job = connection.reply_to(serial, deadline).body[0]
        assert systemd.await_job(connection, job, deadline) == "done"
    thread.join(5)
    properties = dict(seen[0].body[2])
    assert properties["PIDs"] == ("au", [4242]) and properties["Delegate"] == ("b", True)
    assert HeaderFields.destination not in seen[0].header.fields  # peer to peer: no bus daemon routes it


def test_the_work_meanwhile_runs_while_the_job_is_under_way_and_once_done_no_more(socket_path: Path) -> None:
    """The launcher splits the scope as soon as the monitor is in it, while systemd finishes the job: await_job
    calls its ``meanwhile`` between messages and while the manager is silent, until it says its work is done."""
    from lanco.cgroups import systemd

    job = "/org/freedesktop/systemd1/job/7"
    placed = threading.Event()

    def manager(conn: socket.socket, parser: Parser) -> None:
        call = next_call(conn, parser)
        conn.sendall(new_method_return(call, "o", (job,)).serialise(serial=1))
        # The job ends only once the work meanwhile has happened: it must have run while nothing came.
        assert placed.wait(5)
        conn.sendall(new_signal(MANAGER, "JobRemoved", "uoss", (7, job, "x.scope", "done")).serialise(serial=2))

    calls: list[float] = []

    def meanwhile() -> bool:
        calls.append(time.monotonic())
        if len(calls) < 3:
            return False
        placed.set()
        return True

    thread = serve(socket_path, manager)
    deadline = time.monotonic() + 5
    with Connection.open(str(socket_path), bus=False) as connection:
        serial = systemd.start_scope(connection, "x.scope", "lanco-ns.slice", "lanco ns t", 4242)
        assert systemd.await_job(connection, connection.reply_to(serial, deadline).body[0], deadline,
                                 meanwhile) == "done"
    thread.join(5)
    assert len(calls) == 3


def test_a_silent_manager_times_out_even_with_work_meanwhile(socket_path: Path) -> None:
    from lanco.cgroups import systemd
    from lanco.cgroups.dbus import BusTimeout

    def manager(conn: socket.socket, parser: Parser) -> None:
        next_call(conn, parser)
        time.sleep(1)

    thread = serve(socket_path, manager)
    start = time.monotonic()
    with Connection.open(str(socket_path), bus=False) as connection, pytest.raises(BusTimeout):
        systemd.start_scope(connection, "x.scope", "lanco-ns.slice", "lanco ns t", 4242)
        systemd.await_job(connection, "/org/freedesktop/systemd1/job/8", start + 0.2, lambda: False)
    thread.join(5)


def test_on_a_bus_hello_comes_first_and_calls_name_their_destination(socket_path: Path) -> None:
    members: list[tuple[str, str]] = []

    def bus(conn: socket.socket, parser: Parser) -> None:
        for serial in (1, 2):
            call = next_call(conn, parser)
            fields = call.header.fields
            members.append((fields[HeaderFields.member], fields[HeaderFields.destination]))
            conn.sendall(new_method_return(call, "s", (":1.42",)).serialise(serial=serial))

    thread = serve(socket_path, bus)
    with Connection.open(str(socket_path), bus=True) as connection:
        connection.reply_to(connection.call(dbus.SYSTEMD, dbus.MANAGER_PATH, dbus.MANAGER, "Ping"),
                            time.monotonic() + 5)
    thread.join(5)
    assert members == [("Hello", "org.freedesktop.DBus"), ("Ping", dbus.SYSTEMD)]


def test_an_error_reply_a_silence_and_a_hang_up_are_errors(socket_path: Path, tmp_path: Path) -> None:
    def refuses(conn: socket.socket, parser: Parser) -> None:
        call = next_call(conn, parser)
        conn.sendall(new_error(call, "org.freedesktop.systemd1.UnitExists", "s", ("exists",)).serialise(serial=1))
        next_call(conn, parser)  # the second call gets no answer
        time.sleep(0.5)

    serve(socket_path, refuses)
    with Connection.open(str(socket_path), bus=False) as connection:
        with pytest.raises(BusError) as refused:
            connection.reply_to(connection.call("", "/", "i.f", "A"), time.monotonic() + 5)
        assert refused.value.name == "org.freedesktop.systemd1.UnitExists" and "exists" in str(refused.value)
        with pytest.raises(BusTimeout):
            connection.reply_to(connection.call("", "/", "i.f", "B"), time.monotonic() + 0.2)
        with pytest.raises(BusError) as gone:  # the server's end: a hang-up, or a reset (it left data unread)
            connection.reply_to(connection.call("", "/", "i.f", "C"), time.monotonic() + 5)
        assert gone.value.name == "org.freedesktop.DBus.Error.Disconnected"
    with pytest.raises(BusError, match="cannot talk to"):
        Connection.open(str(tmp_path / "nobody"), bus=False)
