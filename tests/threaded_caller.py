"""An honest caller in a thread of its own, so that it keeps real time while the server stalls.

Tests that stall the server's event loop, or flood it, run the server in the
test's own loop; a caller on that loop would stall with it and send its
audio late, in a burst. This one uses the ``websockets`` synchronous client
in a thread: it dials the consent line, presses 1, talks ``frames`` paced
against a start time, hangs up and reads to the close.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from media.frame import Pcm


class ThreadedCaller(threading.Thread):
    """One recorded call, start to close; ``messages`` and ``close_code`` once joined."""

    def __init__(
        self,
        url: str,
        frames: list[Pcm],
        *,
        number: str = "+15550100",
        caller_id: str = "+15557654321",
        tail_s: float = 0.3,
    ) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.frames = frames
        self.number = number
        self.caller_id = caller_id
        self.tail_s = tail_s
        self.messages: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.error: BaseException | None = None
        self.talking = threading.Event()

    def run(self) -> None:
        try:
            with connect(self.url, max_size=1 << 16, open_timeout=10) as ws:
                self._call(ws)
        except BaseException as exc:
            self.error = exc

    def _until(self, ws: ClientConnection, kind: str, **fields: Any) -> dict[str, Any]:
        while True:
            raw = ws.recv(timeout=15)
            if isinstance(raw, bytes):
                continue
            m: dict[str, Any] = json.loads(raw)
            self.messages.append(m)
            if m["type"] == kind and all(m.get(k) == v for k, v in fields.items()):
                return m
            if m["type"] == "hangup":
                raise AssertionError(f"hung up before {kind}: {self.messages}")

    def _call(self, ws: ClientConnection) -> None:
        ws.send(
            json.dumps(
                {
                    "type": "dial",
                    "to": self.number,
                    "from": self.caller_id,
                    "codec": "pcm_s16le",
                    "rate": 8000,
                }
            )
        )
        self._until(ws, "prompt", event="start", node="consent")
        ws.send(json.dumps({"type": "dtmf", "digits": "1"}))
        self._until(ws, "recording", state="on")
        reader = threading.Thread(target=self._drain, args=(ws,), daemon=True)
        reader.start()
        self.talking.set()
        start = time.monotonic()
        for i, frame in enumerate(self.frames):
            delay = start + i * 0.02 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            ws.send(frame.astype("<i2").tobytes())
        time.sleep(self.tail_s)
        ws.send(json.dumps({"type": "hangup"}))
        reader.join(30)
        self.close_code = ws.close_code

    def _drain(self, ws: ClientConnection) -> None:
        try:
            for raw in ws:
                if isinstance(raw, str):
                    self.messages.append(json.loads(raw))
        except ConnectionClosed:
            pass

    def result(self, timeout: float = 60) -> dict[str, Any]:
        """Wait for the call to end; its ``hangup`` message."""
        self.join(timeout)
        assert not self.is_alive(), "the call did not end"
        if self.error is not None:
            raise self.error
        hangups = [m for m in self.messages if m["type"] == "hangup"]
        assert hangups, f"no hangup: {self.messages}"
        return hangups[-1]
