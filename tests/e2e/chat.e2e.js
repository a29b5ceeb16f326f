#!/usr/bin/env node
// Browser end-to-end test of `edgews chat`: headless Chromium (Debian's
// /usr/bin/chromium) driven by playwright-core, against the release binary.
//
//   node tests/e2e/chat.e2e.js               (run.sh installs what it needs first)
//   node tests/e2e/chat.e2e.js --tls DIR     the same over https:// and wss://
//
// Three pages: two in one room talk both ways and see each other's
// presence (a second tab of one of them counted, then gone), a third in
// another room sees none of it, HTML sent as a message
// shows as text, and after the server is killed and restarted on the same
// port the pages reconnect by themselves and talk again. Screenshots go to
// target/e2e/. Any failure, including Chromium or Playwright failing to
// start, exits non-zero: nothing is skipped.
//
// With --tls DIR (ca.pem, cert.pem, key.pem as examples/tls_cert writes
// them; run.sh makes a throwaway set per run) the server runs with
// --tls-cert/--tls-key, the pages load from https://localhost:PORT/ and the
// chat talks wss:// (the page picks the scheme from its own URL); the same
// checks run, plus: /healthz over https verifies against the test CA from
// Node, every page's WebSocket URL is wss://, and Chromium reports the TLS
// connection and certificate it got. How Chromium trusts the certificate:
// not through the test CA (that would mean an NSS database and certutil)
// but with --ignore-certificate-errors-spki-list=<SHA-256 of the leaf's
// public key>: certificate errors are ignored for that one key only (the
// narrow form of --ignore-certificate-errors), in this test only. Node's
// /healthz check is what proves the chain is valid against the CA.
'use strict';

const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const https = require('node:https');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..');
const EDGEWS = process.env.EDGEWS_BIN || path.join(ROOT, 'target', 'release', 'edgews');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

function parseArgs(argv) {
  if (argv.length === 0) return { tlsDir: null };
  if (argv.length === 2 && argv[0] === '--tls') return { tlsDir: path.resolve(argv[1]) };
  console.error('usage: node tests/e2e/chat.e2e.js [--tls DIR]   (DIR: ca.pem, cert.pem, key.pem)');
  process.exit(2);
}
const { tlsDir } = parseArgs(process.argv.slice(2));
const TLS = tlsDir && {
  ca: path.join(tlsDir, 'ca.pem'),
  cert: path.join(tlsDir, 'cert.pem'),
  key: path.join(tlsDir, 'key.pem'),
};
const MODE = TLS ? 'https' : 'http';
const OUT = TLS ? path.join(ROOT, 'target', 'e2e', 'https') : path.join(ROOT, 'target', 'e2e');
const WAIT = 10_000;        // any single wait
const RECONNECT_WAIT = 30_000;
const WHOLE_RUN = 100_000;  // the whole test

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
const log = (...a) => console.log(`[e2e ${MODE} +${elapsed()}]`, ...a);
let passed = 0;
const ok = (what) => { passed++; log(`ok - ${what}`); };

const watchdog = setTimeout(() => {
  console.error(`[e2e] FAIL: the whole run took longer than ${WHOLE_RUN / 1000}s`);
  cleanup().finally(() => process.exit(1));
}, WHOLE_RUN);

// --- the server ----------------------------------------------------------
let server = null;
let serverLog = '';

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: '127.0.0.1' });
    sock.once('connect', () => { sock.destroy(); resolve(true); });
    sock.once('error', () => resolve(false));
  });
}

async function startServer(port) {
  if (!fs.existsSync(EDGEWS)) throw new Error(`${EDGEWS} is missing: build it with cargo build --release --bin edgews`);
  // permessage-deflate on: Chromium offers it, so the page talks compressed
  const args = ['chat', '--listen', `127.0.0.1:${port}`, '--deflate', 'shared'];
  if (TLS) args.push('--tls-cert', TLS.cert, '--tls-key', TLS.key);
  const child = spawn(EDGEWS, args, {
    env: { ...process.env, EDGEWS_LOG: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.on('data', (d) => { serverLog += d; });
  child.stderr.on('data', (d) => { serverLog += d; });
  let exited = null;
  child.once('exit', (code, signal) => { exited = { code, signal }; });
  const deadline = Date.now() + WAIT;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`edgews chat exited at start (${JSON.stringify(exited)}):\n${serverLog}`);
    if (await canConnect(port)) { server = child; return child; }
    await sleep(50);
  }
  child.kill('SIGKILL');
  throw new Error(`edgews chat did not listen on ${port} within ${WAIT / 1000}s:\n${serverLog}`);
}

async function killServer() {
  const child = server;
  server = null;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await gone;
}

// --- the browser ---------------------------------------------------------
let context = null;
let userDataDir = null;
const problems = [];
const wsUrls = [];

/** base64 SHA-256 of the first certificate's SubjectPublicKeyInfo in a PEM
 *  file: the form --ignore-certificate-errors-spki-list takes. */
function spkiHash(pemFile) {
  const leaf = new crypto.X509Certificate(fs.readFileSync(pemFile));
  const spki = leaf.publicKey.export({ type: 'spki', format: 'der' });
  return crypto.createHash('sha256').update(spki).digest('base64');
}

/** GET url with Node's https, trusting only `ca`: resolves { status, body,
 *  authorized }, rejects on a certificate error. */
function httpsGet(url, ca) {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca: fs.readFileSync(ca), timeout: WAIT }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body, authorized: res.socket.authorized }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
  });
}

async function launch() {
  let chromium;
  try {
    ({ chromium } = require('playwright-core'));
  } catch (e) {
    throw new Error(`cannot load playwright-core (run npm ci in tests/e2e): ${e.message}`);
  }
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium`);
  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgews-e2e-'));
  // over TLS: ignore certificate errors for the test leaf's key only (see
  // the top of this file); the flag needs a --user-data-dir, which the
  // persistent context gives
  const tlsArgs = TLS ? [`--ignore-certificate-errors-spki-list=${spkiHash(TLS.cert)}`] : [];
  // launchPersistentContext is how Playwright takes a --user-data-dir
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
      '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--disable-quic', ...tlsArgs,
    ],
    viewport: { width: 1100, height: 720 },
    timeout: WAIT * 3,
  });
  context.setDefaultTimeout(WAIT);
}

async function newPage(label, viewport) {
  const page = await context.newPage();
  if (viewport) await page.setViewportSize(viewport);
  page.on('pageerror', (e) => problems.push(`${label}: uncaught ${e.message}`));
  page.on('dialog', (d) => {
    problems.push(`${label}: a ${d.type()} dialog opened (${d.message()}): script ran`);
    d.dismiss().catch(() => {});
  });
  page.on('console', (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) problems.push(`${label}: ${m.text()}`);
  });
  // every WebSocket the page opens: its URL must have the mode's scheme
  page.on('websocket', (ws) => {
    const want = TLS ? 'wss://' : 'ws://';
    if (!ws.url().startsWith(want)) problems.push(`${label}: WebSocket to ${ws.url()}, expected ${want}`);
    wsUrls.push(ws.url());
  });
  page.label = label;
  return page;
}

async function cleanup() {
  clearTimeout(watchdog);
  if (context) await context.close().catch(() => {});
  context = null;
  await killServer().catch(() => {});
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
  userDataDir = null;
}

// --- helpers -------------------------------------------------------------
function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

async function until(page, what, fn, arg, timeout = WAIT) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 50 });
  } catch (e) {
    throw new Error(`${page.label}: timed out after ${timeout / 1000}s waiting for ${what}`);
  }
}

const state = (page) => page.evaluate(() => ({
  state: document.getElementById('status').dataset.state,
  text: document.getElementById('statusText').textContent,
}));

async function connected(page, timeout = WAIT) {
  await until(page, 'the connected state',
    () => document.getElementById('status').dataset.state === 'connected', null, timeout);
}

async function join(page, url, name, room, screenshot) {
  const response = await page.goto(url);
  check(response && response.ok(), `${page.label}: GET ${url} answered ${response && response.status()}`);
  if (TLS) await checkTls(page, response);
  if (screenshot) await page.screenshot({ path: screenshot });
  await page.fill('#nameInput', name);
  await page.fill('#roomInput', room);
  await page.click('#joinBtn');
  await connected(page);
}

const members = (page) => page.$$eval('#memberList li .name', (els) => els.map((e) => e.textContent));

async function seesMembers(page, names) {
  await until(page, `members ${names.join(', ')}`, (want) => {
    const got = [...document.querySelectorAll('#memberList li .name')].map((e) => e.textContent);
    return JSON.stringify(got) === JSON.stringify(want);
  }, names);
}

/** Waits until `page` lists `name` as `want`: "×N of TOTAL". */
async function seesCount(page, name, want) {
  await until(page, `${name} ${want}`, ([n, w]) => {
    const li = [...document.querySelectorAll('#memberList li')]
      .find((l) => l.querySelector('.name').textContent === n);
    const count = li ? ((li.querySelector('.count') || {}).textContent || '×1') : '×0';
    return `${count} of ${document.getElementById('memberCount').textContent}` === w;
  }, [name, want]);
}

async function say(page, text) {
  await page.fill('#input', text);
  await page.press('#input', 'Enter');
}

/** Waits until `page` shows a confirmed message `text` from `from`. */
async function seesMessage(page, from, text, timeout = WAIT) {
  await until(page, `message ${JSON.stringify(text)} from ${from}`, ([f, t]) =>
    [...document.querySelectorAll('#messages li.msg')].some((li) => {
      // a grouped message shows its sender in the first of its group
      let head = li;
      while (head && !head.classList.contains('first')) head = head.previousElementSibling;
      return li.querySelector('.text').textContent === t
        && !li.classList.contains('pending') && li.dataset.id
        && head && head.querySelector('.from').textContent === f;
    }), [from, text], timeout);
}

async function texts(page) {
  return page.$$eval('#messages li', (els) => els.map((e) => e.textContent));
}

function check(cond, what) {
  if (!cond) throw new Error(what);
}

/** Over TLS: the page came over https from the test certificate. */
async function checkTls(page, response) {
  const protocol = await page.evaluate(() => location.protocol);
  check(protocol === 'https:', `${page.label}: page loaded over ${protocol}`);
  const sec = await response.securityDetails();
  check(sec && /^TLS 1\.[23]$/.test(sec.protocol), `${page.label}: security details ${JSON.stringify(sec)}`);
  check(sec.subjectName === 'localhost' && sec.issuer === 'edgews test CA',
    `${page.label}: certificate ${JSON.stringify(sec)}`);
  if (page.label === 'ada') log(`${page.label}: ${sec.protocol}, certificate ${sec.subjectName} from ${sec.issuer}`);
}

// --- the test ------------------------------------------------------------
async function main() {
  fs.mkdirSync(OUT, { recursive: true });
  const port = await freePort();
  await startServer(port);
  log(`edgews chat on 127.0.0.1:${port}${TLS ? ' (TLS)' : ''}`);
  const base = TLS ? `https://localhost:${port}/` : `http://127.0.0.1:${port}/`;
  if (TLS) {
    const health = await httpsGet(`${base}healthz`, TLS.ca);
    check(health.status === 200 && health.body.trim() === 'ok' && health.authorized,
      `GET ${base}healthz trusting the test CA: ${JSON.stringify(health)}`);
    ok('https /healthz answers ok, its certificate verified against the test CA (Node)');
  }

  await launch();
  const ada = await newPage('ada');
  log(`launched ${await ada.evaluate(() => navigator.userAgent.match(/(?:Headless)?Chrome\/[\d.]+/)?.[0])}`);

  await join(ada, base, 'Ada', 'lobby', path.join(OUT, 'chat-join.png'));
  const grace = await newPage('grace');
  await join(grace, base, 'Grace', 'lobby');
  // the third page joins through the URL, in a narrow window
  const linus = await newPage('linus', { width: 390, height: 720 });
  await linus.goto(`${base}?room=${encodeURIComponent('elsewhere')}&name=Linus`);
  await connected(linus);
  ok(`three pages joined (two by the form, one by the URL) over ${MODE}`);
  for (const page of [ada, grace, linus]) {
    const ext = await page.evaluate(() => document.documentElement.dataset.wsExtensions || '');
    check(ext.startsWith('permessage-deflate'), `negotiated extensions: ${JSON.stringify(ext)}`);
  }
  ok('Chromium negotiated permessage-deflate with the server');
  check(wsUrls.length >= 3 && problems.length === 0, `WebSockets ${JSON.stringify(wsUrls)}; ${problems.join('\n')}`);
  ok(`every page talks ${TLS ? 'wss' : 'ws'}:// (${wsUrls[0].replace(/\?.*/, '')})`);

  await seesMembers(ada, ['Ada', 'Grace']);
  await seesMembers(grace, ['Ada', 'Grace']);
  await until(ada, '"Grace joined"', () =>
    [...document.querySelectorAll('#messages li.sys')].some((li) => li.textContent === 'Grace joined'));
  ok('presence: Ada and Grace see each other');

  // presence comes as deltas: a second tab of Grace is counted, and its
  // leave undoes exactly that
  const grace2 = await newPage('grace-2');
  await grace2.goto(`${base}?room=lobby&name=Grace`);
  await connected(grace2);
  await seesCount(ada, 'Grace', '×2 of 3');
  await seesCount(grace2, 'Grace', '×2 of 3');
  await grace2.close();
  await seesCount(ada, 'Grace', '×1 of 2');
  await until(ada, '"Grace left"', () =>
    [...document.querySelectorAll('#messages li.sys')].some((li) => li.textContent === 'Grace left'));
  await seesMembers(ada, ['Ada', 'Grace']);
  ok('presence deltas: a second tab is counted, and its leave is seen');

  await say(ada, 'Hello Grace 👋');
  await seesMessage(grace, 'Ada', 'Hello Grace 👋');
  await seesMessage(ada, 'Ada', 'Hello Grace 👋');
  await say(grace, "Hi Ada! How's the engine?");
  await seesMessage(ada, 'Grace', "Hi Ada! How's the engine?");
  await grace.fill('#input', 'It computes');
  await grace.keyboard.press('Shift+Enter');
  await grace.keyboard.type('and it prints.');
  await grace.keyboard.press('Enter');
  await seesMessage(ada, 'Grace', 'It computes\nand it prints.');
  ok('messages both ways (Enter sends, Shift+Enter is a new line)');

  const xss = '<img src=x onerror=alert(1)>';
  const xss2 = '<script>window.__pwned = 1</script><b>bold?</b>';
  await say(grace, xss);
  await say(grace, xss2);
  await seesMessage(ada, 'Grace', xss);
  await seesMessage(ada, 'Grace', xss2);
  await seesMessage(grace, 'Grace', xss2);
  for (const page of [ada, grace]) {
    const found = await page.evaluate(() => ({
      elements: document.querySelectorAll('#messages img, #messages script, #messages b').length,
      pwned: window.__pwned,
    }));
    check(found.elements === 0 && found.pwned === undefined,
      `${page.label}: HTML in a message made elements: ${JSON.stringify(found)}`);
  }
  await sleep(200); // an onerror would have fired by now
  check(problems.length === 0, problems.join('\n'));
  ok('HTML in messages is shown as text: no element, no script');

  await say(linus, 'Anyone in elsewhere?');
  await seesMessage(linus, 'Linus', 'Anyone in elsewhere?');
  await seesMembers(linus, ['Linus']);
  const linusSaw = await texts(linus);
  check(!linusSaw.some((t) => /Ada|Grace|Hello|engine|img/.test(t)),
    `linus saw the other room: ${JSON.stringify(linusSaw)}`);
  const adaSaw = await texts(ada);
  check(!adaSaw.some((t) => /Linus|elsewhere/.test(t)), `ada saw the other room: ${JSON.stringify(adaSaw)}`);
  ok('the other room sees none of it, and is not seen');

  // the server goes away; the pages notice and back off
  await killServer();
  log('server killed');
  for (const page of [ada, grace, linus]) {
    await until(page, 'the reconnecting state', () => {
      const st = document.getElementById('status');
      return st.dataset.state === 'reconnecting'
        && /^reconnecting in \d+s$/.test(document.getElementById('statusText').textContent);
    });
  }
  log(`ada shows ${JSON.stringify(await state(ada))}`);
  await ada.screenshot({ path: path.join(OUT, 'chat-reconnecting.png') });
  ok('the pages show "reconnecting in Ns" when the server is gone');

  await startServer(port);
  log('server restarted on the same port');
  for (const page of [ada, grace, linus]) await connected(page, RECONNECT_WAIT);
  await seesMembers(ada, ['Ada', 'Grace']);
  await seesMembers(grace, ['Ada', 'Grace']);
  await seesMembers(linus, ['Linus']);
  ok('the pages reconnected by themselves and rejoined their rooms');

  await say(grace, 'Still there, Ada?');
  await seesMessage(ada, 'Grace', 'Still there, Ada?');
  await say(ada, 'Yes — reconnected on my own.');
  await seesMessage(grace, 'Ada', 'Yes — reconnected on my own.');
  await sleep(300);
  const linusAfter = await texts(linus);
  check(!linusAfter.some((t) => /Still there|reconnected on my own/.test(t)),
    `linus saw the other room after the restart: ${JSON.stringify(linusAfter)}`);
  ok('messages both ways after the restart; the other room still hears nothing');

  const shot = path.join(OUT, 'chat.png');
  await ada.screenshot({ path: shot });
  const narrow = path.join(OUT, 'chat-narrow.png');
  await linus.screenshot({ path: narrow });
  check(problems.length === 0, problems.join('\n'));
  log(`screenshots: ${shot} (also ${narrow}, ${path.join(OUT, 'chat-reconnecting.png')})`);
}

main().then(async () => {
  await cleanup();
  console.log(`chat e2e (${MODE}): ${passed} passed, 0 failed (${elapsed()})`);
  process.exit(0);
}, async (e) => {
  console.error(`[e2e +${elapsed()}] FAIL: ${e && e.stack || e}`);
  try {
    for (const page of context ? context.pages() : []) {
      const file = path.join(OUT, `failure-${page.label || 'page'}.png`);
      await page.screenshot({ path: file }).then(() => console.error(`[e2e] screenshot: ${file}`), () => {});
    }
  } catch { /* the browser may be gone */ }
  if (problems.length) console.error(`[e2e] page problems:\n${problems.join('\n')}`);
  if (serverLog) console.error(`[e2e] server output:\n${serverLog}`);
  await cleanup();
  console.log(`chat e2e (${MODE}): ${passed} passed, 1 failed (${elapsed()})`);
  process.exit(1);
});
