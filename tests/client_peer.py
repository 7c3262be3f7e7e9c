"""A small HTTP/1.1 server for eddy's client tests (tests/client_real.rs).

Prints "PORT <n>" on its first line, then serves until killed. Paths:
  /chunked        chunked body in several writes (with pauses)
  /redirect-rel   302 to /target (relative)
  /redirect-abs   301 to http://127.0.0.1:<port>/target (absolute)
  /see-other      303 to /target (a POST becomes a GET)
  /loop           302 to /loop
  /target         200 "target <method> <body length>"
  /never          reads the request and never answers
  /reset          closes with SO_LINGER 0 (an RST) before answering
  /close-early    promises 100 bytes, sends 10, closes
  /gzip           gzip body with Content-Encoding: gzip
  anything else   200 keep-alive echo of method and path
"""

import gzip
import socket
import struct
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def send(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def route(self):
        body = self.body()
        path = self.path
        port = self.server.server_address[1]
        if path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in [b"first,", b"second,", b"third"]:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
                time.sleep(0.02)
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/redirect-rel":
            self.send(302, b"", [("Location", "/target")])
        elif path == "/redirect-abs":
            self.send(301, b"", [("Location", "http://127.0.0.1:%d/target" % port)])
        elif path == "/see-other":
            self.send(303, b"", [("Location", "target")])
        elif path == "/loop":
            self.send(302, b"", [("Location", "/loop")])
        elif path == "/target":
            self.send(200, b"target %s %d" % (self.command.encode(), len(body)))
        elif path == "/never":
            time.sleep(60)
        elif path == "/reset":
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            self.connection.close()
            self.close_connection = True
        elif path == "/close-early":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            self.close_connection = True
        elif path == "/gzip":
            data = gzip.compress(b"compressed " * 1000)
            self.send(200, data, [("Content-Encoding", "gzip")])
        else:
            self.send(200, b"%s %s" % (self.command.encode(), path.encode()))

    do_GET = do_POST = do_PUT = route


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print("PORT %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
