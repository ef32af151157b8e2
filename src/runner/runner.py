"""codecell sandbox runner.

The sandbox execs this file as

    /usr/bin/python3 -I -B -u /run/codecell/runner.py        (cwd /mnt/data)

once every isolation measure is in place.  It is NOT a security boundary (the kernel is); its
job is to make the user's code behave as if it had been run with `python -c`, plus `load_file`,
`FILES` and a notebook's output (`display`, the final expression's value, figures):

* reads the code (bytes) from <dir>/code.py and the attached files from <dir>/files.json
  (`{"files": [{"file_id", "filename", "path"}]}`), <dir> = $CODECELL_RUNNER_DIR or /run/codecell;
* runs it as `__main__` (a fresh module installed as sys.modules['__main__']) whose globals hold
  only the standard module dunders, `__builtins__`, `load_file`, `FILES` and `display`;
* a final expression statement's value is shown (`repr`, and `_repr_html_`), unless a `;` ends
  it; display() shows objects; plt.show(), display(fig) and figures left open become PNG files
  in the data dir (figure_1.png, ...); each is reported on the display pipe named by files.json
  (`display_fd`), see _make_notebook, and the texts are printed to stdout too (v1 clients);
* sys.argv = ['<code>'], the data dir first on sys.path; the source is compiled as '<code>' and
  kept in linecache so tracebacks, warnings and inspect show the user's lines and line numbers;
* uncaught exceptions are printed without any frame of this file, exit status 1
  (KeyboardInterrupt: 130); SystemExit behaves exactly as in Python; atexit handlers run.

The data dir is /mnt/data unless $CODECELL_DATA_DIR_INSIDE says otherwise (tests only; the
sandbox never sets it).  Nothing heavy is imported before the user's code runs: load_file imports
pandas, numpy, yaml, ... only when a file needs them.
"""


def _make_load_file(files, data_dir):
    """Build load_file.  Everything it needs lives in this closure, so once the runner's module
    globals are cleared nothing of the runner is reachable through load_file.__globals__."""
    import os

    entries = []  # (file_id, filename, path) in files.json order
    by_id = {}
    by_filename = {}
    for f in files:
        fid, fname, path = str(f["file_id"]), str(f.get("filename") or ""), str(f["path"])
        entries.append((fid, fname, path))
        by_id.setdefault(fid, path)
        if fname:
            by_filename.setdefault(fname, path)

    PATH_EXTS = frozenset((
        # images
        "png jpg jpeg jpe jfif gif bmp dib webp tif tiff ico icns svg svgz heic heif avif psd "
        "raw cr2 nef arw dng eps ai xcf "
        # audio
        "mp3 wav wave flac ogg oga opus m4a aac wma aif aiff aifc mid midi amr ape au "
        # video
        "mp4 m4v mov avi mkv webm wmv flv mpg mpeg m2ts mts 3gp 3g2 ogv vob "
        # archives and compressed files
        "zip tar gz tgz bz2 tbz tbz2 xz txz lz lzma lz4 zst tzst 7z rar cab jar war whl egg "
        "deb rpm apk iso img dmg "
        # documents, fonts, other binaries
        "pdf doc docx dot dotx ppt pptx pps ppsx odt odp odg rtf epub mobi djvu "
        "ttf otf woff woff2 eot exe dll so dylib o a lib class pyc pyo wasm "
        "pt pth ckpt safetensors onnx pb tflite joblib bson avro orc "
        "sqlite-journal wal shm"
    ).split())
    TEXT_EXTS = frozenset((
        "txt text md markdown mdown rst adoc asciidoc org log out err sql "
        "py pyw pyi pyx pxd ipy js mjs cjs jsx tsx html htm xhtml css scss sass less "
        "c h cc cpp cxx c++ hpp hh hxx inl ino cu cuh java kt kts scala groovy gradle "
        "go rs rb php pl pm t sh bash zsh ksh fish ps1 psm1 bat cmd r rmd jl lua swift m mm "
        "cs fs fsx vb dart hs lhs ml mli ex exs erl hrl clj cljs edn lisp lsp el scm rkt vim "
        "tex sty cls bib ini cfg conf config env properties prop cmake mk make makefile "
        "dockerfile proto graphql gql vue svelte astro asm s f f90 f95 for pas d nim zig "
        "sv svh vhd vhdl tcl awk sed diff patch srt vtt sub po pot strings csproj sln "
        "gitignore gitattributes editorconfig htaccess lock"
    ).split())
    COMPRESSIONS = frozenset(("gz", "bz2", "xz", "zst", "zip"))
    PANDAS_COMPRESSED = frozenset(("csv", "tsv", "tab", "jsonl", "ndjson"))

    def need(module, package, kind):
        import importlib
        try:
            return importlib.import_module(module)
        except ImportError as e:
            raise ImportError(
                f"load_file: reading {kind} files needs the '{package}' package "
                f"(import {module}), which is not available: {e}",
                name=module,
            ) from None

    def available():
        lines = []
        if entries:
            lines.append("Available files (file_id: filename):")
            for fid, fname, _ in entries[:50]:
                lines.append(f"  {fid!r}: {fname!r}")
            if len(entries) > 50:
                lines.append(f"  ... and {len(entries) - 50} more")
        else:
            lines.append("No files were attached to this execution.")
        try:
            present = sorted(n for n in os.listdir(data_dir) if not n.startswith("."))
        except OSError:
            present = []
        if present:
            shown = ", ".join(repr(n) for n in present[:50])
            more = f", ... ({len(present) - 50} more)" if len(present) > 50 else ""
            lines.append(f"Files in {data_dir}: {shown}{more}")
        return "\n".join(lines)

    def resolve(x):
        if isinstance(x, os.PathLike):
            x = os.fspath(x)
        if isinstance(x, bytes):
            x = os.fsdecode(x)
        if not isinstance(x, str):
            raise TypeError(
                f"load_file() takes a file id or a file name (str), not {type(x).__name__}")
        if x in by_id:
            path = by_id[x]
            if os.path.exists(path):
                return path
            raise FileNotFoundError(
                f"load_file: the file with id {x!r} was at {path!r}, which no longer exists "
                f"(the code deleted or renamed it).\n{available()}")
        if x:
            candidates = []
            if not os.path.isabs(x):
                candidates.append(os.path.join(data_dir, x))
            if x in by_filename:
                candidates.append(by_filename[x])
            candidates.append(x)  # relative to the cwd, or absolute
            for c in candidates:
                if os.path.exists(c):
                    return os.path.abspath(c)
        raise FileNotFoundError(f"load_file: no file with id or name {x!r}.\n{available()}")

    def read_text(path, kwargs):
        opts = {"encoding": "utf-8", "errors": "replace"}
        opts.update(kwargs)
        with open(path, "r", **opts) as fh:
            text = fh.read()
        if "encoding" not in kwargs and text.startswith("\ufeff"):
            text = text[1:]
        return text

    def read_bytes(path):
        with open(path, "rb") as fh:
            return fh.read()

    def text_or_path(path, kwargs):
        data = read_bytes(path)
        if b"\0" in data:
            return path
        try:
            text = data.decode(kwargs.get("encoding", "utf-8"), kwargs.get("errors", "strict"))
        except (UnicodeDecodeError, LookupError):
            return path
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        return text[1:] if text.startswith("\ufeff") else text

    def read_csv(path, kwargs, sep=None):
        pd = need("pandas", "pandas", "CSV/TSV")
        if sep is not None and "sep" not in kwargs and "delimiter" not in kwargs:
            kwargs["sep"] = sep
        if "encoding" in kwargs:
            return pd.read_csv(path, **kwargs)
        try:
            return pd.read_csv(path, **kwargs)
        except UnicodeDecodeError:
            pass
        # Not UTF-8: most likely a Windows (Excel) export.
        try:
            return pd.read_csv(path, encoding="cp1252", **kwargs)
        except UnicodeDecodeError:
            return pd.read_csv(path, encoding="latin-1", **kwargs)

    def read_json(path, kwargs):
        if kwargs:
            return need("pandas", "pandas", "JSON").read_json(path, **kwargs)
        import json
        with open(path, "r", encoding="utf-8-sig") as fh:
            text = fh.read()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            # A .json file that is really JSON lines is common; anything else: the JSON error.
            try:
                rows = [json.loads(line) for line in text.splitlines() if line.strip()]
            except ValueError:
                raise e from None
            if len(rows) < 2:
                raise
            return need("pandas", "pandas", "JSON").DataFrame(rows)
        if isinstance(data, list):
            pd = need("pandas", "pandas", "JSON")
            try:
                return pd.DataFrame(data)
            except (ValueError, TypeError):
                return data
        return data

    def read_plain_json(path, kwargs):
        import json
        with open(path, "r", encoding="utf-8-sig") as fh:
            return json.load(fh, **kwargs)

    def read_yaml(path, kwargs):
        yaml = need("yaml", "PyYAML", "YAML")
        with open(path, "r", encoding="utf-8-sig") as fh:
            if kwargs:
                kwargs.setdefault("Loader", yaml.SafeLoader)
                return yaml.load(fh, **kwargs)
            docs = list(yaml.safe_load_all(fh))
        if len(docs) == 1:
            return docs[0]
        return docs if docs else None

    def read_toml(path, kwargs):
        try:
            import tomllib
        except ImportError:  # Python < 3.11
            tomllib = need("tomli", "tomli", "TOML")
        with open(path, "rb") as fh:
            return tomllib.load(fh, **kwargs)

    def read(path, kwargs):
        if os.path.isdir(path):
            raise IsADirectoryError(f"load_file: {path!r} is a directory, not a file")
        parts = os.path.basename(path).lower().split(".")
        ext = parts[-1] if len(parts) > 1 else ""
        if ext in COMPRESSIONS and len(parts) > 2 and parts[-2] in PANDAS_COMPRESSED:
            inner = parts[-2]
            if inner == "csv":
                return read_csv(path, kwargs)
            if inner in ("tsv", "tab"):
                return read_csv(path, kwargs, sep="\t")
            kwargs.setdefault("lines", True)
            return need("pandas", "pandas", "JSON lines").read_json(path, **kwargs)

        if ext == "csv":
            return read_csv(path, kwargs)
        if ext in ("tsv", "tab"):
            return read_csv(path, kwargs, sep="\t")
        if ext in ("xlsx", "xlsm", "xls", "xlsb", "ods", "odf"):
            return need("pandas", "pandas", "Excel").read_excel(path, **kwargs)
        if ext in ("json", "ipynb"):
            return read_json(path, kwargs) if ext == "json" else read_plain_json(path, kwargs)
        if ext in ("jsonl", "ndjson"):
            kwargs.setdefault("lines", True)
            return need("pandas", "pandas", "JSON lines").read_json(path, **kwargs)
        if ext in ("geojson", "topojson"):
            return read_plain_json(path, kwargs)
        if ext in ("parquet", "pq"):
            return need("pandas", "pandas", "Parquet").read_parquet(path, **kwargs)
        if ext == "feather":
            return need("pandas", "pandas", "Feather").read_feather(path, **kwargs)
        if ext in ("hdf", "h5", "hdf5"):
            return need("pandas", "pandas", "HDF5").read_hdf(path, **kwargs)
        if ext in ("pickle", "pkl"):
            return need("pandas", "pandas", "pickle").read_pickle(path, **kwargs)
        if ext in ("npy", "npz"):
            return need("numpy", "numpy", "NumPy").load(path, **kwargs)
        if ext in ("sqlite", "sqlite3", "db", "db3"):
            import sqlite3
            return sqlite3.connect(path, **kwargs)
        if ext in ("yaml", "yml"):
            return read_yaml(path, kwargs)
        if ext == "toml":
            return read_toml(path, kwargs)
        if ext == "xml":
            import xml.etree.ElementTree as ET
            return ET.parse(path, **kwargs)
        if ext == "dta":
            return need("pandas", "pandas", "Stata").read_stata(path, **kwargs)
        if ext in ("sas7bdat", "xpt"):
            return need("pandas", "pandas", "SAS").read_sas(path, **kwargs)
        if ext in ("sav", "zsav"):
            return need("pandas", "pandas", "SPSS").read_spss(path, **kwargs)
        if ext in ("bin", "dat"):
            return read_bytes(path)
        if ext == "ts":  # TypeScript or an MPEG transport stream
            return text_or_path(path, kwargs)
        if ext in TEXT_EXTS:
            return read_text(path, kwargs)
        if ext in PATH_EXTS:
            return path
        return text_or_path(path, kwargs)

    def load_file(file_id_or_name, /, **kwargs):
        """Load an attached file by its file_id (see FILES) or by its name in the data dir.

        Returns the natural object for the file's type; keyword arguments go to the reader:
          csv -> pandas.read_csv;  tsv/tab -> read_csv(sep='\\t');
          xlsx/xlsm/xls/xlsb/ods -> pandas.read_excel (sheet_name=None: all sheets, as a dict);
          json -> DataFrame when the top level is a list, else the parsed object (dict);
          jsonl/ndjson -> read_json(lines=True);  geojson -> dict;  parquet, feather, hdf/h5,
          pickle/pkl, dta, sas7bdat, sav -> the pandas reader;  npy/npz -> numpy.load;
          sqlite/sqlite3/db -> an open sqlite3 connection;  yaml/yml, toml -> dict;
          xml -> xml.etree.ElementTree.ElementTree;  text and code files -> str;
          bin/dat -> bytes;  images, audio, video, archives, pdf and other binaries -> the path;
          anything else -> str if it is UTF-8 text, else the path.
        """
        return read(resolve(file_id_or_name), kwargs)

    load_file.__qualname__ = "load_file"
    return load_file


def _make_notebook(display_fd, data_dir):
    """Notebook output: display(), the final expression's value, figures and the uncaught error,
    reported on the display pipe (the host builds the result's `outputs` from it; see
    src/exec/notebook_output.h) and, as text, on stdout/stderr for v1 clients.

    Returns (display, show_value, show_figures, report_error, hook_pyplot). Everything lives in this
    closure (the runner's globals are cleared before the code runs), and nothing heavy is imported:
    matplotlib is patched only once the code (or the zygote's preload) has imported pyplot.
    """
    import os
    import sys

    MAX_TEXT = 50000     # characters of a text/plain representation
    MAX_HTML = 200000    # a larger text/html is dropped rather than cut (cut HTML is broken)
    IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".gif", ".webp")
    FIONREAD = 0x541B
    channel = [display_fd]  # None once the pipe is unusable
    figure_count = [0]
    shown = {}   # id(figure) -> figure: displayed once, not shown again by show() or at the end
    saved = {}   # id(figure) -> (figure, file relative to data_dir or None): savefig'd

    def flush_streams():
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass

    def emit(record):
        """One JSON line on the pipe. The streams are flushed first, and the line is read by the
        host before this returns (FIONREAD reaches 0), so the host, which drains stdout and stderr
        before the pipe, places the item exactly between what was printed before and after."""
        fd = channel[0]
        if fd is None:
            return
        flush_streams()
        import json
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8", "replace")
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            import fcntl
            import time
            delay, waited = 0.0001, 0.0
            while int.from_bytes(fcntl.ioctl(fd, FIONREAD, b"\0\0\0\0"), sys.byteorder) > 0:
                if waited > 1.0:  # the host is not reading: order is best effort from here
                    break
                time.sleep(delay)
                waited += delay
                delay = min(delay * 2, 0.005)
        except OSError:
            channel[0] = None

    def cut(text):
        if len(text) <= MAX_TEXT:
            return text
        return text[:MAX_TEXT] + f"\n... ({len(text) - MAX_TEXT} more characters)"

    def text_data(obj):
        data = {"text/plain": cut(repr(obj))}
        for mime, method in (("text/html", "_repr_html_"), ("text/markdown", "_repr_markdown_")):
            fn = getattr(type(obj), method, None)
            if fn is None or isinstance(obj, type):
                continue
            try:
                value = fn(obj)
            except Exception:
                continue
            if isinstance(value, str) and len(value) <= MAX_HTML:
                data[mime] = value
        return data

    def next_figure_path():
        # figure_1.png, figure_2.png, ...: never over a file the code made or was given.
        while True:
            figure_count[0] += 1
            name = f"figure_{figure_count[0]}.png"
            if not os.path.lexists(os.path.join(data_dir, name)):
                return name

    def is_figure(obj):
        figure_module = sys.modules.get("matplotlib.figure")
        return figure_module is not None and isinstance(obj, figure_module.Figure)

    def show_figure(fig, automatic):
        key = id(fig)
        if automatic and key in shown:
            return
        name = saved[key][1] if key in saved else None
        if key in saved and name is None and automatic:
            shown[key] = fig  # saved where it cannot be shown (a PDF, a buffer): not drawn again
            return
        if name is None or not os.path.exists(os.path.join(data_dir, name)):
            name = next_figure_path()
            savefig = sys.modules["matplotlib.figure"].Figure.savefig
            savefig = getattr(savefig, "__wrapped__", savefig)  # not the code's own save
            savefig(fig, os.path.join(data_dir, name), format="png", bbox_inches="tight")
        shown[key] = fig
        emit({"type": "display_data", "data": {"text/plain": cut(repr(fig))}, "file": name})

    def show_image(obj, png):
        name = next_figure_path()
        with open(os.path.join(data_dir, name), "wb") as fh:
            fh.write(png)
        emit({"type": "display_data", "data": {"text/plain": cut(repr(obj))}, "file": name})

    def show(obj, kind):
        if is_figure(obj):
            show_figure(obj, automatic=False)
            return
        repr_png = getattr(type(obj), "_repr_png_", None)
        if repr_png is not None and not isinstance(obj, type):
            png = repr_png(obj)  # PIL images, and anything else IPython would show as PNG
            if isinstance(png, (bytes, bytearray)) and png:
                show_image(obj, bytes(png))
                return
        data = text_data(obj)
        # v1 clients read `output`: the text goes there too (the host leaves this copy out of
        # `outputs`).
        print(data["text/plain"])
        emit({"type": kind, "data": data, "echo": True})

    def display(*objs, **kwargs):
        """Show objects as a notebook would: text (and HTML, for DataFrames and other objects
        with _repr_html_) in the output; matplotlib figures and PIL images as PNG files."""
        for obj in objs:
            show(obj, "display_data")

    def show_value(value):
        if value is not None:
            show(value, "execute_result")

    def show_figures():
        """Figures still open: shown (each once) and closed, as matplotlib-inline does."""
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is None:
            return
        for num in plt.get_fignums():
            fig = plt.figure(num)
            show_figure(fig, automatic=True)
            plt.close(fig)

    def note_saved(fig, fname, kwargs):
        if isinstance(fname, bytes):
            fname = os.fsdecode(fname)
        if not isinstance(fname, (str, os.PathLike)):
            return  # a buffer: the figure was not saved anywhere the user would look
        path = os.path.abspath(os.fspath(fname))
        if not os.path.splitext(path)[1]:
            path += "." + str(kwargs.get("format") or "png")
        rel = os.path.relpath(path, data_dir)
        visible = not rel.startswith("..") and path.lower().endswith(IMAGE_EXTS)
        saved[id(fig)] = (fig, rel if visible else None)

    def patch_pyplot(plt):
        figure_module = sys.modules["matplotlib.figure"]
        Figure = figure_module.Figure
        if getattr(Figure.savefig, "__wrapped__", None) is not None:
            return
        original_savefig = Figure.savefig
        original_show = plt.show

        def savefig(self, fname, *args, **kwargs):
            result = original_savefig(self, fname, *args, **kwargs)
            note_saved(self, fname, kwargs)
            return result

        def figure_show(self, warn=True):
            show_figure(self, automatic=False)

        def pyplot_show(*args, **kwargs):
            show_figures()

        for wrapper, original in ((savefig, original_savefig), (pyplot_show, original_show),
                                  (figure_show, Figure.show)):
            wrapper.__wrapped__ = original
            wrapper.__doc__ = original.__doc__
            wrapper.__name__ = original.__name__
            wrapper.__qualname__ = original.__qualname__
        Figure.savefig = savefig
        Figure.show = figure_show
        plt.show = pyplot_show

    class PyplotHook:
        """Patches matplotlib.pyplot when the code imports it, and imports nothing itself."""

        def find_spec(self, name, path=None, target=None):
            if name != "matplotlib.pyplot":
                return None
            try:
                sys.meta_path.remove(self)
            except ValueError:
                pass
            for finder in sys.meta_path:
                find = getattr(finder, "find_spec", None)
                spec = find(name, path, target) if find is not None else None
                if spec is not None:
                    break
            else:
                return None
            loader = spec.loader
            exec_module = getattr(loader, "exec_module", None)
            if exec_module is None:
                return spec

            def exec_and_patch(module):
                exec_module(module)
                try:
                    patch_pyplot(module)
                except Exception:
                    pass  # plain Agg: figures are still shown at the end

            loader.exec_module = exec_and_patch
            return spec

    def hook_pyplot():
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:  # preloaded by the zygote
            patch_pyplot(plt)
        else:
            sys.meta_path.insert(0, PyplotHook())

    def report_error(exc, lines):
        try:
            evalue = str(exc)
        except Exception:
            evalue = "<exception str() failed>"
        emit({"type": "error", "ename": type(exc).__name__, "evalue": evalue,
              "traceback": list(lines), "echo": True})

    display.__qualname__ = "display"
    return display, show_value, show_figures, report_error, hook_pyplot


def _report(exc, filename, report_error=None):
    """Print an uncaught exception the way Python would, minus the runner's frames (every
    traceback entry whose code comes from `filename`, in `exc` and everything chained to it), and
    give it to `report_error` (notebook output) with the traceback's lines."""
    import sys
    seen = set()
    todo = [exc]
    try:
        while todo:
            e = todo.pop()
            if not isinstance(e, BaseException) or id(e) in seen:
                continue
            seen.add(id(e))
            head = prev = None
            tb = e.__traceback__
            while tb is not None:
                nxt = tb.tb_next
                if tb.tb_frame.f_code.co_filename != filename:
                    if prev is None:
                        head = tb
                    else:
                        prev.tb_next = tb
                    prev = tb
                tb = nxt
            if prev is not None:
                prev.tb_next = None
            e.__traceback__ = head
            todo.append(e.__cause__)
            todo.append(e.__context__)
            group = getattr(e, "exceptions", None)  # ExceptionGroup
            if isinstance(group, tuple):
                todo.extend(group)
    except Exception:
        pass

    hook = sys.excepthook
    lines = None
    try:
        import traceback
        lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    except BaseException:
        pass
    try:
        if hook is sys.__excepthook__ and lines is not None:
            # The C default hook ignores linecache, so it could not show the user's lines.
            sys.stderr.write("".join(lines))
        else:
            hook(type(exc), exc, exc.__traceback__)
    except BaseException as hook_error:  # as Python does when sys.excepthook fails
        try:
            if hook is not sys.__excepthook__:
                print("Error in sys.excepthook:", file=sys.stderr)
                sys.__excepthook__(type(hook_error), hook_error, hook_error.__traceback__)
                print("\nOriginal exception was:", file=sys.stderr)
            sys.__excepthook__(type(exc), exc, exc.__traceback__)
        except BaseException:
            pass
    if report_error is not None and lines is not None:
        try:
            report_error(exc, lines)
        except BaseException:
            pass


# Not `if`, `else`, `for`, `from`, `async`: they continue expressions (`a if b\n else c`,
# comprehensions, `yield from`).
_STATEMENT_KEYWORDS = frozenset((
    "import def class elif while with try except finally return pass raise del global "
    "nonlocal assert break continue").split())


def _compile_cell(text, lines, codename, STATEMENT_KEYWORDS=_STATEMENT_KEYWORDS):
    """The code, compiled as a notebook cell: (module code, final expression's code or None).

    A final expression statement is compiled apart (from the same tree, so its line numbers and
    errors are the user's), unless a `;` ends it, which, as in Jupyter, keeps its value quiet.
    Building the tree costs `_ast`'s initialisation (~2.3 ms in a fresh interpreter, measured;
    the zygote has it preloaded), so code whose last line starts with a keyword that no
    expression can contain, even as a continuation line (`return`, `import`, ...), is compiled
    directly: its last statement is not an expression.
    """
    for line in reversed(lines):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            word = stripped.split(None, 1)[0].split("(", 1)[0].rstrip(":")
            if word in STATEMENT_KEYWORDS:
                return compile(text, codename, "exec", dont_inherit=True), None
            break
    import _ast
    tree = compile(text, codename, "exec", _ast.PyCF_ONLY_AST, dont_inherit=True)
    last = None
    if tree.body and type(tree.body[-1]) is _ast.Expr:
        node = tree.body[-1]
        rest = ""
        if node.end_lineno is not None and node.end_lineno <= len(lines):
            # end_col_offset counts UTF-8 bytes.
            rest = lines[node.end_lineno - 1].encode("utf-8", "surrogatepass")[
                node.end_col_offset:].decode("utf-8", "replace")
        if not rest.lstrip().startswith(";"):
            tree.body.pop()
            last = compile(_ast.Expression(node.value), codename, "eval", dont_inherit=True)
    code = compile(tree, codename, "exec", dont_inherit=True)
    return code, last


def _decode_source(source, codename):
    """The source as str, decoded the way Python decodes a script; SyntaxError otherwise."""
    nul = source.find(b"\0")
    if nul >= 0:
        lineno = source.count(b"\n", 0, nul) + 1
        raise SyntaxError("source code cannot contain null bytes", (codename, lineno, None, None))
    import io
    import tokenize
    encoding = "utf-8"
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(source).readline)
    except SyntaxError as e:
        if "invalid or missing" not in str(e):  # unknown encoding, BOM + another cookie
            lineno = 1 if b"coding" in source.split(b"\n", 1)[0] else 2
            raise SyntaxError(str(e), (codename, lineno, None, None)) from None
        # An undecodable first or second line: reported below with its position.
    declared = encoding != "utf-8"
    try:
        return source.decode(encoding)
    except UnicodeDecodeError as e:
        lineno = source.count(b"\n", 0, e.start) + 1
        if declared:
            msg = f"(unicode error) {e}"
        else:
            msg = (f"Non-UTF-8 code starting with '\\x{source[e.start]:02x}' in file {codename} "
                   f"on line {lineno}, but no encoding declared; "
                   f"see https://peps.python.org/pep-0263/ for details")
        raise SyntaxError(msg, (codename, lineno, None, None)) from None


def _add_package_env(prefix):
    """Put the shared package environment (installed by codecell's sandboxed pip with --prefix
    <prefix>) on sys.path after the system's packages, the way site adds a site directory: its
    .pth files are processed here, inside the sandbox, never on the host."""
    import os
    import site
    import sys

    # Where pip's --prefix installs go on this interpreter: Debian's posix_local scheme, else
    # posix_prefix. Tried first by name because importing sysconfig costs ~1.8 ms per execution.
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    known = [f"{prefix}/local/lib/python{version}/dist-packages",
             f"{prefix}/lib/python{version}/site-packages"]
    found = [p for p in known if os.path.isdir(p)]
    if not found:
        import sysconfig
        scheme = sysconfig.get_preferred_scheme("prefix")
        for key in ("purelib", "platlib"):
            path = sysconfig.get_path(key, scheme, vars={"base": prefix, "platbase": prefix})
            if path not in found and os.path.isdir(path):
                found.append(path)
    for path in found:
        site.addsitedir(path)
    # Python processes the code starts (subprocess.run([sys.executable, "script.py"])) find the
    # packages too: PYTHONPATH (without the .pth processing site gives this process).
    if found:
        inherited = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join(found + ([inherited] if inherited else []))


def _main():
    import sys
    import os
    import builtins

    runner_file = _main.__code__.co_filename
    make_load_file = _make_load_file
    make_notebook = _make_notebook
    compile_cell = _compile_cell
    report = _report
    decode_source = _decode_source
    add_package_env = _add_package_env
    codename = "<code>"

    runner_dir = os.environ.get("CODECELL_RUNNER_DIR", "/run/codecell")
    data_dir = os.environ.get("CODECELL_DATA_DIR_INSIDE", "/mnt/data")

    try:
        with open(os.path.join(runner_dir, "code.py"), "rb") as fh:
            source = fh.read()
        files = []
        try:
            with open(os.path.join(runner_dir, "files.json"), "rb") as fh:
                raw = fh.read()
        except FileNotFoundError:
            raw = b""
        packages = display_fd = None
        if raw.strip():
            import json
            manifest = json.loads(raw)
            files = manifest["files"]
            packages = manifest.get("packages")
            display_fd = manifest.get("display_fd")
        files = [f for f in files if isinstance(f, dict) and "file_id" in f and "path" in f]
        load_file = make_load_file(files, data_dir)
        if type(display_fd) is int:
            try:
                os.set_inheritable(display_fd, False)  # not for the processes the code starts
            except OSError:
                display_fd = None
        else:
            display_fd = None
        display, show_value, show_figures, report_error, hook_pyplot = make_notebook(
            display_fd, data_dir)
    except Exception as e:
        sys.stderr.write(f"codecell runner: cannot start: {type(e).__name__}: {e}\n")
        sys.stderr.flush()
        raise SystemExit(1)

    # The user's __main__: a real module so that `import __main__`, pickle of classes defined in
    # the code and multiprocessing/joblib (which look at __main__.__spec__) behave as usual.
    main_module = type(sys)("__main__")
    user_globals = main_module.__dict__
    user_globals["__builtins__"] = builtins
    user_globals["load_file"] = load_file
    user_globals["FILES"] = {str(f["file_id"]): str(f["path"]) for f in files}
    user_globals["display"] = display

    if packages:
        try:
            add_package_env(str(packages))
        except Exception as e:
            sys.stderr.write(f"codecell runner: installed packages are unavailable: {e}\n")
    sys.argv[:] = [codename]
    if sys.path and sys.path[0] in ("", os.path.dirname(runner_file)):
        sys.path[0] = data_dir  # only when not run with -I/-P
    else:
        sys.path.insert(0, data_dir)

    # Hide the runner: from here on nothing refers to its module globals by name.
    sys.modules["__main__"] = main_module
    globals().clear()

    try:
        hook_pyplot()
    except Exception:
        pass  # plain Agg: open figures are still shown at the end

    status = 0
    pending = None
    try:
        try:
            text = decode_source(source, codename)
        finally:
            del source
        import linecache
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        lines = [line + "\n" for line in lines[:-1]] + ([lines[-1] + "\n"] if lines[-1] else [])
        # mtime None: linecache.checkcache() never evicts it.
        linecache.cache[codename] = (len(text), None, lines, codename)
        del linecache
        code, last = compile_cell(text, lines, codename)
        del text, lines
    except Exception as e:  # SyntaxError; RecursionError/MemoryError for absurd nesting
        pending, status = e, 1
    else:
        try:
            exec(code, user_globals)
            if last is not None:
                show_value(eval(last, user_globals))
            show_figures()
        except SystemExit:
            try:
                show_figures()
            except BaseException:
                pass
            raise  # Python's own handling: None -> 0, int -> it, other -> printed, 1
        except KeyboardInterrupt as e:
            pending, status = e, 130
        except BaseException as e:
            pending, status = e, 1
        finally:
            del code, last
    if pending is not None:
        report(pending, runner_file, report_error)
        pending = None
        try:
            show_figures()  # what the code drew before it failed, as a notebook shows it
        except BaseException:
            pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    if status:
        raise SystemExit(status)


def _warm_main():
    """Entry point of a warm child of the zygote (src/runner/zygote.cpp), once it is confined.

    Runs the code as `python3 runner.py` would, then ends the process as the interpreter's own exit
    would (threads joined, atexit handlers, streams flushed), without tearing down the preloaded
    modules, which only costs time in a process about to vanish.
    """
    import os
    import sys

    main = _main  # _main clears this module's globals
    # `random` reseeds itself in its at-fork hook; numpy's global RandomState has no such hook, so
    # every child would otherwise draw the zygote's sequence.
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        try:
            numpy.random.seed()
        except Exception:
            pass
    status = 0
    try:
        main()
    except SystemExit as e:
        code = e.code
        if code is None:
            status = 0
        elif isinstance(code, int):
            status = code
        else:
            try:
                print(code, file=sys.stderr)
            except Exception:
                pass
            status = 1
    except BaseException:
        status = 1
    try:
        import threading
        threading._shutdown()
    except BaseException:
        pass
    try:
        import atexit
        atexit._run_exitfuncs()
    except BaseException:
        pass
    # The interpreter's own finalization clears __main__, which closes (and so flushes) the files
    # the code left open and runs its objects' __del__; then the collector takes the cycles (the
    # zygote's own objects are frozen, so this only walks the execution's).
    try:
        sys.modules["__main__"].__dict__.clear()
        import gc
        gc.collect()
    except BaseException:
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    os._exit(status & 0xFF)


if __name__ == "__main__":
    _main()
