// SPDX-License-Identifier: MIT
// util.js: what the interop scripts share: deterministic test data, byte
// comparison, a check counter, and promises with a time limit.
'use strict';

// A xorshift32 generator: the same bytes on every run, for reproducible failures.
function prng(seed) {
    let x = seed >>> 0 || 1;
    return () => {
        x ^= x << 13; x >>>= 0;
        x ^= x >>> 17;
        x ^= x << 5; x >>>= 0;
        return x;
    };
}

// n bytes: random (incompressible) or a repeated pattern (compressible).
function binary(n, seed, compressible) {
    const next = prng(seed);
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++)
        b[i] = compressible ? (i % 251) ^ ((i >> 12) & 0xff) : next() & 0xff;
    return b;
}

// A string whose UTF-8 encoding is exactly n bytes, mixing 1- to 4-byte
// characters (so that characters cross frame and deflate block boundaries).
function text(n, seed) {
    const next = prng(seed);
    const pieces = ['a', 'echo ', 'é', '€', '😀', 'ß', 'z', '\u0000', '中文'];
    let s = '', len = 0;
    while (len < n) {
        let p = pieces[next() % pieces.length];
        if (len + Buffer.byteLength(p) > n)
            p = 'x';
        s += p;
        len += Buffer.byteLength(p);
    }
    return s;
}

class Checks {
    constructor(name) { this.name = name; this.passed = 0; }
    ok(cond, what) {
        if (!cond)
            throw new Error(`${this.name}: ${what}`);
        this.passed++;
    }
    equalBytes(got, want, what) {
        const g = Buffer.from(got), w = Buffer.from(want);
        if (g.length !== w.length)
            throw new Error(`${this.name}: ${what}: ${g.length} bytes back, ${w.length} sent`);
        const i = g.findIndex((v, k) => v !== w[k]);
        this.ok(Buffer.compare(g, w) === 0, `${what}: first difference at byte ${i}`);
    }
}

// p, or a rejection after ms milliseconds saying what was awaited.
function within(ms, what, p) {
    let t;
    const limit = new Promise((_, rej) => {
        t = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    });
    return Promise.race([p, limit]).finally(() => clearTimeout(t));
}

module.exports = { prng, binary, text, Checks, within };
