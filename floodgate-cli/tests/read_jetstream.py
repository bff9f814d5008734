"""Prints every message of a NATS JetStream stream, in stream order, as one
JSON object per line: {"id": Nats-Msg-Id or null, "subject": ..., "body":
hex}. An independent reader (nats-py, not the async-nats crate the
bridge's sink uses) for floodgate-cli's bridge tests.

Usage: python read_jetstream.py nats://HOST:PORT STREAM
"""

import asyncio
import json
import sys

import nats


async def main(url: str, stream: str) -> None:
    nc = await nats.connect(url, allow_reconnect=False, connect_timeout=5)
    js = nc.jetstream()
    info = await js.stream_info(stream)
    total = info.state.messages
    first = info.state.first_seq
    out = sys.stdout
    # By sequence number: every stored message once, in order, without a
    # consumer (which would be state of its own in the stream).
    seq = first
    read = 0
    while read < total:
        msg = await js.get_msg(stream, seq=seq)
        headers = msg.headers or {}
        out.write(
            json.dumps(
                {
                    "id": headers.get("Nats-Msg-Id"),
                    "subject": msg.subject,
                    "body": (msg.data or b"").hex(),
                }
            )
            + "\n"
        )
        read += 1
        seq += 1
    await nc.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
