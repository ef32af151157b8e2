"""Files: upload, list, get, content, delete, delete all; names; ids; other users' files."""
import json
import os
import re
import secrets
import urllib.parse
from datetime import datetime, timedelta, timezone

import pytest

from .conftest import (FILE_ID_RE, assert_error, assert_file_object, multipart, new_user,
                       parse_time, q, sha256, stored_files)

CSV = b"name,value\nalpha,1\nbeta,2\ngamma,3\n"


def test_upload_answers_201_with_the_complete_file_object(daemon, user):
    before = datetime.now(timezone.utc)
    r = daemon.upload(user, "data.csv", CSV, content_type="text/csv")
    after = datetime.now(timezone.utc)
    assert r.status == 201, r
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    f = r.json()
    up = assert_file_object(f, user=user, filename="data.csv", data=CSV, upload=True)
    assert f["original_filename"] == "data.csv", f
    assert f["source"] == "upload", f
    assert f["file_type"] == "data" and f["mime_type"] == "text/csv", f
    assert before - timedelta(seconds=5) <= up <= after + timedelta(seconds=5), (up, before, after)
    # default lifetime: 48 h
    exp = parse_time(f["expires_at"])
    assert abs((exp - up).total_seconds() - 48 * 3600) < 5, f


def test_file_types_and_mime_from_extension_and_content(daemon, user):
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
    f = daemon.upload_ok(user, "pic.png", png)
    assert (f["file_type"], f["mime_type"]) == ("image", "image/png"), f
    f = daemon.upload_ok(user, "notes.txt", b"hello\n")
    assert (f["file_type"], f["mime_type"]) == ("text", "text/plain"), f
    f = daemon.upload_ok(user, "obj.json", b'{"a": 1}')
    assert (f["file_type"], f["mime_type"]) == ("structured", "application/json"), f


def test_file_ids_are_unique_and_url_safe(daemon, user):
    ids = [daemon.upload_ok(user, f"f{i}.txt", b"same bytes")["file_id"] for i in range(8)]
    assert len(set(ids)) == 8, ids
    assert all(FILE_ID_RE.match(i) for i in ids), ids


def test_list_get_and_content(daemon, user):
    other = new_user()
    a = daemon.upload_ok(user, "a.csv", CSV)
    blob = os.urandom(300_000)
    b = daemon.upload_ok(user, "b.bin", blob)
    daemon.upload_ok(other, "other.txt", b"not yours")

    files = daemon.list_files(user)
    assert sorted(f["file_id"] for f in files) == sorted([a["file_id"], b["file_id"]]), files
    for f in files:
        assert_file_object(f, user=user)
    by_id = {f["file_id"]: f for f in files}
    assert by_id[a["file_id"]]["sha256"] == sha256(CSV)
    assert by_id[b["file_id"]]["file_size"] == len(blob)

    r = daemon.request("GET", f"/v1/files/{a['file_id']}" + q(user_id=user))
    assert r.status == 200, r
    g = r.json()
    assert_file_object(g, user=user, filename="a.csv", data=CSV)
    for k in ("file_id", "uploaded_at", "expires_at", "sha256", "mime_type", "file_type"):
        assert g[k] == a[k], (k, g, a)

    r = daemon.content(user, a["file_id"])
    assert r.status == 200, r
    assert r.body == CSV
    assert r.headers.get("content-type", "").split(";")[0].strip() == "text/csv", r.headers
    cd = r.headers.get("content-disposition", "")
    assert cd.split(";")[0].strip() in ("attachment", "inline") and "a.csv" in cd, cd

    r = daemon.content(user, b["file_id"])
    assert r.status == 200 and r.body == blob, (r.status, len(r.body))
    assert r.headers.get("content-type", "").startswith("application/octet-stream"), r.headers
    assert "b.bin" in r.headers.get("content-disposition", ""), r.headers


def test_delete_then_404(daemon, user):
    gone = secrets.token_bytes(64)
    f = daemon.upload_ok(user, "gone.txt", gone)
    keep = daemon.upload_ok(user, "keep.txt", b"stay")
    path = f"/v1/files/{f['file_id']}" + q(user_id=user)
    r = daemon.request("DELETE", path)
    assert r.status == 204, r
    assert r.body == b"", r
    assert_error(daemon.request("GET", path), 404, "not_found")
    assert_error(daemon.content(user, f["file_id"]), 404, "not_found")
    assert_error(daemon.request("DELETE", path), 404, "not_found")
    assert [x["file_id"] for x in daemon.list_files(user)] == [keep["file_id"]]
    # its bytes are gone from the store
    shas = {sha256(p.read_bytes()) for p in stored_files(daemon.data_dir)}
    assert sha256(gone) not in shas, "the deleted file's bytes are still under <data_dir>/files"


def test_delete_all_answers_deleted_count(daemon, user):
    other = new_user()
    for i in range(3):
        daemon.upload_ok(user, f"x{i}.txt", f"x{i}".encode())
    o = daemon.upload_ok(other, "o.txt", b"other's")
    r = daemon.request("DELETE", "/v1/files" + q(user_id=user))
    assert r.status == 200, r
    assert r.json() == {"deleted_count": 3}, r
    assert daemon.list_files(user) == []
    r = daemon.request("DELETE", "/v1/files" + q(user_id=user))
    assert r.status == 200 and r.json() == {"deleted_count": 0}, r
    # the other user's file is untouched
    assert [f["file_id"] for f in daemon.list_files(other)] == [o["file_id"]]
    assert daemon.content(other, o["file_id"]).body == b"other's"


def test_list_of_unknown_user_is_empty(daemon):
    assert daemon.list_files(new_user()) == []


def test_unknown_file_ids_are_404(daemon, user):
    daemon.upload_ok(user, "mine.txt", b"mine")
    for fid in (secrets.token_urlsafe(16), "nope", "a" * 200):
        assert_error(daemon.request("GET", f"/v1/files/{fid}" + q(user_id=user)), 404, "not_found")
        assert_error(daemon.content(user, fid), 404, "not_found")
        assert_error(daemon.request("DELETE", f"/v1/files/{fid}" + q(user_id=user)), 404,
                     "not_found")


def test_foreign_file_ids_are_404_and_the_file_stays_intact(daemon, user):
    owner = new_user("owner")
    data = os.urandom(5000)
    f = daemon.upload_ok(owner, "secret.bin", data)
    fid = f["file_id"]
    assert_error(daemon.request("GET", f"/v1/files/{fid}" + q(user_id=user)), 404, "not_found")
    assert_error(daemon.content(user, fid), 404, "not_found")
    assert_error(daemon.request("DELETE", f"/v1/files/{fid}" + q(user_id=user)), 404, "not_found")
    r = daemon.request("DELETE", "/v1/files" + q(user_id=user))
    assert r.status == 200 and r.json() == {"deleted_count": 0}, r
    # intact for its owner
    r = daemon.content(owner, fid)
    assert r.status == 200 and r.body == data, r.status
    assert [x["file_id"] for x in daemon.list_files(owner)] == [fid]


def test_user_id_is_required_on_file_endpoints(daemon, user):
    f = daemon.upload_ok(user, "a.txt", b"a")
    assert_error(daemon.request("GET", "/v1/files"), 400, "bad_request")
    assert_error(daemon.request("GET", f"/v1/files/{f['file_id']}"), 400, "bad_request")
    assert_error(daemon.request("GET", f"/v1/files/{f['file_id']}/content"), 400, "bad_request")
    assert_error(daemon.request("DELETE", f"/v1/files/{f['file_id']}"), 400, "bad_request")
    assert_error(daemon.request("DELETE", "/v1/files"), 400, "bad_request")
    assert len(daemon.list_files(user)) == 1


# ---------------------------------------------------------------------------------------------
# names
# ---------------------------------------------------------------------------------------------
def assert_clean_name(name: str):
    """contract-serve: no `/`, `\\`, control characters, leading dots; <= 255 bytes."""
    show = repr(name[:80]) + ("..." if len(name) > 80 else "")
    assert isinstance(name, str) and name, show
    assert "/" not in name and "\\" not in name, show
    assert not name.startswith("."), show
    assert not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in name), show
    assert len(name.encode("utf-8")) <= 255, f"{len(name.encode())} bytes: {show}"


MNT_NAMES = ("import os, json\n"
             "print(json.dumps([os.fsencode(n).decode('utf-8', 'backslashreplace')"
             " for n in os.listdir('/mnt/data')]))")


def assert_disposition_names(r, filename: str):
    """Content-Disposition names the file; its RFC 8187 filename* is percent-encoded UTF-8 of
    the file's name."""
    cd = r.headers.get("content-disposition", "")
    assert cd.split(";")[0].strip() in ("attachment", "inline") and "filename" in cd, cd
    m = re.search(r"filename\*=UTF-8''([^;\s]+)", cd, re.I)
    if m:
        try:
            decoded = urllib.parse.unquote(m.group(1), errors="strict")
        except UnicodeDecodeError:
            raise AssertionError(f"filename* is not percent-encoded UTF-8: {cd!r}")
        assert decoded == filename, (cd, filename)


def test_path_traversal_filename_is_sanitized(daemon, user):
    passwd_before = open("/etc/passwd", "rb").read()
    data = b"root::0:0:pwned:/root:/bin/sh\n" + secrets.token_bytes(8)
    f = daemon.upload_ok(user, "../../etc/passwd", data)
    assert_clean_name(f["filename"])
    assert f["original_filename"] == "../../etc/passwd", f
    assert open("/etc/passwd", "rb").read() == passwd_before
    # nothing escaped the data dir: its bytes are stored under <data_dir>/files, and no etc/passwd
    # appeared next to or above it
    hits = [p for p in stored_files(daemon.data_dir) if sha256(p.read_bytes()) == sha256(data)]
    assert len(hits) == 1, hits
    assert str(hits[0].resolve()).startswith(str(daemon.data_dir.resolve()) + "/"), hits
    for d in (daemon.data_dir, daemon.data_dir.parent, daemon.data_dir / "files"):
        assert not (d / "etc" / "passwd").exists(), d
    # the sandbox sees it under its sanitized name in /mnt/data
    res = daemon.execute_ok(user, "import os, json; print(json.dumps(sorted(os.listdir('.'))))",
                            file_ids=[f["file_id"]])
    assert json.loads(res["output"]) == [f["filename"]], res["output"]
    r = daemon.content(user, f["file_id"])
    assert r.body == data
    assert "/" not in r.headers.get("content-disposition", "").replace("filename*=UTF-8''", ""), r.headers


@pytest.mark.parametrize("name,what", [
    ("a" * 3996 + ".txt", "ascii"),
    ("é" * 2000, "two-byte"),
    ("日本" * 600 + ".csv", "three-byte"),
], ids=["ascii", "two-byte", "three-byte"])
def test_very_long_filename_is_bounded(daemon, user, name, what):
    """Names up to the part-header limit (8 KiB) are stored, cut to 255 bytes for display."""
    r = daemon.upload(user, name, b"long name")
    assert r.status == 201, r
    f = r.json()      # also proves the truncation did not cut a UTF-8 sequence in half
    assert_clean_name(f["filename"])
    assert f["original_filename"] == name, \
        f"original_filename not kept: {len(f['original_filename'])} chars, {f['original_filename'][:60]!r}..."
    assert f["filename"] in [x["filename"] for x in daemon.list_files(user)]
    assert daemon.content(user, f["file_id"]).body == b"long name"


@pytest.mark.parametrize("name", ["a" * 9996 + ".txt", "é" * 10000],
                         ids=["ascii-10000", "two-byte-10000"])
def test_filename_of_10000_characters_is_refused_clearly(daemon, user, name):
    """A part header over 8 KiB is refused with a message naming the cause; nothing is stored
    and the daemon stays healthy."""
    r = daemon.upload(user, name, b"long name")
    assert_error(r, 400, "bad_request")
    assert "8 KiB" in r.json()["error"]["message"]
    assert daemon.list_files(user) == []
    assert daemon.request("GET", "/healthz").status == 200


@pytest.mark.parametrize("raw", [
    b"nul\x00byte.txt",
    b"\xff\xfe\xfdbad-utf8.txt",
    b"ctl\x01\x1b[31m\x7fchars.txt",
    b".hidden",
    b"..",
    b"C:\\Windows\\evil.txt",
], ids=["nul", "bad-utf8", "control", "leading-dot", "dotdot", "backslashes"])
def test_hostile_filenames_are_sanitized_or_refused(daemon, user, raw):
    r = daemon.upload(user, raw, b"payload")
    if r.status == 400:
        assert_error(r, 400, "bad_request")
        assert daemon.list_files(user) == []
    else:
        assert r.status == 201, r
        f = r.json()
        assert_clean_name(f["filename"])
        assert isinstance(f["original_filename"], str), f
        r = daemon.content(user, f["file_id"])
        assert r.body == b"payload"
        assert_disposition_names(r, f["filename"])
        files = daemon.list_files(user)           # the list stays valid JSON
        assert [x["file_id"] for x in files] == [f["file_id"]]
        # the sandbox sees the same (valid UTF-8) name as the API reports
        res = daemon.execute_ok(user, MNT_NAMES, file_ids=[f["file_id"]])
        assert json.loads(res["output"]) == [f["filename"]], (res["output"], f["filename"])
    daemon.assert_healthy(f"after uploading the name {raw!r}")


def test_ordinary_unicode_names_are_kept(daemon, user):
    name = "données été 2026 (v2).csv"
    f = daemon.upload_ok(user, name, b"a,b\n1,2\n")
    assert f["filename"] == name and f["original_filename"] == name, f
    assert (f["file_type"], f["mime_type"]) == ("data", "text/csv"), f
    r = daemon.content(user, f["file_id"])
    assert r.status == 200 and r.body == b"a,b\n1,2\n", r
    assert_disposition_names(r, name)
    res = daemon.execute_ok(user, "import os; print(os.listdir('.'))", file_ids=[f["file_id"]])
    assert res["output"] == repr([name]) + "\n", res


def test_upload_without_file_part_is_400(daemon, user):
    body, ctype = multipart([("user_id", user), ("note", "no file here")], [])
    r = daemon.request("POST", "/v1/files", body=body, headers={"Content-Type": ctype})
    assert_error(r, 400, "bad_request")
    assert daemon.list_files(user) == []


def test_duplicate_user_id_fields_are_refused_or_one_of_them(daemon, user):
    other = new_user()
    r = daemon.upload(user, "a.txt", b"two ids", fields=[("user_id", other)])
    if r.status == 400:
        assert_error(r, 400, "bad_request")
    else:
        assert r.status == 201, r
        assert r.json()["user_id"] in (user, other), f"user_id is neither field: {r!r}"


def test_upload_without_user_id_is_400(daemon):
    r = daemon.upload(None, "a.txt", b"abc")
    assert_error(r, 400, "bad_request")


def test_upload_that_is_not_multipart_is_400(daemon, user):
    r = daemon.request("POST", "/v1/files", body={"user_id": user, "file": "abc"})
    assert_error(r, 400, "bad_request")
    r = daemon.request("POST", "/v1/files", body=b"garbage",
                       headers={"Content-Type": "multipart/form-data; boundary=xyz"})
    assert_error(r, 400, "bad_request")
    assert daemon.list_files(user) == []


def test_empty_file_is_accepted(daemon, user):
    f = daemon.upload_ok(user, "empty.txt", b"")
    assert f["file_size"] == 0 and f["sha256"] == sha256(b""), f
    r = daemon.content(user, f["file_id"])
    assert r.status == 200 and r.body == b""
