"""The HTTP client under HttpEngine, against small real servers on 127.0.0.1.

What the engine tests (fake upstreams served by uvicorn) do not reach: body framings,
connection reuse and its failures, timeouts, limits, TLS and flow control. Each server
here is an asyncio server whose replies a test writes byte by byte.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from hearth.engines._wire import (
    PAUSE_ABOVE,
    ConnectTimeout,
    Disconnected,
    ProtocolError,
    ReadTimeout,
    Unreachable,
    WireClient,
)
from tests._server import free_port

T = TypeVar("T")
# An answer writes the reply to the `index`-th request on its connection (from 0) and
# returns False to close the connection afterwards.
Answer = Callable[[int, bytes, asyncio.StreamWriter], Awaitable[bool | None]]


class Upstream:
    """Counts connections and requests; `answer` writes the replies."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.ended = 0  # connections that are over (either side closed them)
        self.requests: list[bytes] = []
        self.url = ""


@asynccontextmanager
async def serving(
    answer: Answer, *, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1"
) -> AsyncIterator[Upstream]:
    upstream = Upstream(answer)
    writers: set[asyncio.StreamWriter] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream.connections += 1
        writers.add(writer)
        try:
            for index in range(1000):
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.lower().split(b"\r\n"):
                    if line.startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                upstream.requests.append(head + await reader.readexactly(length))
                if await upstream.answer(index, head, writer) is False:
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client hung up
        finally:
            upstream.ended += 1
            writers.discard(writer)
            writer.close()

    server = await asyncio.start_server(serve, host, 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    where = f"[{host}]" if ":" in host else host
    upstream.url = f"{'https' if tls else 'http'}://{where}:{port}/v1/"
    try:
        yield upstream
    finally:
        for writer in list(writers):
            writer.close()
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0.01)  # let the handlers see their connections end


def reply(body: bytes = b"{}", *, head: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), head, body)


def chunked(*parts: bytes) -> bytes:
    framed = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts)
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + framed + b"0\r\n\r\n"


async def answer_ok(index: int, head: bytes, writer: asyncio.StreamWriter) -> None:
    writer.write(reply(b'{"n": %d}' % index))


def client(**options: Any) -> WireClient:
    return WireClient(**({"connect_timeout": 2.0, "read_timeout": 2.0} | options))


async def fetch(wire: WireClient, url: str, **options: Any) -> bytes:
    response = await wire.request("GET", url, **options)
    return await response.read()


Runner = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Runner:
    """Runs a test's coroutine on the standard event loop, then on uvloop's (which
    uvicorn picks when installed: its transports differ in type and in read sizes)."""
    if request.param == "uvloop":
        factory = pytest.importorskip("uvloop").new_event_loop
    else:
        factory = asyncio.new_event_loop

    def runner(coro: Coroutine[Any, Any, T]) -> T:
        with asyncio.Runner(loop_factory=factory) as loop_runner:
            return loop_runner.run(coro)

    return runner


# --- bodies --------------------------------------------------------------------------------


def test_length_chunked_and_until_close_bodies(run: Runner) -> None:
    async def answer(index: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        path = head.split(b" ")[1]
        if path.endswith(b"/length"):
            writer.write(reply(b"by length"))
        elif path.endswith(b"/chunked"):
            writer.write(chunked(b"by ", b"chun", b"ks"))
        elif path.endswith(b"/informational"):
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + reply(b"after 100"))
        elif path.endswith(b"/http10"):
            writer.write(b"HTTP/1.0 200 OK\r\n\r\nuntil the end, 1.0")
            return False
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
            return False
        return True

    async def main() -> None:
        async with serving(answer) as upstream:
            wire = client()
            assert await fetch(wire, upstream.url + "length") == b"by length"
            assert await fetch(wire, upstream.url + "chunked") == b"by chunks"
            assert await fetch(wire, upstream.url + "informational") == b"after 100"
            assert upstream.connections == 1
            assert await fetch(wire, upstream.url + "close") == b"until the end"
            assert await fetch(wire, upstream.url + "http10") == b"until the end, 1.0"
            # A reply delimited by the close is never followed by a reuse.
            assert await fetch(wire, upstream.url + "length") == b"by length"
            assert upstream.connections == 3
            await wire.close()

    run(main())


def test_request_head_carries_the_path_prefix_and_headers(run: Runner) -> None:
    async def main() -> None:
        async with serving(answer_ok) as upstream:
            wire = client(headers={"Authorization": "Bearer k", "Accept": "*/*"})
            response = await wire.request(
                "POST", upstream.url + "chat", b"{}", {"Accept": "text/event-stream"}
            )
            assert (response.status, response.reason, response.path) == (200, "OK", "/v1/chat")
            assert response.header("content-length") == "8"
            await response.read()
            await wire.close()
        head = upstream.requests[0].lower()
        assert head.startswith(b"post /v1/chat http/1.1\r\n")
        assert b"authorization: bearer k\r\n" in head
        assert b"content-length: 2\r\n" in head
        assert b"accept-encoding: identity\r\n" in head  # bodies are not decoded here
        assert b"user-agent: hearth\r\n" in head
        # The request's own header replaces the client's, rather than adding a second.
        assert head.count(b"accept:") == 1 and b"accept: text/event-stream" in head

    run(main())


def test_header_values_with_line_breaks_are_refused_without_showing_them(run: Runner) -> None:
    async def main() -> None:
        for value in ["Bearer secret\r\nX-Evil: 1", "Bearer secr\u00e9t"]:
            with pytest.raises(ValueError) as caught:
                client(headers={"Authorization": value})
            assert "secr" not in str(caught.value)

    run(main())


# --- connections ---------------------------------------------------------------------------


def test_sequential_requests_share_one_connection(run: Runner) -> None:
    async def main() -> None:
        async with serving(answer_ok) as upstream:
            wire = client()
            for _ in range(20):
                await fetch(wire, upstream.url + "models")
            # A stream read to its end goes back to the pool as well.
            response = await wire.request("POST", upstream.url + "chat", b"{}", stream=True)
            assert b"".join([data async for data in response.chunks()]) == b'{"n": 20}'
            await fetch(wire, upstream.url + "models")
            assert upstream.connections == 1
            # Concurrent requests each get a connection (no cap); later ones reuse them.
            await asyncio.gather(*(fetch(wire, upstream.url + "m") for _ in range(5)))
            await asyncio.gather(*(fetch(wire, upstream.url + "m") for _ in range(5)))
            assert upstream.connections == 5
            await wire.close()
            await asyncio.sleep(0.05)
            assert upstream.ended == 5  # close() closed the pooled connections

    run(main())


def test_idle_connections_expire(run: Runner) -> None:
    async def main() -> None:
        async with serving(answer_ok) as upstream:
            wire = client(keepalive=0.1)
            await fetch(wire, upstream.url + "m")
            await asyncio.sleep(0.3)
            assert upstream.ended == 1  # closed by the pool's sweep, with no request
            await fetch(wire, upstream.url + "m")
            assert upstream.connections == 2
            await wire.close()

    run(main())


def test_a_connection_the_server_closed_while_idle_is_replaced(run: Runner) -> None:
    async def answer(index: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(reply())
        return False  # a keep-alive reply, then the server closes anyway

    async def main() -> None:
        async with serving(answer) as upstream:
            wire = client()
            await fetch(wire, upstream.url + "m")
            await asyncio.sleep(0.05)  # the close has arrived: the pool drops it
            await fetch(wire, upstream.url + "m")
            assert (upstream.connections, len(upstream.requests)) == (2, 2)
            await wire.close()

    run(main())


def test_a_reused_connection_that_dies_unanswered_is_retried_once(run: Runner) -> None:
    async def answer(index: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        if index == 0:
            writer.write(reply(b"first"))
            return True
        return False  # a second request on a connection: hang up without a byte

    async def main() -> None:
        async with serving(answer) as upstream:
            wire = client()
            assert await fetch(wire, upstream.url + "m") == b"first"
            # The pool still holds the connection when the request goes out on it.
            assert await fetch(wire, upstream.url + "m") == b"first"
            assert (upstream.connections, len(upstream.requests)) == (2, 3)
            await wire.close()

    run(main())


def test_no_retry_once_a_byte_of_the_reply_arrived(run: Runner) -> None:
    async def answer(index: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        if index == 0:
            writer.write(reply(b"first"))
            return True
        writer.write(b"HTTP/1.1 200 OK\r\n")  # then dies
        return False

    async def main() -> None:
        async with serving(answer) as upstream:
            wire = client()
            await fetch(wire, upstream.url + "m")
            with pytest.raises(Disconnected, match="middle of its reply"):
                await fetch(wire, upstream.url + "m")
            assert (upstream.connections, len(upstream.requests)) == (1, 2)
            await wire.close()

    run(main())


def test_no_retry_on_a_new_connection(run: Runner) -> None:
    async def answer(index: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        return False

    async def main() -> None:
        async with serving(answer) as upstream:
            wire = client()
            with pytest.raises(Disconnected, match="before replying"):
                await fetch(wire, upstream.url + "m")
            assert len(upstream.requests) == 1
            await wire.close()

    run(main())


def test_connection_refused_is_unreachable(run: Runner) -> None:
    async def main() -> None:
        wire = client()
        with pytest.raises(Unreachable, match=r"cannot connect to 127\.0\.0\.1"):
            await fetch(wire, f"http://127.0.0.1:{free_port()}/v1/models")
        await wire.close()

    run(main())


def test_connect_timeout(run: Runner) -> None:
    # A listener that never accepts, its backlog full: the kernel leaves new SYNs unanswered.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)

        async def main() -> None:
            wire = client(connect_timeout=0.3)
            with pytest.raises(ConnectTimeout, match=r"within 0\.3 s"):
                await fetch(wire, f"http://127.0.0.1:{port}/v1/models")
            await wire.close()

        try:
            run(main())
        finally:
            for filler in fillers:
                filler.close()


def test_ipv6_literal_hosts(run: Runner) -> None:
    try:
        socket.socket(socket.AF_INET6).close()
        socket.getaddrinfo("::1", 0)
    except OSError:
        pytest.skip("no IPv6 here")

    async def main() -> None:
        async with serving(answer_ok, host="::1") as upstream:
            wire = client()
            assert await fetch(wire, upstream.url + "m") == b'{"n": 0}'
            await wire.close()
        assert b"\r\nhost: [::1]:" in upstream.requests[0].lower()

    run(main())


# --- timeouts and limits -------------------------------------------------------------------


def chunks_every(delay: float, count: int) -> Answer:
    async def answer(index: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for n in range(count):
            writer.write(b"6\r\nchunk%d\r\n" % (n % 10))
            await writer.drain()
            await asyncio.sleep(delay)
        writer.write(b"0\r\n\r\n")
        return True

    return answer


def test_read_timeout_is_between_reads_not_for_the_whole_reply(run: Runner) -> None:
    async def main() -> None:
        async with serving(chunks_every(0.05, 12)) as upstream:
            wire = client(read_timeout=0.25)  # the stream lasts 0.6 s: more, but never idle
            assert len(await fetch(wire, upstream.url + "m")) == 72
            await wire.close()

    run(main())


def test_read_timeout_between_chunks(run: Runner) -> None:
    async def main() -> None:
        async with serving(chunks_every(0.6, 3)) as upstream:
            wire = client(read_timeout=0.2)
            response = await wire.request("POST", upstream.url + "m", b"{}", stream=True)
            received = []
            with pytest.raises(ReadTimeout, match=r"no data for 0\.2 s"):
                async for data in response.chunks():
                    received.append(data)
            assert received == [b"chunk0"]
            await wire.close()

    run(main())


def test_total_time_limit(run: Runner) -> None:
    async def main() -> None:
        async with serving(chunks_every(0.05, 20)) as upstream:
            wire = client(read_timeout=1.0)
            with pytest.raises(ReadTimeout, match="time limit"):
                await fetch(wire, upstream.url + "m", total=0.3)
            await wire.close()

    run(main())


@pytest.mark.parametrize(
    ("written", "error"),
    [
        (reply(b"x" * 2000), "reply larger than 1000 bytes"),
        (reply(head=b"X-Big: " + b"y" * 70_000 + b"\r\n"), "reply head larger"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n", "malformed HTTP reply"),
    ],
)
def test_oversized_and_malformed_replies_are_protocol_errors(
    run: Runner, written: bytes, error: str
) -> None:
    async def answer(index: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(written)
        return True

    async def main() -> None:
        async with serving(answer) as upstream:
            wire = client(max_body=1000)
            with pytest.raises(ProtocolError, match=error):
                await fetch(wire, upstream.url + "m")
            await wire.close()

    run(main())


# --- streams -------------------------------------------------------------------------------


def test_a_slow_reader_pauses_a_fast_upstream(run: Runner) -> None:
    total, piece = 32 * 1024 * 1024, b"z" * 65536

    async def answer(index: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
        for _ in range(total // len(piece)):
            writer.write(piece)
            await writer.drain()  # TCP's window: blocks while the client does not read
        return True

    async def main() -> None:
        async with serving(answer) as upstream:
            wire = client(read_timeout=0.3)
            response = await wire.request("GET", upstream.url + "m", stream=True)
            sizes = []
            async for data in response.chunks():
                sizes.append(len(data))
                # Slower than the upstream, once even past the read timeout: the wait is
                # the reader's, so it must not count as the server stalling.
                await asyncio.sleep(0.5 if len(sizes) == 3 else 0.002)
            assert sum(sizes) == total
            # At most one socket read (256 KiB in asyncio) beyond the threshold.
            assert max(sizes) <= PAUSE_ABOVE + 256 * 1024
            assert upstream.connections == 1
            await fetch(wire, upstream.url + "m", total=5.0)  # reused after the pause
            assert upstream.connections == 1
            await wire.close()

    run(main())


# --- https ---------------------------------------------------------------------------------


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "hearth test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_https_with_a_trusted_certificate(run: Runner, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)

    async def main() -> None:
        async with serving(answer_ok, tls=server_tls) as upstream:
            wire = client(ssl_context=ssl.create_default_context(cafile=str(cert)))
            assert await fetch(wire, upstream.url + "m") == b'{"n": 0}'
            assert await fetch(wire, upstream.url + "m") == b'{"n": 1}'
            assert upstream.connections == 1
            await wire.close()

            # The system's CAs do not know it.
            untrusting = client()
            with pytest.raises(Unreachable, match="CERTIFICATE_VERIFY_FAILED"):
                await fetch(untrusting, upstream.url + "m")
            await untrusting.close()

    run(main())
