// Usage: node fanout_ws.mjs ADDR [--deflate]   (for example 127.0.0.1:19400)
//
// The fan-out benchmark's Node.js server (issue 16; see ../src/fanout.rs):
// every data message a connection sends goes to every other connection, with
// the broadcast loop of ws's README ("Server broadcast", to every client but
// the sender): ws frames and sends the message once per subscriber.
//
// With --deflate, `perMessageDeflate: true`: every option at the default its
// README's "WebSocket compression" section lists. That is one zlib deflate
// stream per connection, so each message is compressed again for every
// subscriber, in libuv's thread pool (at most 10 at once, its
// `concurrencyLimit`). ws's `threshold` (1024 bytes: smaller messages go out
// uncompressed) applies only under server_no_context_takeover, which ws does
// not ask for by default and Chromium's offer does not carry: here ws keeps
// the context and compresses every message, 16 B ones too. fanout.sh pins the
// whole process, thread pool included, to one CPU, and /proc counts all of
// its threads.
import { WebSocketServer, WebSocket } from 'ws';

const [addr, flag, ...rest] = process.argv.slice(2);
const at = addr?.lastIndexOf(':') ?? -1;
if (at < 0 || rest.length > 0 || (flag !== undefined && flag !== '--deflate')) {
  console.error('usage: node fanout_ws.mjs ADDR [--deflate]');
  process.exit(2);
}
const host = addr.slice(0, at);
const port = Number(addr.slice(at + 1));

const wss = new WebSocketServer({
  host,
  port,
  perMessageDeflate: flag === '--deflate',
  // As the Rust servers' MAX_MESSAGE.
  maxPayload: 64 << 20,
});

wss.on('connection', (ws) => {
  ws.on('error', console.error);
  ws.on('message', (data, isBinary) => {
    wss.clients.forEach((client) => {
      if (client !== ws && client.readyState === WebSocket.OPEN) {
        client.send(data, { binary: isBinary });
      }
    });
  });
});

wss.on('listening', () => console.error(`fanout_ws on ${addr}, perMessageDeflate ${flag === '--deflate'}`));
wss.on('error', (err) => {
  console.error(`fanout_ws: ${err.message}`);
  process.exit(1);
});
