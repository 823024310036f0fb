"""A unix-socket server for tests: it accepts on a private path, one thread per connection."""
import os
import shutil
import socket
import tempfile
import threading


class UnixSocketServer:
    """Listens on ``self.path``; a subclass says what one connection does in ``_handle(conn)``."""

    def __init__(self, prefix='zdt-sock-'):
        self.connections = 0
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.path = os.path.join(self.dir, 'admin.sock')
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(5)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _peer = self.sock.accept()
            except OSError:
                return      # closed
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        raise NotImplementedError

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)
