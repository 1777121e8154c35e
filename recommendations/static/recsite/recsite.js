/*
 * recsite.js: send a shop's events to Recsite's GraphQL `putEvents` (like Amplify's Personalize
 * analytics). No dependencies, no build step; Recsite serves it at /static/recsite/recsite.js.
 *
 *   <script src="https://recsite.example.com/static/recsite/recsite.js"></script>
 *   <script>
 *     recsite.init({ endpoint: "https://recsite.example.com/graphql/", trackingId: "...", userId: "u1" });
 *     recsite.impressions(list.recommendationId, list.items.map((i) => i.itemId)); // what was shown
 *     recsite.track("click", { itemId: "item-00042" }); // carries that recommendationId + impression
 *     recsite.track("purchase", { itemId: "item-00042", eventValue: 19.99, properties: { device: "web" } });
 *   </script>
 *
 * - Events are queued and sent in putEvents calls of at most 10 (Personalize's limit), one call per
 *   user: when the queue reaches 10, every `flushInterval` ms (5000), on `recsite.flush()`, and when
 *   the page is hidden or left (`fetch` with `keepalive`, else `navigator.sendBeacon`).
 * - Each event gets a random `eventId`, so a call retried after a network error is not counted
 *   twice (Recsite ignores repeated eventIds). Calls that fail on the network are retried on the
 *   next flush (at most `maxQueue` events are kept); calls Recsite refuses are dropped and passed
 *   to `onError`.
 * - The anonymous `sessionId` is kept in localStorage (`recsite.sessionId`), so a visitor is
 *   recognised across pages; an event carrying both ids hands the session's events to the user.
 * - `impressions(recommendationId, itemIds)` remembers a list the visitor was shown; a later event
 *   on one of its items carries its `recommendationId` and `impression` (the first 25 ids).
 *
 * Loaded in a page it defines `window.recsite`; in Node, `require` returns the same object
 * (`createClient(options)` makes independent clients, as the tests do).
 */
(function (root, factory) {
  var api = factory(root);
  if (typeof module === "object" && module.exports) {
    module.exports = api;
  } else {
    root.recsite = api;
  }
})(typeof globalThis !== "undefined" ? globalThis : this, function (root) {
  "use strict";

  var MAX_EVENTS_PER_CALL = 10;
  var MAX_IMPRESSION_IDS = 25;
  var SESSION_KEY = "recsite.sessionId";
  var PUT_EVENTS =
    "mutation RecsitePutEvents($trackingId: String!, $sessionId: String!, $userId: String, " +
    "$events: [EventInput!]!) { putEvents(trackingId: $trackingId, sessionId: $sessionId, " +
    "userId: $userId, events: $events) { eventsRecorded duplicatesIgnored } }";

  function randomId() {
    var crypto = root && root.crypto;
    if (crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
    var text = "";
    for (var i = 0; i < 4; i++) text += Math.floor(Math.random() * 0x100000000).toString(16);
    return text;
  }

  function defaultStorage() {
    try {
      var storage = root && root.localStorage;
      if (!storage) return null;
      storage.setItem("recsite.probe", "1");
      storage.removeItem("recsite.probe");
      return storage;
    } catch (error) {
      return null; // blocked (private mode, cookies off): the session lives as long as the page
    }
  }

  function sessionIdFrom(storage) {
    var id = null;
    try {
      id = storage && storage.getItem(SESSION_KEY);
      if (!id) {
        id = randomId();
        if (storage) storage.setItem(SESSION_KEY, id);
      }
    } catch (error) {
      id = id || randomId();
    }
    return id;
  }

  /** A tracking client; `options` as for `init`, plus `fetch`, `sendBeacon`, `storage`, `now`, `document`. */
  function createClient(options) {
    options = options || {};
    if (!options.endpoint) throw new Error("recsite: `endpoint` (the /graphql/ URL) is required");
    if (!options.trackingId) throw new Error("recsite: `trackingId` (from createEventTracker) is required");
    var nav = root && root.navigator;
    var fetchImpl = "fetch" in options ? options.fetch : root && root.fetch ? root.fetch.bind(root) : null;
    var beacon =
      "sendBeacon" in options ? options.sendBeacon : nav && nav.sendBeacon ? nav.sendBeacon.bind(nav) : null;
    var now = options.now || Date.now;
    var storage = options.storage === undefined ? defaultStorage() : options.storage;
    var maxQueue = options.maxQueue || 100;
    var onError = options.onError || function () {};
    var state = {
      userId: options.userId || null,
      sessionId: options.sessionId || sessionIdFrom(storage),
      queue: [],
      shown: {}, // itemId -> { recommendationId, impression }
      timer: null,
      sending: null,
    };

    function calls(batch) {
      // One call per run of events of the same user, at most 10 events each.
      var result = [];
      batch.forEach(function (entry) {
        var last = result[result.length - 1];
        if (!last || last.userId !== entry.userId || last.events.length >= MAX_EVENTS_PER_CALL) {
          last = { userId: entry.userId, events: [] };
          result.push(last);
        }
        last.events.push(entry.event);
      });
      return result;
    }

    function body(call) {
      return JSON.stringify({
        query: PUT_EVENTS,
        operationName: "RecsitePutEvents",
        variables: {
          trackingId: options.trackingId,
          sessionId: state.sessionId,
          userId: call.userId,
          events: call.events,
        },
      });
    }

    function requeue(call) {
      var entries = call.events.map(function (event) {
        return { userId: call.userId, event: event };
      });
      state.queue = entries.concat(state.queue).slice(-maxQueue);
    }

    function send(call) {
      return fetchImpl(options.endpoint, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: body(call),
        credentials: "same-origin",
      }).then(
        function (response) {
          return response.json().then(
            function (answer) {
              if (answer && answer.errors && answer.errors.length) {
                onError(answer.errors, call.events); // refused as it is: sending it again will not help
              } else if (!response.ok) {
                onError([{ message: "HTTP " + response.status }], call.events);
              }
            },
            function () {
              if (response.status >= 500) requeue(call);
              else onError([{ message: "HTTP " + response.status }], call.events);
            }
          );
        },
        function () {
          requeue(call); // offline or unreachable: the eventIds make a retry safe
        }
      );
    }

    /** Send what is queued now; resolves when Recsite has answered every call. */
    function flush() {
      if (state.sending) return state.sending.then(flush);
      if (!state.queue.length || !fetchImpl) return Promise.resolve();
      var batch = state.queue.splice(0, state.queue.length);
      state.sending = calls(batch)
        .reduce(function (previous, call) {
          return previous.then(function () {
            return send(call);
          });
        }, Promise.resolve())
        .then(function () {
          state.sending = null;
        });
      return state.sending;
    }

    /** Send what is queued as the page goes away: keepalive fetch, else sendBeacon. */
    function flushOnHide() {
      if (!state.queue.length) return;
      var batch = state.queue.splice(0, state.queue.length);
      calls(batch).forEach(function (call) {
        if (fetchImpl) {
          fetchImpl(options.endpoint, {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: body(call),
            keepalive: true,
            credentials: "same-origin",
          }).catch(function () {});
        } else if (beacon) {
          var payload = body(call);
          var Blob_ = root && root.Blob;
          beacon(options.endpoint, Blob_ ? new Blob_([payload], { type: "application/json" }) : payload);
        }
      });
    }

    /** Queue an event: `fields` may hold itemId, eventValue, properties, recommendationId, impression. */
    function track(eventType, fields) {
      if (!eventType || typeof eventType !== "string") throw new Error("recsite.track: eventType is required");
      fields = fields || {};
      var event = { eventType: eventType, sentAt: now() / 1000, eventId: randomId() };
      if (fields.itemId != null) event.itemId = String(fields.itemId);
      if (fields.eventValue != null) event.eventValue = Number(fields.eventValue);
      if (fields.properties != null) event.properties = fields.properties;
      var shown = fields.itemId != null ? state.shown[String(fields.itemId)] : null;
      var recommendationId = fields.recommendationId || (shown && shown.recommendationId);
      if (recommendationId) event.recommendationId = recommendationId;
      var impression = fields.impression || (shown && shown.impression);
      if (impression && impression.length) event.impression = impression.slice(0, MAX_IMPRESSION_IDS).map(String);
      state.queue.push({ userId: state.userId, event: event });
      if (state.queue.length > maxQueue) state.queue.splice(0, state.queue.length - maxQueue);
      if (state.queue.length >= MAX_EVENTS_PER_CALL) flush();
      return event;
    }

    /** Remember a list the visitor was shown (a recommendations answer's recommendationId and item ids). */
    function impressions(recommendationId, itemIds) {
      var ids = (itemIds || []).map(String);
      var entry = { recommendationId: recommendationId || null, impression: ids.slice(0, MAX_IMPRESSION_IDS) };
      ids.forEach(function (id) {
        state.shown[id] = entry;
      });
      return entry;
    }

    /** Set (or clear, with null) the signed-in user; later events carry it. */
    function identify(userId) {
      state.userId = userId == null ? null : String(userId);
    }

    function stop() {
      if (state.timer) clearInterval(state.timer);
      state.timer = null;
    }

    var interval = options.flushInterval === undefined ? 5000 : options.flushInterval;
    if (interval > 0) {
      state.timer = setInterval(flush, interval);
      if (state.timer && typeof state.timer.unref === "function") state.timer.unref();
    }
    var doc = options.document || (root && root.document);
    if (doc && doc.addEventListener) {
      doc.addEventListener("visibilitychange", function () {
        if (doc.visibilityState === "hidden") flushOnHide();
      });
    }
    if (root && root.addEventListener && !options.document) root.addEventListener("pagehide", flushOnHide);

    return {
      track: track,
      impressions: impressions,
      identify: identify,
      flush: flush,
      flushOnHide: flushOnHide,
      stop: stop,
      get sessionId() {
        return state.sessionId;
      },
      get userId() {
        return state.userId;
      },
      get queued() {
        return state.queue.length;
      },
    };
  }

  var current = null;

  function client() {
    if (!current) throw new Error("recsite: call recsite.init({endpoint, trackingId}) first");
    return current;
  }

  return {
    createClient: createClient,
    init: function (options) {
      if (current) current.stop();
      current = createClient(options);
      return current;
    },
    track: function (eventType, fields) {
      return client().track(eventType, fields);
    },
    impressions: function (recommendationId, itemIds) {
      return client().impressions(recommendationId, itemIds);
    },
    identify: function (userId) {
      return client().identify(userId);
    },
    flush: function () {
      return client().flush();
    },
    get sessionId() {
      return client().sessionId;
    },
  };
});
