"""mcpruntime kernel: runs Python cells for a sandbox backend.

The host (a backend plugin) speaks to this process over one channel of
length-prefixed JSON frames (4-byte big-endian length, then UTF-8 JSON).

Requests (host -> kernel):
  {"type": "exec", "id": N, "code": "...", "output_limit": BYTES}
  {"type": "host_result", "call": N, "ok": bool, "result": ..., "error": "...",
   "error_code": "...", "content": [{"type", "text", "data" (base64), "mime_type", "uri"}]}
  {"type": "configure", "env": {...}, "cwd": "...", "forget_import_caches": bool,
   "preload": ["module", ...], "import_paths": ["dir", ...],
   "memory_limit": BYTES, "reseed": bool}
  {"type": "ping"}
  {"type": "reap"}
  {"type": "shutdown"}
Events (kernel -> host):
  {"type": "ready", "pid": N, "python": "3.x.y", "platform": "..."}
  {"type": "out", "id": N, "stream": "stdout"|"stderr", "data": "..."}
  {"type": "host_call", "id": N, "call": N, "method": "...", "args": {...}}
  {"type": "display", "id": N, "bundle": {"text/html": "...", "image/png": "<base64>"}}
  {"type": "result", "id": N, "exit_code": N, "kind": "...", "message": "...",
   "exception": {"type", "message", "traceback"}, "truncated": bool}
  {"type": "configured", "error": "..."}   (error only when something failed)
  {"type": "pong"}
  {"type": "reaped"}

Host calls carry ids, so several may be in flight: sandbox threads and
asyncio tasks each send theirs and wait; one of them at a time reads the
channel and hands the others their results (see Kernel.host_submit).

It depends on the standard library only and runs on CPython 3.11+, on a
normal host as well as on WASI (no threads, no dup2, no signals).
"""

# Start-up time is on every cold path, so only what the channel needs is
# imported here: ast (via _ast and compile()), pickle and traceback load when
# first used, and neither the json package nor linecache is imported at all
# (both pull in re, enum and functools: ~15 ms of a ~36 ms start natively,
# more on WASI). See _codec and _Sources.
import _ast
import builtins
import io
import itertools
import os
import struct
import sys
import time
import types

_ONLY_AST = 0x400  # ast.PyCF_ONLY_AST, without importing the ast module

_KERNEL_FILE = __file__ if "__file__" in globals() else "<kernel>"
_HEADER = struct.Struct(">I")
_MAX_FRAME = 64 << 20


def _codec():
    """(loads, dumps) for frames, through the C accelerator module _json.

    These are the functions the json package itself calls for this exact
    configuration (no indent, ensure_ascii=False, default=repr); a self-check
    falls back to the json package where _json is missing or its signature
    differs.
    """
    try:
        import _json

        class _Context:
            strict = True
            object_hook = None
            object_pairs_hook = None
            parse_float = float
            parse_int = int
            parse_constant = float  # NaN, Infinity, -Infinity

        scan = _json.make_scanner(_Context)
        make_encoder = _json.make_encoder
        quote = _json.encode_basestring

        def loads(text):
            if isinstance(text, (bytes, bytearray)):
                text = text.decode("utf-8")
            try:
                value, end = scan(text, 0)
            except StopIteration as e:
                raise ValueError("invalid JSON frame at offset %d" % e.value) from None
            if end != len(text):
                raise ValueError("invalid JSON frame: extra data at offset %d" % end)
            return value

        def dumps(value):
            # A fresh encoder per frame, as json.dumps does: its circular-
            # reference markers must not outlive a failed encoding.
            encode = make_encoder({}, repr, quote, None, ": ", ", ", False, False, True)
            return "".join(encode(value, 0))

        sample = {"a": [1, "\u00e9\n", None, True, 1.5], "b": {}}
        if dumps(sample) == '{"a": [1, "\u00e9\\n", null, true, 1.5], "b": {}}' and loads(
            dumps(sample)
        ) == sample:
            return loads, dumps
    except Exception:
        pass
    import json

    return json.loads, lambda value: json.dumps(value, ensure_ascii=False, default=repr)


_loads, _dumps = _codec()


class _Sources:
    """Cell sources for tracebacks and inspect, handed to linecache lazily.

    linecache imports tokenize and re; importing it at start-up would undo
    most of what _codec saves. Sources are kept here until something imports
    linecache (the traceback module, inspect, sandbox code), and a meta-path
    hook hands them over the moment that import finishes.
    """

    pending = {}

    @classmethod
    def add(cls, name, code):
        entry = (len(code), None, code.splitlines(True), name)
        linecache = sys.modules.get("linecache")
        if linecache is not None:
            linecache.cache[name] = entry
        else:
            cls.pending[name] = entry

    @classmethod
    def lines(cls, name):
        linecache = sys.modules.get("linecache")
        entry = cls.pending.get(name)
        if entry is None and linecache is not None:
            entry = linecache.cache.get(name)
        return entry[2] if entry else None

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != "linecache":
            return None
        sys.meta_path.remove(cls)
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            cache = getattr(module, "cache", None)  # a workspace file may shadow it
            if isinstance(cache, dict):
                cache.update(cls.pending)
                cls.pending.clear()

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _Sources)


class _AfterImport:
    """Runs a callback on a module right after its first import (and
    before, when given, a function just before that import)."""

    def __init__(self, name, callback, before=None):
        self.name, self.callback, self.before = name, callback, before

    @classmethod
    def add(cls, name, callback, before=None):
        if name in sys.modules:
            callback(sys.modules[name])
        else:
            sys.meta_path.insert(0, cls(name, callback, before))

    def find_spec(self, name, path=None, target=None):
        if name != self.name:
            return None
        sys.meta_path.remove(self)
        if self.before is not None:
            self.before()
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        load, callback = spec.loader.exec_module, self.callback

        def exec_module(module):
            load(module)
            callback(module)

        spec.loader.exec_module = exec_module
        return spec


def _wasi_event_loop(asyncio):
    """Make asyncio.run work on WASI.

    The default loop makes a self-pipe with socket.socketpair(), which WASI
    does not have. The pipe only wakes the loop from other threads, and WASI
    has none, so a loop without it is complete.
    """

    class WasiEventLoop(asyncio.SelectorEventLoop):
        def _make_self_pipe(self):
            pass

        def _close_self_pipe(self):
            pass

        def _write_to_self(self):
            pass

    class WasiEventLoopPolicy(asyncio.DefaultEventLoopPolicy):
        def new_event_loop(self):
            return WasiEventLoop()

    asyncio.set_event_loop_policy(WasiEventLoopPolicy())


def _frame(msg):
    body = _dumps(msg).encode("utf-8", "replace")
    return _HEADER.pack(len(body)) + body


class Channel:
    """Framed JSON over two file descriptors."""

    def __init__(self, fd_in, fd_out):
        self.fd_in = fd_in
        self.fd_out = fd_out

    def _read_exact(self, n):
        chunks = []
        while n:
            b = os.read(self.fd_in, min(n, 1 << 20))
            if not b:
                return None
            chunks.append(b)
            n -= len(b)
        return b"".join(chunks)

    def recv(self):
        head = self._read_exact(4)
        if head is None:
            return None
        (n,) = _HEADER.unpack(head)
        if n > _MAX_FRAME:
            raise ValueError("frame of %d bytes exceeds the limit" % n)
        body = self._read_exact(n)
        if body is None:
            return None
        return _loads(body)

    def send(self, msg):
        self._write(_frame(msg))

    def send_all(self, msgs):
        """Send frames with one write: the host reads them with one wake-up."""
        self._write(b"".join(map(_frame, msgs)))

    def _write(self, data):
        view = memoryview(data)
        while view:
            n = os.write(self.fd_out, view)
            view = view[n:]


class _Budget:
    """Output bytes left for the running cell, shared by stdout and stderr."""

    def __init__(self):
        self.left = 1 << 20
        self.truncated = False

    def take(self, data):
        if self.left <= 0:
            self.truncated = True
            return ""
        raw = data.encode("utf-8", "replace")
        if len(raw) <= self.left:
            self.left -= len(raw)
            return data
        cut = raw[: self.left].decode("utf-8", "ignore")
        self.left = 0
        self.truncated = True
        return cut


class _BinaryView:
    """sys.stdout.buffer stand-in: bytes are decoded and forwarded."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, b):
        self._stream.write(bytes(b).decode("utf-8", "replace"))
        return len(b)

    def flush(self):
        self._stream.flush()


class OutStream(io.TextIOBase):
    """A text stream that forwards writes as "out" events.

    Writes are coalesced: a write that completes a line is sent at once when
    nothing was sent in the last few milliseconds (so a lone print shows up
    live), otherwise it waits for more data, a flush, the end of the cell, or
    the background flusher (where threads exist). Waiting for the line's end
    makes print(x) one frame instead of two (print writes x, then "\n").
    """

    COALESCE_SECONDS = 0.005
    CHUNK = 16 << 10

    def __init__(self, kernel, name):
        self._kernel = kernel
        self._name = name
        self._pending = []
        self._size = 0
        self._last = 0.0
        self.buffer = _BinaryView(self)

    @property
    def encoding(self):
        return "utf-8"

    @property
    def name(self):
        return "<%s>" % self._name

    def writable(self):
        return True

    def isatty(self):
        return False

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError("write() argument must be str, not %s" % type(s).__name__)
        if not s:
            return 0
        k = self._kernel
        with k.lock:
            s2 = k.budget.take(s)
            if s2:
                self._pending.append(s2)
                self._size += len(s2)
            if self._size >= self.CHUNK:
                self._flush_locked(time.monotonic())
            elif "\n" in s2:
                now = time.monotonic()
                if now - self._last >= self.COALESCE_SECONDS:
                    self._flush_locked(now)
        return len(s)

    def flush(self):
        with self._kernel.lock:
            self._flush_locked(time.monotonic())

    def _flush_locked(self, now):
        frame = self._take_locked(now)
        if frame is not None:
            self._kernel.channel.send(frame)

    def _take_locked(self, now):
        """The pending output as an "out" frame (None if nothing is pending)."""
        if not self._pending:
            return None
        data = "".join(self._pending)
        self._pending = []
        self._size = 0
        self._last = now
        k = self._kernel
        return {"type": "out", "id": k.exec_id, "stream": self._name, "data": data}


class _NullLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _NullCondition(_NullLock):
    """The condition of a kernel without threads: nobody else can hold it."""

    def acquire(self):
        return True

    def release(self):
        pass

    def wait(self, timeout=None):
        raise RuntimeError("a host call waits for itself (no threads to wake it)")

    def notify_all(self):
        pass


class HostCallError(Exception):
    """Raised in sandbox code when the host refuses or fails a host call.

    .code says why: "timeout", "refused", "error", ... (None if unknown).
    """

    __module__ = "mcpruntime"

    def __init__(self, message="", code=None):
        super().__init__(message)
        self.code = code


class ToolError(HostCallError):
    """A failed MCP tool call: .server, .tool, .code and the message.

    code is "tool_error" when the tool itself reported the error, else the
    host's reason: "timeout", "unavailable", "crashed", "unknown_tool",
    "unknown_server", "refused" or "error".
    """

    __module__ = "mcpruntime"

    def __init__(self, message="", server=None, tool=None, code=None):
        super().__init__(message, code)
        self.server = server
        self.tool = tool

    def __reduce__(self):
        return (type(self), (str(self), self.server, self.tool, self.code))


class _Blob:
    """Bytes a tool returned, with their media type."""

    __module__ = "mcpruntime"
    __slots__ = ("data", "mime_type")

    def __init__(self, data, mime_type=None):
        self.data = data
        self.mime_type = mime_type

    def __repr__(self):
        return "%s(mime_type=%r, data=<%d bytes>)" % (type(self).__name__, self.mime_type, len(self.data))

    def __eq__(self, other):
        return type(other) is type(self) and (self.data, self.mime_type) == (other.data, other.mime_type)

    __hash__ = None

    def __reduce__(self):
        return (type(self), (self.data, self.mime_type))


class Image(_Blob):
    """An image: .data (bytes) and .mime_type; display(Image(png)) shows it."""

    __module__ = "mcpruntime"
    __slots__ = ()

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {self.mime_type or "image/png": self.data}


class Audio(_Blob):
    """An audio clip a tool returned: .data (bytes) and .mime_type."""

    __module__ = "mcpruntime"
    __slots__ = ()


class Resource:
    """A resource a tool returned: .uri, .mime_type and .text or .data (bytes).

    Both are None for a link to a resource the tool did not embed.
    """

    __module__ = "mcpruntime"
    __slots__ = ("uri", "mime_type", "text", "data")

    def __init__(self, uri, mime_type=None, text=None, data=None):
        self.uri, self.mime_type, self.text, self.data = uri, mime_type, text, data

    def __repr__(self):
        body = "text=<%d chars>" % len(self.text) if self.text is not None else None
        if self.data is not None:
            body = "data=<%d bytes>" % len(self.data)
        return "Resource(uri=%r, mime_type=%r%s)" % (self.uri, self.mime_type, ", " + body if body else "")

    def __eq__(self, other):
        return type(other) is Resource and all(getattr(self, a) == getattr(other, a) for a in self.__slots__)

    __hash__ = None

    def __reduce__(self):
        return (Resource, (self.uri, self.mime_type, self.text, self.data))


# ---- rich outputs: display() and mime bundles ------------------------------
#
# A rich output leaves as {"type": "display", "id": N, "bundle": {mime: str}}
# with binary types base64, as in Jupyter's notebook format. The methods are
# Jupyter's, tried in its order; an object with none of them has no bundle
# and its repr is printed as before.

_REPR_METHODS = (
    ("_repr_png_", "image/png"),
    ("_repr_jpeg_", "image/jpeg"),
    ("_repr_svg_", "image/svg+xml"),
    ("_repr_html_", "text/html"),
    ("_repr_markdown_", "text/markdown"),
    ("_repr_json_", "application/json"),
    ("_repr_latex_", "text/latex"),
)


def _is_text_mime(mime):
    return (mime.startswith("text/") or mime in ("application/json", "image/svg+xml", "application/javascript")
            or mime.endswith("+json") or mime.endswith("+xml"))


def _repr_method(obj, name):
    if isinstance(obj, type):
        return None  # a class's _repr_html_ is an unbound method, not its repr
    try:
        m = getattr(obj, name, None)
    except Exception:
        return None
    return m if callable(m) else None


# Built-in types have no rich representation: most last values are one.
_PLAIN = frozenset((int, float, complex, bool, str, bytes, list, tuple, dict, set, frozenset, range, type(None)))


def _mime_bundle(obj):
    """obj's rich representations as {mime: value}; {} when it has none."""
    if type(obj) in _PLAIN:
        return {}
    data = {}
    m = _repr_method(obj, "_repr_mimebundle_")
    if m is not None:
        try:
            r = m(include=None, exclude=None)
        except TypeError:
            r = m()
        if isinstance(r, tuple):
            r = r[0]
        if isinstance(r, dict):
            data.update(r)
    for name, mime in _REPR_METHODS:
        if mime in data:
            continue
        m = _repr_method(obj, name)
        if m is None:
            continue
        try:
            v = m()
        except Exception:
            continue  # a broken formatter falls back to the others, as in Jupyter
        if isinstance(v, tuple):
            v = v[0]
        if v is not None:
            data[mime] = v
    if not data and _is_figure(obj):
        data["image/png"] = _figure_png(obj)
    if data and "text/plain" not in data:
        data["text/plain"] = repr(obj)
    return data


def _encode_bundle(data):
    out = {}
    for mime, v in data.items():
        mime = str(mime)
        if _is_text_mime(mime):
            if isinstance(v, (bytes, bytearray)):
                v = bytes(v).decode("utf-8", "replace")
            elif not isinstance(v, str):
                v = _dumps(v) if mime.endswith("json") else str(v)
        elif isinstance(v, (bytes, bytearray, memoryview)):
            import binascii

            v = binascii.b2a_base64(bytes(v), newline=False).decode("ascii")
        elif not isinstance(v, str):
            continue  # binary types come as bytes or, already encoded, as str
        out[mime] = v
    return out


def _send_display(kernel, data):
    """Send one bundle, charged to the cell's output budget."""
    bundle = _encode_bundle(data)
    if not bundle:
        return
    size = sum(len(v) for v in bundle.values())
    b = kernel.budget
    if size > b.left:
        b.truncated = True
        note = "[display of %d bytes (%s) omitted: over the output limit]" % (size, ", ".join(sorted(bundle)))
        if len(note) > b.left:
            return
        bundle = {"text/plain": note}
        size = len(note)
    b.left -= size
    kernel.send_after_output({"type": "display", "id": kernel.exec_id, "bundle": bundle})


def _display(kernel, objs, raw=False):
    for obj in objs:
        if raw:
            data = dict(obj)
        else:
            data = _mime_bundle(obj) or {"text/plain": repr(obj)}
        _send_display(kernel, data)


class _Rich:
    """A value shown as one representation: HTML, Markdown, SVG, JSON."""

    __module__ = "mcpruntime"
    mime = None

    def __init__(self, data=None, filename=None):
        if filename is not None:
            with open(filename, "rb") as f:
                data = f.read()
        if isinstance(data, (bytes, bytearray)) and _is_text_mime(self.mime):
            data = bytes(data).decode("utf-8", "replace")
        self.data = data

    def __repr__(self):
        return "<%s object>" % type(self).__name__

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {self.mime: self.data}


class HTML(_Rich):
    """HTML to display: display(HTML("<b>hi</b>"))."""

    mime = "text/html"


class Markdown(_Rich):
    """Markdown to display."""

    mime = "text/markdown"


class SVG(_Rich):
    """An SVG image to display."""

    mime = "image/svg+xml"


class JSON(_Rich):
    """JSON data (a dict or list) to display."""

    mime = "application/json"


def _image(data=None, url=None, filename=None, format=None, **_):
    """IPython.display.Image: bytes or a file, shown as image/<format>."""
    if filename is None and isinstance(data, str) and not data.startswith("<"):
        filename, data = data, None  # Image("plot.png")
    if filename is not None:
        with open(filename, "rb") as f:
            data = f.read()
        if format is None:
            format = filename.rsplit(".", 1)[-1].lower()
    if data is None:
        raise ValueError("Image needs data or a filename (URLs are not fetched)")
    fmt = {"jpg": "jpeg", "svg": "svg+xml"}.get(format or "png", format or "png")
    return Image(bytes(data) if not isinstance(data, str) else data, "image/" + fmt)


def _is_figure(obj):
    t = type(obj)
    return t.__name__ in ("Figure", "SubFigure") and t.__module__.startswith("matplotlib")


def _figure_png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def _show_figures(kernel):
    """Display every open matplotlib figure as a PNG and close it."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    for num in plt.get_fignums():
        fig = plt.figure(num)
        try:
            _send_display(kernel, {"image/png": _figure_png(fig), "text/plain": repr(fig)})
        finally:
            plt.close(fig)


def _inline_backend(kernel):
    """A matplotlib backend module: Agg rendering, show() displays figures."""
    m = types.ModuleType("mcpruntime._plots")
    from matplotlib.backends import backend_agg

    m.FigureCanvas = backend_agg.FigureCanvasAgg
    m.new_figure_manager = backend_agg.new_figure_manager
    m.new_figure_manager_given_figure = backend_agg.new_figure_manager_given_figure
    m.show = lambda *args, **kwargs: _show_figures(kernel)
    return m


# Where sandbox images keep matplotlib's font list, built at image build
# (sdk/rootfs.MatplotlibCacheDir).
_MPL_PREBUILT = "/usr/share/mcpruntime/matplotlib"


def _seed_matplotlib_cache():
    """Copy the image's font list into matplotlib's cache directory.

    Each sandbox starts with an empty home, so matplotlib's first import
    would otherwise scan every font of the image (~60 ms on opensandbox,
    ~0.6 s in a microVM under TCG). The directory is
    the one matplotlib uses: MPLCONFIGDIR, else the XDG cache. Any failure
    leaves matplotlib to build its own list, as before.
    """
    try:
        names = [n for n in os.listdir(_MPL_PREBUILT) if n.startswith("fontlist-") and n.endswith(".json")]
    except OSError:
        return
    cache = os.environ.get("MPLCONFIGDIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "matplotlib")
    for n in names:
        dst = os.path.join(cache, n)
        try:
            if not os.path.exists(dst):
                os.makedirs(cache, exist_ok=True)
                with open(os.path.join(_MPL_PREBUILT, n), "rb") as src, open(dst + ".tmp", "wb") as out:
                    out.write(src.read())
                os.replace(dst + ".tmp", dst)  # never a partial list
        except OSError:
            return


def _use_inline_backend(kernel, matplotlib):
    # Through a module:// name (matplotlib imports backends by name); the
    # module is made here, so nothing of it is on disk or in the environment
    # a subprocess inherits.
    sys.modules["mcpruntime._plots"] = _inline_backend(kernel)
    try:
        matplotlib.use("module://mcpruntime._plots")
    except Exception as e:
        kernel.stderr.write("mcpruntime: plots will not be shown: %s\n" % e)


class _IPythonShim:
    """`from IPython.display import display, HTML, Image` where IPython is absent.

    Sits at the end of sys.meta_path, so an installed IPython wins.
    """

    def __init__(self, kernel):
        self.kernel = kernel

    def find_spec(self, name, path=None, target=None):
        if name not in ("IPython", "IPython.display"):
            return None
        from importlib.machinery import ModuleSpec

        return ModuleSpec(name, self, is_package=(name == "IPython"))

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        helper = sys.modules["mcpruntime"]
        for name in ("display", "HTML", "Markdown", "SVG", "JSON"):
            setattr(module, name, getattr(helper, name))
        module.Image = _image


def _resolve(fut):
    if not fut.done():
        fut.set_result(None)


def _parts(content):
    """A tool's content items as Python values: str, Image, Audio, Resource."""
    from binascii import a2b_base64

    out = []
    for p in content:
        kind = p.get("type")
        data = p.get("data")
        raw = a2b_base64(data) if data else b""
        if kind == "text":
            out.append(p.get("text") or "")
        elif kind == "image":
            out.append(Image(raw, p.get("mime_type")))
        elif kind == "audio":
            out.append(Audio(raw, p.get("mime_type")))
        elif kind == "resource":
            out.append(Resource(p.get("uri"), p.get("mime_type"), p.get("text"), raw if data else None))
        else:
            out.append(p)
    return out


class Kernel:
    def __init__(self, channel):
        self.channel = channel
        self.exec_id = 0
        self.budget = _Budget()
        self.calls = itertools.count(1)
        self.threads = _threads_available()
        if self.threads:
            import threading

            self.lock = threading.RLock()
            self.calls_cond = threading.Condition(threading.Lock())
        else:
            self.lock = _NullLock()
            self.calls_cond = _NullCondition()
        # Host calls in flight (see host_submit), under calls_cond.
        self.pending = {}  # call id -> None until its host_result arrives
        self.reading = False  # someone reads the channel
        self.async_turn = None  # the call whose coroutine may read
        self.wakers = []  # (loop, future) of coroutines waiting for a change
        self.inbox = []  # requests read by a host call while no cell runs
        self.in_cell = False
        self.stdout = OutStream(self, "stdout")
        self.stderr = OutStream(self, "stderr")
        self.fd_pipes = []
        self.main = types.ModuleType("__main__")
        self.globals = self.main.__dict__
        self.globals["__builtins__"] = __builtins__
        self.cells = 0

    # ---- set-up ---------------------------------------------------------

    def install(self):
        sys.modules["__main__"] = self.main
        sys.stdout = self.stdout
        sys.stderr = self.stderr
        sys.modules["mcpruntime"] = _helper_module(self)
        helper = sys.modules["mcpruntime"]
        builtins.ask_llm = helper.ask_llm
        builtins.search_skills = helper.search_skills
        builtins.search_tools = helper.search_tools
        builtins.describe = helper.describe
        builtins.display = helper.display
        _AfterImport.add("matplotlib", lambda m: _use_inline_backend(self, m), before=_seed_matplotlib_cache)
        # Code written for Jupyter calls IPython's display(), which outside
        # an IPython shell only prints: an installed IPython gets ours, an
        # absent one a small stand-in.
        _AfterImport.add("IPython.display", lambda m: setattr(m, "display", helper.display))
        sys.meta_path.append(_IPythonShim(self))
        if sys.platform == "wasi":
            _AfterImport.add("asyncio", _wasi_event_loop)
        if self.threads:
            self._start_flusher()

    def capture_fds(self):
        """Route fd 1 and 2 (subprocesses, os.write) into the cell's output."""
        if not (self.threads and hasattr(os, "dup2") and hasattr(os, "pipe")):
            return
        import threading

        for fd, stream in ((1, self.stdout), (2, self.stderr)):
            r, w = os.pipe()
            os.dup2(w, fd)
            os.close(w)
            t = threading.Thread(target=self._pump, args=(r, stream), daemon=True)
            t.start()
            self.fd_pipes.append(r)

    def _pump(self, fd, stream):
        while True:
            try:
                b = os.read(fd, 65536)
            except OSError:
                return
            if not b:
                return
            stream.write(b.decode("utf-8", "replace"))

    def _drain_fds(self):
        if not self.fd_pipes:
            return
        import select

        deadline = time.monotonic() + 0.05
        while time.monotonic() < deadline:
            ready, _, _ = select.select(self.fd_pipes, [], [], 0)
            if not ready:
                return
            time.sleep(0.001)

    def _start_flusher(self):
        import threading

        def loop():
            while True:
                time.sleep(0.02)
                try:
                    self.stdout.flush()
                    self.stderr.flush()
                except Exception:
                    return

        threading.Thread(target=loop, daemon=True, name="mcpruntime-flush").start()

    # ---- host calls -----------------------------------------------------

    def host_call(self, method, args):
        """Make a host call and wait for its result message."""
        return self.host_wait(self.host_submit(method, args))

    def host_submit(self, method, args):
        """Send a host call; returns its id for host_wait/host_wait_async.

        The host serves calls concurrently and answers each with its id.
        Whoever waits reads the channel, one reader at a time, and keeps
        results of other calls for their waiters: threads wait on
        calls_cond, coroutines on a future (host_wait_async).
        """
        call = next(self.calls)
        with self.calls_cond:
            self.pending[call] = None
        try:
            with self.lock:
                now = time.monotonic()
                self.stdout._flush_locked(now)
                self.stderr._flush_locked(now)
                self.channel.send({"type": "host_call", "id": self.exec_id, "call": call, "method": method, "args": args})
        except BaseException:
            with self.calls_cond:
                self.pending.pop(call, None)
            raise
        return call

    def host_wait(self, call):
        """Block until call's result message arrives; returns it."""
        cond = self.calls_cond
        with cond:
            try:
                while self.pending.get(call) is None:
                    if self.reading:
                        cond.wait()
                    else:
                        self._read_locked()
                return self.pending[call]
            finally:
                self.pending.pop(call, None)  # a late result is dropped

    async def host_wait_async(self, call):
        """Await call's result message without blocking other coroutines.

        One coroutine at a time (the one holding async_turn) reads; it
        yields while other coroutines of its loop are ready to run and
        reads (blocking the loop) only when none is, which is safe: its own
        result is outstanding, so a frame will come. The others await a
        future that every frame read wakes.
        """
        import asyncio

        loop = asyncio.get_running_loop()
        cond = self.calls_cond
        try:
            while True:
                fut = None
                with cond:
                    msg = self.pending.get(call)
                    if msg is not None:
                        return msg
                    if self.reading or self.async_turn not in (None, call):
                        fut = loop.create_future()
                        self.wakers.append((loop, fut))
                    else:
                        self.async_turn = call
                        if not getattr(loop, "_ready", None):
                            self._read_locked()
                            continue
                if fut is not None:
                    await fut
                else:
                    await asyncio.sleep(0)
        finally:
            with cond:
                self.pending.pop(call, None)
                if self.async_turn == call:
                    self.async_turn = None
                    self._wake_locked()

    def _read_locked(self):
        """Read one frame (calls_cond held, released while reading)."""
        cond = self.calls_cond
        self.reading = True
        cond.release()
        msg, got = None, False
        try:
            msg = self.channel.recv()
            got = True
        finally:
            cond.acquire()
            self.reading = False
            try:
                if got:
                    self._dispatch_locked(msg)
            finally:
                self._wake_locked()

    def _dispatch_locked(self, msg):
        if msg is None:
            for call, got in self.pending.items():
                if got is None:
                    self.pending[call] = {"ok": False, "error": "host channel closed during the call", "error_code": "error"}
            self.inbox.append(None)
            return
        kind = msg.get("type")
        if kind == "host_result":
            call = msg.get("call")
            if call in self.pending and self.pending[call] is None:
                self.pending[call] = msg
            # else stale: a call abandoned (interrupted); dropped
        elif kind == "ping":
            with self.lock:
                self.channel.send({"type": "pong"})
        elif not self.in_cell:
            self.inbox.append(msg)  # a request for serve()
        # during a cell, other frames are dropped (see settle in opensandbox)

    def _wake_locked(self):
        """Wake every waiter: a frame was read or the reader's turn ended."""
        self.calls_cond.notify_all()
        wakers, self.wakers = self.wakers, []
        if not wakers:
            return
        running = sys.modules["asyncio"]._get_running_loop()
        for loop, fut in wakers:
            if loop is running:
                if not fut.done():
                    fut.set_result(None)
            elif not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, fut)

    def next_request(self):
        """The next request for serve(), None when the channel closed."""
        cond = self.calls_cond
        with cond:
            while not self.inbox:
                if self.reading:
                    cond.wait()
                else:
                    self._read_locked()
            return self.inbox.pop(0)

    # ---- cells ----------------------------------------------------------

    def run_cell(self, req):
        self.exec_id = req.get("id", 0)
        self.budget = _Budget()
        limit = req.get("output_limit") or 0
        if limit > 0:
            self.budget.left = limit
        sys.stdout, sys.stderr = self.stdout, self.stderr
        self.cells += 1
        name = "<cell-%d>" % self.cells
        code = req.get("code", "")
        result = {"type": "result", "id": self.exec_id, "exit_code": 0, "kind": "none"}
        self.in_cell = True
        try:
            _execute(code, name, self.globals, self.show)
        except SystemExit as e:
            status = _exit_status(e, self.stderr)
            result["exit_code"] = status
            if status != 0:
                result["kind"] = "exit"
                result["message"] = "code exited with status %d" % status
        except SyntaxError as e:
            result.update(exit_code=1, kind="syntax", message=_syntax_message(e))
            result["exception"] = _exception_info(e, None)
            self.stderr.write(result["exception"]["traceback"])
        except BaseException as e:  # everything the cell raised is its result
            kind = "memory" if isinstance(e, MemoryError) else "exception"
            if isinstance(e, KeyboardInterrupt):
                kind = "interrupted"
            info = _exception_info(e, e.__traceback__)
            result.update(exit_code=1, kind=kind, message="%s: %s" % (info["type"], info["message"]))
            result["exception"] = info
            try:
                self.stderr.write(info["traceback"])
            except MemoryError:
                pass
        finally:
            self._flush_figures()
            self._drain_fds()
            for s in (sys.stdout, sys.stderr):
                if s is self.stdout or s is self.stderr:
                    continue  # sent below, with the result
                try:
                    s.flush()
                except Exception:
                    pass
        result["truncated"] = self.budget.truncated
        self.send_after_output(result)
        self.in_cell = False

    def send_after_output(self, frame):
        """Send frame after what was printed and not yet sent, in one write:
        the output keeps its order with a display or the result, and the
        host wakes once instead of two or three times."""
        with self.lock:
            now = time.monotonic()
            frames = [f for f in (self.stdout._take_locked(now), self.stderr._take_locked(now)) if f]
            frames.append(frame)
            self.channel.send_all(frames)

    def show(self, value):
        """A cell's last expression: its rich bundle, or its repr printed."""
        data = _mime_bundle(value)
        if data:
            _send_display(self, data)
        else:
            print(repr(value))

    def _flush_figures(self):
        """Figures left open by the cell are shown, as Jupyter's inline backend does."""
        if "matplotlib.pyplot" not in sys.modules:
            return
        try:
            _show_figures(self)
        except Exception as e:
            self.stderr.write("mcpruntime: could not render a figure: %s: %s\n" % (type(e).__name__, e))

    def configure(self, msg):
        """Adapt a kernel started ahead of its session (a pooled one)."""
        errors = []
        for name in msg.get("preload") or ():
            try:
                __import__(name)  # loaded into sys.modules, no name bound
            except Exception as e:
                errors.append("preload %s: %s: %s" % (name, type(e).__name__, e))
        env = msg.get("env") or {}
        os.environ.update({str(k): str(v) for k, v in env.items()})
        for path in reversed(msg.get("import_paths") or ()):
            if path not in sys.path:
                sys.path.insert(0, path)
        mem = int(msg.get("memory_limit") or 0)
        if mem > 0:
            try:
                _set_memory_limit(mem)
            except Exception as e:
                errors.append("memory limit %d: %s: %s" % (mem, type(e).__name__, e))
        if msg.get("reseed") and "random" in sys.modules:
            # A pooled or restored kernel shares its random state with its
            # siblings; the module seeds from os.urandom when given None.
            sys.modules["random"].seed()
        cwd = msg.get("cwd")
        if cwd:
            try:
                os.chdir(cwd)
            except OSError as e:
                errors.append("chdir %s: %s" % (cwd, e))
        if msg.get("forget_import_caches"):
            # Directories may have been re-pointed under a running kernel.
            # (importlib.invalidate_caches() would also do this, but it
            # imports importlib.metadata: ~100 ms on WASI.)
            for key, finder in list(sys.path_importer_cache.items()):
                if finder is None:
                    del sys.path_importer_cache[key]
                elif hasattr(finder, "invalidate_caches"):
                    finder.invalidate_caches()
        reply = {"type": "configured"}
        if errors:
            reply["error"] = "; ".join(errors)
        self.channel.send(reply)

    def serve(self):
        self.channel.send(
            {
                "type": "ready",
                "pid": os.getpid(),
                "python": "%d.%d.%d" % sys.version_info[:3],
                "platform": sys.platform,
            }
        )
        while True:
            msg = self.next_request()
            if msg is None:
                return
            kind = msg.get("type")
            if kind == "exec":
                self.run_cell(msg)
            elif kind == "configure":
                self.configure(msg)
            elif kind == "ping":
                self.channel.send({"type": "pong"})
            elif kind == "reap":
                _reap_children()
                self.channel.send({"type": "reaped"})
            elif kind == "shutdown":
                return


# The value of a cell's last expression reaches the kernel through this
# builtin: the expression statement is rewritten into a call of it, so a
# cell is compiled once (compiling the body and the expression separately
# cost a second compile() per cell: ~10 us natively, ~4x that on WASI).
_SHOW = "__mcpruntime_show__"
_shown = []
builtins.__dict__[_SHOW] = _shown.append


def _execute(code, name, g, present):
    _Sources.add(name, code)
    tree = compile(code, name, "exec", _ONLY_AST)
    body = tree.body
    show = bool(body) and isinstance(body[-1], _ast.Expr)
    if show:
        value = body[-1].value
        func = _ast.Name(_SHOW, _ast.Load())
        call = _ast.Call(func, [value], [])
        for node in (func, call):
            node.lineno, node.col_offset = value.lineno, value.col_offset
            node.end_lineno, node.end_col_offset = value.end_lineno, value.end_col_offset
        body[-1].value = call
    del _shown[:]
    exec(compile(tree, name, "exec"), g)
    if show and _shown:
        value = _shown.pop()
        if value is not None:
            g["_"] = value
            present(value)


def _exit_status(e, stderr):
    code = e.code
    if code is None:
        return 0
    if isinstance(code, bool):
        return int(code)
    if isinstance(code, int):
        return code & 0xFF if code >= 0 else (code % 256)
    stderr.write("%s\n" % (code,))
    return 1


def _syntax_message(e):
    where = "line %s" % e.lineno if e.lineno else "unknown line"
    return "SyntaxError: %s (%s)" % (e.msg, where)


def _exception_info(e, tb):
    # Drop the kernel's own frames so the traceback starts in the cell.
    while tb is not None and tb.tb_frame.f_code.co_filename == _KERNEL_FILE:
        tb = tb.tb_next
    import traceback

    lines = traceback.format_exception(type(e), e, tb)
    try:
        message = str(e)
    except Exception:
        message = "<unprintable %s>" % type(e).__name__
    return {"type": type(e).__name__, "message": message, "traceback": "".join(lines)}


def _threads_available():
    try:
        import threading

        t = threading.Thread(target=lambda: None)
        t.start()
        t.join()
        return True
    except Exception:
        return False


# ---- the `mcpruntime` helper package seen by sandbox code -------------------


def _helper_module(kernel):
    m = types.ModuleType("mcpruntime", "Host bridge for code running in an mcpruntime sandbox.")
    m.HostCallError = HostCallError
    m.ToolError = ToolError
    m.Image, m.Audio, m.Resource = Image, Audio, Resource

    def llm_args(prompt, system, model, max_tokens, temperature, context, recursive):
        if not isinstance(prompt, str):
            raise TypeError("ask_llm() prompt must be str, not %s" % type(prompt).__name__)
        if context is not None and not isinstance(context, str):
            raise TypeError("ask_llm() context must be str, not %s" % type(context).__name__)
        args = {"prompt": prompt}
        for k, v in (("system", system), ("model", model), ("max_tokens", max_tokens), ("temperature", temperature),
                     ("context", context)):
            if v is not None:
                args[k] = v
        if recursive:
            args["recursive"] = True
        return args

    def llm_reply(msg):
        if not msg.get("ok"):
            raise HostCallError(msg.get("error") or "ask_llm failed", msg.get("error_code"))
        return msg.get("result") or ""

    def ask_llm(prompt, *, system=None, model=None, max_tokens=None, temperature=None, context=None, recursive=False):
        """Ask the host's language model; returns its reply text.

        context is text the host appends to the prompt (e.g. a slice of a
        large input); recursive=True asks for a sub-agent with its own
        sandbox session instead of one model call.
        """
        args = llm_args(prompt, system, model, max_tokens, temperature, context, recursive)
        return llm_reply(kernel.host_call("ask_llm", args))

    async def ask_llm_async(prompt, *, system=None, model=None, max_tokens=None, temperature=None, context=None,
                            recursive=False):
        """ask_llm as a coroutine: several run at once under asyncio.gather."""
        args = llm_args(prompt, system, model, max_tokens, temperature, context, recursive)
        return llm_reply(await kernel.host_wait_async(kernel.host_submit("ask_llm", args)))

    def tool_args(server, tool, arguments, kwargs):
        args = dict(arguments or {})
        args.update(kwargs)
        return {"server": server, "tool": tool, "arguments": args}

    def tool_reply(server, tool, msg):
        if not msg.get("ok"):
            raise ToolError(msg.get("error") or "%s.%s failed" % (server, tool), server, tool,
                            msg.get("error_code") or "error")
        content = msg.get("content")
        if content:
            return _parts(content)
        return msg.get("result")

    def call_tool(server, tool, arguments=None, **kwargs):
        """Call tool `tool` of the host's MCP server `server`; returns its result.

        The result is the tool's text (str), its structured content (dict),
        or a list of parts (str, Image, Audio, Resource) when it returned
        more than text. Raises ToolError (.server, .tool, .code) on failure.
        """
        return tool_reply(server, tool, kernel.host_call("call_tool", tool_args(server, tool, arguments, kwargs)))

    async def call_tool_async(server, tool, arguments=None, **kwargs):
        """call_tool as a coroutine: several run at once under asyncio.gather."""
        call = kernel.host_submit("call_tool", tool_args(server, tool, arguments, kwargs))
        return tool_reply(server, tool, await kernel.host_wait_async(call))

    def search_skills(query, limit=10):
        """Skills of the library that match query, best first (a list of dicts)."""
        return call_tool("mcpruntime", "search_skills", {"query": query, "limit": limit})

    def search_tools(query, limit=10):
        """MCP tools that match query, best first (a list of dicts)."""
        return call_tool("mcpruntime", "search_tools", {"query": query, "limit": limit})

    def describe(name):
        """The full definition of a skill ("skills.<name>") or tool ("tools.<server>.<tool>"), as source."""
        return call_tool("mcpruntime", "describe", {"name": name})

    def save_state(path):
        """Write the session's variables to `path`; returns what was skipped."""
        return _save_state(kernel.globals, path)

    def load_state(path):
        """Restore variables saved by save_state; returns what failed."""
        return _load_state(kernel.globals, path)

    m.ask_llm = ask_llm
    m.ask_llm_async = ask_llm_async
    m.call_tool = call_tool
    m.call_tool_async = call_tool_async
    m.search_skills = search_skills
    m.search_tools = search_tools
    m.describe = describe
    m.save_state = save_state
    m.load_state = load_state

    def display(*objs, raw=False):
        """Show objects richly (HTML, images, Markdown...), as Jupyter's display().

        raw=True takes each object as a ready bundle: {"image/png": bytes}.
        """
        _display(kernel, objs, raw)

    m.display = display
    m.HTML, m.Markdown, m.SVG, m.JSON = HTML, Markdown, SVG, JSON
    return m


def _save_state(g, path):
    import pickle

    entries, skipped = [], {}
    for name, value in list(g.items()):
        if name.startswith("__") or name in ("_", "ask_llm", "search_skills", "search_tools", "describe"):
            continue
        if isinstance(value, types.ModuleType):
            entries.append(["module", name, value.__name__])
            continue
        source = _cell_source(value)
        if source is not None:
            entries.append(["source", name, source])
            continue
        try:
            entries.append(["pickle", name, pickle.dumps(value, protocol=4)])
        except Exception as e:
            skipped[name] = "%s: %s" % (type(e).__name__, e)
    # definitions first: pickled instances may need classes defined in cells
    order = {"module": 0, "source": 1, "pickle": 2}
    entries.sort(key=lambda e: order[e[0]])
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        pickle.dump({"version": 1, "entries": entries, "skipped": skipped}, f, protocol=4)
    os.replace(tmp, path)
    return {"saved": [e[1] for e in entries], "skipped": skipped}


def _cell_source(value):
    """Source of a function or class defined in a cell, else None."""
    if not isinstance(value, (types.FunctionType, type)):
        return None
    code = getattr(value, "__code__", None)
    filename = code.co_filename if code is not None else None
    if filename is None:
        for attr in vars(value).values():
            c = getattr(attr, "__code__", None)
            if c is not None:
                filename = c.co_filename
                break
    if not filename or not filename.startswith("<cell-"):
        return None
    lines = _Sources.lines(filename)
    if not lines:
        return None
    import ast

    text = "".join(lines)
    found = None
    for node in ast.parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == value.__name__:
            found = node
    if found is None:
        return None
    first = min([found.lineno] + [d.lineno for d in found.decorator_list])
    return "".join(lines[first - 1 : found.end_lineno])


def _load_state(g, path):
    import pickle

    with open(path, "rb") as f:
        state = pickle.load(f)
    restored, failed = [], dict(state.get("skipped", {}))
    for kind, name, payload in state["entries"]:
        try:
            if kind == "module":
                __import__(payload)
                g[name] = sys.modules[payload]
            elif kind == "source":
                exec(compile(payload, "<restored %s>" % name, "exec"), g)
            else:
                g[name] = pickle.loads(payload)
            restored.append(name)
        except Exception as e:
            failed[name] = "%s: %s" % (type(e).__name__, e)
    return {"restored": restored, "failed": failed}


def main():
    fds = os.environ.pop("MCPRUNTIME_KERNEL_FDS", "")
    if fds:
        fd_in, fd_out = (int(x) for x in fds.split(","))
    else:
        fd_in, fd_out = 0, 1
        # Keep the channel away from code that writes to fd 0/1 directly.
        if hasattr(os, "dup") and hasattr(os, "dup2"):
            fd_in, fd_out = os.dup(0), os.dup(1)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)
    lib = os.environ.get("MCPRUNTIME_LIB", "/mcpruntime/lib")
    if lib and lib not in sys.path:
        sys.path.insert(0, lib)
    workspace = os.environ.get("MCPRUNTIME_WORKSPACE", "")
    if workspace:
        os.chdir(workspace)
    if "" not in sys.path:
        sys.path.insert(0, "")
    _apply_limits()
    kernel = Kernel(Channel(fd_in, fd_out))
    kernel.install()
    kernel.capture_fds()
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=lambda: _detach_child(kernel, fd_in, fd_out))
    kernel.serve()


def _detach_child(kernel, fd_in, fd_out):
    """In a child forked by sandbox code: drop the host channel, print to fds.

    Only the kernel process may write frames; a child writing on the channel
    would interleave with the parent's frames. Its prints go to fd 1/2, which
    the parent already captures into the cell's output.
    """
    for fd in (fd_in, fd_out):
        try:
            os.close(fd)
        except OSError:
            pass
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)


def _set_memory_limit(mem):
    try:
        import resource
    except ImportError:
        return  # WASI: the instance's memory is capped by the runtime
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))


def _reap_children():
    """Collect exited children (killed processes of timed-out code)."""
    if not hasattr(os, "waitpid"):
        return
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _apply_limits():
    mem = int(os.environ.get("MCPRUNTIME_MEMORY_LIMIT", "0") or 0)
    if mem > 0:
        _set_memory_limit(mem)
    # No RLIMIT_NPROC for pids: it counts every process of the user on the
    # whole host. Process limits are the backend's job (cgroups, the VM).


if __name__ == "__main__":
    main()
