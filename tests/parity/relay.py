"""A TCP relay on 127.0.0.1 to the local Docker engine's socket, for the parity test.

MaestroNG 0.8.3's docker-py 1.10.6 cannot use the unix socket with today's requests
("Not supported URL scheme http+docker"), so both tools reach the engine through this
relay, as a remote engine on plain TCP. Unlike socat it reads the requests it forwards,
so that it can stop two of them:

- `POST /containers/ID/start` is answered "204 No Content" without reaching the engine:
  the test compares containers as they are *created* (a refused start would make
  maestro remove the container it just made, as it should).
  Started, the cases' containers would publish their ports on the host (several cases
  publish the same port from several "ships", which are all this engine here) and run
  commands the test image does not have.
- a pull (`POST /images/create?fromImage=...`): the cases name images of registries on
  the network; the test tags its own image under those names instead. An import
  (`fromSrc`, how maestro makes its lock image) is forwarded.

A refused pull is an HTTP 500 with a JSON `message`, as the engine's own errors are;
both are counted. Requests are never pipelined by either client (each waits for the response
before the next request), so a refusal can be written to the client directly.
Standard library only.
"""

import json
import re
import socket
import threading
import urllib.parse

START = re.compile(r"^(/v[0-9.]+)?/containers/[^/?]+/start(\?.*)?$")
PULL = re.compile(r"^(/v[0-9.]+)?/images/create\?")


# What `refusal` returns for a start: answered as done, without reaching the engine.
FAKED = ""


def refusal(request_line):
    """The message the relay answers a refused request with, or None to forward it."""
    method, _, rest = request_line.partition(" ")
    target = rest.rsplit(" ", 1)[0]
    if method != "POST":
        return None
    if START.match(target):
        return FAKED
    if PULL.match(target):
        query = urllib.parse.parse_qs(target.split("?", 1)[1])
        if "fromImage" in query:
            return "parity test: pull of %s refused (no registry is reached)" % query["fromImage"][0]
    return None


class Relay:
    def __init__(self, socket_path="/var/run/docker.sock"):
        self.socket_path = socket_path
        self.refused = []  # (request line, message)
        self._lock = threading.Lock()
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(128)
        self.port = self._server.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self._closed = True
        try:
            self._server.close()
        except OSError:
            pass

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(self.socket_path)
        except OSError as e:
            body = json.dumps({"message": "parity relay: cannot reach %s: %s" % (self.socket_path, e)})
            client.sendall(_response(502, body))
            client.close()
            return
        threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()
        reader = _Reader(client)
        try:
            while True:
                head = reader.until(b"\r\n\r\n")
                if head is None:
                    break
                line = head.split(b"\r\n", 1)[0].decode("latin-1")
                headers = _headers(head)
                body = reader.body(headers)
                if body is None:
                    break
                message = refusal(line)
                if message is not None:
                    with self._lock:
                        self.refused.append((line, message))
                    if message == FAKED:
                        client.sendall(_response(204, ""))
                    else:
                        client.sendall(_response(500, json.dumps({"message": message})))
                    continue
                upstream.sendall(head + body)
                if "upgrade" in headers.get("connection", "").lower():
                    # A hijacked stream (attach, exec): raw bytes from here on.
                    rest = reader.rest()
                    if rest:
                        upstream.sendall(rest)
                    _pump(client, upstream)
                    return
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            client.close()
            upstream.close()


def _response(status, body):
    if status == 204:
        # No body, and so no Content-Length or Content-Type (RFC 9110, 15.3.5).
        return b"HTTP/1.1 204 No Content\r\n\r\n"
    reason = {500: "Internal Server Error", 502: "Bad Gateway"}[status]
    data = body.encode()
    return (
        "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        % (status, reason, len(data))
    ).encode() + data


def _headers(head):
    out = {}
    for raw in head.split(b"\r\n")[1:]:
        if b":" in raw:
            k, v = raw.split(b":", 1)
            out[k.decode("latin-1").strip().lower()] = v.decode("latin-1").strip()
    return out


def _pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    for s in (dst, src):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _Reader:
    """Buffered reads of an HTTP request stream."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def until(self, marker):
        while marker not in self.buf:
            if not self._fill():
                return None
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def exactly(self, n):
        while len(self.buf) < n:
            if not self._fill():
                return None
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def rest(self):
        out, self.buf = self.buf, b""
        return out

    def body(self, headers):
        """The raw body (as received, chunk framing included), or None at EOF."""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            out = b""
            while True:
                size_line = self.until(b"\r\n")
                if size_line is None:
                    return None
                out += size_line
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # Trailers, then an empty line.
                    while True:
                        trailer = self.until(b"\r\n")
                        if trailer is None:
                            return None
                        out += trailer
                        if trailer == b"\r\n":
                            return out
                chunk = self.exactly(size + 2)
                if chunk is None:
                    return None
                out += chunk
        n = int(headers.get("content-length", "0") or 0)
        return self.exactly(n) if n else b""
