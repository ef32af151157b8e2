"""Tests of src/runner/analyze.py (the analyze_data_file program), run through runner.py
UNSANDBOXED as a subprocess, the way the service runs it: code = analyze.py's text followed by
`analyze(<file_id>, <analysis_type>)`.

    /usr/bin/python3 -m pytest tests/runner/test_analyze.py

tests/runner has no __init__.py, so the minimal Sandbox harness of test_runner.py is copied here.
"""

import importlib.util
import io
import json
import os
from pathlib import Path

import pytest

from test_runner import Sandbox as RunnerSandbox  # the runner's harness (tests/runner)

SRC = Path(__file__).resolve().parents[2] / "src" / "runner"
ANALYZE = (SRC / "analyze.py").read_text(encoding="utf-8")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Sandbox(RunnerSandbox):
    def analyze(self, file_id, analysis_type):
        return self.run(ANALYZE + f"\nanalyze({file_id!r}, {analysis_type!r})\n")

    def png(self, name):
        path = self.data_dir / name
        assert path.is_file(), f"{name} not written; data dir: {sorted(os.listdir(self.data_dir))}"
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        return data

    def pngs(self):
        return sorted(n for n in os.listdir(self.data_dir) if n.endswith(".png"))


@pytest.fixture
def sb(tmp_path):
    return Sandbox(tmp_path)


SALES_CSV = (
    "region,store,units,price,revenue,returns\n"
    "north,3,10,2.5,25.0,1\n"
    "south,1,20,2.0,40.0,\n"
    "north,4,30,3.5,105.0,0\n"
    "east,1,,1.5,,2\n"
    "south,5,50,4.0,200.0,1\n"
    "north,9,60,2.5,150.0,3\n"
)


def section(out, heading):
    """The text of the report section `## heading...` up to the next heading."""
    start = out.index("\n## " + heading)
    end = out.find("\n## ", start + 1)
    return out[start + 1:end if end >= 0 else len(out)]


def assert_clean(res):
    assert "Traceback" not in res.err, res.err
    assert "Warning" not in res.err, res.err


# --------------------------------------------------------------------------- summary

def test_summary_of_a_csv(sb):
    fid = sb.add("sales.csv", SALES_CSV)
    res = sb.analyze(fid, "summary")
    assert res.rc == 0, res.err
    assert_clean(res)
    out = res.out
    assert out.startswith("# Summary analysis of sales.csv\n")
    assert "6 rows x 6 columns" in section(out, "Shape")
    cols = section(out, "Columns, dtypes and missing values")
    assert "region" in cols and "object" in cols
    assert "float64" in cols and "int64" in cols
    # units and revenue miss 1 of 6 values (16.67 %), returns 1, region and price none
    assert [ln.split() for ln in cols.splitlines() if ln.startswith("units")] == \
        [["units", "float64", "1", "16.67"]]
    assert "Missing values: 3 cells in 3 of 6 columns" in cols
    num = section(out, "Numeric columns: describe()")
    assert "mean" in num and "50%" in num and "price" in num
    cat = section(out, "Text/categorical columns: describe()")
    assert "unique" in cat and "top" in cat and "north" in cat
    head = section(out, "First 5 rows (head)")
    assert "east" in head and "60" not in head  # 5 rows: the 6th (units 60) is not shown
    assert section(out, "Figures written").strip().endswith("none")
    assert sb.pngs() == []


@pytest.mark.parametrize("name, content", [
    ("table.tsv", "a\tb\n1\tx\n2\ty\n3\t\n"),
    ("events.jsonl", '{"k": "a", "v": 1}\n{"k": "b", "v": 2}\n{"k": "a", "v": null}\n'),
])
def test_three_rows_one_missing_summary(sb, name, content):
    fid = sb.add(name, content)
    res = sb.analyze(fid, "summary")
    assert res.rc == 0, res.err
    assert "3 rows x 2 columns" in res.out
    assert "Missing values: 1 cells in 1 of 2 columns" in res.out


def test_excel_summary(sb):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("openpyxl")
    buf = io.BytesIO()
    pd.DataFrame({"name": ["a", "b", "c", "d"], "score": [1.5, 2.5, 3.5, None]}).to_excel(
        buf, index=False)
    fid = sb.add("scores.xlsx", buf.getvalue())
    res = sb.analyze(fid, "summary")
    assert res.rc == 0, res.err
    assert "4 rows x 2 columns" in res.out
    assert "score" in section(res.out, "Numeric columns: describe()")


def test_json_list_of_records_summary(sb):
    records = [{"id": i, "city": c, "temp": t, "geo": {"lat": i * 1.5, "lon": -i}}
               for i, (c, t) in enumerate([("Oslo", 3.1), ("Rome", 17.0), ("Lima", 19.5)])]
    fid = sb.add("weather.json", json.dumps(records))
    res = sb.analyze(fid, "summary")
    assert res.rc == 0, res.err
    assert "3 rows x 5 columns" in res.out  # the nested object is flattened: geo.lat, geo.lon
    assert "geo.lat" in res.out and "city" in res.out


def test_wide_table_report_is_bounded(sb):
    header = ",".join(f"c{i}" for i in range(200))
    rows = "\n".join(",".join(str(r * i % 7) for i in range(200)) for r in range(10))
    fid = sb.add("wide.csv", header + "\n" + rows + "\n")
    res = sb.analyze(fid, "summary")
    assert res.rc == 0, res.err
    assert "10 rows x 200 columns" in res.out
    assert "more columns not shown" in res.out
    assert len(res.out) < 30_000
    assert max(len(line) for line in res.out.splitlines()) <= 200


# --------------------------------------------------------------------------- correlation

def test_correlation_lists_the_perfect_pair_and_writes_the_heatmap(sb):
    fid = sb.add("sales.csv", "x,y,z,label\n1,2,5,a\n2,4,3,b\n3,6,4,a\n4,8,1,c\n5,10,2,b\n")
    res = sb.analyze(fid, "correlation")
    assert res.rc == 0, res.err
    assert_clean(res)
    matrix = section(res.out, "Correlation matrix (Pearson)")
    assert "label" not in matrix  # numeric columns only
    pairs = section(res.out, "Strongly correlated pairs (|r| > 0.7)")
    lines = [ln for ln in pairs.splitlines()[1:] if ln.strip()]
    assert lines[0] == "x & y: r = 1.0"
    assert lines[1:] == ["x & z: r = -0.8", "y & z: r = -0.8"]
    sb.png("sales_correlation.png")
    assert section(res.out, "Figures written").splitlines()[1:] == ["sales_correlation.png"]
    assert sb.pngs() == ["sales_correlation.png"]


def test_correlation_long_names_and_figure_name_of_a_compressed_file(sb):
    import gzip
    csv = "temperature_celsius,ice_cream_sales_eur\n10,100\n20,210\n30,290\n"
    fid = sb.add("q1 sales.csv.gz", gzip.compress(csv.encode()))
    res = sb.analyze(fid, "correlation")
    assert res.rc == 0, res.err
    matrix = section(res.out, "Correlation matrix (Pearson)").splitlines()
    assert matrix[1].split() == ["[1]", "[2]"]  # long names: numbered columns
    assert matrix[2].startswith("[1] temperature_celsius ")
    assert "temperature_celsius & ice_cream_sales_eur: r = 0.996" in res.out
    sb.png("q1_sales_correlation.png")


def test_correlation_without_strong_pairs(sb):
    fid = sb.add("weak.csv", "a,b\n1,1\n2,-1\n3,1\n4,-1\n5,1\n6,-1\n")
    res = sb.analyze(fid, "correlation")
    assert res.rc == 0, res.err
    assert "No pair of numeric columns has |r| > 0.7." in res.out
    sb.png("weak_correlation.png")


def test_correlation_heatmap_without_seaborn(sb):
    # A seaborn.py in the data dir (first on sys.path) fails to import, as a missing seaborn would:
    # the heatmap is drawn with matplotlib's imshow instead.
    (sb.data_dir / "seaborn.py").write_text("raise ImportError('No module named seaborn')\n")
    fid = sb.add("plain.csv", "a,b,c\n1,2,3\n2,3,1\n3,5,2\n4,4,4\n")
    res = sb.analyze(fid, "correlation")
    assert res.rc == 0, res.err
    assert_clean(res)
    assert "a & b: r = 0.8" in res.out
    sb.png("plain_correlation.png")


def test_correlation_needs_two_numeric_columns(sb):
    fid = sb.add("single.csv", "name,value\na,1\nb,2\nc,3\n")
    res = sb.analyze(fid, "correlation")
    assert res.rc == 0, res.err
    assert "Correlation needs at least 2 numeric columns; 'single.csv' has 1 ('value')." in res.out
    assert sb.pngs() == []
    assert section(res.out, "Figures written").strip().endswith("none")


# --------------------------------------------------------------------------- distribution

def test_distribution_grid_and_stats(sb):
    fid = sb.add("metrics.csv", "a,b,c,name\n1,10,0.5,x\n2,10,0.1,y\n3,20,0.2,z\n10,30,0.9,w\n")
    res = sb.analyze(fid, "distribution")
    assert res.rc == 0, res.err
    assert_clean(res)
    sb.png("metrics_distribution.png")
    stats = section(res.out, "Per numeric column: mean, median, std, skew")
    rows = {ln.split()[0]: ln.split()[1:] for ln in stats.splitlines()[2:] if ln.strip()}
    assert stats.splitlines()[1].split() == ["mean", "median", "std", "skew"]
    assert set(rows) == {"a", "b", "c"}  # one line per numeric column, not 'name'
    assert [float(v) for v in rows["a"][:2]] == [4.0, 2.5]
    assert all(len(v) == 4 for v in rows.values())


def test_distribution_caps_the_grid_at_twelve(sb):
    header = ",".join(f"v{i}" for i in range(15))
    rows = "\n".join(",".join(str((r + 1) * (i + 1)) for i in range(15)) for r in range(8))
    fid = sb.add("many.csv", header + "\n" + rows + "\n")
    res = sb.analyze(fid, "distribution")
    assert res.rc == 0, res.err
    assert "(histograms of the first 12 of 15 numeric columns)" in res.out
    sb.png("many_distribution.png")


# --------------------------------------------------------------------------- comprehensive

def test_comprehensive_with_a_categorical_column(sb):
    fid = sb.add("sales.csv", SALES_CSV)
    res = sb.analyze(fid, "comprehensive")
    assert res.rc == 0, res.err
    assert_clean(res)
    out = res.out
    assert "6 rows x 6 columns" in out  # the summary comes first
    assert out.index("## Shape") < out.index("## Overview figure") < out.index("## Value counts")
    sb.png("sales_comprehensive.png")
    assert "Scatter of the most correlated pair: units & revenue (r = 0.904)." in section(out, "Overview figure")
    counts = section(out, "Value counts of categorical columns (top 10)")
    assert "region (3 distinct values):" in counts
    assert [ln.split() for ln in counts.splitlines() if ln.startswith("north")] == [["north", "3"]]
    assert sb.pngs() == ["sales_comprehensive.png"]


def test_comprehensive_without_numeric_columns(sb):
    fid = sb.add("names.csv", "first,last,active\nada,lovelace,True\nalan,turing,False\n")
    res = sb.analyze(fid, "comprehensive")
    assert res.rc == 0, res.err
    assert_clean(res)
    sb.png("names_comprehensive.png")
    assert "No numeric columns." in res.out
    counts = section(res.out, "Value counts of categorical columns (top 10)")
    assert "first (2 distinct values):" in counts and "active (2 distinct values):" in counts


# --------------------------------------------------------------------------- errors

def test_parquet_without_a_reader_is_a_clear_error(sb):
    if any(importlib.util.find_spec(m) for m in ("pyarrow", "fastparquet")):
        pytest.skip("a Parquet reader is installed")
    fid = sb.add("data.parquet", b"PAR1\x00\x00PAR1")
    res = sb.analyze(fid, "summary")
    assert res.rc == 1
    assert "Cannot read 'data.parquet': a reader library is missing" in res.err
    assert "pyarrow" in res.err and "Parquet" in res.err
    assert "Traceback" not in res.err
    assert res.out == ""


def test_text_file_is_not_tabular(sb):
    fid = sb.add("notes.txt", "just some notes\n")
    res = sb.analyze(fid, "summary")
    assert res.rc == 1
    assert res.err.startswith("'notes.txt' is not tabular: it is a text file")
    assert f"load_file({fid!r})" in res.err
    assert "Traceback" not in res.err
    assert res.out == ""


def test_json_object_is_not_tabular(sb):
    fid = sb.add("config.json", json.dumps({"name": "x", "rows": [{"a": 1}]}))
    res = sb.analyze(fid, "correlation")
    assert res.rc == 1
    assert "'config.json' is not tabular: it is a JSON/YAML object (dict) with keys 'name', " \
           "'rows'" in res.err
    assert "pd.json_normalize" in res.err


def test_image_is_not_tabular(sb):
    fid = sb.add("photo.png", PNG_SIGNATURE + b"\x00" * 16)
    res = sb.analyze(fid, "distribution")
    assert res.rc == 1
    assert "'photo.png' is not tabular: it is a binary or media file" in res.err


def test_unknown_analysis_type(sb):
    fid = sb.add("sales.csv", SALES_CSV)
    res = sb.analyze(fid, "regression")
    assert res.rc == 2
    assert res.err == ("Unknown analysis_type 'regression'. Valid types: summary, correlation, "
                       "distribution, comprehensive.\n")
    assert res.out == ""


def test_unknown_file_id(sb):
    res = sb.analyze("no-such-id", "summary")
    assert res.rc == 1
    assert "Cannot read 'no-such-id' as a table: FileNotFoundError" in res.err
    assert "Traceback" not in res.err


def test_load_file_missing_is_a_clear_error(sb):
    res = sb.run(ANALYZE + "\ndel load_file\nanalyze('x', 'summary')\n")
    assert res.rc == 1
    assert "load_file is not available" in res.err


def test_output_is_deterministic(sb):
    fid = sb.add("sales.csv", SALES_CSV)
    first = sb.analyze(fid, "comprehensive")
    png = sb.png("sales_comprehensive.png")
    second = sb.analyze(fid, "comprehensive")
    assert first.rc == second.rc == 0
    assert first.out == second.out
    assert sb.png("sales_comprehensive.png") == png
