"""What every API's handlers do with a generation's events on the asyncio side: wait for
them only while the client is still there, and gather a whole (unstreamed) answer."""
from __future__ import annotations

import asyncio
from typing import AsyncIterator

from starlette.requests import Request

from llmlite.server.generation import Calls, Done, Piece


async def until_gone(request: Request, coro):
    """await coro, unless the client disconnects first: then it is cancelled (and so is
    its generation, between two tokens) and None is returned"""
    task = asyncio.ensure_future(coro)

    async def gone():
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watch = asyncio.ensure_future(gone())
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not task.done():         # the client left, or this handler itself was cancelled
            task.cancel()
    return task.result() if task.done() and not task.cancelled() else None


async def gather(events: AsyncIterator) -> tuple[list, Done, list]:
    """a whole answer: (its Pieces, its Done, the tool Calls it made)"""
    pieces, calls = [], []
    async for ev in events:
        if isinstance(ev, Piece):
            pieces.append(ev)
        elif isinstance(ev, Calls):
            calls.extend(ev.calls)
        elif isinstance(ev, Done):
            return pieces, ev, calls
    raise RuntimeError("the generation ended without its Done")
