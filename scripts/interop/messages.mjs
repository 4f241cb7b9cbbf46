// The messages both interop directions exchange; examples/deflate_check.rs builds
// the same set, so either implementation compresses the same data.

/** JSON-like ASCII text of exactly `len` bytes. */
export function json(len) {
  let text = '[';
  for (let i = 0; text.length < len; i++) {
    text +=
      `{"id":${i},"name":"user ${i % 97}","email":"user${i}@example.com",` +
      `"score":${(i * 7919) % 1000},"active":${i % 3 === 0}},`;
  }
  return text.slice(0, len);
}

/** `len` bytes of a multiplicative hash: no structure deflate can use. */
export function noise(len) {
  const bytes = Buffer.alloc(len);
  for (let i = 0; i < len; i++) bytes[i] = Math.imul(i + 1, 2654435761) >>> 24;
  return bytes;
}

/** Each message as `{ binary, data }`, `data` a Buffer of the exact bytes. */
export function messages() {
  const text = (s) => ({ binary: false, data: Buffer.from(s, 'utf8') });
  const binary = (b) => ({ binary: true, data: Buffer.from(b) });
  const counting = Buffer.alloc(1024);
  for (let i = 0; i < counting.length; i++) counting[i] = i % 256;
  return [
    text('hello, κόσμε 👋 ünïcödé 𝄞 ✓'),
    binary(counting),
    text(json(100 * 1024)),
    // The same again: under context takeover it refers back into the previous one.
    text(json(100 * 1024)),
    binary(noise(4096)),
    text('short, after the long ones'),
  ];
}
