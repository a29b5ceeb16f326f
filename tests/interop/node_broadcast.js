#!/usr/bin/env node
// Interop check: Node `ws` clients against a BROADCAST server under test
// (a message from any client goes to every OTHER open client).
//
//   node node_broadcast.js ws://127.0.0.1:PORT [--clients 5] [--messages 20]
//        [--size 0, or 2048 with --deflate] [--timeout 30] [--settle-ms 200]
//        [--deflate [--expect-param NAME]... [--reject-param NAME]...]
//        [--ca-file PEM]
//
// All clients connect first; then each sends M text messages "c<i>-m<j>"
// (followed by JSON-like text up to --size bytes). Every client must receive
// every other client's messages exactly once, byte for byte, in per-sender
// order, and none of its own. Prints one line per client and a summary;
// exits 1 on any failure or on time-out.
//
// Without --deflate the clients offer no extension (and none may be
// accepted). With --deflate they offer permessage-deflate (ws defaults:
// client_max_window_bits, context takeover unless the server says otherwise)
// and compress every message (threshold 0); each client must then see
// permessage-deflate negotiated, and must have read fewer bytes off its
// socket than it received in messages (at most 75%): proof that the server
// compressed what it broadcast. --size defaults to 2048 with --deflate, so
// messages are well above the server's threshold. --expect-param NAME (with
// --deflate, repeatable) requires NAME in the server's permessage-deflate
// answer, e.g. server_no_context_takeover; --reject-param NAME forbids it.
//
// With a wss:// URL the clients speak TLS, verifying the server's
// certificate and name against --ca-file (a test CA; without it, Node's
// default roots), and each must see its socket encrypted. Wire bytes are
// then what TLS delivered to ws (decrypted), so the 75% bound still judges
// the server's compression, not TLS framing.
'use strict';

const fs = require('node:fs');
const WebSocket = require('ws');

function parseArgs(argv) {
  const opts = { url: null, clients: 5, messages: 20, size: null, timeout: 30, settleMs: 200,
                 deflate: false, expectParams: [], rejectParams: [], caFile: null };
  const names = { '--clients': 'clients', '--messages': 'messages', '--size': 'size',
                  '--timeout': 'timeout', '--settle-ms': 'settleMs' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--deflate') {
      opts.deflate = true;
    } else if (a === '--ca-file') {
      const v = argv[++i];
      if (!v || v.startsWith('--')) usage('missing PEM after --ca-file');
      opts.caFile = v;
    } else if (a === '--expect-param' || a === '--reject-param') {
      const v = argv[++i];
      if (!v || v.startsWith('--')) usage(`missing NAME after ${a}`);
      (a === '--expect-param' ? opts.expectParams : opts.rejectParams).push(v);
    } else if (names[a] !== undefined) {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v < 0) usage(`bad value for ${a}`);
      opts[names[a]] = v;
    } else if (!a.startsWith('--') && opts.url === null) {
      opts.url = a;
    } else {
      usage(`unknown argument ${a}`);
    }
  }
  if (!opts.url) usage('missing URL');
  if (opts.clients < 2) usage('need at least 2 clients');
  if ((opts.expectParams.length || opts.rejectParams.length) && !opts.deflate) {
    usage('--expect-param/--reject-param need --deflate');
  }
  if (opts.caFile && !opts.url.startsWith('wss://')) usage('--ca-file is for wss:// URLs');
  if (opts.size === null) opts.size = opts.deflate ? 2048 : 0;
  return opts;
}

function usage(why) {
  console.error(`node_broadcast.js: ${why}\n` +
    'usage: node node_broadcast.js ws://127.0.0.1:PORT [--clients N] [--messages M] ' +
    '[--size BYTES] [--timeout S] [--settle-ms MS] [--deflate [--expect-param NAME]... [--reject-param NAME]...] [--ca-file PEM]');
  process.exit(2);
}

const opts = parseArgs(process.argv.slice(2));
const N = opts.clients;
const M = opts.messages;
const secure = opts.url.startsWith('wss://');
// TLS trust for wss://: only the given CA (the test run's), names checked.
const ca = opts.caFile ? fs.readFileSync(opts.caFile) : undefined;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// One record per client: what it expects next from each sender, and errors.
const clients = [];
for (let i = 0; i < N; i++) {
  clients.push({ id: i, ws: null, next: new Array(N).fill(0), received: 0, errors: [], closeCode: null,
                 extensions: null, deflating: false, socket: null, readAtOpen: 0, bytesReceived: 0, wireRead: null });
}

// Deterministic pseudo-random JSON-like text: records with repeating keys and
// varying values, about as compressible as real API traffic.
function jsonLike(size, seed) {
  let x = (seed * 2654435761 + 1) >>> 0;
  const rnd = (n) => { x = (Math.imul(x, 1103515245) + 12345) >>> 0; return (x >>> 8) % n; };
  const names = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf'];
  let s = '[';
  for (let k = 0; s.length < size; k++) {
    s += `{"id":${k},"user":"${names[rnd(7)]}-${rnd(10000)}","score":${rnd(1000)}.${rnd(100)},` +
         `"active":${rnd(2) ? 'true' : 'false'},"tags":["${names[rnd(7)]}","${names[rnd(7)]}"]},`;
  }
  return s.slice(0, size);
}

function payload(i, j) {
  const base = `c${i}-m${j}`;
  // Padding goes after a ':' so the id can be parsed back from any size.
  return opts.size > base.length ? base + ':' + jsonLike(opts.size - base.length - 1, i * 100003 + j) : base;
}

function onMessage(c, data, isBinary) {
  const text = data.toString();
  c.bytesReceived += data.length;
  const m = /^c(\d+)-m(\d+)(?::[^]*)?$/.exec(text);
  if (isBinary || !m) {
    c.errors.push(`unexpected ${isBinary ? 'binary' : 'text'} message ${JSON.stringify(text.slice(0, 40))}`);
    return;
  }
  const sender = Number(m[1]);
  const j = Number(m[2]);
  if (sender === c.id) {
    c.errors.push(`received its own message c${sender}-m${j}`);
  } else if (sender >= N || j >= M) {
    c.errors.push(`message from unknown sender/index c${sender}-m${j}`);
  } else if (text !== payload(sender, j)) {
    const want = payload(sender, j);
    let at = 0;
    while (at < text.length && text[at] === want[at]) at++;
    c.errors.push(`c${sender}-m${j} differs from what was sent at char ${at} (${text.length} chars, expected ${want.length})`);
    c.next[sender] = Math.max(c.next[sender], j + 1);
  } else if (j !== c.next[sender]) {
    // A gap means a lost or reordered message; a repeat means a duplicate.
    c.errors.push(`from c${sender}: expected m${c.next[sender]}, got m${j}`);
    c.next[sender] = Math.max(c.next[sender], j + 1);
  } else {
    c.next[sender] = j + 1;
  }
  c.received++;
}

// After the handshake: the extensions in use must match what was asked for.
function checkNegotiated(c) {
  const inUse = c.ws.extensions;  // names of the extensions in use, comma-separated
  if (!opts.deflate) {
    if (inUse !== '') c.errors.push(`extensions in use without an offer: ${JSON.stringify(inUse)}`);
    return;
  }
  if (!inUse.split(',').includes('permessage-deflate')) {
    c.errors.push(`permessage-deflate not negotiated (Sec-WebSocket-Extensions: ${JSON.stringify(c.extensions)})`);
    return;
  }
  const params = c.extensions.split(';').slice(1).map((p) => p.split('=')[0].trim());
  for (const p of opts.expectParams) {
    if (!params.includes(p)) c.errors.push(`${p} missing from ${JSON.stringify(c.extensions)}`);
  }
  for (const p of opts.rejectParams) {
    if (params.includes(p)) c.errors.push(`${p} present in ${JSON.stringify(c.extensions)}`);
  }
  c.deflating = true;
}

const expectedPerClient = (N - 1) * M;
const complete = (c) => c.next.every((n, k) => k === c.id || n === M);

function connect(c) {
  return new Promise((resolve, reject) => {
    // threshold 0: compress every message; clientNoContextTakeover is left
    // unset so the server may ask for it (ws rejects it only when false).
    const perMessageDeflate = opts.deflate ? { threshold: 0 } : false;
    const ws = new WebSocket(opts.url, { perMessageDeflate, maxPayload: 64 * 1024 * 1024, ca });
    c.ws = ws;
    ws.on('upgrade', (res) => {
      c.extensions = res.headers['sec-websocket-extensions'] || '';
      c.socket = res.socket;
    });
    ws.on('open', () => {
      // Anything read so far is the handshake; count message bytes from here.
      c.readAtOpen = c.socket ? c.socket.bytesRead : 0;
      if (secure && !(c.socket && c.socket.encrypted)) c.errors.push('wss:// socket is not encrypted');
      if (secure && c.id === 0 && c.socket && c.socket.encrypted) {
        const cipher = c.socket.getCipher();
        console.log(`TLS (c0): ${c.socket.getProtocol()}, ${cipher && cipher.name}, ` +
          `authorized ${c.socket.authorized}, ALPN ${c.socket.alpnProtocol || 'none'}`);
      }
      checkNegotiated(c);
      resolve();
    });
    ws.on('error', (e) => { c.errors.push(`socket error: ${e.message}`); reject(e); });
    ws.on('message', (data, isBinary) => onMessage(c, data, isBinary));
    ws.on('close', (code) => { c.closeCode = code; });
  });
}

async function waitFor(cond, ms) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await sleep(10);
  }
  return true;
}

function summary(phase) {
  let failed = 0;
  for (const c of clients) {
    const missing = [];
    c.next.forEach((n, k) => { if (k !== c.id && n < M) missing.push(`c${k}:${M - n}`); });
    if (missing.length) c.errors.push(`missing messages (sender:count) ${missing.join(' ')}`);
    if (c.errors.length) {
      failed++;
      console.log(`FAIL client c${c.id}: received ${c.received}/${expectedPerClient}; ${c.errors.slice(0, 5).join('; ')}` +
        (c.errors.length > 5 ? `; ... ${c.errors.length - 5} more` : ''));
    } else {
      console.log(`ok client c${c.id}: received ${c.received}/${expectedPerClient}, close code ${c.closeCode}` +
        (opts.deflate ? `, ${c.bytesReceived} message bytes as ${c.wireRead} read` : ''));
    }
  }
  if (phase) console.log(`stopped during: ${phase}`);
  if (clients[0].extensions !== null) {
    console.log(`negotiated extensions (c0): ${clients[0].extensions || 'none'}`);
  }
  console.log(`node_broadcast: ${N} clients x ${M} messages of ${opts.size || 'minimal'} bytes` +
    `${opts.deflate ? ' with permessage-deflate' : ''} to ${opts.url}`);
  console.log(`node_broadcast: ${N - failed} passed, ${failed} failed`);
  return failed;
}

let phase = 'connect';
// Hard bound on the whole run, whatever the server does.
const watchdog = setTimeout(() => {
  console.log(`FAIL timed out after ${opts.timeout}s`);
  summary(phase);
  process.exit(1);
}, opts.timeout * 1000);

(async () => {
  const t0 = Date.now();
  try {
    await Promise.all(clients.map(connect));
  } catch (e) {
    console.log(`FAIL connect: ${e.message}`);
    process.exit(1);
  }
  // The server may register a connection just after its handshake reply;
  // give it a moment so no early broadcast misses a late-registered client.
  await sleep(opts.settleMs);

  phase = 'send';
  for (let j = 0; j < M; j++) {
    for (const c of clients) c.ws.send(payload(c.id, j));
    // Yield now and then so sending and receiving interleave.
    if (j % 10 === 9) await sleep(0);
  }

  phase = 'receive';
  await waitFor(() => clients.every(complete), opts.timeout * 1000);
  // Linger briefly: anything arriving now is a duplicate or an own echo.
  await sleep(opts.settleMs);
  const elapsed = (Date.now() - t0) / 1000;
  // Bytes read off each socket since the handshake (frame headers included)
  // against message bytes delivered: the server's compression, measured.
  for (const c of clients) {
    c.wireRead = c.socket ? c.socket.bytesRead - c.readAtOpen : null;
    // (Not judged when deflate was not negotiated: that is reported already.)
    if (c.deflating && c.bytesReceived > 0 && !(c.wireRead <= 0.75 * c.bytesReceived)) {
      c.errors.push(`server did not compress: ${c.bytesReceived} message bytes took ${c.wireRead} bytes on the wire`);
    }
  }

  phase = 'close';
  for (const c of clients) c.ws.close(1000, 'done');
  await waitFor(() => clients.every((c) => c.closeCode !== null), 5000);
  for (const c of clients) {
    if (c.closeCode !== 1000) c.errors.push(`close code ${c.closeCode}, expected 1000`);
  }
  clearTimeout(watchdog);
  console.log(`delivered ${clients.reduce((s, c) => s + c.received, 0)}/${N * expectedPerClient} messages in ${elapsed.toFixed(2)}s`);
  process.exit(summary(null) ? 1 : 0);
})();
