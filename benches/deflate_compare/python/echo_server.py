"""Python `websockets` echo server for run.sh: text back as text, binary as binary.

Usage: python echo_server.py 127.0.0.1:PORT [default|frugal]
  default: serve() as it comes (compression="deflate", the library's defaults)
  frugal:  ServerPerMessageDeflateFactory(server_max_window_bits=11,
           client_max_window_bits=11, compress_settings={"memLevel": 4}), as the
           websockets compression guide shows
"""

import asyncio
import sys

from websockets.asyncio.server import serve
from websockets.extensions import permessage_deflate


async def echo(websocket):
    async for message in websocket:
        await websocket.send(message)


async def main():
    host, port = (sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9001").rsplit(":", 1)
    mode = sys.argv[2] if len(sys.argv) > 2 else "default"
    if mode == "default":
        options = {}
    elif mode == "frugal":
        options = {
            "extensions": [
                permessage_deflate.ServerPerMessageDeflateFactory(
                    server_max_window_bits=11,
                    client_max_window_bits=11,
                    compress_settings={"memLevel": 4},
                )
            ]
        }
    else:
        sys.exit(f"unknown mode {mode}")
    # Defaults otherwise, keepalive pings included (every 20 s: none during a run).
    async with serve(echo, host, int(port), **options) as server:
        print(f"websockets {mode} listening on ws://{host}:{port}", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
