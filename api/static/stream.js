// One task's events over EventSource, each delivered once and in order.
//
// Without API keys the browser does the work: it reconnects by itself with
// `Last-Event-ID` after the server's `retry:` delay. Two cases need us:
//  - the browser gives up (readyState CLOSED: the API answered 5xx, or 401),
//    so we open a new EventSource with `?after=<last sequence>`;
//  - keys are on: the URL carries a short-lived stream token, so every
//    (re)connection needs a fresh token; we close the EventSource on any error
//    and open a new one with a new token and `?after=` (a new EventSource
//    sends no `Last-Event-ID`).
// The stream's first frame (`event: snapshot`, no id) is the task's state as of its
// `last_sequence`: handed to `onSnapshot`, it never moves the sequence we resume from.
// Events are keyed by sequence: one already delivered is dropped, so a
// reconnection never shows a line twice. After a terminal event we close the
// stream ourselves (a reconnection would get 204 and stop anyway), unless the
// store has events after it: an operator's reset in Temporal reopened the task
// (`task.reset.v1` begins a new chapter), and we follow the new chapter.

import { api, ApiError, currentKey } from "./api.js";

const RECONNECT_MS = 500;
const MAX_BACKOFF_MS = 3000;

export class TaskStream {
  /**
   * @param {string} taskId
   * @param {{eventTypes: string[], terminalTypes: Set<string>,
   *          onEvent: (envelope: object) => void, onState: (state: string) => void,
   *          onSnapshot?: (snapshot: object) => void}} options
   */
  constructor(taskId, { eventTypes, terminalTypes, onEvent, onState, onSnapshot }) {
    this.taskId = taskId;
    this.eventTypes = eventTypes;
    this.terminalTypes = terminalTypes;
    this.onEvent = onEvent;
    this.onSnapshot = onSnapshot;
    this.onState = onState;
    this.lastSequence = 0;
    this.source = null;
    this.timer = null;
    this.stopped = false;
    this.failures = 0;
  }

  start() {
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.source?.close();
    this.source = null;
  }

  async connect() {
    if (this.stopped) return;
    let url = `tasks/${encodeURIComponent(this.taskId)}/events`;
    let withToken = false;
    if (currentKey()) {
      try {
        const minted = await api(`tasks/${encodeURIComponent(this.taskId)}/stream-token`, {
          method: "POST",
        });
        url = minted.events_url;
        withToken = true;
      } catch (error) {
        // 404/405: this server has no stream tokens; the plain URL is all there is.
        if (!(error instanceof ApiError && (error.status === 404 || error.status === 405))) {
          this.retryLater();
          return;
        }
      }
    }
    if (this.stopped) return;
    if (this.lastSequence > 0) {
      url += `${url.includes("?") ? "&" : "?"}after=${this.lastSequence}`;
    }
    const source = new EventSource(url);
    this.source = source;
    this.onState("connecting");
    source.onopen = () => {
      this.failures = 0;
      this.onState("live");
    };
    const deliver = (message) => this.deliver(source, message);
    for (const type of this.eventTypes) source.addEventListener(type, deliver);
    // The first frame: the task's state (no id, so Last-Event-ID is left alone).
    source.addEventListener("snapshot", (message) => {
      if (source === this.source && this.onSnapshot) this.onSnapshot(JSON.parse(message.data));
    });
    source.addEventListener("error", (event) => {
      if (event instanceof MessageEvent && event.data) {
        // The server's `event: error` frame: a problem inside the stream.
        this.onState("error");
        return;
      }
      this.lost(source, withToken);
    });
  }

  deliver(source, message) {
    if (source !== this.source) return;
    const envelope = JSON.parse(message.data);
    const sequence = Number(message.lastEventId || envelope.sequence);
    if (!(sequence > this.lastSequence)) return; // seen already: keyed by sequence
    this.lastSequence = sequence;
    this.failures = 0;
    this.onEvent(envelope);
    if (this.terminalTypes.has(envelope.type)) this.chapterEnded(source, sequence);
  }

  async chapterEnded(source, sequence) {
    source.close();
    if (source === this.source) this.source = null;
    let more = false;
    try {
      const page = await api(
        `tasks/${encodeURIComponent(this.taskId)}/history?after=${sequence}&limit=1`,
      );
      more = page.events.length > 0;
    } catch {
      more = false; // the stream said it ended; a later view shows a reopened task anyway
    }
    if (this.stopped || sequence !== this.lastSequence) return;
    if (more) {
      this.connect(); // a reset reopened the task: on to its new chapter
      return;
    }
    this.stop();
    this.onState("ended");
  }

  lost(source, withToken) {
    if (this.stopped || source !== this.source) return;
    if (!withToken && source.readyState === EventSource.CONNECTING) {
      this.onState("reconnecting"); // the browser retries, with Last-Event-ID
      return;
    }
    source.close();
    this.source = null;
    this.retryLater();
  }

  retryLater() {
    if (this.stopped) return;
    this.failures += 1;
    this.onState("reconnecting");
    const delay = Math.min(RECONNECT_MS * 2 ** (this.failures - 1), MAX_BACKOFF_MS);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }
}
