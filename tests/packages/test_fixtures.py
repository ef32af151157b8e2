"""The suite's own distributions and index, checked with Debian's pip (no daemon, no root).

If these fail, the daemon tests would fail for the suite's reasons, not the product's.
"""
import os
import subprocess

from .conftest import (SYSTEM_PYTHON, norm, run_pip, wheel_names, wheel_text)


def test_wheels_have_the_files_the_tests_rely_on(wheels):
    alpha = wheel_names(wheels.files["ccdemo-alpha"])
    assert "ccdemo_alpha/__init__.py" in alpha and "ccdemo_alpha/data.txt" in alpha, alpha
    assert wheel_text(wheels.files["ccdemo-alpha"], "ccdemo_alpha/data.txt").strip() \
        == wheels.alpha_data

    meta = wheel_text(wheels.files["ccdemo-beta"], ".dist-info/METADATA")
    assert "Requires-Dist: ccdemo-alpha" in meta, meta

    pth = wheel_names(wheels.files["ccdemo-pth"])
    assert "ccdemo_pth.pth" in pth and "ccdemo_pth.py" in pth, pth
    line = wheel_text(wheels.files["ccdemo-pth"], "ccdemo_pth.pth")
    assert line.strip() == wheels.pth_line and "\n" not in line.strip()
    assert line.startswith("import "), "site only executes .pth lines starting with 'import '"
    wheel_meta = wheel_text(wheels.files["ccdemo-pth"], ".dist-info/WHEEL")
    assert "Root-Is-Purelib: true" in wheel_meta, wheel_meta

    assert wheels.files["ccdemo-sdistonly"].name.endswith(".tar.gz")
    assert not wheels.pth_marker.exists() and not wheels.sdist_marker.exists()


def test_pth_line_runs_through_site(wheels, tmp_path):
    """The .pth line, with the host marker swapped for a private path, run by site.addsitedir:
    it sets builtins.CCDEMO_PTH_RAN to the uid and creates the marker."""
    marker = tmp_path / "marker"
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    line = wheels.pth_line.replace(str(wheels.pth_marker), str(marker))
    assert line != wheels.pth_line
    (site_dir / "ccdemo_pth.pth").write_text(line + "\n")
    code = ("import site, builtins, sys; site.addsitedir(sys.argv[1]); "
            "print(getattr(builtins, 'CCDEMO_PTH_RAN', None))")
    p = subprocess.run([SYSTEM_PYTHON, "-I", "-c", code, str(site_dir)], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == str(os.getuid()), (p.stdout, p.stderr)
    assert marker.exists(), "the .pth line did not create its marker"
    assert not wheels.pth_marker.exists()


def test_sdist_setup_py_would_leave_a_marker(wheels, tmp_path):
    """Run the sdist's setup.py (with a private marker path): the marker appears, so the daemon
    tests' 'never appears' check can fail."""
    import tarfile
    with tarfile.open(wheels.files["ccdemo-sdistonly"]) as t:
        t.extractall(tmp_path)
    setup_py = next(tmp_path.rglob("setup.py"))
    marker = tmp_path / "marker"
    env = {k: v for k, v in os.environ.items() if k != "CCDEMO_BUILDING"}
    env["CCDEMO_TEST_MARKER"] = str(marker)
    p = subprocess.run([SYSTEM_PYTHON, "setup.py", "--name"], cwd=setup_py.parent, env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert marker.exists()
    assert not wheels.sdist_marker.exists()


def test_pip_without_only_binary_would_run_the_sdist(wheels, index, tmp_path):
    """Without --only-binary pip takes the sdist from either source and runs its setup.py
    (marker redirected to a private path): refusing sdists is what keeps the marker away."""
    for source in (["--no-index", "--find-links", str(wheels.dir)], ["--index-url", index.url]):
        marker = tmp_path / f"marker-{len(source)}"
        cmd = [SYSTEM_PYTHON, "-m", "pip", "--disable-pip-version-check", "download",
               "--no-cache-dir", "--no-deps", "--no-build-isolation", *source,
               "ccdemo-sdistonly", "-d", str(tmp_path / f"dl-{len(source)}")]
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("PIP_") and "proxy" not in k.lower()}
        env.update(PIP_CONFIG_FILE=os.devnull, CCDEMO_TEST_MARKER=str(marker))
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
        assert p.returncode == 0, p.stdout + p.stderr
        assert marker.exists(), f"pip did not run the sdist's setup.py ({source})"
    assert not wheels.sdist_marker.exists()


def test_find_links_directory(wheels, tmp_path):
    """pip --no-index --find-links DIR: beta pulls alpha; the sdist is refused with
    --only-binary=:all:; ccdemo-broken does not exist."""
    out = tmp_path / "dl"
    p = run_pip("download", "--no-cache-dir", "--only-binary=:all:", "--no-index",
                "--find-links", str(wheels.dir), "ccdemo-beta==1.0", "-d", str(out))
    assert p.returncode == 0, p.stdout + p.stderr
    assert sorted(f.name for f in out.iterdir()) == sorted(
        [wheels.files["ccdemo-alpha"].name, wheels.files["ccdemo-beta"].name])

    for name in ("ccdemo-sdistonly", "ccdemo-broken"):
        p = run_pip("download", "--no-cache-dir", "--only-binary=:all:", "--no-index",
                    "--find-links", str(wheels.dir), name, "-d", str(tmp_path / name))
        assert p.returncode != 0, f"pip accepted {name}: {p.stdout}"
        assert "No matching distribution" in p.stderr or "Could not find" in p.stderr, p.stderr
    assert not wheels.sdist_marker.exists()


def test_simple_index(wheels, index, tmp_path):
    """pip --index-url http://127.0.0.1:PORT/simple/ finds alpha (and beta's dependency); the
    sdist is refused with --only-binary=:all:; the request log shows what was served."""
    out = tmp_path / "dl"
    p = run_pip("download", "--no-deps", "--no-cache-dir", "--only-binary=:all:",
                "--index-url", index.url, "ccdemo-alpha", "-d", str(out))
    assert p.returncode == 0, p.stdout + p.stderr
    assert [f.name for f in out.iterdir()] == [wheels.files["ccdemo-alpha"].name]
    assert index.served(wheels.files["ccdemo-alpha"].name), index.requests

    out2 = tmp_path / "dl2"
    p = run_pip("download", "--no-cache-dir", "--only-binary=:all:", "--index-url", index.url,
                "ccdemo_beta", "-d", str(out2))
    assert p.returncode == 0, p.stdout + p.stderr
    assert {norm(f.name.split("-")[0]) for f in out2.iterdir()} == {"ccdemo-alpha", "ccdemo-beta"}

    seen = len(index.requests)
    p = run_pip("download", "--no-deps", "--no-cache-dir", "--only-binary=:all:",
                "--index-url", index.url, "ccdemo-sdistonly", "-d", str(tmp_path / "s"))
    assert p.returncode != 0, p.stdout
    assert "No matching distribution" in p.stderr or "Could not find" in p.stderr, p.stderr
    assert not index.served(wheels.files["ccdemo-sdistonly"].name, since=seen)
    assert not wheels.sdist_marker.exists()


def test_pip_install_of_the_wheels_works(wheels, tmp_path):
    """A plain pip --prefix install of beta (+ alpha) imports and reads its data file."""
    prefix = tmp_path / "prefix"
    p = run_pip("install", "--no-cache-dir", "--no-index", "--only-binary=:all:",
                "--find-links", str(wheels.dir), "--prefix", str(prefix), "ccdemo-beta")
    assert p.returncode == 0, p.stdout + p.stderr
    site_dir = next(d for d in prefix.rglob("*-packages") if (d / "ccdemo_alpha").is_dir())
    code = ("import sys; sys.path.append(sys.argv[1]); import ccdemo_alpha, ccdemo_beta; "
            "print(ccdemo_alpha.VALUE, ccdemo_alpha.read_data(), ccdemo_beta.uses_alpha())")
    r = subprocess.run([SYSTEM_PYTHON, "-I", "-c", code, str(site_dir)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["alpha-1", wheels.alpha_data, "beta+alpha-1"]
