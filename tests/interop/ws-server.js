// SPDX-License-Identifier: MIT
// ws-server.js: an npm `ws` server for the library's client
// (tests/interop/ws-interop-client). Paths:
//   /echo            each message back with its type
//   /fragments?n=N   sends N bytes of text in three fragments, then echoes
//   /ping?data=S     pings with payload S; the pong's payload comes back as
//                    the text "pong:<payload>"
//   /close?code=C&reason=R   closes with C and R
//   /bad-utf8        sends a text message that is not UTF-8
//   /last-close      the text "<code> <reason>" of the last close a client
//                    sent (on any path; once the other connections ended),
//                    then closes with 1000
'use strict';
const http = require('http');
const WebSocket = require('ws');
const { text } = require('./util');

function start(deflate) {
    const server = http.createServer((req, res) => { res.writeHead(404); res.end(); });
    const wss = new WebSocket.Server({
        server,
        perMessageDeflate: deflate ? { threshold: 0 } : false,
        maxPayload: 64 << 20,
    });
    let lastClose = 'none';
    wss.on('connection', (ws, req) => {
        const u = new URL(req.url, 'ws://x');
        ws.on('error', () => {});
        ws.on('close', (code, reason) => {
            if (u.pathname !== '/last-close')
                lastClose = `${code} ${reason.toString()}`;
        });
        switch (u.pathname) {
        case '/fragments': {
            const s = Buffer.from(text(Number(u.searchParams.get('n')), 11));
            const a = Math.floor(s.length / 3), b = Math.floor((2 * s.length) / 3);
            ws.send(s.subarray(0, a), { binary: false, fin: false });
            ws.send(s.subarray(a, b), { binary: false, fin: false });
            ws.send(s.subarray(b), { binary: false, fin: true });
        } // fall through: then echo
        case '/echo':
            ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
            break;
        case '/ping':
            ws.on('pong', data => ws.send('pong:' + data.toString()));
            ws.ping(u.searchParams.get('data'));
            break;
        case '/close':
            ws.close(Number(u.searchParams.get('code')), u.searchParams.get('reason'));
            break;
        case '/bad-utf8':
            ws.send(Buffer.from([0x6f, 0x6b, 0xed, 0xa0, 0x80]), { binary: false }); // a surrogate
            break;
        case '/last-close': { // once the other connections are gone (at most 5 s)
            const t0 = Date.now();
            const report = () => wss.clients.size > 1 && Date.now() - t0 < 5000
                ? setTimeout(report, 5) : ws.send(lastClose, () => ws.close(1000));
            report();
            break;
        }
        default:
            ws.close(1008, 'no such path');
        }
    });
    return new Promise(res => server.listen(0, '127.0.0.1', () => res({
        port: server.address().port,
        stop: () => new Promise(done => {
            for (const ws of wss.clients) ws.terminate();
            wss.close();
            server.close(done);
        }),
    })));
}

module.exports = { start };
