"""``codecell packages install|list`` on a data dir, without a daemon."""
import json

from .conftest import (check_install_answer, current_env, dist_infos, entry, failed_entry,
                       norm, package_config, packages_root, run_cli, to_toml)


def parse(p, what):
    try:
        return json.loads(p.stdout)
    except ValueError as e:
        raise AssertionError(f"{what} --json printed no JSON ({e}):\nstdout: {p.stdout[-2000:]}\n"
                             f"stderr: {p.stderr[-2000:]}") from None


def test_cli_install_and_list(wheels, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(to_toml(package_config(wheels, pool=None)))
    data = tmp_path / "data"
    common = ["--config", config, "--data-dir", data]

    p = run_cli("packages", "install", "ccdemo_alpha", *common, "--json")
    assert p.returncode == 0, f"exit {p.returncode}\nstdout: {p.stdout[-2000:]}\n" \
                              f"stderr: {p.stderr[-3000:]}"
    ans = parse(p, "packages install")
    check_install_answer(ans, ["ccdemo_alpha"])
    e = entry(ans, "ccdemo_alpha")
    assert e["status"] == "installed" and norm(e["distribution"]) == "ccdemo-alpha", ans
    assert e["version"] == "1.0", e
    env = current_env(data)
    assert env, f"no {packages_root(data) / 'current'} after codecell packages install"
    assert any(d.startswith("ccdemo_alpha-1.0") for d in
               dist_infos(packages_root(data) / "envs" / env))

    p = run_cli("packages", "install", "ccdemo_alpha", *common, "--json")
    assert p.returncode == 0, p.stderr[-2000:]
    assert entry(parse(p, "packages install"), "ccdemo_alpha")["status"] == "already_installed"

    p = run_cli("packages", "install", "not_allowed_xyz", *common, "--json")
    assert p.returncode == 1, f"a refused name: exit {p.returncode}, expected 1\n" \
                              f"stdout: {p.stdout[-2000:]}\nstderr: {p.stderr[-2000:]}"
    ans = parse(p, "packages install")
    fe = failed_entry(ans, "not_allowed_xyz")
    assert fe is not None and "allowlist" in fe["reason"].lower(), ans
    p = run_cli("packages", "install", "not_allowed_xyz", *common)
    assert p.returncode == 1, f"without --json: exit {p.returncode}, expected 1"
    p = run_cli("packages", "install", "ccdemo_alpha", "not_allowed_xyz", *common, "--json")
    assert p.returncode == 1, f"one of two names refused: exit {p.returncode}, expected 1"
    assert current_env(data) == env

    p = run_cli("packages", "list", "--data-dir", data, "--json")
    assert p.returncode == 0, p.stderr[-2000:]
    listing = parse(p, "packages list")
    pkgs = listing.get("packages") if isinstance(listing, dict) else listing
    assert isinstance(pkgs, list), f"packages list --json: no package list in {listing}"
    mine = [x for x in pkgs if isinstance(x, dict) and norm(x.get("name", "")) == "ccdemo-alpha"]
    assert len(mine) == 1 and mine[0].get("version") == "1.0", pkgs
    assert not any(norm(x.get("name", "")) == "not-allowed-xyz" for x in pkgs
                   if isinstance(x, dict)), pkgs
