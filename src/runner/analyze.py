"""codecell analyze_data_file program: a plain-text analysis report of one tabular file.

The service runs this file's text followed by `analyze(<file_id>, <analysis_type>)` as an ordinary
execution (see runner.py): `load_file` and `FILES` are the runner's globals, the cwd is the data
dir, and the PNG figures written there come back as generated files.

analysis_type: summary | correlation | distribution | comprehensive.
Exit status: 0 report printed (stdout; it may say an analysis needs more numeric columns);
1 the file could not be loaded or is not tabular (message on stderr);
2 unknown analysis_type (message on stderr).  Nothing heavy is imported at module level.
"""
import os
import sys

_TYPES = ("summary", "correlation", "distribution", "comprehensive")
_MAX_ROWS = 20      # rows of a printed table (the columns table: 40)
_MAX_HIST = 12      # histograms in the distribution grid
_MAX_CORR = 30      # numeric columns in a correlation heatmap (printed matrix: 12)


def _fail(msg, status):
    print(msg, file=sys.stderr)
    raise SystemExit(status)


def _label(x, width=30, tex=True):
    s = str(x)
    cut = (width - 3) // 2  # keep both ends: 'feature number 10' -> 'feat...r 10'
    s = s if len(s) <= width else s[:cut] + "..." + s[len(s) - (width - 3 - cut):]
    return s.replace("$", r"\$") if tex else s  # tex: no mathtext in figure labels


def _heading(title):
    print(f"\n## {title}")


def _bins(values):
    return max(1, min(30, int(values.nunique())))


def _table(df, limit=_MAX_ROWS, what="rows"):
    print(df.head(limit).to_string())
    if len(df) > limit:
        print(f"... ({len(df) - limit} more {what} not shown)")


def _names(file_ref):
    """The file's name (via FILES) and the stem of the figure names: 'sales.csv.gz' -> 'sales'."""
    import re
    path = (globals().get("FILES") or {}).get(file_ref) if isinstance(file_ref, str) else None
    name = os.path.basename(str(path or file_ref)) or "data"
    stem = re.sub(r"\.(gz|bz2|xz|zst|zip)$", "", name, flags=re.I)
    stem = stem.rsplit(".", 1)[0] if "." in stem.lstrip(".") else stem
    return name, re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_") or "data"


def _describe_object(obj, file_ref):
    """Why `obj` (what load_file returned) is not a table, and what to do instead."""
    load = f"load_file({file_ref!r})"
    if isinstance(obj, str) and os.path.isfile(obj):
        return (f"a binary or media file (image, audio, archive, PDF, ...): {load} returns its "
                f"path. Open it with a suitable library in code (e.g. PIL for images).")
    if isinstance(obj, str):
        return (f"a text file: {load} returns a str of {len(obj)} characters. Read it in code "
                f"with {load}, print or parse it; if it is a delimited table, rename it .csv/.tsv.")
    if isinstance(obj, dict):
        keys = ", ".join(repr(k) for k in list(obj)[:10]) + (", ..." if len(obj) > 10 else "")
        return (f"a JSON/YAML object (dict) with keys {keys}. If one key holds a list of "
                f"records, build a table in code: pd.json_normalize({load}[key]).")
    return (f"a {type(obj).__module__}.{type(obj).__name__}. Work with it in code via {load}.")


def _load_table(file_ref, name):
    loader = globals().get("load_file")
    if not callable(loader):
        _fail("analyze: load_file is not available; this program must run as a codecell "
              "execution (the runner provides load_file).", 1)
    import pandas as pd
    try:
        obj = loader(file_ref)
    except ImportError as e:
        hint = ("\nParquet files need pyarrow (or fastparquet), which is not installed: convert "
                "the file to CSV or Excel, or install pyarrow if package installs are allowed."
                if name.lower().endswith((".parquet", ".pq")) else "")
        _fail(f"Cannot read {name!r}: a reader library is missing: {e}{hint}", 1)
    except Exception as e:
        _fail(f"Cannot read {name!r} as a table: {type(e).__name__}: {e}", 1)
    if isinstance(obj, list) and obj and all(isinstance(r, dict) for r in obj):
        obj = pd.json_normalize(obj)
    if not isinstance(obj, pd.DataFrame):
        _fail(f"{name!r} is not tabular: it is {_describe_object(obj, file_ref)}\n"
              f"analyze_data_file works on CSV, TSV, Excel, JSON lists of records, JSON lines "
              f"and Parquet (with pyarrow) files.", 1)
    nested = [c for c in obj.columns
              if obj[c].dtype == object and isinstance(next(iter(obj[c].dropna()), None), dict)]
    if nested:  # JSON records with nested objects: flatten them into columns
        obj = pd.json_normalize(obj.to_dict("records"))
    return obj


def _pairs(corr):
    """(-|r|, i, j) of every pair of columns with a defined r, strongest first."""
    import numpy as np
    vals = corr.to_numpy()
    return sorted((-abs(vals[i, j]), i, j) for i in range(len(corr))
                  for j in range(i + 1, len(corr)) if not np.isnan(vals[i, j]))


def _finite(df):
    """The numeric columns with +-inf as missing (no infinite histogram ranges or r)."""
    import numpy as np
    return df.select_dtypes("number").replace([np.inf, -np.inf], np.nan)


def _plt():
    import matplotlib
    matplotlib.use("Agg")  # no display in the sandbox
    import matplotlib.pyplot as plt
    return plt


def _heatmap(fig, ax, corr, annot_max=12):
    import numpy as np
    corr = corr.rename(index=_label, columns=_label)
    annot = len(corr) <= annot_max
    try:
        import seaborn as sns
        sns.heatmap(corr, ax=ax, annot=annot, fmt=".2f", cmap="coolwarm", vmin=-1, vmax=1,
                    square=True, annot_kws={"size": 8})
    except ImportError:
        im = ax.imshow(corr.to_numpy(), cmap="coolwarm", vmin=-1, vmax=1)
        ax.set_xticks(range(len(corr)), corr.columns, rotation=90)
        ax.set_yticks(range(len(corr)), corr.index)
        if annot:
            for (i, j), v in np.ndenumerate(corr.to_numpy()):
                ax.text(j, i, "" if np.isnan(v) else f"{v:.2f}", ha="center", va="center",
                        fontsize=8)
        fig.colorbar(im, ax=ax)
    ax.set_title("Correlation matrix")


def _save(fig, path, written):
    try:
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        written.append(path)
    except Exception as e:
        print(f"(figure {path} could not be produced: {type(e).__name__}: {e})")
    finally:
        _plt().close(fig)


def _summary(df, name, stem=None, written=None):
    import pandas as pd
    _heading("Shape")
    print(f"{df.shape[0]} rows x {df.shape[1]} columns")
    _heading("Columns, dtypes and missing values")
    missing = df.isna().sum().astype(int)
    pct = (missing / len(df) * 100).round(2) if len(df) else missing * 0.0
    _table(pd.DataFrame({"dtype": df.dtypes.astype(str), "missing": missing, "missing_%": pct}),
           40, "columns")
    total = int(missing.sum())
    print(f"Missing values: {total} cells in {int((missing > 0).sum())} of {df.shape[1]} "
          f"columns" if total else "Missing values: none")
    num = df.select_dtypes("number")
    _heading("Numeric columns: describe()")
    if num.shape[1]:
        _table(num.describe().T.round(4), what="numeric columns")
    else:
        print("No numeric columns.")
    cat = df.select_dtypes(include=["object", "category", "bool"])
    _heading("Text/categorical columns: describe()")
    if cat.shape[1]:
        desc = cat.astype(object).describe().T
        desc["top"] = desc["top"].map(lambda v: _label(v, 40, tex=False))
        _table(desc, what="text/categorical columns")
    else:
        print("No text/categorical columns.")
    _heading("First 5 rows (head)")
    print(df.head(5) if len(df) else "(no rows)")  # display options: at most 12 columns


def _correlation(df, name, stem, written):
    plt = _plt()
    num = _finite(df)
    _heading("Correlation matrix (Pearson)")
    if num.shape[1] < 2:
        cols = ", ".join(repr(str(c)) for c in num.columns) or "none"
        print(f"Correlation needs at least 2 numeric columns; {name!r} has {num.shape[1]} "
              f"({cols}).")
        return
    corr = num.iloc[:, :_MAX_CORR].corr()
    if num.shape[1] > _MAX_CORR:
        print(f"(first {_MAX_CORR} of {num.shape[1]} numeric columns)")
    shown = corr.iloc[:12, :12].round(2)
    if max(len(str(c)) for c in shown.columns) > 10:  # long names: number the columns
        shown.index = [f"[{i}] {_label(c, 40, tex=False)}" for i, c in enumerate(shown.index, 1)]
        shown.columns = [f"[{i}]" for i in range(1, len(shown.columns) + 1)]
    print(shown)
    if len(corr) > 12:
        print(f"(matrix of the first 12 columns; heatmap and pairs below: {len(corr)} columns)")
    size = min(max(6.0, 0.6 * len(corr) + 2), 16.0)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    _heatmap(fig, ax, corr)
    _save(fig, f"{stem}_correlation.png", written)
    _heading("Strongly correlated pairs (|r| > 0.7)")
    pairs = [(i, j) for a, i, j in _pairs(corr) if a < -0.7]
    for i, j in pairs[:_MAX_ROWS]:
        print(f"{corr.index[i]} & {corr.columns[j]}: r = {round(float(corr.iat[i, j]), 3)}")
    if len(pairs) > _MAX_ROWS:
        print(f"... ({len(pairs) - _MAX_ROWS} more pairs not shown)")
    if not pairs:
        print("No pair of numeric columns has |r| > 0.7.")


def _distribution(df, name, stem, written):
    import math
    import pandas as pd
    plt = _plt()
    num = _finite(df)
    _heading("Histograms")
    if not num.shape[1]:
        print(f"{name!r} has no numeric columns: nothing to plot.")
        return
    cols = list(num.columns[:_MAX_HIST])
    ncols = math.ceil(math.sqrt(len(cols)))
    nrows = math.ceil(len(cols) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 3 * nrows), squeeze=False)
    for ax, col in zip(axes.flat, cols):
        values = num[col].dropna()
        if len(values):
            ax.hist(values, bins=_bins(values), color="steelblue", edgecolor="white")
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(_label(col))
    for ax in list(axes.flat)[len(cols):]:
        ax.set_visible(False)
    print(f"Grid of {len(cols)} histograms ({nrows}x{ncols}): {stem}_distribution.png")
    if num.shape[1] > _MAX_HIST:
        print(f"(histograms of the first {_MAX_HIST} of {num.shape[1]} numeric columns)")
    _save(fig, f"{stem}_distribution.png", written)
    _heading("Per numeric column: mean, median, std, skew")
    stats = pd.DataFrame({"mean": num.mean(), "median": num.median(), "std": num.std(),
                          "skew": num.skew()}).round(4)
    _table(stats, what="numeric columns")


def _comprehensive(df, name, stem, written):
    plt = _plt()
    _summary(df, name)
    num = _finite(df)
    fig, axes = plt.subplots(2, 2, figsize=(13, 10))
    (a_heat, a_hist), (a_box, a_scatter) = axes

    def nothing(ax, title, need):
        ax.set_title(title)
        ax.text(0.5, 0.5, f"not enough numeric columns\n(needs {need})", ha="center",
                va="center", transform=ax.transAxes)
        ax.set_axis_off()

    corr = num.iloc[:, :_MAX_CORR].corr() if num.shape[1] >= 2 else None
    if corr is not None:
        _heatmap(fig, a_heat, corr.iloc[:12, :12], annot_max=8)
    else:
        nothing(a_heat, "Correlation matrix", "2")
    if num.shape[1] and num.iloc[:, 0].notna().any():
        first = num.iloc[:, 0].dropna()
        a_hist.hist(first, bins=_bins(first), color="steelblue", edgecolor="white")
        a_hist.set_title(f"Histogram of {_label(num.columns[0])}")
    else:
        nothing(a_hist, "Histogram", "1")
    if num.shape[1]:
        box = num.iloc[:, :10]
        a_box.boxplot([box[c].dropna() for c in box.columns], labels=[_label(c, 15) for c in box])
        a_box.tick_params(axis="x", labelrotation=45)
        a_box.set_title("Box plot" + (" (first 10 numeric columns)" if num.shape[1] > 10 else ""))
    else:
        nothing(a_box, "Box plot", "1")
    best = (_pairs(corr) or [None])[0] if corr is not None else None
    if best is not None:
        x, y = corr.index[best[1]], corr.columns[best[2]]
        pts = num[[x, y]].dropna()
        pts = pts.iloc[::max(1, len(pts) // 5000)]  # at most ~5000 points, deterministic
        a_scatter.scatter(pts[x], pts[y], s=8, alpha=0.6)
        a_scatter.set_xlabel(_label(x))
        a_scatter.set_ylabel(_label(y))
        r = round(float(corr.loc[x, y]), 3)
        a_scatter.set_title(f"{_label(x, 20)} vs {_label(y, 20)} (r = {r})")
    else:
        nothing(a_scatter, "Scatter", "2 with a defined correlation")
    _heading("Overview figure")
    print("2x2 panels: correlation heatmap | histogram of the first numeric column | box plot of"
          "\nnumeric columns | scatter of the two most correlated numeric columns.")
    if best is not None:
        print(f"Scatter of the most correlated pair: {x} & {y} (r = {r}).")
    _save(fig, f"{stem}_comprehensive.png", written)
    cat = df.select_dtypes(include=["object", "category", "bool"])
    _heading("Value counts of categorical columns (top 10)")
    if not cat.shape[1]:
        print("No categorical (object/category/bool) columns.")
    for col in list(cat.columns[:3]):
        counts = cat[col].value_counts(dropna=False)
        counts.index = [_label(v, 40, tex=False) for v in counts.index]
        print(f"\n{col} ({len(counts)} distinct values):")
        if len(counts):
            _table(counts.to_frame("count"), 10, "values")
    if cat.shape[1] > 3:
        print(f"\n(value counts of the first 3 of {cat.shape[1]} categorical columns)")


def analyze(file_ref, analysis_type="summary"):
    """Print an analysis report of the attached file `file_ref` (a file_id or a file name)."""
    kind = str(analysis_type).strip().lower()
    if kind not in _TYPES:
        _fail(f"Unknown analysis_type {analysis_type!r}. Valid types: {', '.join(_TYPES)}.", 2)
    name, stem = _names(file_ref)
    df = _load_table(file_ref, name)
    import warnings
    import pandas as pd
    pd.set_option("display.max_columns", 12, "display.width", 120, "display.max_colwidth", 30,
                  "display.max_rows", 60)
    written = []
    print(f"# {kind.capitalize()} analysis of {name}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = {"summary": _summary, "correlation": _correlation, "distribution": _distribution,
               "comprehensive": _comprehensive}[kind]
        run(df, name, stem, written)
    _heading("Figures written")
    print("\n".join(written) if written else "none")
