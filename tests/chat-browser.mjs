// SPDX-License-Identifier: MIT
// chat-browser.mjs: the chat page in headless Chromium (the system's
// browser, driven by playwright-core): two pages join one room, both send,
// and both must show both pages' messages in the same order; a text over the
// chat's --max-text shows the server's notice on the sender's page only.
//   node chat-browser.mjs URL SCREENSHOT.png [CHROMIUM [MAX_TEXT]]
import { chromium } from 'playwright-core';

const [url, shot, exe = '/usr/bin/chromium', maxArg = '131072'] = process.argv.slice(2);
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
  // over --max-text: ann's page shows the notice, and ann stays in the room
  const max = Number(maxArg);
  await say(pages[0], 'y'.repeat(max + 1));
  await pages[0].waitForFunction(() => document.querySelectorAll('#log li.error').length === 1);
  const notice = await pages[0].$eval('#log li.error', (li) => li.textContent);
  console.log('ann is told: ' + notice);
  if (!notice.includes(`${max + 1} bytes`)) fail('the notice does not give the size: ' + notice);
  await say(pages[0], 'after the long one');
  for (const p of pages)
    await p.waitForFunction(() => document.querySelectorAll('#log li.msg').length === 7);
  for (const [i, p] of pages.entries()) {
    const log = await p.$$eval('#log li.msg', (lis) => lis.map((li) => li.textContent));
    if (log.length !== 7 || log[6] !== 'annafter the long one' || log.some((t) => t.length > max))
      fail(`page ${i} shows ${log.map((t) => t.length)} characters`);
  }
  if ((await pages[1].$$('#log li.error')).length !== 0) fail("bob's page shows a notice");
  await pages[0].screenshot({ path: shot });
  console.log('ok: both pages show the same 7 messages in the same order, the notice on ' +
    "ann's only; screenshot " + shot);
} finally {
  await browser.close();
}
