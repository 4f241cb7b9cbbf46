// Node `ws` echo server for run.sh: text back as text, binary as binary.
//
// Usage: node echo_server.js 127.0.0.1:PORT [default|frugal]
//   default: perMessageDeflate: true (ws's defaults: context takeover, 15-bit windows)
//   frugal:  no context takeover either way, 10-bit windows, memLevel 4
'use strict';
const { WebSocketServer } = require('ws');

const [host, port] = (process.argv[2] || '127.0.0.1:9001').split(':');
const mode = process.argv[3] || 'default';
const perMessageDeflate = {
  default: true,
  frugal: {
    serverNoContextTakeover: true,
    clientNoContextTakeover: true,
    serverMaxWindowBits: 10,
    clientMaxWindowBits: 10,
    zlibDeflateOptions: { memLevel: 4 },
  },
}[mode];
if (perMessageDeflate === undefined) {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
const wss = new WebSocketServer({ host, port: Number(port), perMessageDeflate });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', (err) => console.error(err.message));
});
wss.on('listening', () => console.log(`ws ${mode} listening on ws://${host}:${port}`));
