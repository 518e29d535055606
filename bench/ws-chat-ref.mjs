// SPDX-License-Identifier: MIT
// ws-chat-ref.mjs: the reference chat server for bench/hub-run.sh, on the npm
// `ws` package (the common Node.js WebSocket server): rooms at /chat/ROOM,
// every text a member sends goes to every member of the room as
// {"t":"msg","from":NAME,"text":TEXT}, written member by member with
// ws.send (what a Node chat server does). Same protocol as examples/chat
// with --presence off.
//   node ws-chat-ref.mjs --host H --port P      prints "listening on H:PORT"
import { WebSocketServer } from 'ws';

const arg = (name, def) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : def;
};
const rooms = new Map();
const wss = new WebSocketServer({ host: arg('--host', '127.0.0.1'), port: Number(arg('--port', 0)),
  perMessageDeflate: false, maxPayload: 16384 });
wss.on('listening', () => console.log(`listening on ${wss.address().address}:${wss.address().port}`));
wss.on('connection', (ws, req) => {
  const url = new URL(req.url, 'http://x');
  if (!url.pathname.startsWith('/chat/')) { ws.close(1008); return; }
  const room = url.pathname.slice(6), name = url.searchParams.get('name') || 'guest';
  let members = rooms.get(room);
  if (!members) rooms.set(room, (members = new Set()));
  members.add(ws);
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    const out = JSON.stringify({ t: 'msg', from: name, text: data.toString() });
    for (const m of members) if (m.readyState === 1) m.send(out);
  });
  ws.on('close', () => {
    members.delete(ws);
    if (members.size === 0) rooms.delete(room);
  });
});
const bye = () => { for (const c of wss.clients) c.close(1001); wss.close(); process.exit(0); };
process.on('SIGINT', bye);
process.on('SIGTERM', bye);
