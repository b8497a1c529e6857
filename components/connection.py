"""The app's link to the engine: attach to a running one or start and babysit our own.

UI-free: the Streamlit shell shows what ``EngineLink.ensure`` reports. If the engine at the
configured URL answers, the app attaches to it. If not, and the URL is on loopback and
``INTERPSCOPE_NO_SPAWN`` is unset, the link starts one (``python -m engine``) on that port and
restarts it if it dies. It never starts a second engine where one listens but answers
slowly (a busy engine keeps answering ``/health``; one that does not is waited for).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from platformdirs import user_log_dir

from engine.client import EngineClient, EngineUnavailable
from engine.launcher import spawn_engine, wait_until_healthy
from engine.schemas.model import Health

DEFAULT_URL = "http://127.0.0.1:8765"


@dataclass
class LinkStatus:
    ok: bool
    engine_id: str | None = None
    restarted: bool = False  # the engine is a different process than last time
    started_here: bool = False  # we just started it
    message: str = ""


class EngineLink:
    def __init__(self, url: str | None = None, token: str | None = None, model: str | None = None):
        self.url = (url or os.environ.get("INTERPSCOPE_ENGINE_URL") or DEFAULT_URL).rstrip("/")
        self.token = token or os.environ.get("INTERPSCOPE_TOKEN")
        self.model = model or os.environ.get("INTERPSCOPE_MODEL")
        self.client = EngineClient(self.url, token=self.token)
        self.proc: subprocess.Popen | None = None
        self.engine_id: str | None = None
        self.log_path = Path(user_log_dir("interpscope")) / "engine.log"
        self.slow_wait_s = 120.0  # how long to wait for an engine that listens but is silent

    @property
    def can_spawn(self) -> bool:
        host = urlparse(self.url).hostname
        return host in ("127.0.0.1", "localhost") and not os.environ.get("INTERPSCOPE_NO_SPAWN")

    def _spawn(self, on_wait: Callable[[float], None] | None) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        port = urlparse(self.url).port or 8765
        self.proc = spawn_engine(
            port=port, model=self.model, token=self.token, log_path=self.log_path
        )
        wait_until_healthy(self.client, proc=self.proc, timeout=180, on_wait=on_wait)

    def ensure(
        self,
        on_wait: Callable[[float], None] | None = None,
        on_slow: Callable[[float], None] | None = None,
    ) -> LinkStatus:
        """Check the engine; start (or restart) it when we may. Never raises. An engine that
        listens but answers slowly (or ours, still starting) is waited for, never doubled."""
        started = False
        try:
            health = self.client.health(timeout=3.0)
        except EngineUnavailable as e:
            health = None
            if not e.refused or self._ours_alive():  # listening (or starting): wait for it
                try:
                    health = self._wait_slow(on_slow)
                except EngineUnavailable as e3:
                    return LinkStatus(ok=False, message=f"{e3} Log: {self.log_path}")
            if health is None and not self.can_spawn:
                return LinkStatus(ok=False, message=f"{e} Start it with `python -m engine`.")
            if health is None:
                try:
                    self._spawn(on_wait)
                    health, started = self.client.health(timeout=5.0), True
                except EngineUnavailable as e2:
                    return LinkStatus(
                        ok=False, message=f"Could not start the engine: {e2} Log: {self.log_path}"
                    )
        restarted = self.engine_id is not None and health.engine_id != self.engine_id
        self.engine_id = health.engine_id
        return LinkStatus(
            ok=True, engine_id=self.engine_id, restarted=restarted, started_here=started
        )

    def _wait_slow(self, on_slow: Callable[[float], None] | None) -> Health | None:
        """/health of an engine that listens but answers slowly, once it answers; None once
        nothing listens any more (it died: start another)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < self.slow_wait_s:
            try:
                return self.client.health(timeout=2.0)
            except EngineUnavailable as e:
                if e.refused and not self._ours_alive():
                    return None
            if on_slow:
                on_slow(time.monotonic() - t0)
            time.sleep(0.25)
        raise EngineUnavailable(
            f"The engine at {self.url} is running but has not answered for {self.slow_wait_s:.0f} s."
        )

    def _ours_alive(self) -> bool:
        """The engine we started is still running (starting, or too busy to answer)."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
