// Usage: node ws_server.mjs PORT
//
// An echo server on 127.0.0.1:PORT built on Node's ws, with permessage-deflate on
// (ws's defaults, every message compressed): text comes back as text, binary as
// binary. Prints "listening" once it accepts connections.
import { WebSocketServer } from 'ws';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node ws_server.mjs PORT');
  process.exit(2);
}

const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: { threshold: 0 } });

wss.on('listening', () => console.log(`ws_server: listening on ws://127.0.0.1:${port}/`));

wss.on('headers', (headers, request) => {
  const offer = request.headers['sec-websocket-extensions'] ?? '(none)';
  const answer = headers.find((h) => h.toLowerCase().startsWith('sec-websocket-extensions')) ?? '(none)';
  console.log(`ws_server: offer ${offer}; answer ${answer}`);
});

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary, compress: true }));
  ws.on('error', (err) => console.error(`ws_server: ${err.message}`));
  ws.on('close', (code) => console.log(`ws_server: connection closed with ${code}`));
});

wss.on('error', (err) => {
  console.error(`ws_server: ${err.message}`);
  process.exit(1);
});
