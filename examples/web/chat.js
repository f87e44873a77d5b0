// chat-stream from a browser: plain `fetch` and a small Server-Sent Events reader.
//
// `EventSource` cannot send `Authorization: Bearer`, so the stream is read from `fetch`'s body.
// Every event has an id `<turn_id>:<seq>`; after a dropped connection the turn is resumed with
// GET /functions/v1/chat-stream/turns/<turn_id> and `Last-Event-ID: <the last id seen>`, which
// sends exactly the events after it. POST .../turns/<turn_id>/stop ends the turn at once: its
// stream then ends with `done` and `"stopped": true`.

const TERMINAL = new Set(["done", "error", "expired"]);

// The events of an SSE body as {id, data} (comments such as `: ping` skipped). The id is the
// last `id:` line seen, as the SSE specification keeps it.
export async function* readEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let id = "";
  let data = [];
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        let line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        if (line.endsWith("\r")) line = line.slice(0, -1);
        if (line === "") {
          if (data.length) yield { id, data: data.join("\n") };
          data = [];
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (field === "data") data.push(text);
        else if (field === "id") id = text;
      }
    }
  } finally {
    reader.releaseLock();
  }
}

export class ChatError extends Error {
  constructor(status, body) {
    super(body?.userMessage || `HTTP ${status}`);
    this.status = status;
    this.code = body?.code;
    this.retryAfter = body?.retryAfter;
  }
}

// One chat turn: `run()` streams it to the end, resuming after a dropped connection.
export class ChatTurn {
  constructor({ baseUrl, token, apikey, conversationId, message, onEvent, maxResumes = 5 }) {
    Object.assign(this, { baseUrl, token, apikey, conversationId, message, onEvent, maxResumes });
    this.turnId = null;
    this.lastEventId = null;
    this.resumes = 0;
    this.final = null;
    this._abort = null;
  }

  headers(extra = {}) {
    return { Authorization: `Bearer ${this.token}`, apikey: this.apikey, ...extra };
  }

  async run() {
    let response = await this._open();
    for (;;) {
      try {
        for await (const { id, data } of readEvents(response.body)) {
          const event = JSON.parse(data);
          if (id) this.lastEventId = id;
          this.onEvent?.(event, id);
          if (TERMINAL.has(event.type)) {
            this.final = event;
            return event;
          }
        }
      } catch (error) {
        // A network drop (or `drop()`): resume below. Anything else is a bug to surface.
        if (!(error instanceof TypeError) && error?.name !== "AbortError") throw error;
      }
      if (this.resumes >= this.maxResumes) throw new Error("the connection kept dropping");
      await new Promise((resolve) => setTimeout(resolve, Math.min(250 * 2 ** this.resumes, 4000)));
      this.resumes += 1;
      response = await this._resume();
    }
  }

  // Close the current connection, as a dropped network would; `run()` resumes by itself.
  drop() {
    this._abort?.abort();
  }

  // Stop the turn: the answer so far is stored and the stream ends with `done`, `stopped`.
  async stop() {
    if (!this.turnId) throw new Error("the turn has not started yet");
    const response = await fetch(`${this.baseUrl}/functions/v1/chat-stream/turns/${this.turnId}/stop`, {
      method: "POST",
      headers: this.headers(),
    });
    const body = await response.json();
    if (!response.ok) throw new ChatError(response.status, body);
    return body;
  }

  async _open() {
    const response = await this._fetch(`${this.baseUrl}/functions/v1/chat-stream`, {
      method: "POST",
      headers: this.headers({ "Content-Type": "application/json" }),
      body: JSON.stringify({ message: this.message, conversationId: this.conversationId }),
    });
    this.turnId = response.headers.get("x-turn-id");
    return response;
  }

  async _resume() {
    const extra = this.lastEventId ? { "Last-Event-ID": this.lastEventId } : {};
    return this._fetch(`${this.baseUrl}/functions/v1/chat-stream/turns/${this.turnId}`, {
      headers: this.headers(extra),
    });
  }

  async _fetch(url, init) {
    this._abort = new AbortController();
    const response = await fetch(url, { ...init, signal: this._abort.signal });
    if (!response.ok) {
      let body = null;
      try {
        body = await response.json();
      } catch {}
      if (body) body.retryAfter = response.headers.get("retry-after");
      throw new ChatError(response.status, body);
    }
    return response;
  }
}
