// SPDX-License-Identifier: MIT
// chat-clients.mjs: the npm `ws` client against examples/chat.
//   node chat-clients.mjs order URL CLIENTS PER_CLIENT
//     CLIENTS clients join one room; each sends PER_CLIENT messages at once;
//     every client must receive every message (none lost), and all in one
//     and the same order.
//   node chat-clients.mjs shutdown URL
//     connects, reports when open ("open"), then expects close 1001 when the
//     server is stopped (prints "closed 1001").
//   node chat-clients.mjs big URL BYTES
//     two members; one sends a text of BYTES bytes; both must receive it whole.
//   node chat-clients.mjs limit URL MAX   (the chat runs with --max-text MAX)
//     a text of MAX + 1 bytes: its sender alone gets the notice "too-long"
//     and stays; a text of MAX bytes goes to the room; one over 4 x MAX (the
//     session's limit) gets the library's close 1009, and so do five
//     members that each send 1 MiB (the server lingers: no reset). The other
//     member gets the MAX-byte text only.
//   node chat-clients.mjs refuse URL
//     bad rooms and names (none, bad characters, too long, not UTF-8, a
//     control character) get close 1008 with a reason naming which; the
//     room's members are not disturbed; a binary message gets the notice
//     "binary" and its sender stays.
//   node chat-clients.mjs slow URL   (the chat runs with --policy wait --max-queue 1)
//     a member stops reading; the sender's texts go on until one gets the
//     notice "partly-sent".
//   node chat-clients.mjs cluster URL1,URL2,... CLIENTS PER_CLIENT
//     (chat servers on one Redis, --redis) the clients join one room, spread
//     over the servers; each sends PER_CLIENT messages at once; every client
//     gets every message, all in one and the same order, on every server.
//   node chat-clients.mjs down URL   (its Redis is down)
//     a member's text gets the notice "not-sent" naming Redis; it stays.
//   node chat-clients.mjs restart URL1,URL2   (Redis is restarted meanwhile)
//     a member on each server; one text goes round; prints "ready"; then
//     each member must be closed with 1012 (messages lost: a new epoch).
import WebSocket from 'ws';

const [mode, base, nArg, kArg] = process.argv.slice(2);
const fail = (why) => { console.error('FAIL: ' + why); process.exit(1); };
setTimeout(() => fail('timed out'), 60000).unref();

// handlers first: a message may come in the same read as the handshake's answer
function open(url, onMessage = () => {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.on('message', onMessage);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const until = async (cond, what) => {
  for (let t = 0; !cond(); t++) {
    if (t > 3000) fail('waiting for ' + what);
    await sleep(10);
  }
};

// a member that keeps what it receives (parsed), its close and its error
async function member(url) {
  const c = { got: [], close: null, error: null };
  c.ws = await open(url, (data) => c.got.push(JSON.parse(data.toString())));
  c.ws.on('close', (code, reason) => { c.close = { code, reason: reason.toString() }; });
  c.ws.on('error', (e) => { c.error = e; });
  return c;
}
const msgs = (c) => c.got.filter((m) => m.t === 'msg');
const errors = (c) => c.got.filter((m) => m.t === 'error');
// two members of a fresh room, each in once its own join came back
async function pair(room) {
  const ann = await member(`${base}/chat/${room}?name=ann`);
  const bob = await member(`${base}/chat/${room}?name=bob`);
  for (const [name, c] of [['ann', ann], ['bob', bob]])
    await until(() => c.got.some((m) => m.t === 'join' && m.name === name), name + "'s join");
  return [ann, bob];
}
// n clients that sent k messages each ("m0".."m{k-1}"): every client gets all n * k, in
// one and the same order, none twice, each sender's own in the order it sent them; then
// they leave
async function oneOrder(clients, n, k) {
  await until(() => clients.every((c) => c.got.length >= n * k), 'the messages');
  const want = clients[0].got;
  for (const [i, c] of clients.entries()) {
    if (c.got.length !== n * k) fail(`client ${i} got ${c.got.length}, want ${n * k}`);
    if (c.got.join('\n') !== want.join('\n')) fail(`client ${i} saw another order`);
  }
  if (new Set(want).size !== n * k) fail('duplicates');
  for (let i = 0; i < n; i++) {
    const mine = want.filter((s) => s.startsWith(`c${i}:`)).map((s) => s.split(':')[1]);
    if (mine.join() !== Array.from({ length: k }, (_, j) => `m${j}`).join()) fail(`c${i} reordered`);
  }
  for (const c of clients) { c.done = true; c.ws.close(1000); }
}
// n bytes of text that JSON must escape in places: letters, quote, backslash, newline
const ALPHABET = 'abcdefghij"\\\n';
const text = (n) => Array.from({ length: n }, (_, i) => ALPHABET[i % ALPHABET.length]).join('');

if (mode === 'shutdown') {
  const ws = await open(base + '/chat/stop?name=last');
  ws.on('close', (code) => { console.log('closed ' + code); process.exit(code === 1001 ? 0 : 1); });
  console.log('open');
} else if (mode === 'order') {
  const n = Number(nArg), k = Number(kArg), room = 'order' + process.pid;
  const clients = [];
  for (let i = 0; i < n; i++) {
    const c = { got: [], joins: 0 };
    const ws = c.ws = await open(`${base}/chat/${room}?name=c${i}`, (data) => {
      const m = JSON.parse(data.toString());
      if (m.t === 'msg') c.got.push(m.from + ':' + m.text);
      else if (m.t === 'join') c.joins = m.count;
    });
    ws.on('close', (code) => { if (!c.done) fail(`client ${i} closed ${code}`); });
    clients.push(c);
  }
  // everybody is in once the last join reached everyone
  await until(() => clients.every((c) => c.joins === n), 'the joins');
  for (let j = 0; j < k; j++)
    for (let i = 0; i < n; i++) clients[i].ws.send(`m${j}`);
  await oneOrder(clients, n, k);
  console.log(`ok: ${n} clients, ${n * k} messages each, one order`);
  process.exit(0);
} else if (mode === 'big') {
  const size = Number(nArg);
  const [ann, bob] = await pair('big' + process.pid);
  ann.ws.send(text(size));
  await until(() => msgs(ann).length > 0 && msgs(bob).length > 0, `the ${size}-byte text`);
  for (const [name, c] of [['ann', ann], ['bob', bob]]) {
    const m = msgs(c)[0];
    if (m.from !== 'ann' || m.text !== text(size))
      fail(`${name} got ${m.text.length} characters from ${m.from}, want ${size} from ann`);
    if (errors(c).length > 0) fail(`${name} got a notice: ${JSON.stringify(errors(c))}`);
  }
  ann.ws.close(1000);
  bob.ws.close(1000);
  console.log(`ok: a ${size}-byte text reached the room whole`);
  process.exit(0);
} else if (mode === 'limit') {
  const max = Number(nArg);
  const [ann, bob] = await pair('limit' + process.pid);
  ann.ws.send(text(max + 1));
  await until(() => errors(ann).length > 0, 'the notice for a text over --max-text');
  const e = errors(ann)[0];
  if (e.code !== 'too-long' || !e.text.includes(`${max + 1} bytes`) || !e.text.includes(`${max}`))
    fail('the notice was ' + JSON.stringify(e));
  console.log('ann is told: ' + e.text);
  ann.ws.send(text(max)); // still in the room: a text at the limit goes
  await until(() => msgs(ann).length > 0 && msgs(bob).length > 0, 'the text at the limit');
  for (const [name, c] of [['ann', ann], ['bob', bob]])
    if (msgs(c).length !== 1 || msgs(c)[0].text !== text(max))
      fail(`${name} got ${msgs(c).map((m) => m.text.length)} characters, want only ${max}`);
  if (errors(bob).length > 0) fail('bob got a notice');
  ann.ws.send(text(4 * max + 1)); // over the session's max_message
  await until(() => ann.close !== null, 'the close for a text over the session limit');
  if (ann.close.code !== 1009) fail(`ann was closed with ${ann.close.code}, want 1009`);
  await until(() => bob.got.some((m) => m.t === 'leave' && m.name === 'ann'), "ann's leave");
  if (msgs(bob).length !== 1) fail('bob got an over-long text');
  // 1 MiB, still arriving when the server refuses it: the server lingers
  // until the client closes, so the close 1009 is read, not lost to a reset
  // (which ws reports as 1006)
  for (let i = 0; i < 5; i++) {
    const big = await member(`${base}/chat/limit${process.pid}?name=big${i}`);
    big.ws.send(text(1 << 20));
    await until(() => big.close !== null, 'the close for a 1 MiB text');
    if (big.close.code !== 1009) fail(`a 1 MiB text was closed with ${big.close.code}, want 1009`);
  }
  bob.ws.close(1000);
  console.log(`ok: over ${max} bytes a notice to the sender alone, over ${4 * max} close 1009 ` +
              '(1 MiB too, 5 of 5)');
  process.exit(0);
} else if (mode === 'refuse') {
  const room = 'refuse' + process.pid;
  const [ann, bob] = await pair(room);
  const closedWith = (path) => new Promise((resolve) => {
    const ws = new WebSocket(base + path);
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    ws.on('error', () => {}); // the close follows
  });
  for (const [path, want] of [
    ['/chat', 'no room'],
    ['/chat/a.b?name=x', 'bad room'],
    ['/chat/' + 'r'.repeat(65), 'bad room'],
    [`/chat/${room}?name=${'n'.repeat(33)}`, 'bad name: over 32 bytes'],
    [`/chat/${room}?name=`, 'bad name'],
    [`/chat/${room}?name=%FF`, 'bad name'], // not UTF-8: every member's frames would break
    [`/chat/${room}?name=a%0Ab`, 'bad name'],
    [`/chat/${room}?name=a%C2%85b`, 'bad name'], // U+0085, a C1 control
    [`/chat/${room}?name=a%E2%80%AEb`, 'bad name'], // U+202E turns the page's lines around
  ]) {
    const c = await closedWith(path);
    if (c.code !== 1008 || !c.reason.startsWith(want))
      fail(`${path}: closed ${c.code} '${c.reason}', want 1008 '${want}...'`);
  }
  const long = 'é'.repeat(16); // 32 bytes: the longest name
  const eve = await member(`${base}/chat/${room}?name=${encodeURIComponent(long)}`);
  await until(() => bob.got.some((m) => m.t === 'join' && m.name === long), 'a 32-byte name');
  ann.ws.send(Buffer.from([1, 2, 3])); // binary: a notice to ann alone
  await until(() => errors(ann).length > 0, 'the notice for a binary message');
  if (errors(ann)[0].code !== 'binary') fail('the notice was ' + JSON.stringify(errors(ann)[0]));
  console.log('ann is told: ' + errors(ann)[0].text);
  ann.ws.send('still here');
  await until(() => msgs(bob).length > 0 && msgs(ann).length > 0, 'the text after the notice');
  for (const [name, c] of [['ann', ann], ['bob', bob], ['eve', eve]]) {
    if (c.close !== null || c.error !== null) fail(`${name} was disturbed: ${c.close?.code} ${c.error}`);
    if (name !== 'ann' && errors(c).length > 0) fail(`${name} got ann's notice`);
  }
  if (msgs(bob).length !== 1 || msgs(bob)[0].text !== 'still here') fail('bob got ' + JSON.stringify(msgs(bob)));
  for (const c of [ann, bob, eve]) c.ws.close(1000);
  console.log('ok: bad rooms and names closed 1008 with a reason; a binary message answered');
  process.exit(0);
} else if (mode === 'slow') {
  const [ann, bob] = await pair('slow' + process.pid);
  bob.ws._socket.pause(); // bob stops reading: his socket, then his queue, fill
  const t = text(60000);
  for (let i = 0; errors(ann).length === 0; i++) {
    if (i === 2000) fail('no notice after 2000 texts to a member that does not read');
    ann.ws.send(t);
    await until(() => msgs(ann).length > i || errors(ann).length > 0, `text ${i} back`);
  }
  const e = errors(ann)[0];
  if (e.code !== 'partly-sent') fail('the notice was ' + JSON.stringify(e));
  console.log(`ann is told, after ${msgs(ann).length} texts: ${e.text}`);
  process.exit(0);
} else if (mode === 'cluster') {
  const urls = base.split(','), n = Number(nArg), k = Number(kArg), room = 'cluster' + process.pid;
  const clients = [];
  for (let i = 0; i < n; i++) {
    const c = { got: [], joined: new Set() };
    const ws = c.ws = await open(`${urls[i % urls.length]}/chat/${room}?name=c${i}`, (data) => {
      const m = JSON.parse(data.toString());
      if (m.t === 'msg') c.got.push(m.from + ':' + m.text);
      else if (m.t === 'join') c.joined.add(m.name);
      else if (m.t === 'error') fail(`client ${i}: notice ${m.code}: ${m.text}`);
    });
    ws.on('close', (code) => { if (!c.done) fail(`client ${i} closed ${code}`); });
    clients.push(c);
    // its join came back through Redis: it is in step
    await until(() => c.joined.has(`c${i}`), `c${i}'s join`);
  }
  await until(() => clients.every((c) => c.joined.has(`c${n - 1}`)), 'the last join');
  for (let j = 0; j < k; j++)
    for (let i = 0; i < n; i++) clients[i].ws.send(`m${j}`);
  await oneOrder(clients, n, k);
  console.log(`ok: ${n} clients on ${urls.length} servers, ${n * k} messages each, one order`);
  process.exit(0);
} else if (mode === 'down') {
  const c = await member(`${base}/chat/down?name=dee`);
  c.ws.send('anyone?');
  await until(() => errors(c).length > 0, 'the notice');
  const e = errors(c)[0];
  if (e.code !== 'not-sent' || !/Redis/.test(e.text)) fail('notice ' + JSON.stringify(e));
  await sleep(100);
  if (c.close !== null) fail('closed ' + JSON.stringify(c.close));
  c.ws.close(1000);
  console.log('ok: not-sent, naming Redis; the member stays');
  process.exit(0);
} else if (mode === 'restart') {
  const urls = base.split(',');
  // each server back on Redis (its reconnect waits out a backoff of up to 7.5 s): a
  // probe's text comes back to it instead of a notice
  for (const u of urls) {
    for (let t = 0; ; t++) {
      if (t > 100) fail(`${u} not back on Redis`);
      const p = await member(`${u}/chat/probe${t}?name=probe`);
      p.ws.send('ping');
      for (let w = 0; w < 50 && msgs(p).length + errors(p).length === 0; w++) await sleep(10);
      const back = msgs(p).length > 0;
      p.ws.close(1000);
      if (back) break;
      await sleep(200);
    }
  }
  const cs = [];
  for (const [i, u] of urls.entries()) cs.push(await member(`${u}/chat/restart?name=r${i}`));
  await until(() => cs.every((c) => c.got.some((m) => m.t === 'join' && m.name === `r${urls.length - 1}`)),
    'the joins');
  cs[0].ws.send('before');
  await until(() => cs.every((c) => msgs(c).length === 1), 'the text');
  console.log('ready');
  await until(() => cs.every((c) => c.close !== null), 'the closes');
  for (const [i, c] of cs.entries())
    if (c.close.code !== 1012) fail(`member ${i} closed ${c.close.code}, want 1012`);
  console.log('ok: every member closed 1012');
  process.exit(0);
} else {
  fail('usage: chat-clients.mjs order URL N K | shutdown URL | big URL BYTES | limit URL MAX |' +
    ' refuse URL | slow URL | cluster URLS N K | down URL | restart URLS');
}
