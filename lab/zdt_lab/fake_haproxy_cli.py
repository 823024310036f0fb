"""A fake HAProxy CLI on a unix socket for the haproxy_runtime and haproxy_master unit tests."""
from zdt_lab.unix_socket_server import UnixSocketServer


class FakeCLI(UnixSocketServer):
    """A unix-socket server speaking the HAProxy CLI's prompt mode; replies come from a dict or a callable."""

    def __init__(self, replies, prompt='> ', first_prompt='\n> ', split=False):
        self.replies = replies
        self.prompt = prompt
        self.first_prompt = first_prompt
        self.split = split
        self.received = []
        super().__init__(prefix='zdt-fakecli-')

    def _send(self, conn, data):
        data = data.encode()
        if self.split:   # deliver byte by byte: the client must reassemble replies
            for i in range(len(data)):
                conn.sendall(data[i:i + 1])
        else:
            conn.sendall(data)

    def _handle(self, conn):
        buf = b''
        with conn:
            while True:
                try:
                    chunk = conn.recv(4096)
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                while b'\n' in buf:
                    line, buf = buf.split(b'\n', 1)
                    line = line.decode()
                    self.received.append(line)
                    if line == 'prompt':
                        self._send(conn, self.first_prompt)
                        continue
                    if line == 'quit':
                        return
                    reply = self.replies(line) if callable(self.replies) else self.replies.get(line, 'Unknown command, but maybe...\n')
                    if reply is None:   # hang up without a reply
                        return
                    if reply == 'HANG':
                        continue
                    self._send(conn, reply + '\n' + self.prompt)
