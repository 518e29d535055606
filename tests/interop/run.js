// SPDX-License-Identifier: MIT
// run.js: the interop tests with real peers, as scripts/check.sh's
// "interop" stage runs them (NODE_PATH pointing at the `ws` package):
//
//   node tests/interop/run.js BUILDDIR [client] [server] [browser]
//
//   client   the npm `ws` client against BUILDDIR/examples/ws-echo, in both
//            server modes (fibers and threads), then its graceful stop
//   server   BUILDDIR/tests/interop/ws-interop-client against a `ws` server,
//            deflate offered or not, accepted or not
//   browser  headless Chromium against ws-echo, with permessage-deflate
//   wss      the npm `ws` client against ws-echo --tls-cert/--tls-key (a
//            PKI from tests/gen-pki.sh, in BUILDDIR/tests/pki)
//
// With no part named, all four run. Prints one line per part and exits
// non-zero at the first failure.
'use strict';
const { spawn } = require('child_process');
const path = require('path');
const { within } = require('./util');

const LIMIT = 16 << 20; // ws-echo's message limit (the library's default)

const children = new Set();
process.on('exit', () => children.forEach(p => p.kill('SIGKILL')));

// Starts a program and resolves once it printed "listening on H:PORT".
function startServer(exe, args) {
    const p = spawn(exe, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(p);
    let err = ''; // shown when it fails (a sanitizer's report, say)
    p.stderr.on('data', d => err = (err + d).slice(-20000));
    p.exited = new Promise(res => p.on('exit', (code, sig) => {
        children.delete(p);
        res({ code, sig, toString: () => `${code ?? sig}:\n${err}` });
    }));
    return within(10000, `${exe} start`, new Promise((res, rej) => {
        let out = '';
        p.stdout.on('data', d => {
            out += d;
            const m = /listening on [^\s]*:(\d+)/.exec(out);
            if (m) res({ p, port: Number(m[1]) });
        });
        p.on('error', rej);
        p.exited.then(e => rej(new Error(`${exe} exited early: ${e}`)));
    }));
}

function runProgram(exe, args) {
    return within(300000, `${exe} ${args.join(' ')}`, new Promise((res, rej) => {
        const p = spawn(exe, args, { stdio: ['ignore', 'pipe', 'pipe'] });
        children.add(p);
        let out = '';
        p.stdout.on('data', d => out += d);
        p.stderr.on('data', d => out += d);
        p.on('error', rej);
        p.on('exit', code => {
            children.delete(p);
            code === 0 ? res(out) : rej(new Error(`${path.basename(exe)} ${args.join(' ')} failed (${code}):\n${out}`));
        });
    }));
}

async function client(build) {
    let total = 0;
    for (const fibers of ['on', 'off']) {
        const { p, port } = await startServer(path.join(build, 'examples/ws-echo'),
            ['--port', '0', '--fibers', fibers]);
        const stop = () => p.kill('SIGTERM');
        total += await require('./ws-client').run(`ws://127.0.0.1:${port}/echo`, { limit: LIMIT, stop });
        const e = await within(10000, 'ws-echo exit', p.exited);
        if (e.code !== 0)
            throw new Error(`ws-echo (fibers ${fibers}) exited with ${e} after SIGTERM`);
    }
    return `ws client vs ws-echo: ${total} checks passed`;
}

async function server(build) {
    const exe = path.join(build, 'tests/interop/ws-interop-client');
    let out = '';
    for (const deflate of [false, true]) {
        const s = await require('./ws-server').start(deflate);
        try {
            for (const offer of [false, true]) {
                const args = [...(offer ? ['--deflate'] : []), ...(deflate ? ['--server-deflate'] : []),
                    `ws://127.0.0.1:${s.port}`];
                out += `  ${args.slice(0, -1).join(' ') || '(no deflate)'}: ` +
                    (await runProgram(exe, args)).trim() + '\n';
            }
        } finally {
            await s.stop();
        }
    }
    return `library client vs ws server:\n${out.trimEnd()}`;
}

async function browser(build) {
    const { p, port } = await startServer(path.join(build, 'examples/ws-echo'), ['--port', '0']);
    let n;
    try {
        n = await require('./browser').run(port);
    } finally {
        p.kill('SIGTERM');
    }
    const e = await within(10000, 'ws-echo exit', p.exited);
    if (e.code !== 0)
        throw new Error(`ws-echo exited with ${e} after SIGTERM`);
    return `chromium vs ws-echo: ${n} checks passed`;
}

async function wss(build) {
    const pki = path.join(build, 'tests/pki');
    await runProgram('sh', [path.join(__dirname, '..', 'gen-pki.sh'), pki]);
    const { p, port } = await startServer(path.join(build, 'examples/ws-echo'),
        ['--port', '0', '--tls-cert', path.join(pki, 'server-rsa.pem'),
            '--tls-key', path.join(pki, 'server-rsa.key')]);
    let n;
    try {
        const ca = require('fs').readFileSync(path.join(pki, 'ca.pem'));
        // 127.0.0.1, not localhost: ws-echo listens on IPv4, and Node connects to the
        // first address only, ::1 where /etc/hosts lists it first. The certificate is
        // still checked against the name localhost (and SNI sends it).
        n = await require('./ws-client').runTls(`wss://127.0.0.1:${port}/echo`, ca, 'localhost');
    } finally {
        p.kill('SIGTERM');
    }
    const e = await within(10000, 'ws-echo exit', p.exited);
    if (e.code !== 0)
        throw new Error(`ws-echo (TLS) exited with ${e} after SIGTERM`);
    return `ws client vs ws-echo over TLS: ${n} checks passed`;
}

async function main() {
    const [build, ...parts] = process.argv.slice(2);
    if (!build)
        throw new Error('usage: node run.js BUILDDIR [client] [server] [browser] [wss]');
    const all = { client, server, browser, wss };
    for (const name of parts.length ? parts : Object.keys(all)) {
        if (!all[name])
            throw new Error(`no part ${name}`);
        const t0 = Date.now();
        console.log(`interop: ${await all[name](path.resolve(build))} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    }
}

main().then(() => process.exit(0), err => {
    console.error(`interop: FAIL: ${err.stack || err}`);
    process.exit(1);
});
