"""Network: no network of any kind (own net namespace with a down lo; seccomp allows AF_UNIX only)."""
import errno
import secrets
import socket

import pytest

from .conftest import (assert_nothing_arrived_tcp, assert_nothing_arrived_udp, failed, prog,
                       run)


def test_tcp_connect_to_host_loopback_listener(tcp_listener):
    srv, port = tcp_listener
    res = run(prog(r'''
        import socket
        def tcp(host):
            s = socket.create_connection((host, P["port"]), timeout=3)
            s.sendall(b"ESCAPED-TCP")
            return "connected"
        def twin():
            a, b = socket.socketpair()
            a.sendall(b"ping")
            return b.recv(4).decode()
        emit({"v4": attempt(tcp, "127.0.0.1"), "name": attempt(tcp, "localhost"),
              "twin": attempt(twin)})
    ''', port=port), "--timeout", "15")
    p = res.payload()
    assert p["twin"] == {"ok": True, "value": "ping"}, p
    assert failed(p["v4"]), f"TCP connect to the host's 127.0.0.1:{port} succeeded: {p}"
    assert failed(p["name"]), f"TCP connect to localhost:{port} succeeded: {p}"
    assert_nothing_arrived_tcp(srv)


def test_udp_send_to_host_loopback_listener(udp_listener):
    srv, port = udp_listener
    res = run(prog(r'''
        import socket
        def udp():
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            return s.sendto(b"ESCAPED-UDP", ("127.0.0.1", P["port"]))
        def twin():
            a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            a.send(b"dgram")
            return b.recv(16).decode()
        emit({"udp": attempt(udp), "twin": attempt(twin)})
    ''', port=port), "--timeout", "15")
    p = res.payload()
    assert p["twin"] == {"ok": True, "value": "dgram"}, p
    assert failed(p["udp"]), f"UDP sendto the host's 127.0.0.1:{port} succeeded: {p}"
    assert_nothing_arrived_udp(srv)


def test_outside_addresses_unreachable():
    """Cloud metadata, a public resolver and the host's default gateway side are all unreachable."""
    res = run(prog(r'''
        import socket, time
        out = {}
        for name, fam, typ, addr in [("metadata", socket.AF_INET, socket.SOCK_STREAM, ("169.254.169.254", 80)),
                                     ("public_tcp", socket.AF_INET, socket.SOCK_STREAM, ("1.1.1.1", 443)),
                                     ("public_dns_udp", socket.AF_INET, socket.SOCK_DGRAM, ("8.8.8.8", 53))]:
            def go():
                s = socket.socket(fam, typ)
                s.settimeout(3)
                s.connect(addr)
                s.send(b"\x00")
                if typ == socket.SOCK_DGRAM:
                    return s.recv(10).hex()
                return "connected"
            out[name] = attempt(go)
        out["twin"] = attempt(lambda: socket.inet_pton(socket.AF_INET, "10.0.0.1").hex())
        emit(out)
    '''), "--timeout", "20")
    p = res.payload()
    assert p["twin"] == {"ok": True, "value": "0a000001"}, p
    for k in ("metadata", "public_tcp", "public_dns_udp"):
        assert failed(p[k]), f"{k} reachable from the sandbox: {p}"


def test_dns_lookup_fails():
    res = run(prog(r'''
        import socket, time
        t = time.monotonic()
        r = attempt(lambda: sorted({ai[4][0] for ai in socket.getaddrinfo("example.com", 443)}))
        r2 = attempt(lambda: sorted({ai[4][0] for ai in socket.getaddrinfo("dns.google", 53)}))
        took = time.monotonic() - t
        twin = attempt(lambda: socket.getaddrinfo("127.0.0.1", 80, flags=socket.AI_NUMERICHOST)[0][4][0])
        emit({"example": r, "google": r2, "took": took, "twin": twin})
    '''), "--timeout", "30")
    p = res.payload()
    assert p["twin"] == {"ok": True, "value": "127.0.0.1"}, p
    assert failed(p["example"]), f"DNS resolution of example.com worked: {p}"
    assert failed(p["google"]), f"DNS resolution of dns.google worked: {p}"
    assert p["example"]["exc"] == "gaierror", p


# family -> (type, proto) ; every non-AF_UNIX family must be refused (contract: EAFNOSUPPORT)
FAMILIES = {
    "AF_INET_raw_icmp": (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
    "AF_INET_raw_tcp": (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP),
    "AF_INET_stream": (socket.AF_INET, socket.SOCK_STREAM, 0),
    "AF_INET_dgram_icmp_ping": (socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP),
    "AF_INET6_stream": (socket.AF_INET6, socket.SOCK_STREAM, 0),
    "AF_INET6_dgram": (socket.AF_INET6, socket.SOCK_DGRAM, 0),
    "AF_PACKET_raw": (17, socket.SOCK_RAW, 0x0300),        # htons(ETH_P_ALL)
    "AF_PACKET_dgram": (17, socket.SOCK_DGRAM, 0x0300),
    "AF_NETLINK_route": (16, socket.SOCK_RAW, 0),
    "AF_NETLINK_audit": (16, socket.SOCK_RAW, 9),
    "AF_NETLINK_kobject_uevent": (16, socket.SOCK_DGRAM, 15),
    "AF_VSOCK": (40, socket.SOCK_STREAM, 0),                # guest -> hypervisor host
    "AF_ALG": (38, socket.SOCK_SEQPACKET, 0),               # kernel crypto API attack surface
    "AF_KEY": (15, socket.SOCK_RAW, 2),
    "AF_XDP": (44, socket.SOCK_RAW, 0),
    "AF_TIPC": (30, socket.SOCK_RDM, 0),
    "AF_BLUETOOTH": (31, socket.SOCK_RAW, 1),
}
FAMILIES = {k: tuple(int(x) for x in v) for k, v in FAMILIES.items()}  # plain ints for repr()


@pytest.fixture(scope="module")
def socket_families():
    res = run(prog(r'''
        import socket
        out = {}
        for name, (fam, typ, proto) in P["families"].items():
            out[name] = attempt(lambda: socket.socket(fam, typ, proto).fileno() >= 0)
        def pair(typ):
            a, b = socket.socketpair(socket.AF_UNIX, typ)
            a.send(b"unix")
            return b.recv(8).decode()
        out["twin_stream"] = attempt(pair, socket.SOCK_STREAM)
        out["twin_dgram"] = attempt(pair, socket.SOCK_DGRAM)
        out["twin_seqpacket"] = attempt(pair, socket.SOCK_SEQPACKET)
        emit(out)
    ''', families=FAMILIES), "--timeout", "15")
    return res.payload()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_socket_family_refused(socket_families, family):
    p = socket_families
    for twin in ("twin_stream", "twin_dgram", "twin_seqpacket"):
        assert p[twin] == {"ok": True, "value": "unix"}, f"AF_UNIX {twin} broken: {p[twin]}"
    r = p[family]
    assert failed(r), f"socket({family}) was created inside the sandbox: {r}"
    assert r["errno"] == errno.EAFNOSUPPORT, f"{family}: expected EAFNOSUPPORT, got {r}"


def test_only_a_loopback_interface_exists():
    res = run(prog(r'''
        lines = open("/proc/net/dev").read().splitlines()[2:]
        ifaces = sorted(l.split(":")[0].strip() for l in lines)
        routes = open("/proc/net/route").read().splitlines()[1:]
        emit({"ifaces": ifaces, "routes": routes, "twin": attempt(lambda: len(open("/proc/self/net/dev").read()) > 0)})
    '''), "--timeout", "15")
    p = res.payload()
    assert p["twin"] == {"ok": True, "value": True}, p
    assert p["ifaces"] == ["lo"], f"the sandbox sees network interfaces other than lo: {p}"
    assert p["routes"] == [], f"the sandbox has IPv4 routes: {p}"


def test_host_abstract_unix_socket_unreachable():
    """An abstract AF_UNIX socket of the host (net-namespace scoped) must not be reachable."""
    name = "codecell-host-" + secrets.token_hex(6)
    host = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    host.bind("\0" + name)
    host.listen(4)
    host.setblocking(False)
    try:
        res = run(prog(r'''
            import socket
            def connect(n):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(3)
                s.connect("\0" + n)
                s.sendall(b"ESCAPED-ABSTRACT")
                return "connected"
            def twin():
                srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                srv.bind("\0" + P["name"] + "-inside")
                srv.listen(1)
                c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                c.connect("\0" + P["name"] + "-inside")
                conn, _ = srv.accept()
                c.sendall(b"own")
                return conn.recv(3).decode()
            emit({"host": attempt(connect, P["name"]), "twin": attempt(twin)})
        ''', name=name), "--timeout", "15")
        p = res.payload()
        assert p["twin"] == {"ok": True, "value": "own"}, p
        assert failed(p["host"]), f"connected to the host's abstract socket @{name}: {p}"
        try:
            conn, _ = host.accept()
            raise AssertionError(f"the host abstract socket @{name} accepted a connection")
        except BlockingIOError:
            pass
    finally:
        host.close()
