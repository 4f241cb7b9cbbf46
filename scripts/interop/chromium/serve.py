"""Serves the interop page and prints what it reports: `RESULT <text>` per /result?<text>.

Usage: python3 serve.py PORT   (serves this folder on 127.0.0.1:PORT)
"""

import http.server
import os
import sys
import urllib.parse


class Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/result?"):
            print("RESULT", urllib.parse.unquote(self.path[len("/result?"):]), flush=True)
            self.send_response(204)
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, *args):
        pass


os.chdir(os.path.dirname(os.path.abspath(__file__)))
print("listening", flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
