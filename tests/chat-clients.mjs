// SPDX-License-Identifier: MIT
// chat-clients.mjs: the npm `ws` client against examples/chat.
//   node chat-clients.mjs order URL CLIENTS PER_CLIENT
//     CLIENTS clients join one room; each sends PER_CLIENT messages at once;
//     every client must receive every message (none lost), and all in one
//     and the same order.
//   node chat-clients.mjs shutdown URL
//     connects, reports when open ("open"), then expects close 1001 when the
//     server is stopped (prints "closed 1001").
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
  const until = async (cond, what) => {
    for (let t = 0; !cond(); t++) {
      if (t > 3000) fail('waiting for ' + what);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  await until(() => clients.every((c) => c.joins === n), 'the joins');
  for (let j = 0; j < k; j++)
    for (let i = 0; i < n; i++) clients[i].ws.send(`m${j}`);
  await until(() => clients.every((c) => c.got.length >= n * k), 'the messages');
  const want = clients[0].got;
  for (const [i, c] of clients.entries()) {
    if (c.got.length !== n * k) fail(`client ${i} got ${c.got.length}, want ${n * k}`);
    if (c.got.join('\n') !== want.join('\n')) fail(`client ${i} saw another order`);
  }
  const distinct = new Set(want);
  if (distinct.size !== n * k) fail('duplicates');
  // each sender's own messages in the order it sent them
  for (let i = 0; i < n; i++) {
    const mine = want.filter((s) => s.startsWith(`c${i}:`)).map((s) => s.split(':')[1]);
    if (mine.join() !== Array.from({ length: k }, (_, j) => `m${j}`).join()) fail(`c${i} reordered`);
  }
  for (const c of clients) { c.done = true; c.ws.close(1000); }
  console.log(`ok: ${n} clients, ${n * k} messages each, one order`);
  process.exit(0);
} else {
  fail('usage: chat-clients.mjs order URL N K | shutdown URL');
}
