"""WebSocket peer for tests/ws_interop.rs, built on Python's `websockets` library.

    ws_peer.py client URL       exercise an eddy echo server, print OK (exit 1 on failure)
    ws_peer.py server           echo server on 127.0.0.1; prints "PORT n", then one line
                                "closed CODE REASON" per finished connection

Exit code 3 (and a message) when `websockets` cannot be imported.
"""
import asyncio
import sys

try:
    import websockets
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve
except ImportError as e:  # the Rust test skips on exit code 3
    print(f"websockets not importable: {e}", file=sys.stderr)
    sys.exit(3)

BIG = bytes((i * 7 + 3) % 251 for i in range(16 * 1024 * 1024))


async def run_client(url):
    for compression in ("deflate", None):
        async with connect(url, compression=compression, max_size=None) as ws:
            negotiated = ws.response.headers.get("Sec-WebSocket-Extensions")
            want = "permessage-deflate" in (negotiated or "")
            assert want == (compression == "deflate"), (compression, negotiated)
            await ws.send("héllo ✓")
            assert await ws.recv() == "héllo ✓"
            await ws.send(b"\x00\x01\xfe\xff")
            assert await ws.recv() == b"\x00\x01\xfe\xff"
            # Fragmented: an iterable is sent as one message in several frames.
            await ws.send(["frag", "mented ", "text"])
            assert await ws.recv() == "fragmented text"
            await ws.send([b"ab", b"cd", b"ef"])
            assert await ws.recv() == b"abcdef"
            await ws.send(BIG)
            assert await ws.recv() == BIG
            await ws.close(4000, "py-bye")
            assert ws.close_code == 4000, ws.close_code
    # The server closes with the code asked for.
    async with connect(url, max_size=None) as ws:
        await ws.send("close:4321")
        try:
            await ws.recv()
            raise AssertionError("the server should have closed")
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd.code == 4321, closed.rcvd
            assert closed.rcvd.reason == "eddy-bye", closed.rcvd
    print("OK", flush=True)


async def echo(ws):
    try:
        async for message in ws:
            if isinstance(message, str) and message.startswith("close:"):
                await ws.close(int(message[6:]), "py-bye")
                break
            await ws.send(message)
    except websockets.ConnectionClosed:
        pass
    await ws.wait_closed()
    rcvd = ws.close_code
    print(f"closed {rcvd} {ws.close_reason}", flush=True)


async def run_server():
    async with serve(echo, "127.0.0.1", 0, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"PORT {port}", flush=True)
        await asyncio.sleep(120)


if __name__ == "__main__":
    if sys.argv[1] == "client":
        asyncio.run(run_client(sys.argv[2]))
    else:
        asyncio.run(run_server())
