#!/usr/bin/env node
// Interop check: Node `ws` clients against a BROADCAST server under test
// (a message from any client goes to every OTHER open client).
//
//   node node_broadcast.js ws://127.0.0.1:PORT [--clients 5] [--messages 20]
//        [--size 0] [--timeout 30] [--settle-ms 200]
//
// All clients connect first; then each sends M text messages "c<i>-m<j>"
// (padded to --size bytes). Every client must receive every other client's
// messages exactly once and in per-sender order, and none of its own.
// Prints one line per client and a summary; exits 1 on any failure or on
// time-out.
'use strict';

const WebSocket = require('ws');

function parseArgs(argv) {
  const opts = { url: null, clients: 5, messages: 20, size: 0, timeout: 30, settleMs: 200 };
  const names = { '--clients': 'clients', '--messages': 'messages', '--size': 'size',
                  '--timeout': 'timeout', '--settle-ms': 'settleMs' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (names[a] !== undefined) {
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
  return opts;
}

function usage(why) {
  console.error(`node_broadcast.js: ${why}\n` +
    'usage: node node_broadcast.js ws://127.0.0.1:PORT [--clients N] [--messages M] ' +
    '[--size BYTES] [--timeout S] [--settle-ms MS]');
  process.exit(2);
}

const opts = parseArgs(process.argv.slice(2));
const N = opts.clients;
const M = opts.messages;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// One record per client: what it expects next from each sender, and errors.
const clients = [];
for (let i = 0; i < N; i++) {
  clients.push({ id: i, ws: null, next: new Array(N).fill(0), received: 0, errors: [], closeCode: null });
}

function payload(i, j) {
  const base = `c${i}-m${j}`;
  // Padding goes after a ':' so the id can be parsed back from any size.
  return opts.size > base.length ? base + ':' + 'x'.repeat(opts.size - base.length - 1) : base;
}

function onMessage(c, data, isBinary) {
  const text = data.toString();
  const m = /^c(\d+)-m(\d+)(?::x*)?$/.exec(text);
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
  } else if (j !== c.next[sender]) {
    // A gap means a lost or reordered message; a repeat means a duplicate.
    c.errors.push(`from c${sender}: expected m${c.next[sender]}, got m${j}`);
    c.next[sender] = Math.max(c.next[sender], j + 1);
  } else {
    c.next[sender] = j + 1;
  }
  c.received++;
}

const expectedPerClient = (N - 1) * M;
const complete = (c) => c.next.every((n, k) => k === c.id || n === M);

function connect(c) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(opts.url, { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
    c.ws = ws;
    ws.on('open', resolve);
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
      console.log(`ok client c${c.id}: received ${c.received}/${expectedPerClient}, close code ${c.closeCode}`);
    }
  }
  if (phase) console.log(`stopped during: ${phase}`);
  console.log(`node_broadcast: ${N} clients x ${M} messages to ${opts.url}`);
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
