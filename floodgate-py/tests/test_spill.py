import floodgate as websocket

# overflow="spill" from Python (the Rust suite's floodgate/tests/spill.rs
# has the rest: corruption, a real full disk, a killed process), against
# floodgate's embedded feed server (`floodgate serve`): past the memory
# limits the messages go to disk and come back in order while the server
# sends at full speed; the spill's counters add up; its keyword arguments
# are checked before any connect; its errors are Python exceptions that
# say what happened; a durable spill hands what a closed connection left
# to the next connection on its directory, first.

import errno
import json
import os
import pathlib
import time

import pytest

from floodgate import _floodgate
from floodgate._options import normalise

from test_slow_consumer import assert_adds_up, feed_message, receive_all

# Memory limits small enough that almost everything spills (the largest
# message must fit in max_bytes, hence max_message_size).
SMALL = dict(max_messages=32, max_bytes=16 << 10, max_message_size=16 << 10)


def spill(directory, **options):
    return dict(SMALL, overflow="spill", spill_dir=directory, **options)


def wait_for(condition, what, timeout=30.0):
    """Waits until ``condition()`` is true; fails after ``timeout`` seconds
    (a bound for a hung run, not a measure of speed)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not {what} after {timeout} s")
        time.sleep(0.01)


def segments(directory):
    return sorted(p.name for p in pathlib.Path(directory).rglob("*.seg"))


def test_spill_delivers_every_message_in_order_while_the_server_sends_at_full_speed(feed, tmp_path):
    count = 3000
    ws = websocket.create_connection(feed.url(rate=0, count=count, size=200), **spill(tmp_path))
    first = feed_message(ws.recv())
    # The consumer takes nothing more until the reader has read the whole
    # feed (it never waited for room) and the spill's writer has written
    # what it was handed: past the memory limit, all of it on disk.
    def written(s):
        in_memory = s["buffered"] - s["buffered_disk"]
        return s["received"] == count and in_memory <= SMALL["max_messages"]

    wait_for(lambda: written(ws.stats()), "everything received and written")
    mid = ws.stats()
    assert mid["buffered_disk"] > 0 and mid["disk_bytes"] > 0, mid
    assert mid["spilled"] >= mid["buffered_disk"], mid
    assert mid["high_water_messages"] <= SMALL["max_messages"], mid
    assert mid["buffered_bytes"] <= SMALL["max_bytes"], mid
    assert_adds_up(mid)
    # Ephemeral: one private directory under spill_dir.
    (private,) = os.listdir(tmp_path)
    assert private.startswith("floodgate-spill-"), private

    got, end = receive_all(ws)
    assert end is None, end  # the server's close, after every message
    assert [m["n"] for m in [first] + got] == list(range(count))
    s = ws.stats()
    assert_adds_up(s)
    assert s["delivered"] == count
    assert (s["buffered"], s["buffered_disk"]) == (0, 0), s
    assert 0 < s["spilled"] < count, s
    assert s["blocked"] == 0, "the reader never waited for room"
    assert (s["dropped_newest"], s["spill_refused"], s["spill_errors"]) == (0, 0, 0), s
    assert (s["recovered"], s["spill_corrupt_records"]) == (0, 0), s
    assert s["high_water_disk_bytes"] >= mid["disk_bytes"], s
    # The private directory goes with the connection, which close() lets
    # go even though the server closed first.
    ws.close()
    assert ws.stats() == s, "stats() keeps the last figures after close()"
    wait_for(lambda: os.listdir(tmp_path) == [], "the private directory removed")


def test_the_spill_stats_are_zero_under_the_other_policies(feed):
    ws = websocket.create_connection(feed.url(rate=0, count=10, size=100))
    receive_all(ws)
    s = ws.stats()
    for name in (
        "buffered_disk",
        "disk_bytes",
        "high_water_disk_bytes",
        "spilled",
        "recovered",
        "spill_refused",
        "spill_errors",
        "spill_corrupt_records",
    ):
        assert s[name] == 0, (name, s)
    ws.close()


def test_a_message_larger_than_the_disk_budget_ends_the_connection_with_the_spill_exception(feed, tmp_path):
    # More than the connection lives for: the server is still sending when
    # the client closes.
    url = feed.url(rate=0, count=100000, size=1000)
    ws = websocket.create_connection(
        url,
        max_messages=1,
        max_bytes=1024,
        max_message_size=1024,
        overflow="spill",
        spill_dir=tmp_path,
        max_disk_bytes=512,
    )
    got = []
    with pytest.raises(websocket.WebSocketSpillRefusedException) as raised:
        while True:
            got.append(feed_message(ws.recv()))
    e = raised.value
    # websocket-client's class for a connection that ended, and floodgate's
    # for a buffer policy that ended it.
    assert isinstance(e, websocket.WebSocketBufferException)
    assert isinstance(e, websocket.WebSocketConnectionClosedException)
    assert e.refusal == "too_large" and e.errno is None
    assert "1000 bytes" in str(e) and "max_disk_bytes" in str(e), str(e)
    assert 'spill_fallback="block"' in str(e), str(e)
    # What was buffered before the refused message still came, in order.
    assert [m["n"] for m in got] == list(range(len(got)))
    s = ws.stats()
    assert s["spill_refused"] == 1, s
    assert_adds_up(s)
    # The server's report of this connection (another test's may come
    # later than its test).
    query = url.split("/feed", 1)[1]
    wait_for(lambda: any(query in r for r in feed.reports()), "reported by the server")
    report = next(r for r in feed.reports() if query in r)
    assert "client closed with 1008" in report, report


def test_the_drop_newest_fallback_drops_what_the_spill_refuses_and_counts_it(feed, tmp_path):
    count = 200
    ws = websocket.create_connection(
        feed.url(rate=0, count=count, size=1000),
        max_messages=1,
        max_bytes=1024,
        max_message_size=1024,
        overflow="spill",
        spill_dir=tmp_path,
        max_disk_bytes=512,
        spill_fallback="drop_newest",
    )
    got, end = receive_all(ws, first_pause=0.3)
    assert end is None, end
    numbers = [m["n"] for m in got]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    s = ws.stats()
    assert s["received"] == count
    assert s["dropped_newest"] > 0, s
    assert s["delivered"] + s["dropped_newest"] == count, s
    assert s["spill_refused"] >= s["dropped_newest"], s
    assert_adds_up(s)
    ws.close()


def test_the_block_fallback_waits_for_disk_room_and_loses_nothing(feed, tmp_path):
    count, budget = 500, 8 << 10
    ws = websocket.create_connection(
        feed.url(rate=0, count=count, size=1000),
        max_messages=4,
        max_bytes=4096,
        max_message_size=4096,
        overflow="spill",
        spill_dir=tmp_path,
        max_disk_bytes=budget,
        spill_fallback="block",
    )
    got, end = receive_all(ws, first_pause=0.3)
    assert end is None, end
    assert [m["n"] for m in got] == list(range(count))
    s = ws.stats()
    assert s["spilled"] > 0 and s["spill_refused"] > 0, s
    assert s["blocked"] > 0, "the reader waited for the disk to have room"
    assert s["dropped_newest"] == 0, s
    assert s["high_water_disk_bytes"] <= budget, s
    assert_adds_up(s)
    ws.close()


def test_a_durable_spill_gives_what_a_closed_connection_left_to_the_next_one_first(feed, tmp_path):
    count = 1500
    options = spill(tmp_path, durable=True, fsync_interval=0.2)
    ws = websocket.create_connection(feed.url(rate=0, count=count, size=150), **options)
    first = [feed_message(ws.recv()) for _ in range(400)]
    # The whole feed received (the server has closed), most of it spilled.
    wait_for(lambda: ws.stats()["received"] == count, "everything received")
    s = ws.stats()
    assert_adds_up(s)
    assert s["buffered"] == count - len(first), s

    # A second connection on the directory while this one holds it is
    # refused, after waiting a moment for a hand-over (up to 5 s).
    with pytest.raises(websocket.WebSocketSpillException) as raised:
        websocket.create_connection(feed.url(count=0), **options)
    e = raised.value
    assert isinstance(e, OSError)
    assert e.locked is True and e.errno is None
    assert e.filename == str(tmp_path)
    assert "in use by another connection" in str(e), str(e)

    # Closed early: close() does not take (and so delete) what is left.
    ws.close()
    assert segments(tmp_path), "the spill stays on disk"

    # The next connection on the directory delivers the rest first, in
    # order, nothing twice; this feed sends nothing of its own.
    again = websocket.create_connection(feed.url(count=0), **options)
    rest, end = receive_all(again)
    assert end is None, end
    assert [m["n"] for m in first + rest] == list(range(count))
    s = again.stats()
    assert s["recovered"] == count - len(first), s
    assert s["received"] == s["recovered"], s
    assert_adds_up(s)
    again.close()
    wait_for(lambda: segments(tmp_path) == [], "every segment removed once delivered")


def test_an_app_with_a_durable_spill_resumes_where_its_last_run_stopped(feed, tmp_path):
    count = 1000
    handled = []
    stop_at = [100]  # the first run stops after 100 messages, the second never

    def on_message(app, message):
        handled.append(feed_message(message)["n"])
        if len(handled) == stop_at[0]:
            app.close()

    app = websocket.WebSocketApp(
        feed.url(rate=0, count=count, size=150),
        on_message=on_message,
        **spill(tmp_path, durable=True),
    )
    app.run_forever()
    first = app.stats()
    assert handled == list(range(100))
    assert_adds_up(first)
    # The messages the App had taken in its last batch and not handled are
    # gone with it; everything else received waits on disk.
    taken = first["delivered"]
    assert taken >= 100, first
    assert first["buffered"] == first["received"] - taken, first

    # Run again on the directory (the App let its last connection go, and
    # with it the directory's lock): the rest comes first.
    handled.clear()
    stop_at[0] = None
    app.url = feed.url(count=0)
    app.run_forever()
    assert handled == list(range(taken, first["received"]))
    again = app.stats()
    assert again["recovered"] == first["received"] - taken, again
    assert_adds_up(again)


@pytest.mark.parametrize(
    "options, says",
    [
        ({"overflow": "spill"}, "needs spill_dir"),
        ({"overflow": "spill", "spill_dir": ""}, "spill_dir"),
        ({"spill_dir": "/tmp/x"}, 'only used with overflow="spill"'),
        ({"overflow": "drop_oldest", "max_disk_bytes": 1 << 20, "durable": True}, "are only used"),
        ({"overflow": "spill", "spill_dir": "/tmp/x", "spill_fallback": "sometimes"}, "spill_fallback"),
        ({"overflow": "spill", "spill_dir": "/tmp/x", "max_disk_bytes": 0}, "max_disk_bytes"),
        ({"overflow": "spill", "spill_dir": "/tmp/x", "max_disk_bytes": "1G"}, "max_disk_bytes"),
        ({"overflow": "spill", "spill_dir": "/tmp/x", "durable": "yes"}, "durable"),
        ({"overflow": "spill", "spill_dir": "/tmp/x", "fsync_interval": 1.0}, "durable=True"),
        (
            {"overflow": "spill", "spill_dir": "/tmp/x", "durable": True, "fsync_interval": -1},
            "fsync_interval",
        ),
    ],
)
def test_bad_spill_options_are_value_errors_before_any_connect(options, says):
    for make in (
        lambda: websocket.WebSocket(**options),
        lambda: websocket.WebSocketApp("ws://127.0.0.1:1/", **options),
        lambda: websocket.create_connection("ws://127.0.0.1:1/", **options),
    ):
        with pytest.raises(ValueError) as raised:
            make()
        assert says in str(raised.value), str(raised.value)


def test_spill_dir_takes_a_path_like_and_refuses_other_types(tmp_path):
    o = normalise(overflow="spill", spill_dir=tmp_path / "spill", max_disk_bytes=1 << 20)
    assert o["spill_dir"] == str(tmp_path / "spill")
    assert o["max_disk_bytes"] == 1 << 20
    assert normalise(overflow="spill", spill_dir=os.fsencode(tmp_path))["spill_dir"] == str(tmp_path)
    with pytest.raises(TypeError):
        normalise(overflow="spill", spill_dir=42)


def test_the_native_module_checks_the_spill_options_too(feed):
    # For a caller of _floodgate.connect that did not go through normalise.
    options = normalise()
    options["overflow"] = "spill"
    with pytest.raises(ValueError, match="needs spill_dir"):
        _floodgate.connect(feed.url(count=0), options)
    options = normalise()
    options["durable"] = True
    with pytest.raises(ValueError, match='only used with overflow="spill"'):
        _floodgate.connect(feed.url(count=0), options)


def test_a_disk_budget_too_small_for_one_record_is_a_value_error(feed, tmp_path):
    with pytest.raises(ValueError) as raised:
        websocket.create_connection(feed.url(count=1), **spill(tmp_path, max_disk_bytes=1))
    assert "max_disk_bytes" in str(raised.value), str(raised.value)


def test_a_spill_dir_that_cannot_be_made_is_an_os_error_that_names_it(feed, tmp_path):
    (tmp_path / "file").write_text("not a directory")
    directory = tmp_path / "file" / "spill"
    with pytest.raises(websocket.WebSocketSpillException) as raised:
        websocket.create_connection(feed.url(count=1), **spill(directory))
    e = raised.value
    assert isinstance(e, OSError) and isinstance(e, websocket.WebSocketException)
    assert e.errno == errno.ENOTDIR, e.errno
    assert e.filename == str(directory)
    assert e.locked is False
    assert str(directory) in str(e) and "spill" in str(e), str(e)
