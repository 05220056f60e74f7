import Anthropic from "@anthropic-ai/sdk"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import OpenAI, { AzureOpenAI } from "openai"
import * as FakeProviderServer from "../../src/testing/FakeProviderServer.js"
import { awaitRequests, withinRealTime } from "../helpers.js"

const { Reply, SseItem } = FakeProviderServer

const anthropicClient = (server: FakeProviderServer.Service) =>
  new Anthropic({ apiKey: "test", baseURL: server.anthropicBaseUrl, maxRetries: 0 })

const openaiClient = (server: FakeProviderServer.Service) =>
  new OpenAI({ apiKey: "test", baseURL: server.openaiBaseUrl, maxRetries: 0 })

const anthropicParams = {
  model: "claude-sonnet-4-6",
  max_tokens: 1024,
  messages: [{ role: "user" as const, content: "Hello" }]
}

const openaiParams = {
  model: "gpt-4o-mini",
  messages: [{ role: "user" as const, content: "Hello" }]
}

/** Recorded fixtures (copied unchanged from the Vercel AI SDK; see test/fixtures/recorded/README.md). */
const fixture = (relative: string): ReadonlyArray<string> =>
  Fs.readFileSync(Path.join(import.meta.dirname, "..", "fixtures", "recorded", relative), "utf8").split("\n")

const collect = <A>(iterable: AsyncIterable<A>): Promise<Array<A>> =>
  (async () => {
    const out: Array<A> = []
    for await (const item of iterable) out.push(item)
    return out
  })()

const failure = <A>(thunk: () => Promise<A>): Effect.Effect<unknown> =>
  Effect.tryPromise({ try: thunk, catch: (error) => error }).pipe(
    Effect.flip,
    Effect.orDieWith(() => new Error("expected the call to fail"))
  )

describe("FakeProviderServer", () => {
  describe("anthropic", () => {
    it.scoped("answers messages.create with a JSON message", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.make()
        yield* server.enqueue(Reply.scripted({
          text: "Hi there",
          id: "msg_123",
          usage: { inputTokens: 100, outputTokens: 7, cacheReadTokens: 60, cacheWriteTokens: 30 }
        }))
        const { data, response } = yield* Effect.promise(() =>
          anthropicClient(server).messages.create(anthropicParams).withResponse()
        )
        expect(data.id).toBe("msg_123")
        expect(data.type).toBe("message")
        expect(data.role).toBe("assistant")
        expect(data.model).toBe("claude-sonnet-4-6")
        expect(data.content).toEqual([{ type: "text", text: "Hi there" }])
        expect(data.stop_reason).toBe("end_turn")
        expect(data.stop_sequence).toBeNull()
        expect(data.usage).toMatchObject({
          input_tokens: 10,
          cache_read_input_tokens: 60,
          cache_creation_input_tokens: 30,
          output_tokens: 7
        })
        expect(response.headers.get("content-type")).toBe("application/json")
        expect(response.headers.get("request-id")).toMatch(/^req_/)
      }))

    it.scoped("streams text that messages.stream() folds into the final message", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.make()
        yield* server.enqueue(Reply.scripted({ text: ["Hel", "lo, ", "world"], usage: { outputTokens: 12 } }))
        const stream = anthropicClient(server).messages.stream(anthropicParams)
        const message = yield* Effect.promise(() => stream.finalMessage())
        expect(message.content).toEqual([{ type: "text", text: "Hello, world" }])
        expect(message.stop_reason).toBe("end_turn")
        expect(message.usage.output_tokens).toBe(12)
        expect(message.usage.input_tokens).toBe(10)
      }))

    it.scoped("follows the documented event order, with pings and unknown events the SDK skips", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.make()
        yield* server.enqueue(Reply.scripted({ text: "a b", unknownEvents: true }))
        const stream = yield* Effect.promise(() =>
          anthropicClient(server).messages.create({ ...anthropicParams, stream: true })
        )
        const events = yield* Effect.promise(() => collect(stream))
        expect(events.map((event) => event.type)).toEqual([
          "message_start",
          "future_event",
          "content_block_start",
          "content_block_delta",
          "content_block_delta",
          "content_block_stop",
          "message_delta",
          "message_stop"
        ])
        const last = events.find((event) => event.type === "message_delta")
        expect(last).toMatchObject({ delta: { stop_reason: "end_turn" }, usage: { output_tokens: 5 } })

        // the same reply through the stream helper
        yield* server.enqueue(Reply.scripted({ text: "a b", unknownEvents: true }))
        const message = yield* Effect.promise(() =>
          anthropicClient(server).messages.stream(anthropicParams).finalMessage()
        )
        expect(message.content).toEqual([{ type: "text", text: "a b" }])
      }))

    it.scoped("streams tool calls whose arguments are split mid-token", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.make()
        const args = { city: "Paris", days: [1, 2, 3], unit: "celsius" }
        const reply = Reply.scripted({
          text: "Let me check.",
          toolCalls: [
            { id: "toolu_1", name: "weather", arguments: JSON.stringify(args) },
            { id: "toolu_2", name: "noop", arguments: "{}" }
          ]
        })
        yield* server.enqueue(reply, reply, reply)
        const client = anthropicClient(server)

        const message = yield* Effect.promise(() => client.messages.stream(anthropicParams).finalMessage())
        expect(message.stop_reason).toBe("tool_use")
        expect(message.content).toEqual([
          { type: "text", text: "Let me check." },
          { type: "tool_use", id: "toolu_1", name: "weather", input: args },
          { type: "tool_use", id: "toolu_2", name: "noop", input: {} }
        ])

        const events = yield* Effect.promise(async () =>
          collect(await client.messages.create({ ...anthropicParams, stream: true }))
        )
        const partials = events.flatMap((event) =>
          event.type === "content_block_delta" && event.index === 1 && event.delta.type === "input_json_delta"
            ? [event.delta.partial_json]
            : []
        )
        expect(partials[0]).toBe("")
        expect(partials.length).toBe(4)
        expect(partials.join("")).toBe(JSON.stringify(args))
        expect(partials.slice(1).every((piece) => !isCompleteJson(piece))).toBe(true)

        const json = yield* Effect.promise(() => client.messages.create(anthropicParams))
        expect(json.content[1]).toEqual({ type: "tool_use", id: "toolu_1", name: "weather", input: args })
      }))

    it.scoped("streams and returns thinking with its signature", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.make()
        const reply = Reply.scripted({
          thinking: { text: ["Let me ", "think."], signature: "sig-abc" },
          text: "42",
          usage: { outputTokens: 20, reasoningTokens: 12 }
        })
        yield* server.enqueue(reply, reply)
        const client = anthropicClient(server)
        const streamed = yield* Effect.promise(() => client.messages.stream(anthropicParams).finalMessage())
        expect(streamed.content).toEqual([
          { type: "thinking", thinking: "Let me think.", signature: "sig-abc" },
          { type: "text", text: "42" }
        ])
        expect(streamed.usage.output_tokens_details).toEqual({ thinking_tokens: 12 })
        const json = yield* Effect.promise(() => client.messages.create(anthropicParams))
        expect(json.content).toEqual(streamed.content)
      }))

    it.scoped("answers a 429 that the SDK turns into RateLimitError with retry-after", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.make()
        yield* server.enqueue(
          Reply.anthropicError(429, "rate_limit_error", "Number of requests has exceeded your rate limit", {
            "retry-after": "3"
          })
        )
        const error = yield* failure(() => anthropicClient(server).messages.create(anthropicParams))
        expect(error).toBeInstanceOf(Anthropic.RateLimitError)
        const rateLimit = error as InstanceType<typeof Anthropic.RateLimitError>
        expect(rateLimit.status).toBe(429)
        expect(rateLimit.headers.get("retry-after")).toBe("3")
        expect(rateLimit.type).toBe("rate_limit_error")
        expect(rateLimit.requestID).toMatch(/^req_/)
        expect(rateLimit.error).toMatchObject({ type: "error", request_id: rateLimit.requestID })
      }))

    it.scoped("sends a mid-stream error event that the SDK throws", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.make()
        yield* server.enqueue(Reply.scripted({ text: ["a", "b", "c"] }, { errorAfterEvents: { count: 3 } }))
        const error = yield* failure(() => anthropicClient(server).messages.stream(anthropicParams).finalMessage())
        expect(error).toBeInstanceOf(Anthropic.APIError)
        expect((error as InstanceType<typeof Anthropic.APIError>).type).toBe("overloaded_error")
      }))

    it.scoped("replays a recorded stream", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.make()
        yield* server.enqueue(Reply.recorded(fixture("anthropic/anthropic-text.chunks.txt"), "anthropic"))
        const message = yield* Effect.promise(() =>
          anthropicClient(server).messages.stream(anthropicParams).finalMessage()
        )
        expect(message.id).toBe("msg_01QC4g3HwBThD4BaNtBckFDJ")
        expect(message.content).toEqual([{
          type: "text",
          text:
            "Hello! I'm doing well, thank you for asking. How are you doing today? Is there anything I can help you with?"
        }])
        expect(message.usage.output_tokens).toBe(30)
      }))

    it.scoped("drops the connection mid-stream and the SDK stream throws", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.make()
        yield* server.enqueue(
          Reply.scripted({ text: ["a", "b", "c", "d"] }, { dropAfterEvents: 3 }),
          Reply.sse([
            SseItem.event({ type: "message_start", message: { id: "m", content: [], usage: {} } }, "message_start"),
            SseItem.drop
          ])
        )
        const client = anthropicClient(server)
        const error = yield* failure(() => client.messages.stream(anthropicParams).finalMessage())
        expect(error).toBeInstanceOf(Error)
        const raw = yield* failure(async () =>
          collect(await client.messages.create({ ...anthropicParams, stream: true }))
        )
        expect(raw).toBeInstanceOf(Error)
        expect(yield* server.abortedResponses).toBe(0)
      }))

    it.scoped("ends a stream without message_stop when asked", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.make()
        yield* server.enqueue(Reply.scripted({ text: "x" }, { omitTerminal: true }))
        const events = yield* Effect.promise(async () =>
          collect(await anthropicClient(server).messages.create({ ...anthropicParams, stream: true }))
        )
        expect(events.map((event) => event.type)).not.toContain("message_stop")
        expect(events.at(-1)?.type).toBe("message_delta")
      }))

    it.scoped("lists models", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.make()
        const page = yield* Effect.promise(() => anthropicClient(server).models.list())
        expect(page.data.map((model) => model.id)).toContain("claude-sonnet-4-6")
      }))
  })

  describe("openai", () => {
    it.scoped("answers chat.completions.create with a JSON completion", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.make()
        yield* server.enqueue(
          Reply.scripted({
            text: "Hi there",
            usage: { inputTokens: 100, outputTokens: 7, cacheReadTokens: 60, reasoningTokens: 2 }
          }),
          Reply.scripted({ toolCalls: [{ id: "call_1", name: "weather", arguments: "{\"city\":\"Paris\"}" }] })
        )
        const client = openaiClient(server)
        const { data, response } = yield* Effect.promise(() =>
          client.chat.completions.create(openaiParams).withResponse()
        )
        expect(data.object).toBe("chat.completion")
        expect(data.model).toBe("gpt-4o-mini")
        expect(data.choices[0]?.message).toMatchObject({ role: "assistant", content: "Hi there", refusal: null })
        expect(data.choices[0]?.finish_reason).toBe("stop")
        expect(data.usage).toMatchObject({
          prompt_tokens: 100,
          completion_tokens: 7,
          total_tokens: 107,
          prompt_tokens_details: { cached_tokens: 60 },
          completion_tokens_details: { reasoning_tokens: 2 }
        })
        expect(response.headers.get("x-request-id")).toMatch(/^req_/)

        const tools = yield* Effect.promise(() => client.chat.completions.create(openaiParams))
        expect(tools.choices[0]?.finish_reason).toBe("tool_calls")
        expect(tools.choices[0]?.message.content).toBeNull()
        expect(tools.choices[0]?.message.tool_calls).toEqual([
          { id: "call_1", type: "function", function: { name: "weather", arguments: "{\"city\":\"Paris\"}" } }
        ])
      }))

    it.scoped("streams chunks with the usage chunk last when include_usage is set", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.make()
        yield* server.enqueue(Reply.scripted({ text: ["Hel", "lo"], usage: { inputTokens: 20, outputTokens: 3 } }))
        const stream = yield* Effect.promise(() =>
          openaiClient(server).chat.completions.create({
            ...openaiParams,
            stream: true,
            stream_options: { include_usage: true }
          })
        )
        const chunks = yield* Effect.promise(() => collect(stream))
        expect(chunks.every((chunk) => chunk.object === "chat.completion.chunk")).toBe(true)
        expect(chunks[0]?.choices[0]?.delta.role).toBe("assistant")
        expect(chunks.flatMap((chunk) => chunk.choices.map((choice) => choice.delta.content ?? "")).join("")).toBe(
          "Hello"
        )
        const last = chunks.at(-1)!
        expect(last.choices).toEqual([])
        expect(last.usage).toMatchObject({ prompt_tokens: 20, completion_tokens: 3, total_tokens: 23 })
        expect(chunks.slice(0, -1).every((chunk) => chunk.usage === null)).toBe(true)
        expect(chunks.at(-2)?.choices[0]?.finish_reason).toBe("stop")

        // without include_usage there is no usage chunk and no usage field
        yield* server.enqueue(Reply.scripted({ text: "x" }))
        const plain = yield* Effect.promise(async () =>
          collect(await openaiClient(server).chat.completions.create({ ...openaiParams, stream: true }))
        )
        expect(plain.every((chunk) => chunk.choices.length === 1 && !("usage" in chunk))).toBe(true)
      }))

    it.scoped("streams parallel tool calls that the SDK stream helper assembles", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.make()
        const first = { city: "Paris", unit: "celsius" }
        const second = { query: "effect ts streams" }
        const reply = Reply.scripted({
          toolCalls: [
            { id: "call_a", name: "weather", arguments: JSON.stringify(first) },
            {
              id: "call_b",
              name: "search",
              arguments: JSON.stringify(second),
              argumentChunks: ["{\"qu", "ery\": \"effect ts streams\"}"]
            }
          ]
        })
        yield* server.enqueue(reply, reply)
        const client = openaiClient(server)
        const completion = yield* Effect.promise(() =>
          client.chat.completions.stream({ ...openaiParams, stream_options: { include_usage: true } })
            .finalChatCompletion()
        )
        const choice = completion.choices[0]!
        expect(choice.finish_reason).toBe("tool_calls")
        expect(choice.message.content).toBeNull()
        const calls = (choice.message.tool_calls ?? []).flatMap((call) => call.type === "function" ? [call] : [])
        expect(calls.map((call) => [call.id, call.function.name])).toEqual([["call_a", "weather"], [
          "call_b",
          "search"
        ]])
        expect(JSON.parse(calls[0]!.function.arguments)).toEqual(first)
        expect(JSON.parse(calls[1]!.function.arguments)).toEqual(second)
        expect(completion.usage?.prompt_tokens).toBe(10)

        const chunks = yield* Effect.promise(async () =>
          collect(await client.chat.completions.create({ ...openaiParams, stream: true }))
        )
        const deltas = chunks.flatMap((chunk) => chunk.choices.flatMap((c) => c.delta.tool_calls ?? []))
        const ofFirst = deltas.filter((delta) => delta.index === 0)
        expect(ofFirst[0]).toMatchObject({
          id: "call_a",
          type: "function",
          function: { name: "weather", arguments: "" }
        })
        expect(ofFirst.slice(1).every((delta) => delta.id === undefined && delta.function?.name === undefined)).toBe(
          true
        )
        expect(ofFirst.length).toBe(4)
        expect(ofFirst.slice(1).every((delta) => !isCompleteJson(delta.function?.arguments ?? ""))).toBe(true)
      }))

    it.scoped("streams reasoning_content as DeepSeek does", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.make()
        yield* server.enqueue(Reply.scripted({ thinking: { text: ["Think", "ing"] }, text: "Done" }))
        const chunks = yield* Effect.promise(async () =>
          collect(await openaiClient(server).chat.completions.create({ ...openaiParams, stream: true }))
        )
        const reasoning = chunks.map((chunk) =>
          (chunk.choices[0]?.delta as { reasoning_content?: string } | undefined)?.reasoning_content ?? ""
        )
        expect(reasoning.join("")).toBe("Thinking")
        expect(chunks.map((chunk) => chunk.choices[0]?.delta.content ?? "").join("")).toBe("Done")
      }))

    it.scoped("answers a 429 insufficient_quota", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.make()
        yield* server.enqueue(Reply.openaiError(429, {
          message: "You exceeded your current quota, please check your plan and billing details.",
          type: "insufficient_quota",
          code: "insufficient_quota"
        }))
        const error = yield* failure(() => openaiClient(server).chat.completions.create(openaiParams))
        expect(error).toBeInstanceOf(OpenAI.RateLimitError)
        const rateLimit = error as InstanceType<typeof OpenAI.RateLimitError>
        expect(rateLimit.code).toBe("insufficient_quota")
        expect(rateLimit.type).toBe("insufficient_quota")
        expect(rateLimit.param).toBeNull()
        expect(rateLimit.requestID).toMatch(/^req_/)
      }))

    it.scoped("sends a mid-stream error chunk that the SDK throws", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.make()
        yield* server.enqueue(
          Reply.scripted({ text: ["a", "b"] }, { errorAfterEvents: { count: 2, status: 502, message: "upstream" } })
        )
        const error = yield* failure(async () =>
          collect(await openaiClient(server).chat.completions.create({ ...openaiParams, stream: true }))
        )
        expect(error).toBeInstanceOf(OpenAI.APIError)
        expect((error as InstanceType<typeof OpenAI.APIError>).message).toContain("upstream")
      }))

    it.scoped("replays a recorded stream", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.make()
        const lines = fixture("openai-chat/openai-text.chunks.txt")
        yield* server.enqueue(Reply.recorded(lines, "openai"))
        const chunks = yield* Effect.promise(async () =>
          collect(await openaiClient(server).chat.completions.create({ ...openaiParams, stream: true }))
        )
        expect(chunks.length).toBe(lines.filter((line) => line.trim().length > 0).length)
        expect(chunks.at(-1)?.usage?.completion_tokens).toBe(300)
        const text = chunks.map((chunk) => chunk.choices[0]?.delta.content ?? "").join("")
        expect(text.startsWith("**Holiday Name:** Harmony Day")).toBe(true)
      }))

    it.scoped("drops the connection mid-stream and the SDK stream throws", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.make()
        yield* server.enqueue(Reply.scripted({ text: ["a", "b", "c"] }, { dropAfterEvents: 2 }))
        const error = yield* failure(async () =>
          collect(await openaiClient(server).chat.completions.create({ ...openaiParams, stream: true }))
        )
        expect(error).toBeInstanceOf(Error)
      }))

    it.scoped("routes Azure deployment paths and lists models", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.make()
        const azure = new AzureOpenAI({
          endpoint: server.url,
          apiKey: "test",
          apiVersion: "2024-10-21",
          deployment: "my-deployment",
          maxRetries: 0
        })
        yield* server.enqueue(Reply.scripted({ text: "from azure", unknownEvents: true }))
        const chunks = yield* Effect.promise(async () =>
          collect(await azure.chat.completions.create({ ...openaiParams, stream: true }))
        )
        expect(chunks.map((chunk) => chunk.choices[0]?.delta.content ?? "").join("")).toBe("from azure")
        const [request] = yield* server.requests
        expect(request?.path).toBe("/openai/deployments/my-deployment/chat/completions")
        expect(request?.query).toEqual({ "api-version": "2024-10-21" })
        expect(request?.headers["api-key"]).toBe("test")

        const models = yield* Effect.promise(() => openaiClient(server).models.list())
        expect(models.data.map((model) => model.object)).toContain("model")
      }))
  })

  describe("server", () => {
    it.scoped("records requests with headers and bodies", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.make()
        yield* Effect.promise(() => anthropicClient(server).messages.create(anthropicParams))
        yield* Effect.promise(() => openaiClient(server).chat.completions.create(openaiParams))
        const [anthropic, openai] = yield* server.requests
        expect(anthropic).toMatchObject({ method: "POST", path: "/v1/messages", body: anthropicParams })
        // @anthropic-ai/sdk 1.x sends the API key as a bearer token, not as `x-api-key`
        expect(anthropic?.headers.authorization).toBe("Bearer test")
        expect(anthropic?.headers["anthropic-version"]).toBeDefined()
        expect(anthropic?.headers["content-type"]).toBe("application/json")
        expect(openai).toMatchObject({ method: "POST", path: "/v1/chat/completions", body: openaiParams })
        expect(openai?.headers.authorization).toBe("Bearer test")

        yield* Effect.promise(() =>
          fetch(`${server.url}/v1/messages?beta=true`, {
            method: "POST",
            headers: { "x-api-key": "sk-raw", "content-type": "application/json" },
            body: JSON.stringify(anthropicParams)
          }).then((response) => response.json())
        )
        const raw = (yield* server.requests)[2]
        expect(raw?.headers["x-api-key"]).toBe("sk-raw")
        expect(raw?.query).toEqual({ beta: "true" })
        expect(raw?.body).toEqual(anthropicParams)
      }))

    it.scoped("answers with the default reply, then the handler, after the queue", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.make()
        const client = openaiClient(server)
        const text = (completion: OpenAI.ChatCompletion) => completion.choices[0]?.message.content
        const first = yield* Effect.promise(() => client.chat.completions.create(openaiParams))
        expect(text(first)).toBe("Hello from FakeProviderServer")
        yield* server.setHandler((_, index) => Reply.scripted({ text: `reply ${index}` }))
        yield* server.enqueue(Reply.scripted({ text: "queued" }))
        const second = yield* Effect.promise(() => client.chat.completions.create(openaiParams))
        const third = yield* Effect.promise(() => client.chat.completions.create(openaiParams))
        expect([text(second), text(third)]).toEqual(["queued", "reply 2"])
        yield* server.reset
        expect(yield* server.requests).toEqual([])
        const fourth = yield* Effect.promise(() => client.chat.completions.create(openaiParams))
        expect(text(fourth)).toBe("Hello from FakeProviderServer")
      }))

    it.scoped("serves malformed bodies, raw SSE, delays and drops", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.make()
        yield* server.enqueue(
          Reply.text("{\"id\": ", { contentType: "application/json" }),
          Reply.delayed(
            5,
            Reply.sse([
              SseItem.comment("OPENROUTER PROCESSING"),
              SseItem.raw("data: {\"type\":\"message_start\"\n"),
              SseItem.delay(2),
              SseItem.raw("\n")
            ])
          ),
          Reply.drop
        )
        const malformed = yield* failure(() => anthropicClient(server).messages.create(anthropicParams))
        expect(malformed).toBeInstanceOf(Error)
        const response = yield* Effect.promise(() => fetch(`${server.url}/v1/messages`, { method: "POST" }))
        expect(response.headers.get("content-type")).toBe("text/event-stream")
        expect(response.headers.get("cache-control")).toBe("no-cache")
        expect(yield* Effect.promise(() => response.text())).toBe(
          ": OPENROUTER PROCESSING\n\ndata: {\"type\":\"message_start\"\n\n"
        )
        const dropped = yield* failure(() => fetch(`${server.url}/v1/messages`, { method: "POST" }))
        expect(dropped).toBeInstanceOf(Error)
        const unknown = yield* Effect.promise(() => fetch(`${server.url}/v1/unknown`, { method: "POST" }))
        expect(unknown.status).toBe(404)
      }))

    it.scoped("counts a client that aborts mid-stream", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.make()
        yield* server.enqueue(
          Reply.scripted({ text: ["a", "b", "c", "d"] }, { delayBetweenEventsMillis: 10_000 })
        )
        const controller = new AbortController()
        const started = Date.now()
        yield* Effect.promise(async () => {
          const stream = await anthropicClient(server).messages.create({ ...anthropicParams, stream: true }, {
            signal: controller.signal
          })
          for await (const _ of stream) controller.abort()
        })
        yield* server.awaitAborted(1)
        expect(yield* server.abortedResponses).toBe(1)
        expect(Date.now() - started).toBeLessThan(1_000)
      }))

    it.scoped("inFlightResponses counts the responses still being written since the last reset", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.make()
        yield* Effect.promise(() => openaiClient(server).chat.completions.create(openaiParams))
        expect(yield* server.inFlightResponses).toBe(0)
        yield* server.enqueue(Reply.hang, Reply.hang)
        const controller = new AbortController()
        const aborted = openaiClient(server).chat.completions.create(openaiParams, { signal: controller.signal })
          .then(() => "answered", () => "rejected")
        const hung = openaiClient(server).chat.completions.create(openaiParams).then(() => "answered", () => "rejected")
        yield* awaitRequests(server, 3)
        expect(yield* server.inFlightResponses).toBe(2)
        controller.abort()
        yield* server.awaitAborted(1).pipe(withinRealTime(3_000, "the aborted request"))
        expect(yield* Effect.promise(() => aborted)).toBe("rejected")
        expect(yield* server.inFlightResponses).toBe(1)
        // A response from before a reset is no longer counted.
        yield* server.reset
        expect(yield* server.inFlightResponses).toBe(0)
        void hung
      }))

    it.scoped("counts a client that gives up on a hung request", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.make()
        yield* server.enqueue(Reply.hang)
        const controller = new AbortController()
        const pending = openaiClient(server).chat.completions.create(openaiParams, { signal: controller.signal })
          .then(() => "answered", () => "rejected")
        yield* Effect.promise(async () => {
          while ((await Effect.runPromise(server.requests)).length === 0) {
            await new Promise((resolve) => setTimeout(resolve, 1))
          }
        })
        controller.abort()
        yield* server.awaitAborted(1)
        expect(yield* Effect.promise(() => pending)).toBe("rejected")
      }))

    it.scoped("closing the scope closes every connection", () =>
      Effect.gen(function*() {
        const { pending, server } = yield* Effect.gen(function*() {
          const server = yield* FakeProviderServer.make()
          yield* Effect.promise(() => openaiClient(server).chat.completions.create(openaiParams))
          yield* server.enqueue(Reply.hang)
          const pending = openaiClient(server).chat.completions.create(openaiParams).then(
            () => "answered",
            () => "rejected"
          )
          yield* Effect.promise(async () => {
            while ((await Effect.runPromise(server.requests)).length < 2) {
              await new Promise((resolve) => setTimeout(resolve, 1))
            }
          })
          expect(yield* server.openConnections).toBeGreaterThanOrEqual(1)
          return { pending, server }
        }).pipe(Effect.scoped)
        expect(yield* server.openConnections).toBe(0)
        expect(yield* Effect.promise(() => pending)).toBe("rejected")
        expect(yield* server.abortedResponses).toBe(0)
        const refused = yield* failure(() => fetch(`${server.url}/v1/models`))
        expect(refused).toBeInstanceOf(Error)
      }))

    it.scoped("provides itself as a layer", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.FakeProviderServer
        expect(server.openaiBaseUrl).toBe(`${server.url}/v1`)
        expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      }).pipe(Effect.provide(FakeProviderServer.layer())))
  })
})

const isCompleteJson = (text: string): boolean => {
  try {
    JSON.parse(text)
    return true
  } catch {
    return false
  }
}
