// Tests of recommendations/static/recsite/recsite.js with Node's own runner (no npm packages):
//   node --test tests/js/
// fetch, sendBeacon, localStorage and the document are fakes; the real server is exercised by
// tests/test_recsite_js.py, which also runs this file.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");

const recsite = require(path.join(__dirname, "..", "..", "recommendations", "static", "recsite", "recsite.js"));

const ENDPOINT = "https://recsite.test/graphql/";

function fakeFetch(answer) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url, init, body: JSON.parse(init.body) });
    const reply = typeof answer === "function" ? answer(calls.length) : answer;
    if (reply instanceof Error) throw reply;
    const status = (reply && reply.status) || 200;
    return {
      ok: status < 400,
      status,
      json: async () => (reply && "body" in reply ? reply.body : { data: { putEvents: { eventsRecorded: 1 } } }),
    };
  };
  return { fetch, calls };
}

function fakeStorage() {
  const values = new Map();
  return {
    getItem: (key) => (values.has(key) ? values.get(key) : null),
    setItem: (key, value) => values.set(key, String(value)),
    removeItem: (key) => values.delete(key),
  };
}

function fakeDocument() {
  const listeners = {};
  return {
    visibilityState: "visible",
    addEventListener: (name, listener) => (listeners[name] = listeners[name] || []).push(listener),
    hide() {
      this.visibilityState = "hidden";
      (listeners.visibilitychange || []).forEach((listener) => listener());
    },
  };
}

function client(overrides = {}) {
  const network = fakeFetch(overrides.answer);
  const made = recsite.createClient({
    endpoint: ENDPOINT,
    trackingId: "tracker-1",
    fetch: network.fetch,
    storage: fakeStorage(),
    document: fakeDocument(),
    flushInterval: 0,
    ...overrides.options,
  });
  return { client: made, calls: network.calls };
}

test("events go out in putEvents calls of at most 10, with the tracker, session and user", async () => {
  // given a client of a signed-in user and 23 tracked events
  const { client: tracker, calls } = client({ options: { userId: "user-1", flushInterval: 0 } });
  for (let n = 0; n < 23; n++) tracker.track("view", { itemId: `item-${n}` });
  // when the queue is flushed
  await tracker.flush();
  // then three calls of 10, 10 and 3 events were made, each the putEvents mutation
  assert.deepEqual(calls.map((call) => call.body.variables.events.length), [10, 10, 3]);
  for (const call of calls) {
    assert.equal(call.url, ENDPOINT);
    assert.equal(call.init.method, "POST");
    assert.equal(call.init.headers["Content-Type"], "application/json");
    assert.match(call.body.query, /putEvents\(trackingId: \$trackingId/);
    assert.equal(call.body.variables.trackingId, "tracker-1");
    assert.equal(call.body.variables.userId, "user-1");
    assert.equal(call.body.variables.sessionId, tracker.sessionId);
  }
  const events = calls.flatMap((call) => call.body.variables.events);
  assert.deepEqual(events.map((event) => event.itemId), Array.from({ length: 23 }, (_, n) => `item-${n}`));
  assert.equal(new Set(events.map((event) => event.eventId)).size, 23);
  assert.equal(tracker.queued, 0);
});

test("the tenth queued event sends the batch without waiting for the interval", async () => {
  // given a client with no interval
  const { client: tracker, calls } = client();
  // when nine events are tracked, then a tenth
  for (let n = 0; n < 9; n++) tracker.track("view", { itemId: `item-${n}` });
  assert.equal(calls.length, 0);
  tracker.track("view", { itemId: "item-9" });
  await tracker.flush();
  // then one call carried all ten
  assert.equal(calls.length, 1);
  assert.equal(calls[0].body.variables.events.length, 10);
});

test("queued events are sent on the interval", async () => {
  // given a client flushing every 20 ms
  const { client: tracker, calls } = client({ options: { flushInterval: 20 } });
  // when one event is tracked and the interval passes
  tracker.track("click", { itemId: "item-1", eventValue: "4.5", properties: { device: "mobile" } });
  await new Promise((resolve) => setTimeout(resolve, 80));
  tracker.stop();
  // then it was sent, with sentAt in epoch seconds, a number eventValue and its properties
  assert.equal(calls.length, 1);
  const [event] = calls[0].body.variables.events;
  assert.equal(event.eventType, "click");
  assert.equal(event.eventValue, 4.5);
  assert.deepEqual(event.properties, { device: "mobile" });
  assert.ok(Math.abs(event.sentAt - Date.now() / 1000) < 5, `sentAt ${event.sentAt} is not in seconds`);
});

test("hiding the page sends the queue with a keepalive fetch", async () => {
  // given queued events and a page that is then hidden
  const document = fakeDocument();
  const { client: tracker, calls } = client({ options: { document } });
  tracker.track("view", { itemId: "item-1" });
  tracker.track("view", { itemId: "item-2" });
  document.hide();
  // then one keepalive request carries both
  assert.equal(calls.length, 1);
  assert.equal(calls[0].init.keepalive, true);
  assert.equal(calls[0].body.variables.events.length, 2);
  assert.equal(tracker.queued, 0);
});

test("without fetch, hiding the page uses navigator.sendBeacon", async () => {
  // given a browser without fetch
  const beacons = [];
  const document = fakeDocument();
  const tracker = recsite.createClient({
    endpoint: ENDPOINT,
    trackingId: "tracker-1",
    fetch: null,
    sendBeacon: (url, data) => beacons.push({ url, data }) || true,
    storage: fakeStorage(),
    document,
    flushInterval: 0,
  });
  // when an event is queued and the page hidden
  tracker.track("view", { itemId: "item-1" });
  document.hide();
  // then the beacon carried the putEvents request as JSON
  assert.equal(beacons.length, 1);
  assert.equal(beacons[0].url, ENDPOINT);
  assert.equal(beacons[0].data.type, "application/json");
  const sent = JSON.parse(await beacons[0].data.text());
  assert.match(sent.query, /putEvents/);
  assert.equal(sent.variables.events[0].itemId, "item-1");
  assert.equal(tracker.queued, 0);
});

test("the sessionId is kept in storage and shared by the pages of a visitor", () => {
  // given two clients over one browser's storage, and one over another's
  const storage = fakeStorage();
  const options = { endpoint: ENDPOINT, trackingId: "t", fetch: async () => ({}), flushInterval: 0, document: fakeDocument() };
  const first = recsite.createClient({ ...options, storage });
  const second = recsite.createClient({ ...options, storage });
  const other = recsite.createClient({ ...options, storage: fakeStorage() });
  // then the same browser keeps its session id, under recsite.sessionId, and another gets its own
  assert.ok(first.sessionId.length >= 16);
  assert.equal(second.sessionId, first.sessionId);
  assert.equal(storage.getItem("recsite.sessionId"), first.sessionId);
  assert.notEqual(other.sessionId, first.sessionId);
});

test("an event on a shown item carries the list's recommendationId and impression", async () => {
  // given a recommendations list the visitor was shown, 30 items long
  const { client: tracker, calls } = client();
  const shown = Array.from({ length: 30 }, (_, n) => `item-${n}`);
  tracker.impressions("rec-1", shown);
  // when the visitor clicks one of them, and an item from elsewhere
  tracker.track("click", { itemId: "item-3" });
  tracker.track("click", { itemId: "item-elsewhere" });
  await tracker.flush();
  // then the first event points to the list (its first 25 ids), the second to nothing
  const [clicked, elsewhere] = calls[0].body.variables.events;
  assert.equal(clicked.recommendationId, "rec-1");
  assert.deepEqual(clicked.impression, shown.slice(0, 25));
  assert.equal(elsewhere.recommendationId, undefined);
  assert.equal(elsewhere.impression, undefined);
});

test("a user signing in mid-queue splits the calls by user", async () => {
  // given an anonymous event, then identify, then another event
  const { client: tracker, calls } = client();
  tracker.track("view", { itemId: "item-1" });
  tracker.identify("user-7");
  tracker.track("purchase", { itemId: "item-1", eventValue: 10 });
  await tracker.flush();
  // then each call has one user (none, then user-7) and the same session
  assert.deepEqual(calls.map((call) => call.body.variables.userId), [null, "user-7"]);
  assert.equal(calls[0].body.variables.sessionId, calls[1].body.variables.sessionId);
});

test("a network failure keeps the events for the next flush, with the same eventIds", async () => {
  // given a network that fails once
  const { client: tracker, calls } = client({ answer: (n) => (n === 1 ? new Error("offline") : undefined) });
  tracker.track("view", { itemId: "item-1" });
  // when flushed twice
  await tracker.flush();
  assert.equal(tracker.queued, 1);
  await tracker.flush();
  // then the retry sent the very same event (so Recsite cannot count it twice)
  assert.equal(calls.length, 2);
  assert.deepEqual(calls[1].body.variables.events, calls[0].body.variables.events);
  assert.equal(tracker.queued, 0);
});

test("events Recsite refuses are dropped and reported to onError", async () => {
  // given a server answering a GraphQL error
  const errors = [];
  const refusal = { body: { data: null, errors: [{ message: "bad", extensions: { code: "BAD_USER_INPUT" } }] } };
  const { client: tracker, calls } = client({
    answer: refusal,
    options: { onError: (problems, events) => errors.push({ problems, events }) },
  });
  tracker.track("view", { itemId: "item-1" });
  // when flushed twice
  await tracker.flush();
  await tracker.flush();
  // then it was sent once, not retried, and reported with its events
  assert.equal(calls.length, 1);
  assert.equal(errors.length, 1);
  assert.equal(errors[0].problems[0].extensions.code, "BAD_USER_INPUT");
  assert.equal(errors[0].events[0].itemId, "item-1");
});

test("the page API: init, then track and flush through window.recsite", async () => {
  // given the module's global API before and after init
  assert.throws(() => recsite.track("view", {}), /init/);
  const network = fakeFetch();
  recsite.init({
    endpoint: ENDPOINT,
    trackingId: "tracker-2",
    userId: "user-9",
    fetch: network.fetch,
    storage: fakeStorage(),
    document: fakeDocument(),
    flushInterval: 0,
  });
  // when an event is tracked and flushed
  recsite.track("view", { itemId: "item-1" });
  await recsite.flush();
  // then it went to the tracker of init; eventType is required
  assert.equal(network.calls[0].body.variables.trackingId, "tracker-2");
  assert.equal(network.calls[0].body.variables.userId, "user-9");
  assert.throws(() => recsite.track("", {}), /eventType/);
  assert.throws(() => recsite.createClient({ endpoint: ENDPOINT }), /trackingId/);
});
