#!/usr/bin/env node
// Interop server: a Node `ws` ECHO server for our Rust client (the Node
// counterpart of py_server.py, with the same output, so run.sh asserts both
// the same way).
//
//   node node_server.js --port PORT [--duration 120] [--no-compression]
//        [--tls-cert PEM --tls-key PEM]
//
// Listens on 127.0.0.1 only. Prints "listening PORT" (or "listening PORT
// (wss)" with TLS; the real port, useful with --port 0) once it accepts
// connections, echoes every message back with its type, and exits after
// --duration seconds or on SIGTERM/SIGINT. With --tls-cert and --tls-key it
// serves wss:// from an https server (the certificate chain and key from
// those PEM files).
//
// permessage-deflate is accepted (ws' server defaults, threshold 1024)
// unless --no-compression. For each connection it prints two lines:
//
//   conn N extensions: permessage-deflate; ... (offered: permessage-deflate; ...)
//   conn N closed 1000: received M messages (C compressed), B bytes as W on the wire
//
// `extensions:` is the server's Sec-WebSocket-Extensions answer, or `none`;
// `offered:` the client's request header, or `none`. "Compressed" counts
// messages that went through the negotiated extension's decompress (RSV1
// set); B is message bytes after inflating, W the frame payload bytes as
// they arrived.
'use strict';

const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');
const { WebSocketServer } = require('ws');

const MiB = 1024 * 1024;

function usage(why) {
  console.error(`node_server.js: ${why}\n` +
    'usage: node node_server.js --port PORT [--duration S] [--no-compression] [--tls-cert PEM --tls-key PEM]');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { port: null, duration: 120, compression: true, tlsCert: null, tlsKey: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--no-compression') {
      opts.compression = false;
    } else if (a === '--port' || a === '--duration') {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v < 0) usage(`bad value for ${a}`);
      opts[a.slice(2)] = v;
    } else if (a === '--tls-cert' || a === '--tls-key') {
      const v = argv[++i];
      if (!v) usage(`missing PEM after ${a}`);
      opts[a === '--tls-cert' ? 'tlsCert' : 'tlsKey'] = v;
    } else {
      usage(`unknown argument ${a}`);
    }
  }
  if (opts.port === null) usage('missing --port');
  if (!opts.tlsCert !== !opts.tlsKey) usage('--tls-cert and --tls-key go together');
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const tls = opts.tlsCert !== null;
const server = tls
  ? https.createServer({ cert: fs.readFileSync(opts.tlsCert), key: fs.readFileSync(opts.tlsKey),
                         minVersion: 'TLSv1.2' })
  : http.createServer();
server.on('request', (req, res) => { res.writeHead(426); res.end('WebSocket only\n'); });

const wss = new WebSocketServer({
  server,
  maxPayload: 64 * MiB,
  perMessageDeflate: opts.compression,
});

// The answer's Sec-WebSocket-Extensions, kept on the request until the
// connection event (both carry the same request object).
wss.on('headers', (headers, req) => {
  const ext = headers.find((h) => /^sec-websocket-extensions:/i.test(h));
  req.edgewsAnswer = ext ? ext.slice(ext.indexOf(':') + 1).trim() : 'none';
});

let nextId = 1;
wss.on('connection', (ws, req) => {
  const id = nextId++;
  const r = { msgs: 0, compressed: 0, bytes: 0, wire: 0, pendingCompressed: 0 };
  // Hook the negotiated extension's decompress: every frame of a compressed
  // message passes through it (fin on the last one) before the message
  // event, in order.
  const pmd = ws._extensions && ws._extensions['permessage-deflate'];
  if (pmd) {
    const decompress = pmd.decompress.bind(pmd);
    pmd.decompress = (data, fin, cb) => {
      r.wire += data.length;
      if (fin) r.pendingCompressed++;
      return decompress(data, fin, cb);
    };
  }
  console.log(`conn ${id} extensions: ${req.edgewsAnswer || 'none'} ` +
    `(offered: ${req.headers['sec-websocket-extensions'] || 'none'})`);
  ws.on('message', (data, isBinary) => {
    r.msgs++;
    r.bytes += data.length;
    if (r.pendingCompressed > 0) {
      r.pendingCompressed--;
      r.compressed++;
    } else {
      r.wire += data.length;
    }
    ws.send(data, { binary: isBinary });
  });
  ws.on('error', () => {});  // the close line says how it ended
  ws.on('close', (code) => {
    console.log(`conn ${id} closed ${code}: received ${r.msgs} messages (${r.compressed} compressed), ` +
      `${r.bytes} bytes as ${r.wire} on the wire`);
  });
});

function stop() {
  for (const ws of wss.clients) ws.terminate();
  wss.close();
  server.close(() => {
    console.log('node_server: stopped');
    process.exit(0);
  });
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
setTimeout(stop, opts.duration * 1000).unref();

server.listen(opts.port, '127.0.0.1', () => {
  console.log(`listening ${server.address().port}${tls ? ' (wss)' : ''}`);
});
