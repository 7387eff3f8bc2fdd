"""A browser-free Streamlit client: one websocket session speaking Streamlit's protobufs.

Used by bench_concurrency.py (--client websocket). A session connects to
`/_stcore/stream`, asks for a script run exactly as the browser does (a
`rerun_script` BackMsg with the query string, the page's script hash and the
widget states), and reads ForwardMsgs until `script_finished`. Widgets are
found by their labels in the deltas, so a filter change is the same widget
state the browser would send. What it cannot see is the browser's own work
(building the page and drawing the charts): its latency is the server's
share of a filter change.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Self

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

FINISHED = {ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY}
EARLY = ForwardMsg.FINISHED_EARLY_FOR_RERUN


@dataclass
class RunResult:
    """What one script run sent: its duration, widgets by label, charts, exceptions, errors."""

    seconds: float
    widgets: dict[str, tuple[str, object]] = field(default_factory=dict)  # label → (kind, proto)
    charts: int = 0
    exceptions: list[str] = field(default_factory=list)
    error_alerts: list[str] = field(default_factory=list)
    bytes_received: int = 0


class Session:
    """One Streamlit session over a websocket."""

    def __init__(self, port: int, query_string: str = ""):
        self.uri = f"ws://127.0.0.1:{port}/_stcore/stream"
        self.query_string = query_string
        self.ws = None
        self.pages: dict[str, str] = {}  # url pathname → page script hash
        self.page_hash = ""
        self.states: dict[str, object] = {}  # widget id → WidgetState

    async def __aenter__(self) -> Self:
        self.ws = await websockets.connect(self.uri, subprotocols=["streamlit"], max_size=None,
                                           open_timeout=60, ping_interval=None)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.ws.close()

    async def run(self, timeout_s: float = 60.0) -> RunResult:
        """Ask for a rerun with the current widget states; wait until the script finished."""
        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string = self.query_string
        cs.page_script_hash = self.page_hash
        for st in self.states.values():
            cs.widget_states.widgets.append(st)
        t0 = time.perf_counter()
        await self.ws.send(msg.SerializeToString())
        res = RunResult(seconds=0.0)
        end = t0 + timeout_s
        while True:
            left = end - time.perf_counter()
            if left <= 0:
                raise TimeoutError(f"no script_finished within {timeout_s:.0f} s")
            data = await asyncio.wait_for(self.ws.recv(), timeout=left)
            res.bytes_received += len(data)
            fm = ForwardMsg()
            fm.ParseFromString(data)
            kind = fm.WhichOneof("type")
            if kind == "navigation":
                for p in fm.navigation.app_pages:
                    self.pages[p.url_pathname] = p.page_script_hash
            elif kind == "new_session":
                for p in fm.new_session.app_pages:
                    self.pages.setdefault(p.url_pathname, p.page_script_hash)
            elif kind == "delta" and fm.delta.WhichOneof("type") == "new_element":
                el = fm.delta.new_element
                ek = el.WhichOneof("type")
                if ek == "vega_lite_chart":
                    res.charts += 1
                elif ek == "exception":
                    res.exceptions.append(el.exception.message[:200])
                elif ek == "alert" and el.alert.format == el.alert.ERROR:
                    res.error_alerts.append(el.alert.body[:200])
                elif ek in ("checkbox", "multiselect", "selectbox", "toggle", "slider"):
                    w = getattr(el, ek)
                    res.widgets[w.label] = (ek, w)
            elif kind == "script_finished":
                if fm.script_finished in FINISHED:
                    res.seconds = time.perf_counter() - t0
                    return res
                if fm.script_finished != EARLY:
                    raise RuntimeError(f"script finished with status {fm.script_finished}")
                # st.rerun(): the next run follows on its own; keep reading.

    def set_checkbox(self, widget, value: bool) -> None:
        st = self._state(widget.id)
        st.bool_value = value

    def set_multiselect(self, widget, values: list[str]) -> None:
        """Values as the browser sends them: the options' displayed labels."""
        unknown = [v for v in values if v not in list(widget.options)]
        if unknown:
            raise ValueError(f"{widget.label}: no option {unknown} in {list(widget.options)}")
        st = self._state(widget.id)
        st.string_array_value.data[:] = values

    def _state(self, wid: str):
        from streamlit.proto.WidgetStates_pb2 import WidgetState

        st = WidgetState()
        st.id = wid
        self.states[wid] = st
        return st

    async def open_page(self, pathname: str, timeout_s: float = 60.0) -> RunResult:
        """Switch to a page as the navigation menu does (its script hash)."""
        if pathname not in self.pages:
            raise KeyError(f"no page {pathname!r}; pages: {sorted(self.pages)}")
        self.page_hash = self.pages[pathname]
        return await self.run(timeout_s)
