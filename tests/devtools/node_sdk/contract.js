// Twilio's official Node SDK against the carrier simulator: create, fetch, page, each.
//
// Run by tests/devtools/test_carrier_node_sdk.py (SIM_URL, ACCOUNT_SID, AUTH_TOKEN,
// SENDER in the environment). Prints one JSON line with what it saw; exits non-zero
// on the first broken expectation.
"use strict";

const assert = require("node:assert/strict");
const twilio = require("twilio");
const RequestClient = require("twilio/lib/base/RequestClient");

const { SIM_URL, ACCOUNT_SID, AUTH_TOKEN, SENDER } = process.env;
const SERVICE = "MG" + "c".repeat(32);

// The SDK builds https://api.twilio.com/... URLs, also for next pages: rewrite the
// scheme and host to the simulator's, keep the path and query.
class RewritingClient extends RequestClient {
  request(opts) {
    const url = new URL(opts.uri);
    return super.request({ ...opts, uri: SIM_URL + url.pathname + url.search });
  }
}

async function main() {
  const client = twilio(ACCOUNT_SID, AUTH_TOKEN, { httpClient: new RewritingClient({ timeout: 5000 }) });
  const to = "+972501230000";
  const seen = {};

  // create, with a sender and through a Messaging Service
  const created = [];
  for (let i = 0; i < 5; i++) {
    const m = await client.messages.create({ to, from: SENDER, body: `node ${i}`, validityPeriod: 600 });
    assert.match(m.sid, /^SM[0-9a-f]{32}$/);
    assert.equal(m.status, "queued");
    assert.equal(m.numSegments, "1");
    assert.ok(m.dateCreated instanceof Date && !isNaN(m.dateCreated));
    created.push(m.sid);
  }
  const viaService = await client.messages.create({ to, messagingServiceSid: SERVICE, body: "pool" });
  assert.equal(viaService.status, "accepted");
  assert.equal(viaService.numSegments, "0");
  assert.equal(viaService.from, null);
  created.push(viaService.sid);
  seen.created = created.length;

  // fetch
  const fetched = await client.messages(created[0]).fetch();
  assert.equal(fetched.sid, created[0]);
  assert.equal(fetched.body, "node 0");
  assert.equal(fetched.to, to);
  seen.fetchedStatus = fetched.status;

  // page by page, forward then back (PA / PB tokens)
  const first = await client.messages.page({ to, pageSize: 2 });
  assert.deepEqual(first.instances.map((m) => m.sid), [created[5], created[4]]);
  assert.match(first.nextPageUrl, /PageToken=PA/);
  const second = await first.nextPage();
  assert.deepEqual(second.instances.map((m) => m.sid), [created[3], created[2]]);
  const back = await second.previousPage();
  assert.deepEqual(back.instances.map((m) => m.sid), [created[5], created[4]]);
  let pages = 1;
  let page = first;
  while ((page = await page.nextPage())) pages += 1;
  assert.equal(pages, 3);
  seen.pages = pages;

  // each: every message, across pages; and a limit
  const all = [];
  await client.messages.each({ to, pageSize: 4 }, (m) => all.push(m.sid));
  assert.deepEqual(all, [...created].reverse());
  const limited = [];
  await client.messages.each({ to, pageSize: 2, limit: 3 }, (m) => limited.push(m.sid));
  assert.equal(limited.length, 3);
  seen.each = all.length;

  // list with the filters the SDK serialises (From, DateSent> as a Date)
  const since = new Date(Date.now() - 3600 * 1000);
  const fromSender = await client.messages.list({ from: SENDER, to, dateSentAfter: since });
  seen.filtered = fromSender.length;

  // an error is Twilio's RestException with an integer code
  try {
    await client.messages.create({ to, body: "no sender" });
    assert.fail("a create without a sender must fail");
  } catch (err) {
    assert.equal(err.status, 400);
    assert.equal(err.code, 21603);
    seen.errorCode = err.code;
  }
  process.stdout.write(JSON.stringify(seen) + "\n");
}

main().catch((err) => {
  process.stderr.write(`contract failed: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
