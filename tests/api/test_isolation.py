"""Attacks through the service: the same sandbox as `codecell run`, but now with other users' files,
the daemon's database and the daemon's own environment next door. Each attack has a legitimate
twin that must keep working."""
import json
import secrets

from .conftest import new_user


def run(daemon, user, code, **fields):
    r = daemon.execute(user, code, **fields)
    assert r.status == 200, r
    return r.json()


def test_other_users_files_and_the_database_are_out_of_reach(make_daemon):
    d = make_daemon()
    alice, mallory = new_user("alice"), new_user("mallory")
    secret = "alice-secret-" + secrets.token_hex(8)
    a = d.upload_ok(alice, "diary.txt", secret.encode())
    d.upload_ok(mallory, "mine.txt", b"mallory's own")
    code = f"""
import glob, json, os
found = {{}}
for path in [{str(d.data_dir)!r}, {str(d.data_dir / 'codecell.db')!r},
             {str(d.data_dir / 'files')!r}, '/proc/1/root' + {str(d.data_dir)!r}]:
    try:
        found[path] = os.listdir(path) if os.path.isdir(path) else open(path, 'rb').read(16).hex()
    except OSError as e:
        found[path] = 'denied: ' + type(e).__name__
needle = {secret[::-1]!r}[::-1].encode()  # reversed, so the code itself does not match
hits = []
for root in ['/mnt', '/tmp', '/run', '/etc', '/dev/shm']:
    for dirpath, _, names in os.walk(root):
        for n in names:
            try:
                if needle in open(os.path.join(dirpath, n), 'rb').read(1 << 20):
                    hits.append(os.path.join(dirpath, n))
            except OSError:
                pass
print(json.dumps({{"found": found, "hits": hits, "mine": open('mine.txt').read()}}))
"""
    res = run(d, mallory, code)
    assert res["status"] == "ok", res
    out = json.loads(res["output"])
    assert out["mine"] == "mallory's own"                       # the twin: own files are there
    assert all(str(v).startswith("denied") for v in out["found"].values()), out["found"]
    assert out["hits"] == [], out["hits"]
    # Asking for alice's file by id is a 404, never a read.
    r = d.execute(mallory, "print(open(list(FILES.values())[0]).read())", file_ids=[a["file_id"]])
    assert r.status == 404, r
    assert secret not in r.body.decode(errors="replace")


def test_the_daemons_environment_and_command_line_never_reach_the_code(make_daemon):
    token = "daemon-secret-" + secrets.token_hex(12)
    d = make_daemon(env={"DISCORD_TOKEN": token, "OPENAI_API_KEY": token})
    user = new_user()
    code = """
import os
blobs = [repr(dict(os.environ))]
for pid in os.listdir('/proc'):
    if pid.isdigit():
        for f in ('environ', 'cmdline'):
            try:
                blobs.append(open(f'/proc/{pid}/{f}', 'rb').read().decode('latin-1'))
            except OSError:
                pass
print('\\n'.join(blobs))
"""
    res = run(d, user, code)
    assert res["status"] == "ok", res
    assert token not in res["output"] and token not in res["error"]
    assert str(d.data_dir) not in res["output"]          # not even the daemon's paths
    assert "PATH=" in res["output"] or "'PATH'" in res["output"]  # the twin: a real environment


def test_an_execution_cannot_reach_the_service_over_the_network(make_daemon):
    d = make_daemon()
    user = new_user()
    code = f"""
import socket
for family, addr in [(socket.AF_INET, ('127.0.0.1', {d.port})), (socket.AF_INET6, ('::1', {d.port}))]:
    try:
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(2)
        s.connect(addr)
        print('CONNECTED', addr)
    except OSError as e:
        print('refused', type(e).__name__)
a, b = socket.socketpair()
a.sendall(b'ping'); print('pair', b.recv(4).decode())
"""
    res = run(d, user, code)
    assert "CONNECTED" not in res["output"], res["output"]
    assert "pair ping" in res["output"]  # the twin: unix sockets inside work
    assert d.healthy()
