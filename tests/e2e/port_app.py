"""A Jupyter-like app for the port proxy's tests, run inside a Docker run's container (the image
is built by test_ports.py from the host's python3): HTTP and a WebSocket echo on one port.

  GET  /                      a small HTML page
  ANY  /api/echo...           JSON of what arrived: method, raw target, headers, body
  GET  /big?n=N               N bytes (a repeating pattern), chunked
  GET  /cached                "cached page" with an ETag, 304 for If-None-Match: "v1"
  GET  /hold  /release        /hold answers only once /release was asked (a slow request)
  GET  /api/kernels/K/channels with Upgrade: websocket
                              a WebSocket that echoes every text and binary message

Usage: python3 port_app.py PORT
"""

import base64
import hashlib
import json
import socket
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAGIC = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
released = threading.Event()


def recv_exact(conn, n):
    out = b""
    while len(out) < n:
        b = conn.recv(n - len(out))
        if not b:
            raise ConnectionError("closed")
        out += b
    return out


def ws_send(conn, opcode, data):
    head = bytes([0x80 | opcode])
    n = len(data)
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + struct.pack(">H", n)
    else:
        head += bytes([127]) + struct.pack(">Q", n)
    conn.sendall(head + data)


def ws_echo(conn):
    message, opcode = b"", None
    while True:
        b0, b1 = recv_exact(conn, 2)
        op, fin = b0 & 0x0F, b0 & 0x80
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", recv_exact(conn, 2))[0]
        elif n == 127:
            n = struct.unpack(">Q", recv_exact(conn, 8))[0]
        mask = recv_exact(conn, 4) if b1 & 0x80 else b"\0\0\0\0"
        data = bytes(c ^ mask[i % 4] for i, c in enumerate(recv_exact(conn, n)))
        if op == 8:
            ws_send(conn, 8, data[:2])
            return
        if op == 9:
            ws_send(conn, 10, data)
            continue
        if op in (1, 2):
            message, opcode = data, op
        elif op == 0:
            message += data
        if fin and opcode:
            ws_send(conn, opcode, message)
            message, opcode = b"", None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body, ctype="application/json", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def echo(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        seen = dict(method=self.command, target=self.path, headers=list(self.headers.items()),
                    body=body.decode(errors="replace"))
        self.reply(200, json.dumps(seen).encode(),
                   extra=[("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Path=/"),
                          ("X-App", "jupyter-like")])

    def websocket(self):
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = base64.b64encode(hashlib.sha1((key + MAGIC).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        try:
            ws_echo(self.connection)
        except (ConnectionError, OSError):
            pass
        self.close_connection = True

    def do_GET(self):
        path = self.path.split("?")[0]
        if self.headers.get("Upgrade", "").lower() == "websocket" and \
                path.startswith("/api/kernels/") and path.endswith("/channels"):
            return self.websocket()
        if path == "/":
            return self.reply(200, b"<html><body>jupyter-like</body></html>", "text/html")
        if path.startswith("/api/echo") or path.startswith("/api/v2/"):
            return self.echo()
        if path == "/big":
            n = int(self.path.split("n=")[1])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            pattern = bytes(range(256)) * 256
            left = n
            while left:
                piece = pattern[:min(left, len(pattern) - 7)]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                left -= len(piece)
            self.wfile.write(b"0\r\n\r\n")
            return
        if path == "/cached":
            if self.headers.get("If-None-Match") == '"v1"':
                self.send_response(304)
                self.send_header("ETag", '"v1"')
                self.end_headers()
                return
            return self.reply(200, b"cached page", "text/plain", extra=[("ETag", '"v1"')])
        if path == "/hold":
            released.wait(120)
            return self.reply(200, b'{"held": "done"}')
        if path == "/release":
            released.set()
            return self.reply(200, b'{"released": true}')
        return self.reply(404, b'{"detail": "no such page in the app"}')

    do_POST = do_PUT = do_DELETE = do_PATCH = echo

    def do_HEAD(self):
        return self.reply(200, b"<html></html>", "text/html")


if __name__ == "__main__":
    ThreadingHTTPServer.address_family = socket.AF_INET
    server = ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Handler)
    print("listening", flush=True)
    server.serve_forever()
