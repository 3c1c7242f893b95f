// The packed forms in which requests and decisions cross the boundary of
// Warden's guest (`wit/warden.wit`: `request.head`, `decision.forward`,
// `decision.reply`), line for line as `warden_engine::packed` has them in
// Rust. Built of items (a little-endian u32 length, then the bytes; an
// absent optional item is 0xffffffff alone) and header blocks (the number of
// headers, each name's and value's length, all little-endian u32s, then all
// the names' and values' bytes back to back). A request head is a table of
// lengths, then all its text. Anything that does not read this way is an
// Error.

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

const ABSENT = 0xffffffff;

/** Builds a packed request head: u32 LE lengths, then raw text. */
class Packer {
  #parts = [];
  #size = 0;

  #push(bytes) {
    this.#parts.push(bytes);
    this.#size += bytes.length;
  }

  u32(n) {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, n, true);
    this.#push(b);
  }

  /** Raw bytes. */
  raw(bytes) {
    this.#push(bytes);
  }

  bytes() {
    const out = new Uint8Array(this.#size);
    let at = 0;
    for (const p of this.#parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

/** Reads the packed forms; anything that does not read is an Error. */
class Unpacker {
  #buf;
  #view;
  at = 0;

  constructor(buf) {
    this.#buf = buf;
    this.#view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get done() {
    return this.at === this.#buf.length;
  }

  #take(n) {
    if (this.at + n > this.#buf.length) throw new Error(`truncated at byte ${this.at}`);
    const bytes = this.#buf.subarray(this.at, this.at + n);
    this.at += n;
    return bytes;
  }

  u8() {
    return this.#take(1)[0];
  }

  u16() {
    const b = this.#take(2);
    return b[0] | (b[1] << 8);
  }

  u32() {
    if (this.at + 4 > this.#buf.length) throw new Error(`truncated at byte ${this.at}`);
    const v = this.#view.getUint32(this.at, true);
    this.at += 4;
    return v;
  }

  /** An optional item's bytes, or `undefined`. */
  opt() {
    const n = this.u32();
    return n === ABSENT ? undefined : this.#take(n);
  }

  item() {
    const b = this.opt();
    if (b === undefined) throw new Error(`absent at byte ${this.at - 4}, where a value is required`);
    return b;
  }

  optText() {
    const b = this.opt();
    return b === undefined ? undefined : strictUtf8.decode(b);
  }

  text() {
    return strictUtf8.decode(this.item());
  }

  /** A header block, the whole of `bytes`: [[name, value], …]. */
  static headers(bytes) {
    const r = new Unpacker(bytes);
    const lens = [];
    for (let n = r.u32(); n > 0; n--) lens.push([r.u32(), r.u32()]);
    const out = lens.map(([n, v]) => [strictUtf8.decode(r.#take(n)), strictUtf8.decode(r.#take(v))]);
    r.finish();
    return out;
  }

  headerItem() {
    return Unpacker.headers(this.item());
  }

  finish() {
    if (!this.done) throw new Error(`extra bytes from byte ${this.at}`);
  }
}

/**
 * A request as the WIT `request` record: its head packed into one buffer
 * (the lengths of method, scheme, authority, path, query, route, service,
 * peer and trusted user — 0xffffffff: absent — and the headers' table, then
 * all of that text), the rest beside it.
 * @param {{ method?: string, scheme?: string, authority?: string, path?: string,
 *   query?: string, headers?: Iterable<[string, string]>, body?: Uint8Array,
 *   route?: string, service?: string, peer?: string, trustedUser?: string,
 *   proxyTerminated?: boolean, keysRefreshed?: boolean, fetched?: object }} r
 */
export function packRequest(r) {
  const fields = [r.method ?? "GET", r.scheme ?? "http", r.authority ?? "localhost", r.path ?? "/", r.query ?? ""]
    .concat([r.route, r.service, r.peer, r.trustedUser])
    .map((f) => (f === undefined || f === null ? undefined : utf8.encode(f)));
  const headers = [...(r.headers ?? [])].map(([n, v]) => [utf8.encode(n), utf8.encode(v)]);
  const p = new Packer();
  for (const f of fields) p.u32(f === undefined ? ABSENT : f.length);
  p.u32(headers.length);
  for (const [n, v] of headers) {
    p.u32(n.length);
    p.u32(v.length);
  }
  for (const f of fields) if (f !== undefined) p.raw(f);
  for (const [n, v] of headers) {
    p.raw(n);
    p.raw(v);
  }
  return {
    head: p.bytes(),
    proxyTerminated: r.proxyTerminated ?? false,
    body: r.body,
    keysRefreshed: r.keysRefreshed ?? false,
    fetched: r.fetched,
  };
}

const UPSTREAM_TAGS = [undefined, "echo", "http", "h2c"];

/** A packed `decision.forward`, as jco would map the record. */
export function unpackForward(bytes) {
  const r = new Unpacker(bytes);
  const [consumer, route, path, query] = [r.optText(), r.optText(), r.optText(), r.optText()];
  const body = r.opt();
  const at = r.at;
  const tag = r.u8();
  if (tag >= UPSTREAM_TAGS.length) throw new Error(`unknown tag at byte ${at}`);
  let upstream;
  if (tag === 1) upstream = { tag: "echo" };
  if (tag >= 2) upstream = { tag: UPSTREAM_TAGS[tag], val: { authority: r.text(), basePath: r.text() } };
  const setHeaders = r.headerItem();
  const removeHeaders = [];
  for (let n = r.u32(); n > 0; n--) removeHeaders.push(r.text());
  r.finish();
  return { setHeaders, removeHeaders, consumer, route, upstream, path, query, body };
}

/** A packed `decision.reply`: `{ status, headers, body, reason }`. */
export function unpackReply(bytes) {
  const r = new Unpacker(bytes);
  const status = r.u16();
  const reason = r.text();
  const body = r.item();
  const headers = r.headerItem();
  r.finish();
  return { status, headers, body, reason };
}
