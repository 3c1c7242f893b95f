"""A WebSocket echo server and client made of `websockets`, for Warden's tests.

    python ws_peer.py server                  # prints the port, serves until killed
    python ws_peer.py client URL N [--header 'Name: value'] [--pause SECS]

The server answers each message with JSON {"echo", "consumer", "query"}: the
message, the x-mse-consumer header and the query it was opened with.
The client opens URL (as a browser does: no headers unless given), sends N
messages, reads each answer, closes, and prints one JSON line:
{"opened": true, "replies": [...], "close_code"} or, when the upgrade is
refused, {"opened": false, "status", "body"}. With --pause it waits that long
before each message after the first; a connection the other side ended
early gives {"opened": true, "replies": [...], "ended_early": true,
"close_code"} (the code of the close frame it got, or null).
"""
import asyncio
import json
import sys
from urllib.parse import urlsplit

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed, InvalidStatus


async def echo(ws):
    query = urlsplit(ws.request.path).query
    try:
        async for message in ws:
            await ws.send(json.dumps({
                "echo": message,
                "consumer": ws.request.headers.get("x-mse-consumer"),
                "query": query,
            }))
    except ConnectionClosed as e:
        # A connection the gateway ended without a close frame: say so.
        print(f"connection ended without a close frame: {e}", file=sys.stderr)


async def server():
    async with serve(echo, "127.0.0.1", 0) as s:
        print(s.sockets[0].getsockname()[1], flush=True)
        await asyncio.get_running_loop().create_future()


async def client(url, n, args):
    headers = {}
    pause = 0.0
    while args:
        flag, value = args.pop(0), args.pop(0)
        if flag == "--header":
            name, v = value.split(":", 1)
            headers[name.strip()] = v.strip()
        elif flag == "--pause":
            pause = float(value)
    try:
        async with connect(url, additional_headers=headers, open_timeout=10) as ws:
            replies = []
            try:
                for k in range(n):
                    if k and pause:
                        await asyncio.sleep(pause)
                    await ws.send(f"m{k}")
                    replies.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
            except ConnectionClosed as e:
                code = e.rcvd.code if e.rcvd else None
                out = {"opened": True, "replies": replies, "ended_early": True, "close_code": code}
            else:
                await ws.close()
                out = {"opened": True, "replies": replies, "close_code": ws.close_code}
    except InvalidStatus as e:
        r = e.response
        out = {"opened": False, "status": r.status_code, "body": r.body.decode(errors="replace")}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        asyncio.run(server())
    else:
        asyncio.run(client(sys.argv[2], int(sys.argv[3]), sys.argv[4:]))
