"""A plain HTTP GET for tests of the services' endpoints (no client library needed)."""

from __future__ import annotations

import asyncio


async def http_get(url: str) -> tuple[int, bytes]:
    """Status and body of a GET. HTTP/1.0, so the server closes the connection after the
    response and reading to the end is safe (an HTTP/1.1 server may keep it open)."""
    host_port, _, path = url.removeprefix("http://").partition("/")
    host, _, port = host_port.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET /{path} HTTP/1.0\r\nHost: {host_port}\r\n\r\n".encode())
    await writer.drain()
    response = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), body
