// SPDX-License-Identifier: MIT
// ws-client.js: the npm `ws` client against examples/ws-echo. Every message
// must come back byte for byte with its type, with permessage-deflate on and
// off; pings get their pongs; closes get their codes.
'use strict';
const net = require('net');
const WebSocket = require('ws');
const { binary, text, Checks, within } = require('./util');

const SIZES = [0, 1, 125, 126, 127, 65535, 65536, 65537, 1 << 20, 8 << 20];
const T = 30000; // ms for any one step

let tlsOptions = {}; // for wss:// (runTls): the CA that signed the server's certificate

// A connected client whose messages and closes are awaited in order.
async function open(url, deflate) {
    const ws = new WebSocket(url, {
        perMessageDeflate: deflate ? { threshold: 0 } : false,
        maxPayload: 64 << 20,
        ...tlsOptions,
    });
    const inbox = [], waiters = [];
    ws.on('message', (data, isBinary) => {
        const m = { data, isBinary };
        if (waiters.length) waiters.shift()(m); else inbox.push(m);
    });
    let ended = null; // once closed, a receive fails at once, saying how
    ws.closed = new Promise(res => ws.on('close', (code, reason) => {
        ended = `closed with ${code} ${reason}`;
        waiters.splice(0).forEach(w => w(null));
        res({ code, reason: reason.toString() });
    }));
    ws.next = what => within(T, what, new Promise((res, rej) => {
        const take = m => m ? res(m) : rej(new Error(`${what}: ${ended}`));
        inbox.length ? take(inbox.shift()) : ended ? take(null) : waiters.push(take);
    }));
    await within(T, `connect to ${url}`, new Promise((res, rej) => {
        ws.once('open', res);
        ws.once('error', rej);
    }));
    ws.on('error', () => {}); // reported through the close code
    return ws;
}

async function echo(c, ws, data, isBinary, what) {
    ws.send(data, { binary: isBinary });
    const m = await ws.next(what);
    c.ok(m.isBinary === isBinary, `${what}: came back as ${m.isBinary ? 'binary' : 'text'}`);
    c.equalBytes(m.data, isBinary ? data : Buffer.from(data, 'utf8'), what);
}

async function session(c, url, deflate) {
    const tag = deflate ? 'deflate' : 'plain';
    const ws = await open(url, deflate);
    c.ok(ws.extensions.includes('permessage-deflate') === deflate,
        `${tag}: extensions agreed: '${ws.extensions}'`);
    for (const n of SIZES) {
        await echo(c, ws, binary(n, n + 1, false), true, `${tag}: ${n} B random binary`);
        await echo(c, ws, binary(n, n + 2, true), true, `${tag}: ${n} B compressible binary`);
        await echo(c, ws, text(n, n + 3), false, `${tag}: ${n} B text`);
    }
    // A message sent in fragments comes back whole.
    const parts = [text(1000, 7), text(70000, 8), text(3, 9)];
    parts.forEach((p, i) => ws.send(p, { binary: false, fin: i === parts.length - 1 }));
    const whole = await ws.next(`${tag}: fragmented text`);
    c.equalBytes(whole.data, Buffer.from(parts.join('')), `${tag}: fragmented text`);
    // Pipelined messages come back in order.
    const many = Array.from({ length: 200 }, (_, i) => `message ${i} ${'.'.repeat(i)}`);
    many.forEach(m => ws.send(m));
    for (const m of many)
        c.equalBytes((await ws.next(`${tag}: pipelined`)).data, Buffer.from(m), `${tag}: pipelined ${m.slice(0, 12)}`);
    // Pings: the pong carries the ping's payload (empty and 125 bytes).
    for (const payload of [Buffer.alloc(0), Buffer.from('ping from ws'), binary(125, 5, false)]) {
        const pong = within(T, `${tag}: pong`, new Promise(res => ws.once('pong', res)));
        ws.ping(payload);
        c.equalBytes(await pong, payload, `${tag}: pong of a ${payload.length} B ping`);
    }
    // Close: the server echoes the code (RFC 6455 section 5.5.1).
    ws.close(4000 + (deflate ? 1 : 0), 'bye from ws: ü');
    const cl = await within(T, `${tag}: close`, ws.closed);
    c.ok(cl.code === 4000 + (deflate ? 1 : 0), `${tag}: close code ${cl.code} back`);
}

// Close codes the server sends for what a client gets wrong.
async function misbehave(c, url, limit) {
    let ws = await open(url, false);
    ws.send(Buffer.from([0x61, 0xc3, 0x28, 0x62]), { binary: false }); // invalid UTF-8 as text
    c.ok((await within(T, 'close after bad UTF-8', ws.closed)).code === 1007, 'invalid UTF-8 gets 1007');
    if (limit) {
        ws = await open(url, true);
        ws.send(binary(limit + 1, 3, true), { binary: true });
        c.ok((await within(T, 'close after too big', ws.closed)).code === 1009, 'a message over the limit gets 1009');
    }
    ws = await open(url, false);
    ws.close(); // no code: the echo has none either
    c.ok((await within(T, 'close without code', ws.closed)).code === 1005, 'a close without code is answered without');
    // An unmasked frame from a client, over a raw socket: 1002.
    const u = new URL(url);
    const raw = await rawFrame(u, Buffer.from([0x81, 0x02, 0x68, 0x69]));
    c.ok(raw.length >= 4 && raw[0] === 0x88 && raw.readUInt16BE(2) === 1002,
        `an unmasked client frame gets 1002 (got ${raw.slice(0, 4).toString('hex')})`);
}

// Handshakes by hand, sends frame, and returns the bytes that follow the 101.
function rawFrame(u, frame) {
    return within(T, 'raw socket', new Promise((res, rej) => {
        const s = net.connect(Number(u.port), u.hostname);
        let got = Buffer.alloc(0), head = true;
        s.on('error', rej);
        s.on('connect', () => s.write(`GET ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\n` +
            'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
            'Sec-WebSocket-Version: 13\r\n\r\n'));
        s.on('data', d => {
            got = Buffer.concat([got, d]);
            const end = got.indexOf('\r\n\r\n');
            if (head && end >= 0) {
                head = false;
                got = got.slice(end + 4);
                s.write(frame);
            }
        });
        s.on('close', () => res(got));
    }));
}

// The graceful stop: a connected client gets 1001 (going away).
async function goingAway(c, url, stop) {
    const ws = await open(url, true);
    await echo(c, ws, 'still here', false, 'before the stop');
    stop();
    c.ok((await within(T, 'close at the stop', ws.closed)).code === 1001, 'the stop sends 1001');
}

async function run(url, { limit, stop } = {}) {
    const c = new Checks('ws client vs ws-echo');
    await session(c, url, false);
    await session(c, url, true);
    await misbehave(c, url, limit);
    if (stop)
        await goingAway(c, url, stop);
    return c.passed;
}

// Over wss://: the same sessions (every size and type, deflate on and off,
// pings), the server's certificate checked against ca (PEM) and its name.
async function runTls(url, ca, servername) {
    const c = new Checks('ws client vs ws-echo over TLS');
    tlsOptions = { ca, servername };
    try {
        await session(c, url, false);
        await session(c, url, true);
    } finally {
        tlsOptions = {};
    }
    let refused = false; // and without the CA, the certificate is not trusted
    try {
        (await open(url, false)).terminate();
    } catch (e) {
        refused = true;
    }
    c.ok(refused, 'a client that does not trust the CA refuses the server');
    return c.passed;
}

module.exports = { run, runTls };
