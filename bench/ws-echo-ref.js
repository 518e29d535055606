// SPDX-License-Identifier: MIT
// ws-echo-ref.js: the reference WebSocket echo server of bench/run.sh, on the npm `ws`
// package (pinned in bench/package.json, with its optional native helper bufferutil for
// masking, as ws recommends for speed).
//
//   NODE_PATH=DIR/node_modules node ws-echo-ref.js [--host H] [--port N] [--deflate]
//
// What examples/ws-echo does: at path /echo, each text message is echoed as text and each
// binary one as binary; pings are answered (by ws itself); other paths get 404.
// --deflate accepts permessage-deflate with ws's defaults (zlib level 6 via Node's zlib,
// messages under 1 KiB sent uncompressed); without it the extension is refused. Prints
// "listening on H:PORT" once ready; SIGINT or SIGTERM closes every session with 1001 and
// exits with status 0.
'use strict';
const http = require('http');
const { WebSocketServer } = require('ws');

const args = process.argv.slice(2);
const opt = { host: '127.0.0.1', port: 0, deflate: false };
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--host' && i + 1 < args.length) opt.host = args[++i];
  else if (args[i] === '--port' && i + 1 < args.length) opt.port = Number(args[++i]);
  else if (args[i] === '--deflate') opt.deflate = true;
  else {
    process.stderr.write('usage: ws-echo-ref.js [--host H] [--port N] [--deflate]\n');
    process.exit(2);
  }
}

const server = http.createServer((req, res) => {
  res.writeHead(404, { 'Content-Type': 'text/plain', Connection: 'close' });
  res.end('not found\n');
});
const wss = new WebSocketServer({
  server,
  path: '/echo',
  perMessageDeflate: opt.deflate,
  maxPayload: 16 * 1024 * 1024,
});
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => ws.terminate());
});

server.listen(opt.port, opt.host, () => {
  const a = server.address();
  process.stdout.write(`listening on ${a.address}:${a.port}\n`);
});

function stop() {
  for (const ws of wss.clients) ws.close(1001, 'going away');
  server.close();
  setTimeout(() => process.exit(0), 500).unref();
  wss.close(() => process.exit(0));
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
