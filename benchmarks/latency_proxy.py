"""A TCP relay on loopback that delays each direction by a set time (issue 29): what a
WAN's round trip does to S3 clients, reproducible on one machine.

    relay = LatencyRelay(target_port, round_trip_ms=40); relay.start(); ... relay.stop()

Every chunk read on one side is written to the other `round_trip_ms / 2` later, in
order; connections are relayed independently, so a client with many connections in
flight gets the same round trip on each, as it would across a real link.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time


class LatencyRelay:
    def __init__(self, target_port: int, round_trip_ms: float, host: str = "127.0.0.1"):
        self.target = (host, target_port)
        self.delay = round_trip_ms / 2000.0
        self.host = host
        with socket.socket() as s:
            s.bind((host, 0))
            self.port = s.getsockname()[1]
        self.connections = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> LatencyRelay:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        server = self._loop.run_until_complete(
            asyncio.start_server(self._client, self.host, self.port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()

    async def _client(self, reader, writer) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer),
                             return_exceptions=True)

    async def _pipe(self, reader, writer) -> None:
        """Copy one direction, each chunk released `delay` after it arrived."""
        queue: asyncio.Queue = asyncio.Queue()

        async def release() -> None:
            while True:
                due, chunk = await queue.get()
                if chunk is None:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(chunk)
                await writer.drain()
            writer.close()

        sender = asyncio.ensure_future(release())
        try:
            while chunk := await reader.read(1 << 16):
                queue.put_nowait((time.monotonic() + self.delay, chunk))
        finally:
            queue.put_nowait((0, None))
            await asyncio.gather(sender, return_exceptions=True)
