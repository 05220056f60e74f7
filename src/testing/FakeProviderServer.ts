/**
 * A scoped loopback HTTP server that speaks the Anthropic Messages API and the OpenAI Chat
 * Completions API (JSON and server-sent events), for tests that go through real HTTP and the
 * providers' official SDKs.
 *
 * Replies are scripted per request (a FIFO queue, then a handler, then a default text reply) and
 * rendered field for field as the providers document them: a neutral `Reply.scripted(...)` becomes
 * an Anthropic message or an OpenAI chat completion depending on the path the client called, as
 * JSON or as a stream depending on the request body's `stream` flag. Faults are scripted too: error
 * statuses with headers, delays, hung requests, sockets dropped before or in the middle of a stream,
 * malformed bodies, unknown events, mid-stream error events. Every request is recorded.
 *
 * @example
 * ```ts
 * import * as Effect from "effect/Effect"
 * import Anthropic from "@anthropic-ai/sdk"
 * import { FakeProviderServer } from "@orchestify/providers/testing"
 *
 * const program = Effect.gen(function*() {
 *   const server = yield* FakeProviderServer.make()
 *   yield* server.enqueue(FakeProviderServer.Reply.scripted({ text: "Hi there" }))
 *   const client = new Anthropic({ apiKey: "test", baseURL: server.anthropicBaseUrl, maxRetries: 0 })
 *   const message = yield* Effect.promise(() =>
 *     client.messages.create({
 *       model: "claude-sonnet-4-6",
 *       max_tokens: 256,
 *       messages: [{ role: "user", content: "Hello" }]
 *     })
 *   )
 *   const requests = yield* server.requests
 *   return { message, requests }
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import * as Crypto from "node:crypto"
import * as Http from "node:http"
import type * as Net from "node:net"

// -----------------------------------------------------------------------------
// Models
// -----------------------------------------------------------------------------

/**
 * One request the server received.
 *
 * @since 0.1.0
 * @category Models
 */
export interface RecordedRequest {
  readonly method: string
  /** The pathname only, e.g. `"/v1/messages"`. */
  readonly path: string
  readonly query: Readonly<Record<string, string>>
  /** Lower-cased names; a header sent several times has its values joined with `", "`. */
  readonly headers: Readonly<Record<string, string>>
  /** `JSON.parse` of the body, or the raw string if it is not JSON, or `undefined` if empty. */
  readonly body: unknown
}

/**
 * The wire protocols the server speaks.
 *
 * @since 0.1.0
 * @category Models
 */
export type Protocol = "anthropic" | "openai"

/**
 * A tool call in a scripted reply.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ScriptedToolCall {
  readonly id: string
  readonly name: string
  /** The arguments as JSON text. */
  readonly arguments: string
  /**
   * How to split the arguments when streaming. Default: three pieces cut at arbitrary character
   * positions (mid-token), and for Anthropic a first empty `input_json_delta`.
   */
  readonly argumentChunks?: ReadonlyArray<string>
}

/**
 * Token usage of a scripted reply, normalised as in `Usage`: `inputTokens` counts every prompt
 * token (cache reads and writes included), `outputTokens` every generated token (reasoning
 * included). Rendered per protocol.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ScriptedUsage {
  readonly inputTokens?: number
  readonly outputTokens?: number
  readonly cacheReadTokens?: number
  readonly cacheWriteTokens?: number
  readonly reasoningTokens?: number
}

/**
 * A neutral description of a reply, rendered per protocol and per request: JSON when the request
 * body's `stream` is not `true`, server-sent events when it is.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ScriptedReply {
  /** The text; an array gives the streamed text deltas. */
  readonly text?: string | ReadonlyArray<string>
  /**
   * Anthropic: a thinking block before the text (`thinking_delta`s then a `signature_delta`).
   * OpenAI: `reasoning_content`, as DeepSeek sends it.
   */
  readonly thinking?: { readonly text: string | ReadonlyArray<string>; readonly signature?: string }
  readonly toolCalls?: ReadonlyArray<ScriptedToolCall>
  /**
   * The raw wire value. Default: Anthropic `"end_turn"` (`"tool_use"` with tool calls), OpenAI
   * `"stop"` (`"tool_calls"` with tool calls).
   */
  readonly finishReason?: string
  /** Default: 10 input tokens, 5 output tokens. */
  readonly usage?: ScriptedUsage
  /** Default: the request body's `model`. */
  readonly model?: string
  readonly id?: string
  /** Extra response headers. */
  readonly headers?: Readonly<Record<string, string>>
  /**
   * The call's cost in USD, reported as a LiteLLM proxy does (OpenAI protocol): in the
   * `x-litellm-response-cost` header of a JSON reply, and in the last chunk's `usage.cost` of a
   * stream (which carries no such header: it is sent before the cost is known; no usage chunk, no
   * cost, as without `stream_options.include_usage`).
   */
  readonly costUsd?: number
  /** Anthropic `event: ping`, OpenAI `: keep-alive` comment lines. Default `true`. */
  readonly pingEvents?: boolean
  /**
   * Insert events a client must skip: Anthropic `event: future_event`; OpenAI a chunk with
   * `choices: []` and an unknown top-level field, and an SSE comment.
   */
  readonly unknownEvents?: boolean
}

/**
 * One item of a server-sent events body.
 *
 * @since 0.1.0
 * @category Models
 */
export type SseItem =
  | { readonly _tag: "Event"; readonly event?: string; readonly data: string }
  | { readonly _tag: "Comment"; readonly text: string }
  | { readonly _tag: "Delay"; readonly millis: number }
  | { readonly _tag: "DropConnection" }
  | { readonly _tag: "Raw"; readonly text: string }

/**
 * Faults applied to a scripted stream. Every SSE event counts (pings and `[DONE]` included),
 * comments do not.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ScriptedStreamFaults {
  /** Destroy the socket after writing this many SSE events. */
  readonly dropAfterEvents?: number
  readonly delayBetweenEventsMillis?: number
  /** Write nothing more after this many SSE events; the connection stays open until the client goes. */
  readonly stallAfterEvents?: number
  /** End the body cleanly without `message_stop` (Anthropic) or the finish chunk and `[DONE]` (OpenAI). */
  readonly omitTerminal?: boolean
  /**
   * What a misbehaving server does after the terminal event (`message_stop`, `[DONE]`): `events`
   * sends more (a text delta `" AFTER THE END"`, a usage update of 999 output tokens, and the
   * terminal event again), which a client must drop; `keepOpen` keeps the connection open instead
   * of ending the body, which a client must not wait for.
   */
  readonly afterTerminal?: { readonly events?: boolean; readonly keepOpen?: boolean }
  /**
   * After this many events, send an error event and end the body: Anthropic `event: error` with
   * `{"type":"error","error":{"type","message"}}` (default type `overloaded_error`); OpenAI
   * `data: {"error":{"message","type","param","code"}}` (default type `server_error`, `code` is `status`).
   */
  readonly errorAfterEvents?: {
    readonly count: number
    readonly status?: number
    readonly type?: string
    readonly message?: string
  }
}

/**
 * What the server answers to one request.
 *
 * @since 0.1.0
 * @category Models
 */
export type Reply =
  | {
    readonly _tag: "Json"
    readonly status: number
    readonly headers: Readonly<Record<string, string>>
    readonly body: unknown
  }
  | {
    readonly _tag: "Text"
    readonly status: number
    readonly headers: Readonly<Record<string, string>>
    readonly body: string
    readonly contentType: string
  }
  | {
    readonly _tag: "Sse"
    readonly status: number
    readonly headers: Readonly<Record<string, string>>
    readonly items: ReadonlyArray<SseItem>
  }
  | { readonly _tag: "Scripted"; readonly reply: ScriptedReply; readonly stream?: ScriptedStreamFaults }
  | { readonly _tag: "Hang" }
  | { readonly _tag: "Drop" }
  | { readonly _tag: "Delayed"; readonly millis: number; readonly reply: Reply }

type Headers = Readonly<Record<string, string>>

const requestIdHeader = (protocol: Protocol): string => protocol === "anthropic" ? "request-id" : "x-request-id"

const randomId = (prefix: string): string => `${prefix}${Crypto.randomBytes(12).toString("hex")}`

/**
 * Constructors for `SseItem`s.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const SseItem: {
  /** An event; data that is not a string is JSON-encoded. */
  readonly event: (data: unknown, event?: string) => SseItem
  /** A comment line (`: text`), which clients must skip. */
  readonly comment: (text: string) => SseItem
  /** Wait before writing the next item. */
  readonly delay: (millis: number) => SseItem
  /** Destroy the socket right there. */
  readonly drop: SseItem
  /** Text written as-is. */
  readonly raw: (text: string) => SseItem
} = {
  event: (data, event) => {
    const encoded = typeof data === "string" ? data : JSON.stringify(data)
    return event === undefined ? { _tag: "Event", data: encoded } : { _tag: "Event", event, data: encoded }
  },
  comment: (text) => ({ _tag: "Comment", text }),
  delay: (millis) => ({ _tag: "Delay", millis }),
  drop: { _tag: "DropConnection" },
  raw: (text) => ({ _tag: "Raw", text })
}

const anthropicError = (status: number, type: string, message: string, headers?: Headers): Reply => {
  const requestId = randomId("req_")
  return {
    _tag: "Json",
    status,
    headers: { "request-id": requestId, ...lowerCaseKeys(headers ?? {}) },
    body: { type: "error", error: { type, message }, request_id: requestId }
  }
}

const openaiError = (
  status: number,
  error: {
    readonly message: string
    readonly type: string
    readonly code?: string | number | null
    readonly param?: string | null
  },
  headers?: Headers
): Reply => ({
  _tag: "Json",
  status,
  headers: { "x-request-id": randomId("req_"), ...lowerCaseKeys(headers ?? {}) },
  body: { error: { message: error.message, type: error.type, param: error.param ?? null, code: error.code ?? null } }
})

const recorded = (
  lines: ReadonlyArray<string>,
  protocol: Protocol,
  options?: { readonly status?: number; readonly headers?: Headers }
): Reply => {
  const items: Array<SseItem> = []
  for (const rawLine of lines) {
    const line = rawLine.trim()
    if (line.length === 0) continue
    if (protocol === "anthropic") {
      let type: unknown = undefined
      try {
        type = (JSON.parse(line) as { readonly type?: unknown }).type
      } catch {
        // not JSON: written without an event name
      }
      items.push(typeof type === "string" ? { _tag: "Event", event: type, data: line } : { _tag: "Event", data: line })
    } else {
      items.push({ _tag: "Event", data: line })
    }
  }
  if (protocol === "openai") items.push({ _tag: "Event", data: "[DONE]" })
  return { _tag: "Sse", status: options?.status ?? 200, headers: options?.headers ?? {}, items }
}

/**
 * Constructors for `Reply`s.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const Reply: {
  /** A JSON body (`content-type: application/json`), status 200 by default. */
  readonly json: (
    body: unknown,
    options?: { readonly status?: number; readonly headers?: Headers }
  ) => Reply
  /** A text body, e.g. a malformed one; `contentType` defaults to `text/plain; charset=utf-8`. */
  readonly text: (
    body: string,
    options?: { readonly status?: number; readonly headers?: Headers; readonly contentType?: string }
  ) => Reply
  /** A server-sent events body written item by item. */
  readonly sse: (
    items: ReadonlyArray<SseItem>,
    options?: { readonly status?: number; readonly headers?: Headers }
  ) => Reply
  /** A neutral reply rendered for the protocol and the request (JSON or stream). */
  readonly scripted: (reply: ScriptedReply, faults?: ScriptedStreamFaults) => Reply
  /** An Anthropic error body `{"type":"error","error":{"type","message"},"request_id"}`. */
  readonly anthropicError: (status: number, type: string, message: string, headers?: Headers) => Reply
  /** An OpenAI error body `{"error":{"message","type","param","code"}}`. */
  readonly openaiError: (
    status: number,
    error: {
      readonly message: string
      readonly type: string
      readonly code?: string | number | null
      readonly param?: string | null
    },
    headers?: Headers
  ) => Reply
  /**
   * Replays a recorded stream (`NAME.chunks.txt`, one `data:` payload per line): Anthropic lines get
   * `event: <type>`, OpenAI streams end with `data: [DONE]`.
   */
  readonly recorded: (
    lines: ReadonlyArray<string>,
    protocol: Protocol,
    options?: { readonly status?: number; readonly headers?: Headers }
  ) => Reply
  /** Accept the request and never answer. */
  readonly hang: Reply
  /** Destroy the socket without answering. */
  readonly drop: Reply
  /** Wait, then answer with `reply`. */
  readonly delayed: (millis: number, reply: Reply) => Reply
} = {
  json: (body, options) => ({
    _tag: "Json",
    status: options?.status ?? 200,
    headers: options?.headers ?? {},
    body
  }),
  text: (body, options) => ({
    _tag: "Text",
    status: options?.status ?? 200,
    headers: options?.headers ?? {},
    body,
    contentType: options?.contentType ?? "text/plain; charset=utf-8"
  }),
  sse: (items, options) => ({ _tag: "Sse", status: options?.status ?? 200, headers: options?.headers ?? {}, items }),
  scripted: (reply, faults) =>
    faults === undefined ? { _tag: "Scripted", reply } : { _tag: "Scripted", reply, stream: faults },
  anthropicError,
  openaiError,
  recorded,
  hang: { _tag: "Hang" },
  drop: { _tag: "Drop" },
  delayed: (millis, reply) => ({ _tag: "Delayed", millis, reply })
}

/**
 * The server, as a service.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Service {
  /** `"http://127.0.0.1:PORT"`. */
  readonly url: string
  /** The `baseURL` for `@anthropic-ai/sdk` (the host root). */
  readonly anthropicBaseUrl: string
  /** The `baseURL` for `openai` (`url + "/v1"`). */
  readonly openaiBaseUrl: string
  /** Queue replies, first in first out, one per request. */
  readonly enqueue: (...replies: ReadonlyArray<Reply>) => Effect.Effect<void>
  /** Answers requests when the queue is empty. */
  readonly setHandler: (handler: (request: RecordedRequest, index: number) => Reply) => Effect.Effect<void>
  /**
   * Answers Anthropic `POST /v1/messages/count_tokens` requests (`{ "input_tokens": n }`): a fixed
   * count, or a count (or any reply, an error for example) per request. Count requests never take
   * a queued reply, so counting does not disturb a scripted conversation; they are recorded in
   * `requests` like every request. Until set (and after `reset`), the count is
   * {@link countTokensOf} of the body. A body with a field the endpoint refuses (`max_tokens`,
   * `stream`, sampling, metadata) or without `model` and `messages` gets the API's 400.
   */
  readonly setTokenCount: (count: number | ((request: RecordedRequest) => number | Reply)) => Effect.Effect<void>
  /** Every request received so far, in order. */
  readonly requests: Effect.Effect<ReadonlyArray<RecordedRequest>>
  /** Responses whose client went away before the server finished writing. */
  readonly abortedResponses: Effect.Effect<number>
  /** Resolves once `abortedResponses >= count`. */
  readonly awaitAborted: (count: number) => Effect.Effect<void>
  /** Open sockets, idle keep-alive ones included (a client's pool may open one in advance). */
  readonly openConnections: Effect.Effect<number>
  /**
   * Responses received since the last `reset` that are still being written: neither finished nor
   * cut off by their client. A call whose fiber was interrupted leaves none behind.
   */
  readonly inFlightResponses: Effect.Effect<number>
  /**
   * Clears the queue, the handler and the records (requests and the aborted count). Responses still
   * in flight from before the reset are no longer counted when their client goes away.
   */
  readonly reset: Effect.Effect<void>
}

/**
 * The server as a service tag, for tests that share it through a layer.
 *
 * @since 0.1.0
 * @category Models
 */
export class FakeProviderServer extends Context.Tag("@orchestify/providers/testing/FakeProviderServer")<
  FakeProviderServer,
  Service
>() {}

// -----------------------------------------------------------------------------
// Rendering
// -----------------------------------------------------------------------------

type Route =
  | { readonly _tag: "Messages" }
  | { readonly _tag: "CountTokens" }
  | { readonly _tag: "ChatCompletions"; readonly deployment: string | undefined }
  | { readonly _tag: "Models"; readonly protocol: Protocol }
  | { readonly _tag: "Unknown"; readonly protocol: Protocol }

const guessProtocol = (request: RecordedRequest): Protocol =>
  request.headers["anthropic-version"] !== undefined || request.headers["x-api-key"] !== undefined
    ? "anthropic"
    : "openai"

const routeOf = (request: RecordedRequest): Route => {
  const path = request.path.replace(/\/+$/, "")
  if (path.endsWith("/messages")) return { _tag: "Messages" }
  if (path.endsWith("/messages/count_tokens")) return { _tag: "CountTokens" }
  if (path.endsWith("/chat/completions")) {
    const deployment = /\/deployments\/([^/]+)\/chat\/completions$/.exec(path)?.[1]
    return {
      _tag: "ChatCompletions",
      deployment: deployment === undefined ? undefined : decodeURIComponent(deployment)
    }
  }
  if (request.method === "GET" && path.endsWith("/models")) return { _tag: "Models", protocol: guessProtocol(request) }
  return { _tag: "Unknown", protocol: guessProtocol(request) }
}

const protocolOf = (route: Route): Protocol => {
  switch (route._tag) {
    case "Messages":
    case "CountTokens":
      return "anthropic"
    case "ChatCompletions":
      return "openai"
    case "Models":
    case "Unknown":
      return route.protocol
  }
}

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

const lowerCaseKeys = (headers: Headers): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers)) out[name.toLowerCase()] = value
  return out
}

/** Splits text into word-sized deltas (`"Hello from X"` -> `["Hello ", "from ", "X"]`). */
const splitText = (text: string): Array<string> => text.split(/(?<=\s)(?=\S)/).filter((piece) => piece.length > 0)

const deltasOf = (text: string | ReadonlyArray<string>): ReadonlyArray<string> =>
  typeof text === "string" ? splitText(text) : text

const joined = (text: string | ReadonlyArray<string>): string => typeof text === "string" ? text : text.join("")

/** Three pieces cut at arbitrary (mid-token) positions. */
const splitArguments = (args: string): Array<string> => {
  if (args.length < 3) return args.length === 0 ? [] : [args]
  const first = Math.floor(args.length / 3) + 1
  const second = Math.floor((2 * args.length) / 3) + 1
  return [args.slice(0, first), args.slice(first, second), args.slice(second)].filter((piece) => piece.length > 0)
}

const parseArguments = (args: string): unknown => {
  try {
    return JSON.parse(args)
  } catch {
    return args
  }
}

const defaultSignature = Buffer.from("FakeProviderServer thinking signature").toString("base64")

interface Tokens {
  readonly input: number
  readonly output: number
  readonly cacheRead: number
  readonly cacheWrite: number
  readonly reasoning: number | undefined
}

const tokensOf = (usage: ScriptedUsage | undefined): Tokens => ({
  input: usage?.inputTokens ?? 10,
  output: usage?.outputTokens ?? 5,
  cacheRead: usage?.cacheReadTokens ?? 0,
  cacheWrite: usage?.cacheWriteTokens ?? 0,
  reasoning: usage?.reasoningTokens
})

const anthropicUsage = (tokens: Tokens, outputTokens: number) => ({
  input_tokens: Math.max(0, tokens.input - tokens.cacheRead - tokens.cacheWrite),
  cache_creation_input_tokens: tokens.cacheWrite,
  cache_read_input_tokens: tokens.cacheRead,
  output_tokens: outputTokens,
  ...(tokens.reasoning === undefined ? {} : { output_tokens_details: { thinking_tokens: tokens.reasoning } })
})

const openaiUsage = (tokens: Tokens) => ({
  prompt_tokens: tokens.input,
  completion_tokens: tokens.output,
  total_tokens: tokens.input + tokens.output,
  prompt_tokens_details: { cached_tokens: tokens.cacheRead, audio_tokens: 0 },
  completion_tokens_details: {
    reasoning_tokens: tokens.reasoning ?? 0,
    audio_tokens: 0,
    accepted_prediction_tokens: 0,
    rejected_prediction_tokens: 0
  }
})

const requestBody = (request: RecordedRequest): Record<string, unknown> => isRecord(request.body) ? request.body : {}

const modelOf = (reply: ScriptedReply, request: RecordedRequest, fallback: string): string => {
  if (reply.model !== undefined) return reply.model
  const model = requestBody(request).model
  return typeof model === "string" ? model : fallback
}

const wantsStream = (request: RecordedRequest): boolean => requestBody(request).stream === true

const event = (data: Record<string, unknown> & { readonly type: string }): SseItem => ({
  _tag: "Event",
  event: data.type,
  data: JSON.stringify(data)
})

const dataEvent = (data: unknown): SseItem => ({ _tag: "Event", data: JSON.stringify(data) })

const stopReasonOf = (reply: ScriptedReply, protocol: Protocol): string =>
  reply.finishReason ??
    ((reply.toolCalls?.length ?? 0) > 0
      ? (protocol === "anthropic" ? "tool_use" : "tool_calls")
      : (protocol === "anthropic" ? "end_turn" : "stop"))

const anthropicJson = (reply: ScriptedReply, request: RecordedRequest): unknown => {
  const tokens = tokensOf(reply.usage)
  const content: Array<unknown> = []
  if (reply.thinking !== undefined) {
    content.push({
      type: "thinking",
      thinking: joined(reply.thinking.text),
      signature: reply.thinking.signature ?? defaultSignature
    })
  }
  if (reply.text !== undefined) content.push({ type: "text", text: joined(reply.text) })
  for (const call of reply.toolCalls ?? []) {
    content.push({ type: "tool_use", id: call.id, name: call.name, input: parseArguments(call.arguments) })
  }
  return {
    id: reply.id ?? randomId("msg_"),
    type: "message",
    role: "assistant",
    model: modelOf(reply, request, "claude-fake"),
    content,
    stop_reason: stopReasonOf(reply, "anthropic"),
    stop_sequence: null,
    usage: {
      ...anthropicUsage(tokens, tokens.output),
      cache_creation: { ephemeral_5m_input_tokens: tokens.cacheWrite, ephemeral_1h_input_tokens: 0 },
      service_tier: "standard"
    }
  }
}

const anthropicStream = (
  reply: ScriptedReply,
  request: RecordedRequest,
  faults: ScriptedStreamFaults
): Array<SseItem> => {
  const tokens = tokensOf(reply.usage)
  const pings = reply.pingEvents ?? true
  const items: Array<SseItem> = []
  items.push(event({
    type: "message_start",
    message: {
      id: reply.id ?? randomId("msg_"),
      type: "message",
      role: "assistant",
      model: modelOf(reply, request, "claude-fake"),
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: {
        ...anthropicUsage(tokens, Math.min(1, tokens.output)),
        cache_creation: { ephemeral_5m_input_tokens: tokens.cacheWrite, ephemeral_1h_input_tokens: 0 },
        service_tier: "standard"
      }
    }
  }))
  if (reply.unknownEvents === true) items.push(event({ type: "future_event" }))
  let index = 0
  const block = (start: unknown, deltas: ReadonlyArray<unknown>) => {
    items.push(event({ type: "content_block_start", index, content_block: start }))
    if (index === 0 && pings) items.push(event({ type: "ping" }))
    for (const delta of deltas) items.push(event({ type: "content_block_delta", index, delta }))
    items.push(event({ type: "content_block_stop", index }))
    index++
  }
  if (reply.thinking !== undefined) {
    block({ type: "thinking", thinking: "", signature: "" }, [
      ...deltasOf(reply.thinking.text).map((thinking) => ({ type: "thinking_delta", thinking })),
      { type: "signature_delta", signature: reply.thinking.signature ?? defaultSignature }
    ])
  }
  if (reply.text !== undefined) {
    block({ type: "text", text: "" }, deltasOf(reply.text).map((text) => ({ type: "text_delta", text })))
  }
  for (const call of reply.toolCalls ?? []) {
    const chunks = call.argumentChunks ?? ["", ...splitArguments(call.arguments)]
    block(
      { type: "tool_use", id: call.id, name: call.name, input: {} },
      chunks.map((partial_json) => ({ type: "input_json_delta", partial_json }))
    )
  }
  if (index === 0 && pings) items.push(event({ type: "ping" }))
  items.push(event({
    type: "message_delta",
    delta: { stop_reason: stopReasonOf(reply, "anthropic"), stop_sequence: null },
    usage: anthropicUsage(tokens, tokens.output)
  }))
  if (faults.omitTerminal !== true) items.push(event({ type: "message_stop" }))
  if (faults.afterTerminal?.events === true) {
    items.push(event({ type: "content_block_delta", index: 0, delta: { type: "text_delta", text: " AFTER THE END" } }))
    items.push(event({
      type: "message_delta",
      delta: { stop_reason: "max_tokens", stop_sequence: null },
      usage: anthropicUsage(tokens, 999)
    }))
    items.push(event({ type: "message_stop" }))
  }
  if (faults.afterTerminal?.keepOpen === true) items.push({ _tag: "Delay", millis: 2 ** 31 - 1 })
  return items
}

const openaiJson = (reply: ScriptedReply, request: RecordedRequest, route: Route): unknown => {
  const calls = reply.toolCalls ?? []
  return {
    id: reply.id ?? randomId("chatcmpl-"),
    object: "chat.completion",
    created: Math.floor(Date.now() / 1000),
    model: modelOf(reply, request, route._tag === "ChatCompletions" ? route.deployment ?? "gpt-fake" : "gpt-fake"),
    choices: [{
      index: 0,
      message: {
        role: "assistant",
        content: reply.text === undefined ? null : joined(reply.text),
        ...(reply.thinking === undefined ? {} : { reasoning_content: joined(reply.thinking.text) }),
        ...(calls.length === 0 ? {} : {
          tool_calls: calls.map((call) => ({
            id: call.id,
            type: "function",
            function: { name: call.name, arguments: call.arguments }
          }))
        }),
        refusal: null,
        annotations: []
      },
      logprobs: null,
      finish_reason: stopReasonOf(reply, "openai")
    }],
    usage: openaiUsage(tokensOf(reply.usage)),
    service_tier: "default",
    system_fingerprint: "fp_fakeprovider"
  }
}

const openaiStream = (
  reply: ScriptedReply,
  request: RecordedRequest,
  route: Route,
  faults: ScriptedStreamFaults
): Array<SseItem> => {
  const streamOptions = requestBody(request).stream_options
  const includeUsage = isRecord(streamOptions) && streamOptions.include_usage === true
  const pings = reply.pingEvents ?? true
  const base = {
    id: reply.id ?? randomId("chatcmpl-"),
    object: "chat.completion.chunk",
    created: Math.floor(Date.now() / 1000),
    model: modelOf(reply, request, route._tag === "ChatCompletions" ? route.deployment ?? "gpt-fake" : "gpt-fake"),
    service_tier: "default",
    system_fingerprint: "fp_fakeprovider"
  }
  const usageNull = includeUsage ? { usage: null } : {}
  const chunk = (delta: Record<string, unknown>, finishReason: string | null = null) =>
    dataEvent({
      ...base,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
      ...usageNull
    })
  const items: Array<SseItem> = []
  if (pings) items.push({ _tag: "Comment", text: "keep-alive" })
  const startsWithText = reply.text !== undefined && reply.thinking === undefined
  items.push(chunk({ role: "assistant", content: startsWithText ? "" : null, refusal: null }))
  if (reply.unknownEvents === true) {
    items.push(dataEvent({ ...base, choices: [], x_unknown_field: { note: "clients must skip this" }, ...usageNull }))
    items.push({ _tag: "Comment", text: "FAKE PROVIDER UNKNOWN COMMENT" })
  }
  if (reply.thinking !== undefined) {
    for (const piece of deltasOf(reply.thinking.text)) items.push(chunk({ content: null, reasoning_content: piece }))
  }
  if (reply.text !== undefined) {
    for (const piece of deltasOf(reply.text)) items.push(chunk({ content: piece }))
  }
  ;(reply.toolCalls ?? []).forEach((call, index) => {
    items.push(chunk({
      tool_calls: [{ index, id: call.id, type: "function", function: { name: call.name, arguments: "" } }]
    }))
    for (const piece of call.argumentChunks ?? splitArguments(call.arguments)) {
      items.push(chunk({ tool_calls: [{ index, function: { arguments: piece } }] }))
    }
  })
  if (pings) items.push({ _tag: "Comment", text: "keep-alive" })
  if (faults.omitTerminal !== true) {
    items.push(chunk({}, stopReasonOf(reply, "openai")))
    if (includeUsage) {
      const usage = openaiUsage(tokensOf(reply.usage))
      items.push(dataEvent({
        ...base,
        choices: [],
        usage: reply.costUsd === undefined ? usage : { ...usage, cost: reply.costUsd }
      }))
    }
    items.push({ _tag: "Event", data: "[DONE]" })
  }
  if (faults.afterTerminal?.events === true) {
    items.push(chunk({ content: " AFTER THE END" }))
    items.push(dataEvent({ ...base, choices: [], usage: openaiUsage({ ...tokensOf(reply.usage), output: 999 }) }))
    items.push({ _tag: "Event", data: "[DONE]" })
  }
  if (faults.afterTerminal?.keepOpen === true) items.push({ _tag: "Delay", millis: 2 ** 31 - 1 })
  return items
}

const applyFaults = (
  items: ReadonlyArray<SseItem>,
  faults: ScriptedStreamFaults,
  errorEvent: (fault: NonNullable<ScriptedStreamFaults["errorAfterEvents"]>) => SseItem
): Array<SseItem> => {
  const out: Array<SseItem> = []
  let written = 0
  const cut = (): boolean => {
    if (faults.dropAfterEvents !== undefined && written >= faults.dropAfterEvents) {
      out.push({ _tag: "DropConnection" })
      return true
    }
    if (faults.errorAfterEvents !== undefined && written >= faults.errorAfterEvents.count) {
      out.push(errorEvent(faults.errorAfterEvents))
      return true
    }
    if (faults.stallAfterEvents !== undefined && written >= faults.stallAfterEvents) {
      out.push({ _tag: "Delay", millis: 2 ** 31 - 1 })
      return true
    }
    return false
  }
  if (cut()) return out
  for (const item of items) {
    if (item._tag === "Event") {
      if (written > 0 && faults.delayBetweenEventsMillis !== undefined && faults.delayBetweenEventsMillis > 0) {
        out.push({ _tag: "Delay", millis: faults.delayBetweenEventsMillis })
      }
      out.push(item)
      written++
      if (cut()) return out
    } else {
      out.push(item)
    }
  }
  return out
}

const anthropicModels = {
  data: [
    { type: "model", id: "claude-sonnet-4-6", display_name: "Claude Sonnet 4.6", created_at: "2026-02-17T00:00:00Z" },
    { type: "model", id: "claude-haiku-4-5", display_name: "Claude Haiku 4.5", created_at: "2025-10-15T00:00:00Z" }
  ],
  has_more: false,
  first_id: "claude-sonnet-4-6",
  last_id: "claude-haiku-4-5"
}

const openaiModels = {
  object: "list",
  data: [
    { id: "gpt-4o-mini", object: "model", created: 1721172741, owned_by: "system" },
    { id: "gpt-4.1-nano", object: "model", created: 1744321025, owned_by: "system" }
  ]
}

const modelList = (protocol: Protocol, model: string | undefined): unknown => {
  if (protocol === "anthropic") {
    return model === undefined ? anthropicModels : {
      data: [{ type: "model", id: model, display_name: model, created_at: "2025-01-01T00:00:00Z" }],
      has_more: false,
      first_id: model,
      last_id: model
    }
  }
  return model === undefined ? openaiModels : {
    object: "list",
    data: [{ id: model, object: "model", created: 1735689600, owned_by: "system" }]
  }
}

const notFound = (route: Route, request: RecordedRequest): Reply =>
  protocolOf(route) === "anthropic"
    ? anthropicError(404, "not_found_error", `Not found: ${request.method} ${request.path}`)
    : openaiError(404, { message: `Invalid URL (${request.method} ${request.path})`, type: "invalid_request_error" })

/** Renders a scripted reply for the route and the request as a `Json` or `Sse` reply. */
const renderScripted = (
  route: Route,
  request: RecordedRequest,
  reply: ScriptedReply,
  faults: ScriptedStreamFaults
): Reply => {
  const headers = reply.headers ?? {}
  switch (route._tag) {
    case "Messages": {
      if (!wantsStream(request)) return Reply.json(anthropicJson(reply, request), { headers })
      const items = applyFaults(anthropicStream(reply, request, faults), faults, (fault) =>
        event({
          type: "error",
          error: { type: fault.type ?? "overloaded_error", message: fault.message ?? "Overloaded" }
        }))
      return Reply.sse(items, { headers })
    }
    case "ChatCompletions": {
      if (!wantsStream(request)) {
        const cost = reply.costUsd === undefined ? {} : { "x-litellm-response-cost": String(reply.costUsd) }
        return Reply.json(openaiJson(reply, request, route), { headers: { ...cost, ...headers } })
      }
      const items = applyFaults(openaiStream(reply, request, route, faults), faults, (fault) =>
        dataEvent({
          error: {
            message: fault.message ?? "The server had an error while processing your request.",
            type: fault.type ?? "server_error",
            param: null,
            code: fault.status ?? null
          }
        }))
      return Reply.sse(items, { headers })
    }
    case "CountTokens":
      return Reply.json({ input_tokens: tokensOf(reply.usage).input }, { headers })
    case "Models":
      return Reply.json(modelList(route.protocol, reply.model), { headers })
    case "Unknown":
      return notFound(route, request)
  }
}

// -----------------------------------------------------------------------------
// Server
// -----------------------------------------------------------------------------

/** A real-time sleep (test clocks do not drive a real HTTP server); interruption clears the timer. */
const sleepMillis = (millis: number): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), Math.max(0, millis))
    return Effect.sync(() => clearTimeout(timer))
  })

interface Exchange {
  readonly req: Http.IncomingMessage
  readonly res: Http.ServerResponse
  /** Set when the server itself destroys the socket (a scripted drop), so it is not counted as an abort. */
  selfDestroyed: boolean
}

const encodeSse = (item: SseItem): string => {
  switch (item._tag) {
    case "Event": {
      const name = item.event === undefined ? "" : `event: ${item.event}\n`
      return `${name}${item.data.split(/\r\n|\r|\n/).map((line) => `data: ${line}\n`).join("")}\n`
    }
    case "Comment":
      return `${item.text.split(/\r\n|\r|\n/).map((line) => `: ${line}\n`).join("")}\n`
    case "Raw":
      return item.text
    case "Delay":
    case "DropConnection":
      return ""
  }
}

const writeHead = (
  exchange: Exchange,
  protocol: Protocol,
  status: number,
  base: Headers,
  headers: Headers
): void => {
  exchange.res.writeHead(status, {
    [requestIdHeader(protocol)]: randomId("req_"),
    ...base,
    ...lowerCaseKeys(headers)
  })
}

/**
 * Writes and waits until the data has left for the socket. Node corks a response socket until the
 * next tick, so a socket destroyed right after a plain `write` would lose what was written: a
 * scripted drop must come after the events before it reached the client.
 */
const write = (res: Http.ServerResponse, text: string): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    let resumed = false
    const done = () => {
      if (resumed) return
      resumed = true
      res.off("close", done)
      resume(Effect.void)
    }
    res.once("close", done)
    res.write(text, done)
    return Effect.sync(() => {
      res.off("close", done)
    })
  })

const dropSocket = (exchange: Exchange): void => {
  exchange.selfDestroyed = true
  exchange.req.socket.destroy()
}

const play = (
  exchange: Exchange,
  route: Route,
  request: RecordedRequest,
  reply: Reply
): Effect.Effect<void> =>
  Effect.suspend(() => {
    const { res } = exchange
    if (res.destroyed) return Effect.void
    const protocol = protocolOf(route)
    switch (reply._tag) {
      case "Json":
        return Effect.sync(() => {
          const body = JSON.stringify(reply.body) ?? ""
          writeHead(exchange, protocol, reply.status, {
            "content-type": "application/json",
            "content-length": String(Buffer.byteLength(body))
          }, reply.headers)
          res.end(body)
        })
      case "Text":
        return Effect.sync(() => {
          writeHead(exchange, protocol, reply.status, {
            "content-type": reply.contentType,
            "content-length": String(Buffer.byteLength(reply.body))
          }, reply.headers)
          res.end(reply.body)
        })
      case "Sse":
        return Effect.gen(function*() {
          writeHead(exchange, protocol, reply.status, {
            "content-type": "text/event-stream",
            "cache-control": "no-cache"
          }, reply.headers)
          res.flushHeaders()
          for (const item of reply.items) {
            if (res.destroyed) return
            switch (item._tag) {
              case "Delay":
                yield* sleepMillis(item.millis)
                break
              case "DropConnection":
                dropSocket(exchange)
                return
              default:
                yield* write(res, encodeSse(item))
            }
          }
          if (!res.destroyed) res.end()
        })
      case "Scripted":
        return play(exchange, route, request, renderScripted(route, request, reply.reply, reply.stream ?? {}))
      case "Hang":
        return Effect.never
      case "Drop":
        return Effect.sync(() => dropSocket(exchange))
      case "Delayed":
        return sleepMillis(reply.millis).pipe(Effect.zipRight(play(exchange, route, request, reply.reply)))
    }
  })

const readBody = (req: Http.IncomingMessage): Effect.Effect<string> =>
  Effect.async<string>((resume) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => resume(Effect.succeed(Buffer.concat(chunks).toString("utf8"))))
    req.on("error", () => resume(Effect.succeed(Buffer.concat(chunks).toString("utf8"))))
  })

const toRecorded = (req: Http.IncomingMessage, raw: string): RecordedRequest => {
  const url = new URL(req.url ?? "/", "http://127.0.0.1")
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue
    headers[name.toLowerCase()] = Array.isArray(value) ? value.join(", ") : value
  }
  let body: unknown = undefined
  if (raw.length > 0) {
    try {
      body = JSON.parse(raw)
    } catch {
      body = raw
    }
  }
  return { method: req.method ?? "GET", path: url.pathname, query: Object.fromEntries(url.searchParams), headers, body }
}

const defaultReply: Reply = Reply.scripted({ text: "Hello from FakeProviderServer" })

/** The fields of a Messages request that `count_tokens` refuses ("Extra inputs are not permitted"). */
const notCounted = ["max_tokens", "stream", "temperature", "top_p", "top_k", "stop_sequences", "metadata"]

/**
 * The count the server answers `count_tokens` with until told otherwise (`setTokenCount`): the
 * UTF-8 bytes of the JSON of the body's `system`, `messages` and `tools`, divided by 4, rounded
 * up. Deterministic, so a test can compute the count it expects; about what Claude counts for
 * English prose.
 *
 * @example
 * ```ts
 * import { FakeProviderServer } from "@orchestify/providers/testing"
 *
 * FakeProviderServer.countTokensOf({ model: "claude-sonnet-4-6", messages: [{ role: "user", content: "Hi" }] }) // 12
 * ```
 *
 * @since 0.1.0
 * @category Constructors
 */
export const countTokensOf = (body: unknown): number => {
  const fields = typeof body === "object" && body !== null ? body as Record<string, unknown> : {}
  const counted = JSON.stringify({ system: fields.system, messages: fields.messages, tools: fields.tools })
  return Math.ceil(Buffer.byteLength(counted, "utf8") / 4)
}

const countReply = (
  request: RecordedRequest,
  count: Option.Option<(request: RecordedRequest) => number | Reply>
): Reply => {
  const body = typeof request.body === "object" && request.body !== null
    ? request.body as Record<string, unknown>
    : undefined
  if (body === undefined || typeof body.model !== "string" || !Array.isArray(body.messages)) {
    return anthropicError(400, "invalid_request_error", "count_tokens: model and messages are required")
  }
  const extra = notCounted.find((field) => field in body)
  if (extra !== undefined) {
    return anthropicError(400, "invalid_request_error", `${extra}: Extra inputs are not permitted`)
  }
  const answer = Option.isSome(count) ? count.value(request) : countTokensOf(body)
  return typeof answer === "number" ? Reply.json({ input_tokens: answer }) : answer
}

/**
 * Starts the server on 127.0.0.1 (port 0, a free port, unless `port` is given). Closing the scope
 * closes the server, destroys every socket and stops every pending timer.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make = (options?: { readonly port?: number }): Effect.Effect<Service, never, Scope.Scope> =>
  Effect.gen(function*() {
    const queue = yield* Ref.make<ReadonlyArray<Reply>>([])
    const handler = yield* Ref.make<Option.Option<(request: RecordedRequest, index: number) => Reply>>(Option.none())
    const requests = yield* Ref.make<ReadonlyArray<RecordedRequest>>([])
    const tokenCount = yield* Ref.make<Option.Option<(request: RecordedRequest) => number | Reply>>(Option.none())
    const aborted = yield* Ref.make(0)
    // bumped by `reset`: a response that started before a reset does not count as aborted after it
    const generation = yield* Ref.make(0)
    const abortWaiters = new Set<() => void>()
    const sockets = new Set<Net.Socket>()
    // every response being written, with the generation it started in
    const inFlight = new Map<Http.ServerResponse, number>()
    let closing = false

    const onAborted = () => {
      Effect.runSync(Ref.update(aborted, (n) => n + 1))
      for (const waiter of Array.from(abortWaiters)) waiter()
    }

    const nextReply = (request: RecordedRequest, index: number): Effect.Effect<Reply> =>
      Ref.modify(
        queue,
        (replies): [Option.Option<Reply>, ReadonlyArray<Reply>] =>
          replies.length > 0 ? [Option.fromNullable(replies[0]), replies.slice(1)] : [Option.none(), replies]
      ).pipe(
        Effect.flatMap(Option.match({
          onSome: Effect.succeed,
          onNone: () =>
            Ref.get(handler).pipe(Effect.flatMap(Option.match({
              onNone: () => Effect.succeed(defaultReply),
              onSome: (handle) => Effect.sync(() => handle(request, index))
            })))
        }))
      )

    const handle = (exchange: Exchange): Effect.Effect<void> =>
      Effect.gen(function*() {
        const raw = yield* readBody(exchange.req)
        const request = toRecorded(exchange.req, raw)
        const index = yield* Ref.modify(requests, (all): [number, ReadonlyArray<RecordedRequest>] => [all.length, [
          ...all,
          request
        ]])
        const route = routeOf(request)
        const reply = route._tag === "CountTokens"
          ? yield* Effect.map(Ref.get(tokenCount), (count) => countReply(request, count))
          : yield* nextReply(request, index)
        yield* play(exchange, route, request, reply)
      }).pipe(
        Effect.catchAllDefect((defect) =>
          Effect.sync(() => {
            const { res } = exchange
            if (res.destroyed) return
            if (res.headersSent) {
              dropSocket(exchange)
              return
            }
            const message = `FakeProviderServer: ${defect instanceof Error ? defect.message : String(defect)}`
            res.writeHead(500, { "content-type": "text/plain; charset=utf-8" })
            res.end(message)
          })
        )
      )

    const fibers = yield* FiberSet.make<void, never>()
    const run = yield* FiberSet.runtime(fibers)<never>()

    const server = Http.createServer({ noDelay: true }, (req, res) => {
      const exchange: Exchange = { req, res, selfDestroyed: false }
      const started = Effect.runSync(Ref.get(generation))
      inFlight.set(res, started)
      res.on("finish", () => inFlight.delete(res))
      const fiber = run(handle(exchange))
      res.on("close", () => {
        inFlight.delete(res)
        if (res.writableFinished) return
        if (!exchange.selfDestroyed && !closing && Effect.runSync(Ref.get(generation)) === started) onAborted()
        fiber.unsafeInterruptAsFork(FiberId.none)
      })
    })
    server.on("connection", (socket: Net.Socket) => {
      sockets.add(socket)
      socket.on("close", () => sockets.delete(socket))
    })

    const port = yield* Effect.acquireRelease(
      Effect.async<number>((resume) => {
        const onError = (error: Error) => resume(Effect.die(error))
        server.once("error", onError)
        server.listen(options?.port ?? 0, "127.0.0.1", () => {
          server.off("error", onError)
          const address = server.address()
          resume(Effect.succeed(typeof address === "object" && address !== null ? address.port : 0))
        })
      }),
      () =>
        Effect.async<void>((resume) => {
          closing = true
          server.close(() => resume(Effect.void))
          server.closeAllConnections()
          for (const socket of sockets) socket.destroy()
          sockets.clear()
        })
    )

    const url = `http://127.0.0.1:${port}`
    return {
      url,
      anthropicBaseUrl: url,
      openaiBaseUrl: `${url}/v1`,
      enqueue: (...replies) => Ref.update(queue, (queued) => [...queued, ...replies]),
      setHandler: (f) => Ref.set(handler, Option.some(f)),
      setTokenCount: (count) => Ref.set(tokenCount, Option.some(typeof count === "number" ? () => count : count)),
      requests: Ref.get(requests),
      abortedResponses: Ref.get(aborted),
      awaitAborted: (count) =>
        Effect.async<void>((resume) => {
          const check = () => {
            if (Effect.runSync(Ref.get(aborted)) < count) return
            abortWaiters.delete(check)
            resume(Effect.void)
          }
          abortWaiters.add(check)
          check()
          return Effect.sync(() => {
            abortWaiters.delete(check)
          })
        }),
      openConnections: Effect.sync(() => sockets.size),
      inFlightResponses: Effect.sync(() => {
        const current = Effect.runSync(Ref.get(generation))
        let count = 0
        for (const started of inFlight.values()) if (started === current) count++
        return count
      }),
      reset: Effect.all([
        Ref.set(queue, []),
        Ref.set(handler, Option.none()),
        Ref.set(tokenCount, Option.none()),
        Ref.set(requests, []),
        Ref.set(aborted, 0),
        Ref.update(generation, (n) => n + 1)
      ], { discard: true })
    } satisfies Service
  })

/**
 * The server as a layer; it stops when the layer's scope closes.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layer = (options?: { readonly port?: number }): Layer.Layer<FakeProviderServer> =>
  Layer.scoped(FakeProviderServer, make(options))
