// SPDX-License-Identifier: MIT
// browser.js: headless Chromium (the system's /usr/bin/chromium) opens
// browser.html, which talks to ws-echo; driven over the DevTools protocol
// with the npm `ws` client, so no browser automation package is needed.
'use strict';
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const WebSocket = require('ws');
const { Checks, within } = require('./util');

const T = 60000;

// Starts Chromium and resolves with its DevTools URL and a stop function.
function launch(exe) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sn-chromium-'));
    const args = ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
        '--no-first-run', '--no-default-browser-check', '--disable-extensions',
        '--remote-debugging-port=0', '--remote-debugging-address=127.0.0.1',
        `--user-data-dir=${dir}`, 'about:blank'];
    // detached: its own process group, so that a stop reaches its helpers too
    const p = spawn(exe, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    const exited = new Promise(res => p.on('exit', res));
    let err = '';
    // After Browser.close it ends by itself; else (or if it lingers) it is killed.
    const stop = async () => {
        await within(5000, 'chromium exit', exited).catch(() => {});
        try { process.kill(-p.pid, 'SIGKILL'); } catch (e) { /* already gone */ }
        await within(5000, 'chromium exit after SIGKILL', exited).catch(() => {});
        fs.rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
    };
    const url = within(T, 'chromium start', new Promise((res, rej) => {
        p.stderr.on('data', d => {
            err += d;
            const m = /DevTools listening on (ws:\/\/\S+)/.exec(err);
            if (m) res(m[1]);
        });
        p.on('exit', code => rej(new Error(`chromium exited (${code}): ${err.slice(-2000)}`)));
        p.on('error', rej);
    }));
    return { url, stop };
}

// A DevTools protocol connection: send(method, params, sessionId) and events.
async function cdp(url) {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 256 << 20 });
    await within(T, 'DevTools connection', new Promise((res, rej) => {
        ws.once('open', res);
        ws.once('error', rej);
    }));
    let id = 0;
    const pending = new Map(), listeners = [];
    ws.on('message', data => {
        const m = JSON.parse(data);
        if (m.id && pending.has(m.id)) {
            const { res, rej } = pending.get(m.id);
            pending.delete(m.id);
            m.error ? rej(new Error(`${m.error.message}`)) : res(m.result);
        } else {
            listeners.forEach(l => l(m));
        }
    });
    return {
        send: (method, params = {}, sessionId) => within(T, method, new Promise((res, rej) => {
            pending.set(++id, { res, rej });
            ws.send(JSON.stringify({ id, method, params, sessionId }));
        })),
        once: (method, sessionId) => within(T, method, new Promise(res => listeners.push(m => {
            if (m.method === method && m.sessionId === sessionId) res(m.params);
        }))),
        close: () => ws.terminate(),
    };
}

async function run(port, exe = '/usr/bin/chromium') {
    const c = new Checks('chromium vs ws-echo');
    const page = 'file://' + path.join(__dirname, 'browser.html') + `?port=${port}`;
    const b = launch(exe);
    let d;
    try {
        d = await cdp(await b.url);
        const { targetId } = await d.send('Target.createTarget', { url: 'about:blank' });
        const { sessionId } = await d.send('Target.attachToTarget', { targetId, flatten: true });
        await d.send('Page.enable', {}, sessionId);
        const loaded = d.once('Page.loadEventFired', sessionId);
        await d.send('Page.navigate', { url: page }, sessionId);
        await loaded;
        const r = await d.send('Runtime.evaluate',
            { expression: 'window.snResult', awaitPromise: true, returnByValue: true }, sessionId);
        const v = r.result.value;
        c.ok(v && typeof v === 'object', `no result from the page: ${JSON.stringify(r)}`);
        c.ok(v.ok === true, `the page failed after ${v.checks} checks: ${v.error}`);
        c.ok(v.extensions.startsWith('permessage-deflate'), `extensions '${v.extensions}'`);
        c.ok(v.checks === 16, `${v.checks} checks in the page, 16 expected`);
        c.passed += v.checks;
    } finally {
        if (d) {
            await d.send('Browser.close').catch(() => {});
            d.close();
        }
        await b.stop();
    }
    return c.passed;
}

module.exports = { run };
