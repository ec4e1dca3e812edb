#!/usr/bin/env python3
"""A TCP proxy that adds latency: the stand-in for netem, which this host's
kernel lacks. Every chunk read from one side is written to the other side
DELAY_MS / 2 after it arrived (so a request and its reply see DELAY_MS more
round-trip time), in order, without throttling what is in flight.

    delay-proxy.py DELAY_MS LISTEN_PORT:TARGET_PORT [LISTEN_PORT:TARGET_PORT...]

Listens on 127.0.0.1, connects to 127.0.0.1:TARGET_PORT. Runs until killed.
"""
import asyncio
import sys


async def pump(reader, writer, delay):
    """Copies reader to writer, each chunk `delay` seconds after it came."""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def send():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        writer.close()

    sender = asyncio.create_task(send())
    try:
        while True:
            data = await reader.read(1 << 20)
            if not data:
                break
            queue.put_nowait((loop.time() + delay, data))
    except ConnectionError:
        pass
    queue.put_nowait((0, None))
    try:
        await sender
    except ConnectionError:
        pass


def handler(target, delay):
    async def handle(client_r, client_w):
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(pump(client_r, server_w, delay), pump(server_r, client_w, delay))

    return handle


async def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    delay = float(sys.argv[1]) / 1000 / 2
    servers = []
    for pair in sys.argv[2:]:
        listen, target = (int(p) for p in pair.split(":"))
        servers.append(await asyncio.start_server(handler(target, delay), "127.0.0.1", listen))
    print("delay-proxy: ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    asyncio.run(main())
