"""HTTP framing under hostile clients, over raw sockets: a refused body must never be read as
the next request (request smuggling), a length that cannot be parsed is answered rather than
waited for, and a request without a length has no body. Each attack smuggles a real request (a
DELETE of the user's files) and checks that it did not run; beside it, the legitimate request on a
fresh or kept-alive connection still works."""
import socket

import pytest

from .conftest import multipart, new_user, q

SOCKET_TIMEOUT = 15  # a hang shows as a timeout: the daemon must answer or close well before


def connect(d):
    s = socket.create_connection(("127.0.0.1", d.port), timeout=SOCKET_TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_response(s) -> bytes:
    """One response: the head, then Content-Length bytes of body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, f"closed before an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = s.recv(65536)
        assert chunk, "closed in the middle of a body"
        body += chunk
    return head + b"\r\n\r\n" + body[:length]


def rest_until_close(s) -> bytes:
    """Everything the daemon still sends until it closes (a timeout fails the test)."""
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk
    except socket.timeout:
        pytest.fail(f"the connection stayed open after the refusal; it sent {data[:300]!r}")
    except ConnectionResetError:
        return data


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def smuggled_delete(user) -> bytes:
    return (f"DELETE /v1/files{q(user_id=user)} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Length: 0\r\n\r\n").encode()


@pytest.fixture
def victim(daemon):
    u = new_user()
    daemon.upload_ok(u, "keep-me.txt", b"precious")
    return u


def assert_files_intact(d, user):
    assert [f["filename"] for f in d.list_files(user)] == ["keep-me.txt"], \
        "the smuggled DELETE ran"


def test_a_body_refused_on_its_declared_size_is_never_read_as_a_request(daemon, victim):
    d = daemon
    for path, ctype, length in (("/v1/executions", "application/json", 2 << 20),
                                ("/v1/files", "multipart/form-data; boundary=b", 60 << 20)):
        s = connect(d)
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
                  f"Content-Length: {length}\r\n\r\n".encode())
        answer = read_response(s)
        assert status_of(answer) == 413, answer[:300]
        assert answer.lower().count(b"connection:") == 1 and b"connection: close" in \
            answer.lower(), answer[:300]
        try:
            s.sendall(smuggled_delete(victim) + smuggled_delete(victim))
        except OSError:
            pass                                  # closed already: nothing can be smuggled
        rest = rest_until_close(s)
        assert b"HTTP/1.1" not in rest, f"the body was answered as a request: {rest[:300]!r}"
        s.close()
        assert_files_intact(d, victim)


def test_a_multipart_refused_midway_is_never_read_as_a_request(daemon, victim):
    d = daemon
    u = new_user()
    body, ctype = multipart([("user_id", u), ("user_id", u)],
                            [("file", "x.txt", smuggled_delete(victim) * 50, "text/plain")])
    s = connect(d)
    s.sendall(f"POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
              f"Content-Length: {len(body)}\r\n\r\n".encode() + body + smuggled_delete(victim))
    answer = read_response(s)
    assert status_of(answer) == 400 and b"user_id" in answer, answer[:400]
    rest = rest_until_close(s)
    assert b"HTTP/1.1" not in rest, f"bytes after the refusal were answered: {rest[:300]!r}"
    s.close()
    assert_files_intact(d, victim)
    assert d.list_files(u) == []


@pytest.mark.parametrize("value", ["abc", "-1", "1 2", "18446744073709551616", "0x10", "+5"])
def test_an_unparseable_content_length_is_answered_not_waited_for(daemon, victim, value):
    s = connect(daemon)
    s.sendall(f"POST /v1/executions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {value}\r\n"
              f"\r\n".encode() + smuggled_delete(victim))
    answer = read_response(s)
    assert status_of(answer) == 400 and b"Content-Length" in answer, answer[:400]
    assert b"HTTP/1.1" not in rest_until_close(s)
    assert_files_intact(daemon, victim)


def test_content_length_beside_transfer_encoding_is_refused(daemon, victim):
    s = connect(daemon)
    s.sendall(b"POST /v1/executions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled_delete(victim))
    answer = read_response(s)
    assert status_of(answer) == 400 and b"Transfer-Encoding" in answer, answer[:400]
    assert b"HTTP/1.1" not in rest_until_close(s)
    assert_files_intact(daemon, victim)


def test_a_request_without_a_length_has_no_body(daemon):
    # `curl -X POST .../v1/cleanup` sends no Content-Length: answered at once, not at a timeout
    s = connect(daemon)
    s.sendall(b"POST /v1/cleanup HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    answer = read_response(s)
    assert status_of(answer) == 200 and b"deleted_files" in answer, answer[:400]
    # the connection is still good for the next request
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert status_of(read_response(s)) == 200
    s.close()


def test_an_oversized_header_is_a_bad_request_not_a_wrong_method(daemon):
    s = connect(daemon)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
    answer = read_response(s)
    assert status_of(answer) in (400, 431), answer[:400]
    assert b"method_not_allowed" not in answer, answer[:400]
    s.close()
    # a wrong method on a known path is still a 405
    s = connect(daemon)
    s.sendall(b"PUT /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n")
    assert status_of(read_response(s)) == 405
    s.close()


def test_requests_on_one_kept_alive_connection_are_answered_in_turn(daemon):
    u = new_user()
    daemon.upload_ok(u, "a.txt", b"a")
    s = connect(daemon)
    # an error without a body (a 404) keeps the connection: nothing was left unread
    for path, status in (("/healthz", 200), ("/v1/files" + q(user_id=u), 200),
                         ("/v1/files/file_missing" + q(user_id=u), 404), ("/v1/status", 200)):
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        answer = read_response(s)
        assert status_of(answer) == status, (path, answer[:300])
        assert b"connection: close" not in answer.lower(), (path, answer[:300])
    s.close()
