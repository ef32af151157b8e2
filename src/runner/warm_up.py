# Runs once in the zygote's interpreter, before any child is forked: imports and exercises the
# preloads (`__codecell_preload`, set by the zygote), because pandas and matplotlib import much of
# themselves lazily, on first use, and a bare import would leave that cost to every execution.
# Leaves `_report` ({"preloaded": [...], "failed": {name: reason}}) for the zygote to read.
import _ast, gc, importlib, io, sys, time  # _ast: the runner parses each cell (notebook output)
_report = {"preloaded": [], "failed": {}}
for _name in __codecell_preload:
    try:
        importlib.import_module(_name)
        _report["preloaded"].append(_name)
    except Exception as _e:
        _report["failed"][_name] = f"{type(_e).__name__}: {_e}"

def _warm():
    m = sys.modules
    if "numpy" in m:
        import numpy as np
        np.arange(10).sum()
        np.random.default_rng(0).random(4)
    if "pandas" in m:
        import pandas as pd
        df = pd.read_csv(io.StringIO("a,b,c,d\n1,2.5,x,2024-01-01\n3,4.5,y,2024-02-01\n"),
                         parse_dates=["d"])
        df.describe(); df.describe(include="all"); df.info(buf=io.StringIO())
        repr(df); str(df.head()); df.to_string(); df.groupby("c").sum(numeric_only=True)
        df._repr_html_()  # a DataFrame shown as a final expression
        df.to_csv(io.StringIO()); df.resample("M", on="d").sum(numeric_only=True)
    if "matplotlib" in m:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots()
        ax.plot([1, 2, 3], [1, 4, 9], label="x"); ax.bar([1, 2], [3, 4])
        ax.set_title("warm"); ax.set_xlabel("x"); ax.legend()
        fig.savefig(io.BytesIO(), format="png")
        plt.close("all")
    if "seaborn" in m and "pandas" in m:
        import seaborn as sns, pandas as pd, matplotlib.pyplot as plt
        sns.histplot(pd.DataFrame({"v": [1, 2, 2, 3]}), x="v")
        plt.close("all")
    if "scipy.stats" in m:
        import scipy.stats as st
        st.norm.cdf(0.5); st.pearsonr([1, 2, 3], [2, 4, 7])

import warnings
try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the service's log takes JSON lines only
        _warm()
except Exception as _e:
    _report["failed"]["warm-up"] = f"{type(_e).__name__}: {_e}"
del _warm, warnings
