"""``[web]``: follows everything under the base topic and the discovery prefix, and serves it as a page.

The model is kept on this component's thread, like any component's state; the HTTP server
runs on its own thread and asks for what it needs through ``attach``, ``device`` and
``command``, which hand over to this thread. Events go the other way in one batch per
message, only while a page is open.
"""

from __future__ import annotations

import concurrent.futures
from typing import TYPE_CHECKING, Any

from gateway import Component, Context, Message
from gateway_web.config import WebConfig
from gateway_web.model import Model

if TYPE_CHECKING:  # tornado is imported only when [web] is configured (in start)
    from gateway_web.server import Client, WebServer


class Web(Component[WebConfig]):
    """Serves the page of devices, bridge and live traffic."""

    section = "web"

    def __init__(self, ctx: Context[WebConfig]) -> None:
        super().__init__(ctx)
        self.model = Model(ctx.base_topic, ctx.discovery.settings.prefix, ctx.config, f"{ctx.discovery.node}_")
        self.server: WebServer | None = None
        self._frame: Any = None

    def start(self) -> None:
        from gateway_web.server import WebServer, frame

        self._frame = frame
        server = WebServer(self.ctx.config, self, self.ctx.base_topic, self.ctx.log)
        try:
            server.start()
        except OSError as exc:
            raise OSError(f"cannot listen on {self.ctx.config.listen}: {exc.strerror or exc}") from None
        self.server = server
        self.ctx.subscribe(f"{self.model.base}/#", self.on_message)
        self.ctx.subscribe(f"{self.model.prefix}/#", self.on_message)
        self.ctx.log.info("web page at %s", self.ctx.config.url)

    def stop(self) -> None:
        if self.server is not None:
            self.server.close()

    def on_message(self, message: Message) -> None:
        events = self.model.update(message, self.ctx.clock.time() * 1000)
        server = self.server
        if server is not None and server.open_streams:
            server.post(server.broadcast, self._frame(self.model.materialize(events)))

    # ---- for the HTTP thread: each hands over to this component's thread ----------------

    def attach(self, client: Client) -> None:
        self.ctx.call_soon(self._attach, client)

    def _attach(self, client: Client) -> None:
        if self.server is not None:
            self.server.post(self.server.activate, client, self._frame([("snapshot", self.model.snapshot())]))

    def device(self, topic: str) -> concurrent.futures.Future[dict[str, Any] | None]:
        future: concurrent.futures.Future[dict[str, Any] | None] = concurrent.futures.Future()

        def run() -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(self.model.detail(topic))
                except Exception as exc:
                    future.set_exception(exc)

        self.ctx.call_soon(run)
        return future

    def command(self, topic: str, payload: str) -> None:
        self.ctx.call_soon(self._send, topic, payload)

    def _send(self, topic: str, payload: str) -> None:
        self.ctx.log.info("command from the web page: %s %s", topic, payload[:200])
        self.ctx.publish(topic, payload.encode())
