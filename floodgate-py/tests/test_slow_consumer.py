import floodgate as websocket

# The slow-consumer scenarios of the Rust suite (floodgate/tests/
# slow_consumer.rs, overflow_policies.rs), from Python, against floodgate's
# embedded feed server (`floodgate serve`): a consumer slowed on purpose,
# each overflow policy, what is delivered and in what order, counters that
# add up, limits that hold, and the server's pings answered at once by
# the Rust reader however long Python sleeps.

import json
import time

import pytest

from conftest import worst_round_trip


def feed_message(text):
    return json.loads(text)


def assert_adds_up(stats):
    assert stats["received"] == (
        stats["delivered"]
        + stats["buffered"]
        + stats["dropped_oldest"]
        + stats["dropped_newest"]
        + stats["conflated"]
        + stats["filtered"]
    ), stats


def receive_all(ws, pause=0.0, first_pause=None):
    """Every message until the end, sleeping ``pause`` after each (and
    ``first_pause`` after the first); returns them and the end's exception."""
    got = []
    while True:
        try:
            message = ws.recv()
        except websocket.WebSocketConnectionClosedException as end:
            return got, end
        if message == "":
            return got, None
        got.append(feed_message(message))
        if first_pause is not None and len(got) == 1:
            time.sleep(first_pause)
        elif pause:
            time.sleep(pause)


def test_pings_are_answered_while_the_handler_sleeps_50ms_per_message(feed):
    before = len(feed.reports())
    # 200 messages a second for 0.2 s, a ping every 100 ms; the consumer
    # needs 2 s.
    ws = websocket.create_connection(feed.url(rate=200, count=40, size=128, ping_ms=100))
    got, _ = receive_all(ws, pause=0.05)
    assert len(got) == 40
    stats = ws.stats()
    ws.close()
    report = feed.wait_report(before + 1)[before]
    assert "completed" in report, report
    assert stats["pings_answered"] >= 1, stats
    # "N of N pings answered": every ping the server sent got its pong.
    pings = report.split(" pings answered")[0].rsplit("; ", 1)[1]
    answered, sent = (int(x.replace(",", "")) for x in pings.split(" of "))
    assert answered == sent and sent >= 1, report
    # Answered by the reader, not after 50 ms x the backlog.
    assert worst_round_trip(report) < 0.25, report


def test_block_delivers_everything_in_order_and_makes_the_server_wait(feed):
    ws = websocket.create_connection(
        feed.url(rate=0, count=3000, size=1000), max_messages=16, overflow="block"
    )
    got, _ = receive_all(ws, first_pause=0.3)
    stats = ws.stats()
    assert [m["n"] for m in got] == list(range(3000))
    assert stats["dropped_oldest"] == stats["dropped_newest"] == 0
    assert stats["high_water_messages"] <= 16
    assert stats["blocked"] > 0, stats
    assert_adds_up(stats)
    ws.close()


def test_drop_oldest_keeps_the_newest_and_counts_the_rest(feed):
    ws = websocket.create_connection(
        feed.url(rate=0, count=5000, size=200), max_messages=50, overflow="drop_oldest"
    )
    got, _ = receive_all(ws, first_pause=0.5)
    stats = ws.stats()
    numbers = [m["n"] for m in got]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert numbers[-1] == 4999, "the newest survives"
    assert stats["dropped_oldest"] > 0
    assert stats["received"] == 5000
    assert stats["high_water_messages"] <= 50
    assert_adds_up(stats)
    ws.close()


def test_drop_newest_keeps_the_oldest(feed):
    ws = websocket.create_connection(
        feed.url(rate=0, count=5000, size=200), max_messages=50, overflow="drop_newest"
    )
    got, _ = receive_all(ws, first_pause=0.5)
    stats = ws.stats()
    numbers = [m["n"] for m in got]
    assert numbers[:50] == list(range(50)), "the oldest are kept"
    assert numbers[-1] < 4999, "the newest were shed"
    assert stats["dropped_newest"] > 0
    assert_adds_up(stats)
    ws.close()


def test_conflate_by_channel_delivers_the_last_message_of_every_channel(feed):
    ws = websocket.create_connection(
        feed.url(rate=0, count=4000, size=100, channels=8),
        max_messages=8,
        overflow="conflate",
        key=lambda message: feed_message(message)["channel"],
    )
    got, _ = receive_all(ws, first_pause=0.5)
    stats = ws.stats()
    last = {}
    for m in got:
        assert m["seq"] > last.get(m["channel"], -1), "order kept per channel"
        last[m["channel"]] = m["seq"]
    assert last == {c: 499 for c in range(8)}, "every channel's last message arrives"
    assert stats["conflated"] > 0
    assert_adds_up(stats)
    ws.close()


def test_disconnect_ends_with_the_buffer_exception_after_the_buffered_messages(feed):
    before = len(feed.reports())
    ws = websocket.create_connection(
        feed.url(rate=0, count=100000, size=200), max_messages=20, overflow="disconnect"
    )
    first = ws.recv()
    time.sleep(0.5)
    got = [first]
    with pytest.raises(websocket.WebSocketBufferException) as raised:
        while True:
            got.append(ws.recv())
    assert isinstance(raised.value, websocket.WebSocketConnectionClosedException)
    assert 1 < len(got) <= 21, len(got)
    report = feed.wait_report(before + 1)[before]
    assert "client closed with 1008" in report, report


def test_block_for_waits_then_sheds(feed):
    ws = websocket.create_connection(
        feed.url(rate=0, count=4000, size=200),
        max_messages=20,
        overflow="block_for",
        block_timeout=0.05,
        then="drop_oldest",
    )
    got, _ = receive_all(ws, first_pause=0.5)
    stats = ws.stats()
    assert stats["blocked"] >= 0.04, stats
    assert stats["dropped_oldest"] > 0, stats
    assert got[-1]["n"] == 3999
    assert_adds_up(stats)
    ws.close()


def test_a_classifier_discards_and_keeps_priorities(feed):
    ws = websocket.create_connection(
        feed.url(rate=0, count=800, size=100, channels=4),
        classifier=lambda m: "discard" if feed_message(m)["channel"] == 0 else "normal",
    )
    got, _ = receive_all(ws)
    stats = ws.stats()
    assert len(got) == 600
    assert all(m["channel"] != 0 for m in got)
    assert stats["filtered"] == 200
    assert_adds_up(stats)
    ws.close()


def test_recv_batch_takes_many_at_once_in_order(feed):
    ws = websocket.create_connection(feed.url(rate=0, count=20000, size=100))
    numbers = []
    largest = 0
    while True:
        try:
            batch = ws.recv_batch(500, timeout=5)
        except websocket.WebSocketConnectionClosedException:
            break
        assert 1 <= len(batch) <= 500
        largest = max(largest, len(batch))
        numbers.extend(feed_message(m)["n"] for m in batch)
    assert numbers == list(range(20000))
    assert largest > 1, "batches of more than one message"
    # One message a second: after the first, a short wait times out.
    slow = websocket.create_connection(feed.url(rate=1, count=10, size=100))
    assert len(slow.recv_batch(10, timeout=5)) == 1
    with pytest.raises(websocket.WebSocketTimeoutException):
        slow.recv_batch(10, timeout=0.01)
    slow.close()


def test_bad_buffer_options_are_value_errors(feed):
    for options in (
        {"overflow": "sometimes"},
        {"overflow": "conflate"},  # no key
        {"overflow": "block_for"},  # no block_timeout
        {"key": len},  # key without conflate
    ):
        with pytest.raises(ValueError):
            websocket.create_connection(feed.url(count=1), **options)
