"""Serve moto's AWS API emulator on loopback, one request at a time.

moto's default threaded server does not make DynamoDB conditional updates atomic under concurrency (measured: 50
concurrent `ADD c :1 IF c < 3` granted 4 in some rounds). DynamoDB itself is atomic, and the quota tests depend on
that property, so the emulator is served with werkzeug's server with threading off: requests queue and are handled
serially, which is what makes a conditional write atomic here.

Usage: python moto_server.py PORT_FILE
Binds 127.0.0.1 on a free port, writes the port to PORT_FILE once listening, and serves until killed.
"""

import socket
import sys

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server


def main() -> None:
    port_file = sys.argv[1]
    app = DomainDispatcherApplication(create_backend_app)
    # port 0: the kernel picks a free port; no race between choosing and binding.
    server = make_server("127.0.0.1", 0, app, threaded=False, processes=1)
    port = server.socket.getsockname()[1]
    with open(port_file + ".tmp", "w") as f:
        f.write(str(port))
    import os

    os.replace(port_file + ".tmp", port_file)
    server.serve_forever()


if __name__ == "__main__":
    socket.setdefaulttimeout(None)
    main()
