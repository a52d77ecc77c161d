"""A Streamlit browser session without a browser: the websocket protocol, spoken directly.

Streamlit's browser talks to the server over ws://HOST/_stcore/stream with protobufs: it sends
`BackMsg`s (a `rerun_script` carrying a `ClientState`: page, query string and every widget value
it changed) and receives `ForwardMsg`s (deltas that draw elements, `page_info_changed` for the
URL, `auto_rerun` timers for `st.fragment(run_every=...)`, and `script_finished` at the end of
a run). `Session` does the same, so one Python process can hold 30 cheap sessions:

    s = Session("ws://127.0.0.1:8501/_stcore/stream")
    await s.connect()
    r = await s.open("sample")              # r.latency: send -> script_finished, in seconds
    r = await s.set("smp_temp", [0.7])      # a widget by its key (id suffix) or its label
    r = await s.click("Generate")

Widget ids are read from the deltas of the last run. A fragment's timer fires only while the
session is idle, like a tab whose user is reading. Errors a run can show are collected per run:
exception elements, a compile error, a page-not-found, a websocket error or a timeout.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

FINISHED = ForwardMsg.ScriptFinishedStatus
DONE_STATES = {
    FINISHED.FINISHED_SUCCESSFULLY,
    FINISHED.FINISHED_WITH_COMPILE_ERROR,
    FINISHED.FINISHED_FRAGMENT_RUN_SUCCESSFULLY,
}
WIDGETS = {
    "slider", "selectbox", "text_area", "text_input", "number_input", "button", "button_group",
    "radio", "checkbox", "multiselect", "file_uploader", "download_button", "toggle",
}  # fmt: skip


@dataclass
class RunResult:
    """One rerun as the user saw it."""

    kind: str  # interaction type, e.g. "open:sample", "set:smp_temp", "tick"
    latency: float  # seconds from the user's action to script_finished
    errors: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)  # st.error boxes drawn (not counted as errors)
    n_deltas: int = 0
    n_bytes: int = 0


class Session:
    def __init__(self, url: str, *, timeout: float = 120.0, name: str = ""):
        self.url, self.timeout, self.name = url, timeout, name
        self.ws = None
        self.page_name = ""
        self.page_hash = ""
        self.query = ""
        self.widgets: dict[str, tuple[str, object]] = {}  # id -> (element type, proto)
        self.values: dict[str, WidgetState] = {}  # widget values this user set
        self.timers: dict[str, float] = {}  # fragment id -> interval (s)
        self.pages: dict[str, str] = {}  # url path -> page script hash
        self.results: list[RunResult] = []
        self._reader: asyncio.Task | None = None
        self._ticker: asyncio.Task | None = None
        self._finished: asyncio.Future | None = None
        self._run: RunResult | None = None
        self._lock = asyncio.Lock()  # one run at a time, as in the browser
        self._closed = False

    # ------------------------------------------------------------------ connection

    async def connect(self) -> None:
        self.ws = await websockets.connect(
            self.url, subprotocols=["streamlit"], max_size=2**28, open_timeout=self.timeout
        )
        self._reader = asyncio.create_task(self._read())
        self._ticker = asyncio.create_task(self._tick())

    async def close(self) -> None:
        self._closed = True
        for t in (self._ticker, self._reader):
            if t is not None:
                t.cancel()
        if self.ws is not None:
            await self.ws.close()

    # ------------------------------------------------------------------ user actions

    async def open(self, page: str, query: str = "") -> RunResult:
        """Navigate to a page (its url path) as a click in the sidebar does."""
        self.page_name, self.page_hash = page, self.pages.get(page, "")
        self.query = query
        self.values.clear()
        return await self._rerun(f"open:{page}", page_name=page)

    async def set(self, widget: str, value) -> RunResult:
        """Set a widget (key or label) to `value`: a list of floats for a slider, a string for
        a text box, a select box or a radio, a float for a number input, a bool for a checkbox,
        a list of strings for a segmented control or multiselect."""
        wid, etype = self.find(widget)
        self.values[wid] = _state(wid, etype, value)
        return await self._rerun(f"set:{widget}")

    async def click(self, widget: str) -> RunResult:
        wid, _ = self.find(widget)
        trigger = WidgetState(id=wid, trigger_value=True)
        return await self._rerun(f"click:{widget}", extra=[trigger])

    def find(self, widget: str) -> tuple[str, str]:
        """(id, element type) of a widget drawn by the last run, by key or by label."""
        for wid, (etype, proto) in self.widgets.items():
            if wid.endswith(f"-{widget}") or getattr(proto, "label", None) == widget:
                return wid, etype
        raise LookupError(f"no widget {widget!r} on {self.page_name!r}")

    def widget(self, widget: str):
        return self.widgets[self.find(widget)[0]][1]

    # ------------------------------------------------------------------ protocol

    async def _rerun(
        self, kind: str, *, page_name: str = "", extra=(), fragment: str = ""
    ) -> RunResult:
        t0 = time.perf_counter()  # the user's action; waiting for a tick in flight counts too
        async with self._lock:
            msg = BackMsg()
            cs = msg.rerun_script
            cs.query_string = self.query
            cs.page_script_hash = "" if page_name else self.page_hash
            cs.page_name = page_name
            if fragment:
                cs.fragment_id, cs.is_auto_rerun = fragment, True
            states = {**self.values, **{w.id: w for w in extra}}
            cs.widget_states.widgets.extend(states.values())
            loop = asyncio.get_running_loop()
            self._finished = loop.create_future()
            self._run = RunResult(kind, 0.0)
            if not fragment:
                self.timers.clear()  # a full run re-registers its fragments' timers
                self._seen: set[str] = set()
            run = self._run
            try:
                await self.ws.send(msg.SerializeToString())
                await asyncio.wait_for(self._finished, self.timeout)
            except TimeoutError:
                run.errors.append(f"timeout after {self.timeout:.0f} s")
            except Exception as exc:  # noqa: BLE001 - a dropped socket is a load error
                run.errors.append(f"websocket: {type(exc).__name__}: {exc}")
            run.latency = time.perf_counter() - t0
            if not fragment:  # widgets not drawn by this run are gone from the page
                self.widgets = {w: v for w, v in self.widgets.items() if w in self._seen}
                self.values = {w: v for w, v in self.values.items() if w in self.widgets}
            self.results.append(run)
            return run

    async def _read(self) -> None:
        try:
            async for data in self.ws:
                fm = ForwardMsg()
                fm.ParseFromString(data)
                self._handle(fm, len(data))
        except Exception as exc:  # noqa: BLE001 - reported through the run that waits
            if not self._closed and self._finished is not None and not self._finished.done():
                self._run.errors.append(f"websocket closed: {type(exc).__name__}: {exc}")
                self._finished.set_result(None)
        else:
            if not self._closed and self._finished is not None and not self._finished.done():
                self._run.errors.append("websocket closed by the server")
                self._finished.set_result(None)

    def _handle(self, fm: ForwardMsg, size: int) -> None:
        kind = fm.WhichOneof("type")
        run = self._run
        if run is not None:
            run.n_bytes += size
        if kind == "delta":
            if run is not None:
                run.n_deltas += 1
            delta = fm.delta
            if delta.WhichOneof("type") != "new_element":
                return
            el = delta.new_element
            etype = el.WhichOneof("type")
            if etype in WIDGETS:
                proto = getattr(el, etype)
                self.widgets[proto.id] = (etype, proto)
                if hasattr(self, "_seen"):
                    self._seen.add(proto.id)
            elif etype == "exception" and run is not None:
                run.errors.append(f"exception: {el.exception.type}: {el.exception.message[:200]}")
            elif etype == "alert" and run is not None and el.alert.format == 1:  # ERROR
                run.alerts.append(el.alert.body[:200])
        elif kind == "new_session":
            self.page_hash = fm.new_session.page_script_hash
            for p in fm.new_session.app_pages:
                self.pages[p.url_pathname] = p.page_script_hash
        elif kind == "navigation":
            for p in fm.navigation.app_pages:
                self.pages[p.url_pathname] = p.page_script_hash
            if fm.navigation.page_script_hash:
                self.page_hash = fm.navigation.page_script_hash
        elif kind == "page_info_changed":
            self.query = fm.page_info_changed.query_string
        elif kind == "auto_rerun":
            self.timers[fm.auto_rerun.fragment_id] = fm.auto_rerun.interval
        elif kind == "page_not_found" and run is not None:
            run.errors.append(f"page not found: {fm.page_not_found.page_name}")
        elif kind == "script_finished":
            status = fm.script_finished
            if status == FINISHED.FINISHED_WITH_COMPILE_ERROR and run is not None:
                run.errors.append("script compile error")
            if status in DONE_STATES and self._finished is not None and not self._finished.done():
                self._finished.set_result(status)

    async def _tick(self) -> None:
        """Fire fragment timers while idle (the browser's setInterval for run_every)."""
        due: dict[str, float] = {}
        while not self._closed:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            for fid, every in list(self.timers.items()):
                due.setdefault(fid, now + every)
                if now >= due[fid] and not self._lock.locked():
                    due[fid] = now + every
                    await self._rerun("tick", fragment=fid)
            for fid in set(due) - set(self.timers):
                del due[fid]


def _state(wid: str, etype: str, value) -> WidgetState:
    ws = WidgetState(id=wid)
    if etype == "slider":
        ws.double_array_value.data.extend(value if isinstance(value, list | tuple) else [value])
    elif etype in ("text_area", "text_input", "selectbox", "radio"):
        ws.string_value = value
    elif etype == "number_input":
        ws.double_value = float(value)
    elif etype in ("checkbox", "toggle"):
        ws.bool_value = bool(value)
    elif etype in ("button_group", "multiselect"):
        ws.string_array_value.data.extend(value)
    else:
        raise ValueError(f"cannot set a {etype}")
    return ws
