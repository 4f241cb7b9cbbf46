// Usage: node ws_client.mjs ws://127.0.0.1:PORT/
//
// Connects with Node's ws (permessage-deflate on, every message compressed), sends
// the messages of messages.mjs one at a time, requires each echo to come back byte
// for byte with the same type, and requires permessage-deflate to have been
// negotiated. Half-way it pauses for longer than fastws's default hibernate_after
// (1 s), so the server's zlib contexts hibernate and the messages after it travel
// on contexts primed with the history while ws's never paused. Exits 0 on success,
// 1 on any failure or after 30 s.
import WebSocket from 'ws';
import { messages } from './messages.mjs';

const url = process.argv[2];
if (!url) {
  console.error('usage: node ws_client.mjs ws://127.0.0.1:PORT/');
  process.exit(2);
}

function fail(reason) {
  console.error(`ws_client: FAIL: ${reason}`);
  process.exit(1);
}

setTimeout(() => fail('timed out after 30 s'), 30_000);

const expected = messages();
let next = 0;
// After this many echoes, a pause the server's contexts hibernate in.
const pauseAt = Math.floor(expected.length / 2);
const pauseMs = 1500;
const ws = new WebSocket(url, { perMessageDeflate: { threshold: 0 } });

ws.on('upgrade', (response) => {
  console.log(`ws_client: server answered ${response.headers['sec-websocket-extensions'] ?? '(no extensions)'}`);
});

ws.on('open', () => {
  if (!ws.extensions.split(',').includes('permessage-deflate')) {
    fail(`permessage-deflate not negotiated (extensions: ${JSON.stringify(ws.extensions)})`);
  }
  send();
});

function send() {
  const { binary, data } = expected[next];
  ws.send(data, { binary, compress: true }, (err) => err && fail(`send: ${err.message}`));
}

ws.on('message', (data, isBinary) => {
  const want = expected[next];
  if (isBinary !== want.binary) {
    fail(`message ${next}: expected ${want.binary ? 'binary' : 'text'}, got ${isBinary ? 'binary' : 'text'}`);
  }
  if (!Buffer.from(data).equals(want.data)) {
    fail(`message ${next}: echo of ${want.data.length} bytes differs (got ${data.length} bytes)`);
  }
  next += 1;
  if (next === pauseAt) {
    console.log(`ws_client: pausing ${pauseMs} ms after ${next} messages (the server hibernates)`);
    setTimeout(send, pauseMs);
  } else if (next < expected.length) {
    send();
  } else {
    ws.close(1000, 'done');
  }
});

ws.on('close', (code, reason) => {
  if (next < expected.length) fail(`closed early with ${code} ${reason}`);
  if (code !== 1000) fail(`closed with ${code} ${reason}`);
  console.log(`ws_client: ${expected.length} messages echoed intact over permessage-deflate`);
  process.exit(0);
});

ws.on('error', (err) => fail(err.message));
