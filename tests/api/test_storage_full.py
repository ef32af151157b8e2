"""A full disk under the data dir: uploads get 507, code that ran still gets its result (the files
that did not fit listed as skipped, with the reason), an execution that cannot even be prepared
gets 507, and no answer names a host path. The data dir is a 64 MiB tmpfs made for the test."""
import json
import os
import subprocess

import pytest

from .conftest import assert_error, new_dir, new_user

KIB, MIB = 1 << 10, 1 << 20


@pytest.fixture
def small_disk():
    d = new_dir("small-disk")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=0700", "tmpfs", str(d)],
                       capture_output=True, text=True)
    assert r.returncode == 0, f"cannot mount a 64 MiB tmpfs (root is required): {r.stderr}"
    yield d
    subprocess.run(["umount", "-l", str(d)], capture_output=True)


def free_bytes(path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def assert_no_host_path(body: bytes, data_dir):
    text = body.decode("utf-8", "replace")
    for needle in (str(data_dir), "/var/tmp", "/work/", "generated-"):
        assert needle not in text, f"an answer names a host path ({needle!r}): {text[:2000]}"


def test_a_full_disk_never_loses_the_result_of_code_that_ran(make_daemon, small_disk):
    d = make_daemon(data_dir=small_disk / "data")
    owner, filler, runner = new_user(), new_user(), new_user()
    # an input that will not fit into the execution's workspace once the disk is full
    big_input = d.upload_ok(owner, "input.bin", os.urandom(MIB))
    # fill the disk up to ~256 KiB (uploads of at most 40 MiB each, the default limit being 50)
    fillers = []
    while free_bytes(small_disk) > 512 * KIB:
        size = min(40 * MIB, free_bytes(small_disk) - 256 * KIB)
        fillers.append(d.upload_ok(filler, f"fill{len(fillers)}.bin", b"\0" * size))
    assert_error(d.upload(new_user(), "more.bin", os.urandom(MIB)), 507, "insufficient_storage")

    # the code runs; what does not fit is skipped with a reason, what fits is stored
    r = d.execute(runner, "open('big.bin', 'wb').write(b'x' * (1 << 20))\n"
                          "open('small.txt', 'w').write('fits')\n"
                          "print('ran')\n")
    assert r.status == 200, f"code that ran must get its result: {r!r}\n{d.stderr()[-3000:]}"
    assert_no_host_path(r.body, d.data_dir)
    res = r.json()
    assert res["status"] == "ok" and res["output"] == "ran\n", res
    skipped = {s["filename"]: s for s in res["skipped_files"]}
    assert "big.bin" in skipped, res
    assert "storage is full" in skipped["big.bin"]["reason"], skipped
    assert skipped["big.bin"]["size"] == MIB, skipped
    stored = {g["filename"]: g for g in res["generated_files"]}
    assert "small.txt" in stored, res
    assert d.content(runner, stored["small.txt"]["file_id"]).body == b"fits"

    # an execution whose input cannot be copied into its workspace: nothing ran, 507
    r = d.execute(owner, "print('must not run')", file_ids=[big_input["file_id"]])
    assert_error(r, 507, "insufficient_storage")
    assert_no_host_path(r.body, d.data_dir)
    d.assert_healthy("after a full disk")

    # the twin: once room is made, the same execution runs and sees its input
    for f in fillers:
        assert d.request("DELETE", f"/v1/files/{f['file_id']}?user_id={filler}").status == 204
    res = d.execute_ok(owner, "import os; print(os.path.getsize('input.bin'))",
                       file_ids=[big_input["file_id"]])
    assert res["output"] == f"{MIB}\n", res
    res = d.execute_ok(runner, "open('big.bin', 'wb').write(b'x' * (1 << 20))")
    assert [g["filename"] for g in res["generated_files"]] == ["big.bin"], res
    assert json.loads(d.request("GET", f"/v1/files?user_id={runner}").body)["files"], "listed"
