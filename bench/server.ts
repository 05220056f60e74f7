/**
 * The benchmark's fake provider: a loopback HTTP server, run in its own process by `run.ts` so
 * that its cost is not counted in the client's. It speaks three wire formats, JSON and SSE, with
 * the fields the real APIs send:
 *
 * - `POST /v1/messages`: Anthropic Messages;
 * - `POST /v1/chat/completions`: OpenAI Chat Completions (`stream_options.include_usage` honoured);
 * - `POST /v1/responses`: OpenAI Responses (what `@effect/ai-openai` speaks).
 *
 * The reply's size comes from the prompt (see `wire.ts`). A streamed reply is written
 * `eventsPerWrite` events at a time, as fast as the client reads (back-pressure honoured), so
 * the client's network reads hold as many events as it lets pile up, like a fast local model.
 *
 * Usage: `node --import tsx bench/server.ts [--events-per-write N] [--port P]`. It prints (or,
 * when forked, sends) `{ port }` once it listens on 127.0.0.1.
 */
import * as Http from "node:http"
import type * as Net from "node:net"
import * as Wire from "./wire.js"

const argValue = (name: string): string | undefined => {
  const index = process.argv.indexOf(name)
  return index === -1 ? undefined : process.argv[index + 1]
}

const eventsPerWrite = Number(argValue("--events-per-write") ?? 16)
const created = 1_760_000_000

type Protocol = "anthropic" | "chat" | "responses"

interface Job {
  readonly protocol: Protocol
  readonly seq: number
  readonly chunks: number
  readonly model: string
  readonly stream: boolean
  readonly includeUsage: boolean
}

const sse = (data: unknown, event?: string): string =>
  `${event === undefined ? "" : `event: ${event}\n`}data: ${JSON.stringify(data)}\n\n`

// -----------------------------------------------------------------------------
// JSON replies
// -----------------------------------------------------------------------------

const anthropicUsage = (job: Job, output: number) => ({
  input_tokens: Wire.usage(job.seq, job.chunks).inputTokens,
  cache_creation_input_tokens: 0,
  cache_read_input_tokens: 0,
  output_tokens: output,
  service_tier: "standard"
})

const anthropicMessage = (job: Job, content: ReadonlyArray<unknown>, done: boolean) => ({
  id: `msg_bench${job.seq}`,
  type: "message",
  role: "assistant",
  model: job.model,
  content,
  stop_reason: done ? "end_turn" : null,
  stop_sequence: null,
  usage: anthropicUsage(job, done ? Wire.usage(job.seq, job.chunks).outputTokens : 1)
})

const chatUsage = (job: Job) => {
  const u = Wire.usage(job.seq, job.chunks)
  return {
    prompt_tokens: u.inputTokens,
    completion_tokens: u.outputTokens,
    total_tokens: u.inputTokens + u.outputTokens,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: 0,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0
    }
  }
}

const chatCompletion = (job: Job) => ({
  id: `chatcmpl-bench${job.seq}`,
  object: "chat.completion",
  created,
  model: job.model,
  choices: [{
    index: 0,
    message: { role: "assistant", content: Wire.text(job.seq, job.chunks), refusal: null, annotations: [] },
    logprobs: null,
    finish_reason: "stop"
  }],
  usage: chatUsage(job),
  service_tier: "default",
  system_fingerprint: "fp_bench"
})

const responsesUsage = (job: Job) => {
  const u = Wire.usage(job.seq, job.chunks)
  return {
    input_tokens: u.inputTokens,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: u.outputTokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: u.inputTokens + u.outputTokens
  }
}

const outputText = (text: string) => ({ type: "output_text", text, annotations: [], logprobs: [] })

const outputMessage = (job: Job, content: ReadonlyArray<unknown>, done: boolean) => ({
  id: `msg_bench${job.seq}`,
  type: "message",
  status: done ? "completed" : "in_progress",
  role: "assistant",
  content
})

const responseObject = (job: Job, done: boolean) => ({
  id: `resp_bench${job.seq}`,
  object: "response",
  created_at: created,
  status: done ? "completed" : "in_progress",
  background: false,
  error: null,
  incomplete_details: null,
  instructions: null,
  max_output_tokens: Wire.maxTokens,
  max_tool_calls: null,
  model: job.model,
  output: done ? [outputMessage(job, [outputText(Wire.text(job.seq, job.chunks))], true)] : [],
  parallel_tool_calls: true,
  previous_response_id: null,
  prompt_cache_key: null,
  reasoning: { effort: null, summary: null },
  safety_identifier: null,
  service_tier: "default",
  store: true,
  temperature: 1,
  text: { format: { type: "text" }, verbosity: "medium" },
  tool_choice: "auto",
  tools: [],
  top_logprobs: 0,
  top_p: 1,
  truncation: "disabled",
  usage: done ? responsesUsage(job) : null,
  user: null,
  metadata: {}
})

const jsonReply = (job: Job): unknown => {
  switch (job.protocol) {
    case "anthropic":
      return anthropicMessage(job, [{ type: "text", text: Wire.text(job.seq, job.chunks) }], true)
    case "chat":
      return chatCompletion(job)
    case "responses":
      return responseObject(job, true)
  }
}

// -----------------------------------------------------------------------------
// Streamed replies: a head, one event per text delta, a tail
// -----------------------------------------------------------------------------

interface Rendered {
  readonly head: string
  readonly delta: (i: number) => string
  readonly tail: string
}

const renderAnthropic = (job: Job): Rendered => {
  const prefix =
    `event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":`
  return {
    head: sse({ type: "message_start", message: anthropicMessage(job, [], false) }, "message_start") +
      sse({ type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }, "content_block_start") +
      sse({ type: "ping" }, "ping"),
    delta: (i) => `${prefix}${JSON.stringify(Wire.piece(job.seq, i))}}}\n\n`,
    tail: sse({ type: "content_block_stop", index: 0 }, "content_block_stop") +
      sse({
        type: "message_delta",
        delta: { stop_reason: "end_turn", stop_sequence: null },
        usage: anthropicUsage(job, Wire.usage(job.seq, job.chunks).outputTokens)
      }, "message_delta") +
      sse({ type: "message_stop" }, "message_stop")
  }
}

const renderChat = (job: Job): Rendered => {
  const base = `{"id":"chatcmpl-bench${job.seq}","object":"chat.completion.chunk","created":${created},"model":${
    JSON.stringify(job.model)
  },"service_tier":"default","system_fingerprint":"fp_bench","choices":[{"index":0,"delta":`
  const end = job.includeUsage ? `,"usage":null}` : "}"
  const chunk = (delta: string, finish: string) =>
    `data: ${base}${delta},"logprobs":null,"finish_reason":${finish}}]${end}\n\n`
  const usageChunk = {
    id: `chatcmpl-bench${job.seq}`,
    object: "chat.completion.chunk",
    created,
    model: job.model,
    service_tier: "default",
    system_fingerprint: "fp_bench",
    choices: [],
    usage: chatUsage(job)
  }
  return {
    head: `: keep-alive\n\n${chunk(`{"role":"assistant","content":"","refusal":null}`, "null")}`,
    delta: (i) => chunk(`{"content":${JSON.stringify(Wire.piece(job.seq, i))}}`, "null"),
    tail: chunk("{}", `"stop"`) + (job.includeUsage ? `data: ${JSON.stringify(usageChunk)}\n\n` : "") +
      "data: [DONE]\n\n"
  }
}

const renderResponses = (job: Job): Rendered => {
  // sequence_number: 0 created, 1 in_progress, 2 item added, 3 part added, 4.. deltas, then the tail.
  const itemId = `msg_bench${job.seq}`
  const full = Wire.text(job.seq, job.chunks)
  let n = 4 + job.chunks
  const next = () => n++
  return {
    head:
      sse({ type: "response.created", sequence_number: 0, response: responseObject(job, false) }, "response.created") +
      sse(
        { type: "response.in_progress", sequence_number: 1, response: responseObject(job, false) },
        "response.in_progress"
      ) +
      sse({
        type: "response.output_item.added",
        sequence_number: 2,
        output_index: 0,
        item: outputMessage(job, [], false)
      }, "response.output_item.added") +
      sse({
        type: "response.content_part.added",
        sequence_number: 3,
        item_id: itemId,
        output_index: 0,
        content_index: 0,
        part: outputText("")
      }, "response.content_part.added"),
    delta: (i) =>
      `event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":${
        4 + i
      },"item_id":"${itemId}","output_index":0,"content_index":0,"delta":${
        JSON.stringify(Wire.piece(job.seq, i))
      },"logprobs":[]}\n\n`,
    tail: sse({
      type: "response.output_text.done",
      sequence_number: next(),
      item_id: itemId,
      output_index: 0,
      content_index: 0,
      text: full,
      logprobs: []
    }, "response.output_text.done") +
      sse({
        type: "response.content_part.done",
        sequence_number: next(),
        item_id: itemId,
        output_index: 0,
        content_index: 0,
        part: outputText(full)
      }, "response.content_part.done") +
      sse({
        type: "response.output_item.done",
        sequence_number: next(),
        output_index: 0,
        item: outputMessage(job, [outputText(full)], true)
      }, "response.output_item.done") +
      sse(
        { type: "response.completed", sequence_number: next(), response: responseObject(job, true) },
        "response.completed"
      )
  }
}

const render = (job: Job): Rendered => {
  switch (job.protocol) {
    case "anthropic":
      return renderAnthropic(job)
    case "chat":
      return renderChat(job)
    case "responses":
      return renderResponses(job)
  }
}

/** Writes the stream `eventsPerWrite` deltas at a time, waiting for `drain` when the socket is full. */
const writeStream = async (res: Http.ServerResponse, job: Job): Promise<void> => {
  const rendered = render(job)
  let buffer = rendered.head
  for (let i = 0; i < job.chunks; i++) {
    buffer += rendered.delta(i)
    if ((i + 1) % eventsPerWrite === 0) {
      const ok = res.write(buffer)
      buffer = ""
      if (!ok) {
        await new Promise<void>((resolve) => {
          const done = () => {
            res.off("drain", done)
            res.off("close", done)
            resolve()
          }
          res.once("drain", done)
          res.once("close", done)
        })
      }
      if (res.destroyed) return
    }
  }
  res.end(buffer + rendered.tail)
}

// -----------------------------------------------------------------------------
// Server
// -----------------------------------------------------------------------------

const protocolOf = (path: string): Protocol | undefined =>
  path.endsWith("/messages")
    ? "anthropic"
    : path.endsWith("/chat/completions")
    ? "chat"
    : path.endsWith("/responses")
    ? "responses"
    : undefined

const fail = (res: Http.ServerResponse, status: number, message: string) => {
  const body = JSON.stringify({ error: { type: "invalid_request_error", message } })
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) })
  res.end(body)
}

const handle = (req: Http.IncomingMessage, res: Http.ServerResponse, raw: string) => {
  const protocol = protocolOf((req.url ?? "/").split("?")[0] ?? "/")
  if (req.method !== "POST" || protocol === undefined) return fail(res, 404, `no route for ${req.method} ${req.url}`)
  let body: any
  try {
    body = JSON.parse(raw)
  } catch {
    return fail(res, 400, "the body is not JSON")
  }
  const asked = Wire.parsePrompt(raw)
  if (asked === undefined) return fail(res, 400, "the prompt is not a bench prompt")
  const job: Job = {
    protocol,
    seq: asked.seq,
    chunks: asked.chunks,
    model: typeof body?.model === "string" ? body.model : "unknown",
    stream: body?.stream === true,
    includeUsage: body?.stream_options?.include_usage === true
  }
  const requestId = protocol === "anthropic" ? "request-id" : "x-request-id"
  if (!job.stream) {
    const json = JSON.stringify(jsonReply(job))
    res.writeHead(200, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(json),
      [requestId]: `req_bench${job.seq}`
    })
    res.end(json)
    return
  }
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    [requestId]: `req_bench${job.seq}`
  })
  writeStream(res, job).catch(() => res.destroy())
}

const server = Http.createServer(
  { keepAliveTimeout: 60_000, requestTimeout: 0, headersTimeout: 60_000 },
  (req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => handle(req, res, Buffer.concat(chunks).toString("utf8")))
  }
)
const sockets = new Set<Net.Socket>()
server.on("connection", (socket) => {
  socket.setNoDelay(true)
  sockets.add(socket)
  socket.on("close", () => sockets.delete(socket))
})

server.listen({ host: "127.0.0.1", port: Number(argValue("--port") ?? 0), backlog: 4096 }, () => {
  const address = server.address() as Net.AddressInfo
  const ready = { port: address.port }
  if (process.send !== undefined) process.send(ready)
  else console.log(JSON.stringify(ready))
})

const stop = () => {
  server.close()
  for (const socket of sockets) socket.destroy()
  process.exit(0)
}
process.on("SIGTERM", stop)
process.on("SIGINT", stop)
process.on("disconnect", stop)
