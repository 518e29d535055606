// SPDX-License-Identifier: MIT
// chat-browser.mjs: the chat page in headless Chromium (the system's
// browser, driven by playwright-core): two pages join one room, both send,
// and both must show both pages' messages in the same order.
//   node chat-browser.mjs URL SCREENSHOT.png [CHROMIUM]
import { chromium } from 'playwright-core';

const [url, shot, exe = '/usr/bin/chromium'] = process.argv.slice(2);
const fail = (why) => { console.error('FAIL: ' + why); process.exit(1); };
setTimeout(() => fail('timed out'), 90000).unref();

const browser = await chromium.launch({ executablePath: exe, headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
try {
  const room = 'browser' + process.pid;
  const pages = [];
  for (const name of ['ann', 'bob']) {
    const ctx = await browser.newContext({ viewport: { width: 900, height: 600 } });
    const page = await ctx.newPage();
    page.on('pageerror', (e) => fail(`${name}: page error ${e}`));
    await page.goto(url);
    await page.fill('#name', name);
    await page.fill('#room', room);
    await page.click('#join');
    await page.waitForFunction(() => document.querySelector('#status').textContent.startsWith('In room'));
    pages.push(page);
  }
  // both see both in the room
  for (const p of pages)
    await p.waitForFunction(() => document.querySelectorAll('#who li').length === 2);
  // both send, interleaved, without waiting for each other
  const say = (p, text) => p.fill('#text', text).then(() => p.click('#send'));
  for (let i = 1; i <= 3; i++)
    await Promise.all([say(pages[0], `hello from ann ${i}`), say(pages[1], `hi from bob ${i}`)]);
  const logs = [];
  for (const p of pages) {
    await p.waitForFunction(() => document.querySelectorAll('#log li.msg').length === 6);
    logs.push(await p.$$eval('#log li.msg', (lis) => lis.map((li) => li.textContent)));
  }
  console.log('ann sees: ' + JSON.stringify(logs[0]));
  console.log('bob sees: ' + JSON.stringify(logs[1]));
  if (JSON.stringify(logs[0]) !== JSON.stringify(logs[1])) fail('the pages show different orders');
  for (let i = 1; i <= 3; i++)
    for (const want of [`annhello from ann ${i}`, `bobhi from bob ${i}`])
      if (!logs[0].includes(want)) fail('missing ' + want);
  await pages[0].screenshot({ path: shot });
  console.log('ok: both pages show the same 6 messages in the same order; screenshot ' + shot);
} finally {
  await browser.close();
}
