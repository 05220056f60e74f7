/**
 * The behaviour every provider must show against FakeProviderServer, written once and run for
 * each provider (Anthropic, OpenAI, and any OpenAI-compatible one).
 */
import { describe, expect, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import { inspect } from "node:util"
import type * as LLM from "../../src/LLM.js"
import * as LLMError from "../../src/LLMError.js"
import * as Message from "../../src/Message.js"
import * as Response from "../../src/Response.js"
import * as FakeProviderServer from "../../src/testing/FakeProviderServer.js"
import * as Tool from "../../src/Tool.js"
import * as Usage from "../../src/Usage.js"
import * as Helpers from "../helpers.js"

const { ask, providerError, withinRealTime } = Helpers

const { Reply } = FakeProviderServer

export interface TargetOptions {
  readonly apiKey?: Redacted.Redacted<string>
  readonly timeout?: Duration.DurationInput
  readonly baseUrl?: string
}

export interface Target {
  readonly name: string
  readonly protocol: FakeProviderServer.Protocol
  /** A priced model the provider serves. */
  readonly model: string
  /** The model name on the wire, when the provider rewrites it (a LiteLLM prefix stripped). */
  readonly wireModel?: string
  readonly make: (
    server: FakeProviderServer.Service,
    options?: TargetOptions
  ) => Effect.Effect<LLM.Service, never, Scope.Scope>
  /** Where the provider puts the request's max tokens. */
  readonly maxTokensField: string
}

export const weatherTool = Tool.make({
  name: "get_weather",
  description: "Current weather in a city",
  parameters: Schema.Struct({ city: Schema.String })
})

/** The error of a call that must fail; a hang fails the test after 5 s of real time (TestClock cannot freeze it). */
const failure = <A>(effect: Effect.Effect<A, LLMError.LLMError>) =>
  Effect.flip(effect).pipe(withinRealTime(5_000, "a call that should fail"))

/** Waits for the server to see `count` client aborts: at most 3 s of real time. */
const awaitAborted = (server: FakeProviderServer.Service, count = 1) =>
  server.awaitAborted(count).pipe(withinRealTime(3_000, `${count} aborted response(s) at the server`))

const realPause = Helpers.realPause()

/**
 * Runs an effect while both clocks move: Effect's TestClock (our own timers) and real time (an
 * SDK's timers), 100 ms of Effect's time and 5 ms of real time per step.
 */
const withBothClocks = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(effect)
    for (let step = 0; step < 250 && fiber.unsafePoll() === null; step++) {
      yield* TestClock.adjust("100 millis")
      yield* Helpers.realPause(5)
    }
    return yield* Fiber.join(fiber)
  })

/**
 * Costs in USD for the usages this suite scripts, worked out by hand from the list prices in
 * PRICING-FACTS.md (USD per million tokens), never from `Pricing` (the code under test).
 */
interface HandPriced {
  /** 12 input, 5 output tokens. */
  readonly plain: number
  /** 9 input, 4 output tokens. */
  readonly streamed: number
  /** `richReply`'s usage as this protocol reports it. */
  readonly rich: number
  /** 200 calls: 21,900 input and 794 output tokens in all. */
  readonly concurrent: number
  /** Anthropic: what `message_start` reports for a 30-token prompt (30 input, 1 output). */
  readonly atMessageStart?: number
}

// claude-sonnet-4-6: input 3, output 15, cache read 0.30, cache write (5 min) 3.75
const claudeSonnet46: HandPriced = {
  plain: 0.000111, // 12 x 3 + 5 x 15 = 111
  streamed: 0.000087, // 9 x 3 + 4 x 15 = 87
  rich: 0.006015, // (1200 - 800 - 100) x 3 + 800 x 0.30 + 100 x 3.75 + 300 x 15 = 900 + 240 + 375 + 4500
  concurrent: 0.07761, // 21,900 x 3 + 794 x 15 = 65,700 + 11,910
  atMessageStart: 0.000105 // 30 x 3 + 1 x 15
}

// gpt-4o: input 2.50, output 10, cache read 1.25
const gpt4o: HandPriced = {
  plain: 0.00008, // 12 x 2.5 + 5 x 10 = 80
  streamed: 0.0000625, // 9 x 2.5 + 4 x 10 = 62.5
  rich: 0.005, // (1200 - 800) x 2.5 + 800 x 1.25 + 300 x 10 = 1000 + 1000 + 3000 (reasoning is part of output)
  concurrent: 0.06269 // 21,900 x 2.5 + 794 x 10 = 54,750 + 7,940
}

const handPriced: Readonly<Record<string, HandPriced>> = {
  "claude-sonnet-4-6": claudeSonnet46,
  "gpt-4o": gpt4o,
  "openai/gpt-4o": gpt4o
}

const richReply: FakeProviderServer.ScriptedReply = {
  thinking: { text: ["Let me ", "think about ", "the weather."], signature: "sig-abc123" },
  text: ["I'll check ", "both ", "cities."],
  toolCalls: [
    {
      id: "call_1",
      name: "get_weather",
      arguments: "{\"city\":\"Paris\"}",
      argumentChunks: ["{\"ci", "ty\":\"Pa", "ris\"}"]
    },
    { id: "call_2", name: "get_weather", arguments: "{\"city\":\"Tokyo\"}" }
  ],
  usage: { inputTokens: 1200, outputTokens: 300, cacheReadTokens: 800, cacheWriteTokens: 100, reasoningTokens: 120 }
}

export const conformance = (target: Target) =>
  layer(FakeProviderServer.layer())(`${target.name} through its real client against FakeProviderServer`, (it) => {
    const setup = (options?: TargetOptions) =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.FakeProviderServer
        yield* server.reset
        const llm = yield* target.make(server, options)
        return { server, llm }
      })

    const costs = handPriced[target.model]
    if (costs === undefined) throw new Error(`conformance: no hand-computed prices for ${target.model}`)

    // The usage the fake server's rendering gives for `richReply` in this protocol.
    const expectedRichUsage: Usage.Tokens = target.protocol === "anthropic"
      ? { inputTokens: 1200, outputTokens: 300, cacheReadTokens: 800, cacheWriteTokens: 100, reasoningTokens: 0 }
      : { inputTokens: 1200, outputTokens: 300, cacheReadTokens: 800, cacheWriteTokens: 0, reasoningTokens: 120 }

    describe("replies", () => {
      it.scoped("plain text, with usage, cost and request id; the request carries the call's fields", () =>
        Effect.gen(function*() {
          const { llm, server } = yield* setup()
          yield* server.enqueue(Reply.scripted({ text: "Hello world", usage: { inputTokens: 12, outputTokens: 5 } }))
          const reply = yield* llm.complete(ask("Hi", {
            model: target.model,
            system: "Be brief.",
            maxTokens: 77,
            temperature: 0.3,
            stopSequences: ["END"]
          }))
          expect(reply.content).toBe("Hello world")
          expect(reply.parts).toEqual([Message.text("Hello world")])
          expect(reply.finishReason).toBe("stop")
          expect(reply.usage).toEqual(Usage.tokens({ inputTokens: 12, outputTokens: 5 }))
          expect(reply.costUsd).toBeCloseTo(costs.plain, 12)
          expect(reply.providerId).toBe(llm.providerId)
          expect(reply.requestId).toMatch(/^req_/)
          expect(reply.model).toBe(target.wireModel ?? target.model)
          const [request] = yield* server.requests
          const body = request!.body as Record<string, any>
          expect(body.model).toBe(target.wireModel ?? target.model)
          expect(body[target.maxTokensField]).toBe(77)
          expect(body.temperature).toBe(0.3)
          expect(body.stream === true).toBe(false)
          if (target.protocol === "anthropic") {
            expect(body.system).toBe("Be brief.")
            expect(body.stop_sequences).toEqual(["END"])
            expect(body.messages).toEqual([{ role: "user", content: [{ type: "text", text: "Hi" }] }])
          } else {
            expect(body.stop).toEqual(["END"])
            expect(body.messages).toEqual([{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }])
          }
        }))

      it.scoped("streamed text arrives as deltas in order and ends with one Finish", () =>
        Effect.gen(function*() {
          const { llm, server } = yield* setup()
          yield* server.enqueue(
            Reply.scripted({ text: ["Hel", "lo", " wor", "ld"], usage: { inputTokens: 9, outputTokens: 4 } })
          )
          const events = Chunk.toReadonlyArray(yield* Stream.runCollect(llm.stream(ask("Hi", { model: target.model }))))
          expect(events.filter((e) => e._tag === "TextDelta").map((e) => (e as Response.TextDelta).text)).toEqual([
            "Hel",
            "lo",
            " wor",
            "ld"
          ])
          const finishes = events.filter((e) => e._tag === "Finish")
          expect(finishes).toHaveLength(1)
          expect(events[events.length - 1]).toBe(finishes[0])
          const finish = finishes[0] as Response.Finish
          expect(finish.usage).toEqual(Usage.tokens({ inputTokens: 9, outputTokens: 4 }))
          expect(finish.costUsd).toBeCloseTo(costs.streamed, 12)
          expect(finish.finishReason).toBe("stop")
          const [request] = yield* server.requests
          const body = request!.body as Record<string, any>
          expect(body.stream).toBe(true)
          if (target.protocol === "openai") expect(body.stream_options).toEqual({ include_usage: true })
        }))

      it.scoped("collect(stream) equals complete for the same reply: thinking, text, parallel tool calls, usage, cost", () =>
        Effect.gen(function*() {
          const { llm, server } = yield* setup()
          yield* server.enqueue(Reply.scripted(richReply), Reply.scripted(richReply))
          const request = ask("Weather in Paris and Tokyo?", { model: target.model, tools: [weatherTool] })
          const completed = yield* llm.complete(request)
          const collected = yield* Response.collect(llm.stream(request))
          expect({ ...collected, requestId: undefined }).toEqual({ ...completed, requestId: undefined })
          expect(completed.content).toBe("I'll check both cities.")
          expect(completed.thinking).toBe("Let me think about the weather.")
          expect(completed.toolCalls).toEqual([
            { id: "call_1", name: "get_weather", input: { city: "Paris" } },
            { id: "call_2", name: "get_weather", input: { city: "Tokyo" } }
          ])
          expect(completed.finishReason).toBe("tool_calls")
          expect(completed.usage).toEqual(expectedRichUsage)
          expect(completed.costUsd).toBeCloseTo(costs.rich, 12)
          if (target.protocol === "anthropic") {
            expect(completed.parts[0]).toEqual({
              _tag: "Thinking",
              thinking: "Let me think about the weather.",
              signature: "sig-abc123"
            })
          }
          const sent = (yield* server.requests)[0]!.body as Record<string, any>
          expect(JSON.stringify(sent.tools)).toContain("get_weather")
        }))

      it.scoped("tool call arguments split mid-token are reassembled; start and delta events come first", () =>
        Effect.gen(function*() {
          const { llm, server } = yield* setup()
          const args = "{\"city\":\"San Francisco\",\"units\":\"celsius\",\"days\":[1,2,3]}"
          yield* server.enqueue(Reply.scripted({
            toolCalls: [{
              id: "call_x",
              name: "get_weather",
              arguments: args,
              argumentChunks: ["{\"ci", "ty\":\"San Fr", "ancisco\",\"un", "its\":\"celsius\",\"days\":[1,", "2,3]}"]
            }]
          }))
          const events = Chunk.toReadonlyArray(
            yield* Stream.runCollect(llm.stream(ask("Weather?", { model: target.model, tools: [weatherTool] })))
          )
          const tags = events.map((e) => e._tag)
          expect(tags.indexOf("ToolCallStart")).toBeLessThan(tags.indexOf("ToolCallDelta"))
          expect(tags.indexOf("ToolCallDelta")).toBeLessThan(tags.indexOf("ToolCall"))
          const deltas = events.filter((e): e is Response.ToolCallDelta => e._tag === "ToolCallDelta")
          expect(deltas.map((d) => d.argumentsDelta).join("")).toBe(args)
          expect(events.find((e) => e._tag === "ToolCall")).toEqual({
            _tag: "ToolCall",
            id: "call_x",
            name: "get_weather",
            input: JSON.parse(args)
          })
        }))

      it.scoped("tool results go back in the next request in the provider's format", () =>
        Effect.gen(function*() {
          const { llm, server } = yield* setup()
          yield* server.enqueue(
            Reply.scripted({ toolCalls: [{ id: "call_1", name: "get_weather", arguments: "{\"city\":\"Paris\"}" }] }),
            Reply.scripted({ text: "It is sunny." })
          )
          const first = yield* llm.complete(ask("Weather?", { model: target.model, tools: [weatherTool] }))
          const second = yield* llm.complete({
            model: target.model,
            tools: [weatherTool],
            messages: [
              Message.user("Weather?"),
              Message.assistant(first.parts),
              Message.toolResults([Message.toolResult("call_1", { temperature: 21 })])
            ]
          })
          expect(second.content).toBe("It is sunny.")
          const body = (yield* server.requests)[1]!.body as Record<string, any>
          if (target.protocol === "anthropic") {
            expect(body.messages[1]).toEqual({
              role: "assistant",
              content: [{ type: "tool_use", id: "call_1", name: "get_weather", input: { city: "Paris" } }]
            })
            expect(body.messages[2]).toEqual({
              role: "user",
              content: [{
                type: "tool_result",
                tool_use_id: "call_1",
                content: "{\"temperature\":21}",
                is_error: false
              }]
            })
          } else {
            expect(body.messages[1]).toEqual({
              role: "assistant",
              content: null,
              tool_calls: [{
                id: "call_1",
                type: "function",
                function: { name: "get_weather", arguments: "{\"city\":\"Paris\"}" }
              }]
            })
            expect(body.messages[2]).toEqual({ role: "tool", tool_call_id: "call_1", content: "{\"temperature\":21}" })
          }
        }))

      it.scoped("images go out as base64 and as URL", () =>
        Effect.gen(function*() {
          const { llm, server } = yield* setup()
          yield* server.enqueue(Reply.scripted({ text: "A cat." }))
          yield* llm.complete({
            model: target.model,
            messages: [
              Message.user([
                Message.text("What is this?"),
                Message.imageBase64("image/png", "iVBORw0KGgo="),
                Message.imageUrl("https://example.com/cat.png")
              ])
            ]
          })
          const content = ((yield* server.requests)[0]!.body as any).messages[0].content
          if (target.protocol === "anthropic") {
            expect(content[1]).toEqual({
              type: "image",
              source: { type: "base64", media_type: "image/png", data: "iVBORw0KGgo=" }
            })
            expect(content[2]).toEqual({ type: "image", source: { type: "url", url: "https://example.com/cat.png" } })
          } else {
            expect(content[1]).toEqual({ type: "image_url", image_url: { url: "data:image/png;base64,iVBORw0KGgo=" } })
            expect(content[2]).toEqual({ type: "image_url", image_url: { url: "https://example.com/cat.png" } })
          }
        }))

      it.scoped("pings, keep-alive comments and unknown events are skipped", () =>
        Effect.gen(function*() {
          const { llm, server } = yield* setup()
          yield* server.enqueue(Reply.scripted({ text: ["a", "b", "c"], pingEvents: true, unknownEvents: true }))
          const reply = yield* Response.collect(llm.stream(ask("Hi", { model: target.model })))
          expect(reply.content).toBe("abc")
          expect(reply.finishReason).toBe("stop")
        }))

      it.scoped("finish reasons map to the neutral set, raw reason kept", () =>
        Effect.gen(function*() {
          const { llm, server } = yield* setup()
          const cases = target.protocol === "anthropic"
            ? [["max_tokens", "length"], ["stop_sequence", "stop"], ["refusal", "content_filter"], [
              "pause_turn",
              "other"
            ]]
            : [["length", "length"], ["content_filter", "content_filter"], ["stop", "stop"]]
          for (const [raw, neutral] of cases) {
            yield* server.enqueue(
              Reply.scripted({ text: "x", finishReason: raw! }),
              Reply.scripted({ text: "x", finishReason: raw! })
            )
            const completed = yield* llm.complete(ask("Hi", { model: target.model }))
            const streamed = yield* Response.collect(llm.stream(ask("Hi", { model: target.model })))
            expect([completed.finishReason, completed.rawFinishReason]).toEqual([neutral, raw])
            expect([streamed.finishReason, streamed.rawFinishReason]).toEqual([neutral, raw])
          }
        }))
    })

    describe("errors", () => {
      const err = providerError(target.protocol)

      it.scoped("429 with retry-after: 3 is a RateLimitError waiting 3 s, rate-limit headers kept", () =>
        Effect.gen(function*() {
          const { llm, server } = yield* setup()
          const limitHeader = target.protocol === "anthropic"
            ? "anthropic-ratelimit-requests-remaining"
            : "x-ratelimit-remaining-requests"
          yield* server.enqueue(
            err(
              429,
              { anthropic: "rate_limit_error", openai: { type: "requests", code: "rate_limit_exceeded" } },
              "Slow down",
              {
                "retry-after": "3",
                [limitHeader]: "0"
              }
            )
          )
          const error = yield* failure(llm.complete(ask("Hi", { model: target.model })))
          expect(error._tag).toBe("RateLimitError")
          if (error._tag !== "RateLimitError") return
          expect(error.retryAfter).toEqual(Option.some(Duration.seconds(3)))
          expect(error.isRetryable).toBe(true)
          expect(error.status).toBe(429)
          expect(error.requestId).toMatch(/^req_/)
          expect(error.rateLimits?.[limitHeader]).toBe("0")
          expect(error.message).toContain("Slow down")
        }))

      it.scoped("retry-after-ms wins over retry-after; an HTTP date is read too", () =>
        Effect.gen(function*() {
          const { llm, server } = yield* setup()
          const kind = { anthropic: "rate_limit_error", openai: { type: "requests", code: "rate_limit_exceeded" } }
          yield* server.enqueue(
            err(429, kind, "Slow down", { "retry-after-ms": "1500", "retry-after": "9" }),
            // An HTTP date counts from Effect's Clock (TestClock here), not the wall clock
            err(429, kind, "Slow down", {
              "retry-after": new Date((yield* Clock.currentTimeMillis) + 60_000).toUTCString()
            })
          )
          const first = yield* failure(llm.stream(ask("Hi", { model: target.model })).pipe(Stream.runDrain))
          expect(LLMError.retryAfter(first as LLMError.LLMError)).toEqual(Option.some(Duration.millis(1500)))
          const second = yield* failure(llm.complete(ask("Hi", { model: target.model })))
          const waited = Option.getOrThrow(LLMError.retryAfter(second as LLMError.LLMError))
          expect(Duration.toSeconds(waited)).toBeGreaterThan(55)
          expect(Duration.toSeconds(waited)).toBeLessThanOrEqual(60)
        }))

      it.scoped("every HTTP status maps to exactly one error of the table", () =>
        Effect.gen(function*() {
          const { llm, server } = yield* setup()
          const cases: ReadonlyArray<readonly [FakeProviderServer.Reply, LLMError.Tag, boolean]> = [
            [
              err(401, {
                anthropic: "authentication_error",
                openai: { type: "invalid_request_error", code: "invalid_api_key" }
              }, "bad key"),
              "AuthenticationError",
              false
            ],
            [
              err(403, { anthropic: "permission_error", openai: { type: "invalid_request_error" } }, "forbidden"),
              "AuthenticationError",
              false
            ],
            [
              err(402, { anthropic: "billing_error", openai: { type: "billing_error" } }, "pay up"),
              "QuotaExceededError",
              false
            ],
            [
              err(429, {
                anthropic: "billing_error",
                openai: { type: "insufficient_quota", code: "insufficient_quota" }
              }, "You exceeded your current quota"),
              "QuotaExceededError",
              false
            ],
            [
              err(400, {
                anthropic: "invalid_request_error",
                openai: { type: "invalid_request_error", code: "context_length_exceeded" }
              }, "prompt is too long: 250000 tokens > 200000 maximum"),
              "ContextLengthError",
              false
            ],
            [
              err(400, {
                anthropic: "invalid_request_error",
                openai: { type: "invalid_request_error", code: "content_policy_violation" }
              }, "Your request was rejected by our content policy"),
              "ContentPolicyError",
              false
            ],
            [
              err(
                400,
                { anthropic: "invalid_request_error", openai: { type: "invalid_request_error" } },
                "messages: field required"
              ),
              "InvalidRequestError",
              false
            ],
            [
              err(404, {
                anthropic: "not_found_error",
                openai: { type: "invalid_request_error", code: "model_not_found" }
              }, "model not found"),
              "InvalidRequestError",
              false
            ],
            [
              err(413, { anthropic: "request_too_large", openai: { type: "invalid_request_error" } }, "too large"),
              "InvalidRequestError",
              false
            ],
            [
              err(
                422,
                { anthropic: "invalid_request_error", openai: { type: "invalid_request_error" } },
                "unprocessable"
              ),
              "InvalidRequestError",
              false
            ],
            [
              err(500, { anthropic: "api_error", openai: { type: "server_error" } }, "internal"),
              "ProviderUnavailableError",
              true
            ],
            [
              err(502, { anthropic: "api_error", openai: { type: "server_error" } }, "bad gateway"),
              "ProviderUnavailableError",
              true
            ],
            [
              err(503, { anthropic: "api_error", openai: { type: "server_error" } }, "unavailable"),
              "ProviderUnavailableError",
              true
            ],
            [
              err(504, { anthropic: "timeout_error", openai: { type: "server_error" } }, "gateway timeout"),
              "ProviderUnavailableError",
              true
            ],
            [
              err(529, { anthropic: "overloaded_error", openai: { type: "server_error" } }, "Overloaded", {
                "x-should-retry": "true"
              }),
              "ProviderUnavailableError",
              true
            ]
          ]
          for (const [reply, tag, retryable] of cases) {
            yield* server.enqueue(reply, reply)
            const viaComplete = yield* failure(llm.complete(ask("Hi", { model: target.model })))
            const viaStream = yield* failure(Stream.runDrain(llm.stream(ask("Hi", { model: target.model }))))
            for (const error of [viaComplete, viaStream]) {
              expect(error._tag, `status ${(reply as any).status}`).toBe(tag)
              expect(LLMError.isRetryable(error as LLMError.LLMError)).toBe(retryable)
              expect((error as LLMError.LLMError).provider).toBe(llm.providerId)
            }
          }
        }))

      it.scoped("an error event mid-stream is ProviderUnavailableError after the events already seen", () =>
        Effect.gen(function*() {
          const { llm, server } = yield* setup()
          yield* server.enqueue(
            Reply.scripted({ text: ["one ", "two ", "three ", "four"] }, {
              errorAfterEvents: {
                count: 4,
                type: target.protocol === "anthropic" ? "overloaded_error" : "server_error",
                message: "Overloaded"
              }
            })
          )
          const seen: Array<string> = []
          const error = yield* failure(
            Stream.runForEach(llm.stream(ask("Hi", { model: target.model })), (e) =>
              Effect.sync(() => {
                if (e._tag === "TextDelta") seen.push(e.text)
              }))
          )
          expect(error._tag).toBe("ProviderUnavailableError")
          expect(seen.length).toBeGreaterThan(0)
          expect(seen.join("")).toBe(["one ", "two ", "three ", "four"].slice(0, seen.length).join(""))
        }))

      it.scoped("a socket dropped mid-stream is a ConnectionError, never a hang or a defect", () =>
        Effect.gen(function*() {
          const { llm, server } = yield* setup()
          yield* server.enqueue(Reply.scripted({ text: ["a", "b", "c", "d", "e"] }, { dropAfterEvents: 4 }))
          const exit = yield* Effect.exit(Stream.runDrain(llm.stream(ask("Hi", { model: target.model })))).pipe(
            withinRealTime(5_000, "a stream whose socket drops")
          )
          expect(Exit.isFailure(exit)).toBe(true)
          if (Exit.isFailure(exit)) {
            const error = Option.getOrThrow(
              Exit.causeOption(exit).pipe(
                Option.flatMap((c) => Option.fromNullable(c._tag === "Fail" ? c.error : undefined))
              )
            )
            expect((error as LLMError.LLMError)._tag).toBe("ConnectionError")
          }
        }))

      it.scoped("a stream that ends without its terminal event is a ConnectionError", () =>
        Effect.gen(function*() {
          const { llm, server } = yield* setup()
          yield* server.enqueue(Reply.scripted({ text: ["a", "b"] }, { omitTerminal: true }))
          const error = yield* failure(Stream.runDrain(llm.stream(ask("Hi", { model: target.model }))))
          expect(error._tag).toBe("ConnectionError")
          expect((error as LLMError.LLMError).message).toContain("ended before")
        }))

      it.scoped("a body that is not JSON, or an SSE event that is not, is a MalformedResponseError", () =>
        Effect.gen(function*() {
          const { llm, server } = yield* setup()
          yield* server.enqueue(
            Reply.text("{\"id\": \"msg_1\", \"content\": [tru", { contentType: "application/json" }),
            Reply.sse([FakeProviderServer.SseItem.event("{not json", "message_start")])
          )
          const viaComplete = yield* failure(llm.complete(ask("Hi", { model: target.model })))
          expect(viaComplete._tag).toBe("MalformedResponseError")
          const viaStream = yield* failure(Stream.runDrain(llm.stream(ask("Hi", { model: target.model }))))
          expect(viaStream._tag).toBe("MalformedResponseError")
        }))

      it.scoped("a refused connection is a ConnectionError", () =>
        Effect.gen(function*() {
          const { llm } = yield* setup({ baseUrl: "http://127.0.0.1:9" })
          const viaComplete = yield* failure(llm.complete(ask("Hi", { model: target.model })))
          expect(viaComplete._tag).toBe("ConnectionError")
          const viaStream = yield* failure(Stream.runDrain(llm.stream(ask("Hi", { model: target.model }))))
          expect(viaStream._tag).toBe("ConnectionError")
        }))

      it.scoped("no answer within the timeout is a TimeoutError", () =>
        Effect.gen(function*() {
          const { llm, server } = yield* setup({ timeout: "1 second" })
          yield* server.enqueue(Reply.scripted({ text: "warm-up" }), Reply.hang, Reply.hang)
          yield* llm.complete(ask("Hi", { model: target.model }))
          const hung = yield* withBothClocks(failure(llm.complete(ask("Hi", { model: target.model }))))
          expect(hung._tag).toBe("TimeoutError")
          const hungStream = yield* withBothClocks(
            failure(Stream.runDrain(llm.stream(ask("Hi", { model: target.model }))))
          )
          expect(hungStream._tag).toBe("TimeoutError")
          // Whether the provider billed the two calls is not known: unmetered, not zero
          expect(yield* llm.usage).toMatchObject({ calls: 3, failures: 2, unmeteredCalls: 2 })
        }))

      it.scoped("an infinite timeout never cuts a call", () =>
        Effect.gen(function*() {
          const { llm, server } = yield* setup({ timeout: Duration.infinity })
          // Slower than the 1 ms that Node gives a timer too long for it
          yield* server.enqueue(
            Reply.delayed(20, Reply.scripted({ text: "late" })),
            Reply.delayed(20, Reply.scripted({ text: "late too" }))
          )
          expect((yield* llm.complete(ask("Hi", { model: target.model }))).content).toBe("late")
          expect((yield* Response.collect(llm.stream(ask("Hi", { model: target.model })))).content).toBe("late too")
        }))

      it.scoped("a stream whose body stalls after the headers fails with TimeoutError (TestClock)", () =>
        Effect.gen(function*() {
          const { llm, server } = yield* setup({ timeout: "30 seconds" })
          // Headers, then silence: the SDK's own timer has stopped; the idle timer is ours.
          yield* server.enqueue(Reply.sse([FakeProviderServer.SseItem.delay(60_000)]))
          const fiber = yield* llm.stream(ask("Hi", { model: target.model })).pipe(
            Stream.runDrain,
            Effect.flip,
            Effect.fork
          )
          // Effect's clock stands still until the request is in and its headers have had time to
          // come back: the body's first read starts then, or within the first steps.
          yield* Helpers.awaitRequests(server, 1)
          yield* Effect.repeatN(realPause, 20)
          let elapsed = 0
          while (fiber.unsafePoll() === null && elapsed < 60_000) {
            yield* TestClock.adjust("500 millis")
            yield* realPause
            elapsed += 500
          }
          const error = yield* Fiber.join(fiber).pipe(withinRealTime(3_000, "the stalled stream"))
          expect(error._tag).toBe("TimeoutError")
          expect(error.message).toContain("silent for 30s")
          expect(elapsed).toBeGreaterThanOrEqual(30_000)
          expect(elapsed).toBeLessThanOrEqual(35_000)
          yield* awaitAborted(server)
          expect(yield* llm.usage).toMatchObject({ calls: 1, failures: 1 })
        }))

      it.scoped("silence in the middle of a stream is timed from the last bytes (TestClock)", () =>
        Effect.gen(function*() {
          const { llm, server } = yield* setup({ timeout: "30 seconds" })
          // Two text deltas, then nothing: the stall begins right after the consumer has the first text.
          const stallAfterEvents = target.protocol === "anthropic" ? 4 : 2
          yield* server.enqueue(Reply.scripted({ text: ["Hel", "lo"] }, { stallAfterEvents }))
          const firstText = yield* Deferred.make<void>()
          const fiber = yield* llm.stream(ask("Hi", { model: target.model })).pipe(
            Stream.runForEach((event) =>
              event._tag === "TextDelta" ? Deferred.succeed(firstText, undefined) : Effect.void
            ),
            Effect.flip,
            Effect.fork
          )
          // Once the consumer has the text, the stream's next read is pending (no I/O in between).
          yield* Deferred.await(firstText).pipe(withinRealTime(3_000, "the stream's first text"))
          yield* TestClock.adjust("20 seconds")
          yield* realPause
          yield* TestClock.adjust("9 seconds")
          yield* realPause
          expect(fiber.unsafePoll()).toBeNull()
          yield* TestClock.adjust("2 seconds")
          const error = yield* Fiber.join(fiber).pipe(withinRealTime(3_000, "the stream silent past its timeout"))
          expect(error._tag).toBe("TimeoutError")
          yield* awaitAborted(server)
          expect(yield* llm.usage).toMatchObject({ calls: 1, failures: 1 })
        }))
    })

    describe("usage", () => {
      it.scoped("usage the provider never reported is unknown, not zero: counted as unmetered, not costed", () =>
        Effect.gen(function*() {
          const { llm, server } = yield* setup()
          // The consumer stops at the first text; the provider has sent two events and no more.
          const stallAfterEvents = target.protocol === "anthropic" ? 4 : 2
          yield* server.enqueue(Reply.scripted({ text: ["Hel", "lo"], usage: { inputTokens: 30, outputTokens: 2 } }, {
            stallAfterEvents
          }))
          const first = yield* llm.stream(ask("Hi", { model: target.model })).pipe(
            Stream.filter((event) => event._tag === "TextDelta"),
            Stream.take(1),
            Stream.runCollect
          )
          expect(Chunk.size(first)).toBe(1)
          const usage = yield* llm.usage
          expect(usage).toMatchObject({ calls: 1, failures: 1, unpricedCalls: 0 })
          if (target.protocol === "anthropic") {
            // message_start reported the prompt's tokens before the stream was abandoned
            expect(usage).toMatchObject({ unmeteredCalls: 0, inputTokens: 30, outputTokens: 1 })
            expect(usage.costUsd).toBeCloseTo(costs.atMessageStart!, 12)
          } else {
            // Chat Completions reports usage only at the end
            expect(usage).toMatchObject({ unmeteredCalls: 1, inputTokens: 0, outputTokens: 0, costUsd: 0 })
          }
          expect(usage.byModel[target.model]).toMatchObject({ calls: 1, unmeteredCalls: usage.unmeteredCalls })
        }))

      it.scoped("cache and reasoning tokens are normalised and priced once, streamed and not", () =>
        Effect.gen(function*() {
          const { llm, server } = yield* setup()
          yield* server.enqueue(Reply.scripted(richReply), Reply.scripted(richReply))
          const request = ask("Weather?", { model: target.model, tools: [weatherTool] })
          const a = yield* llm.complete(request)
          const b = yield* Response.collect(llm.stream(request))
          const u = expectedRichUsage
          expect(a.usage).toEqual(u)
          expect(b.usage).toEqual(u)
          expect(a.costUsd).toBeCloseTo(costs.rich, 12)
          expect(b.costUsd).toBeCloseTo(costs.rich, 12)
          const usage = yield* llm.usage
          expect(usage.calls).toBe(2)
          expect(usage.inputTokens).toBe(2 * u.inputTokens)
          expect(usage.cacheReadTokens).toBe(2 * u.cacheReadTokens)
          expect(usage.costUsd).toBeCloseTo(2 * costs.rich, 12)
          expect(usage.byModel[target.model]?.calls).toBe(2)
        }))

      it.scoped("200 concurrent calls leave usage exact", () =>
        Effect.gen(function*() {
          const { llm, server } = yield* setup()
          yield* server.setHandler((_request, index) =>
            Reply.scripted({
              text: `reply ${index}`,
              usage: { inputTokens: 10 + index, outputTokens: 1 + (index % 7) }
            })
          )
          const replies = yield* Effect.forEach(
            Array.from({ length: 200 }, (_, i) => i),
            (i) =>
              i % 2 === 0
                ? llm.complete(ask(`q${i}`, { model: target.model }))
                : Response.collect(llm.stream(ask(`q${i}`, { model: target.model }))),
            { concurrency: "unbounded" }
          )
          const usage = yield* llm.usage
          const sum = (f: (r: Response.LLMResponse) => number) => replies.reduce((acc, r) => acc + f(r), 0)
          let expectedInput = 0
          let expectedOutput = 0
          for (let i = 0; i < 200; i++) {
            expectedInput += 10 + i
            expectedOutput += 1 + (i % 7)
          }
          expect(usage.calls).toBe(200)
          expect(usage.failures).toBe(0)
          expect(usage.inputTokens).toBe(expectedInput)
          expect(usage.outputTokens).toBe(expectedOutput)
          expect(sum((r) => r.usage.inputTokens)).toBe(expectedInput)
          expect(usage.costUsd).toBeCloseTo(sum((r) => r.costUsd!), 10)
          expect([expectedInput, expectedOutput]).toEqual([21_900, 794])
          expect(usage.costUsd).toBeCloseTo(costs.concurrent, 10)
        }))

      it.scoped("a failed call counts once as a call and a failure; a stream that breaks keeps the usage reported", () =>
        Effect.gen(function*() {
          const { llm, server } = yield* setup()
          yield* server.enqueue(
            providerError(target.protocol)(500, { anthropic: "api_error", openai: { type: "server_error" } }, "boom"),
            Reply.scripted({ text: ["a", "b", "c", "d"], usage: { inputTokens: 50, outputTokens: 4 } }, {
              dropAfterEvents: 5
            })
          )
          yield* Effect.exit(llm.complete(ask("Hi", { model: target.model })))
          yield* Effect.exit(Stream.runDrain(llm.stream(ask("Hi", { model: target.model }))))
          const usage = yield* llm.usage
          expect(usage.calls).toBe(2)
          expect(usage.failures).toBe(2)
          // Anthropic reports the prompt's tokens in message_start; OpenAI only at the end.
          expect(usage.inputTokens).toBe(target.protocol === "anthropic" ? 50 : 0)
        }))
    })

    describe("cancellation", () => {
      it.scoped("interrupting a stream closes the HTTP connection and records the usage seen", () =>
        Effect.gen(function*() {
          const { llm, server } = yield* setup()
          yield* server.enqueue(
            Reply.scripted({ text: Array.from({ length: 200 }, (_, i) => `t${i} `), usage: { inputTokens: 33 } }, {
              delayBetweenEventsMillis: 5
            })
          )
          const fiber = yield* llm.stream(ask("Hi", { model: target.model })).pipe(
            Stream.take(3),
            Stream.runCollect,
            Effect.fork
          )
          const taken = yield* Fiber.join(fiber).pipe(withinRealTime(3_000, "the first three events"))
          expect(Chunk.size(taken)).toBe(3)
          yield* awaitAborted(server)
          expect(yield* server.abortedResponses).toBe(1)
          const usage = yield* llm.usage
          expect(usage.calls).toBe(1)
          expect(usage.failures).toBe(1)
          expect(usage.inputTokens).toBe(target.protocol === "anthropic" ? 33 : 0)
        }))

      it.scoped("Fiber.interrupt on a fiber reading a stream closes its socket and records the usage seen", () =>
        Effect.gen(function*() {
          const { llm, server } = yield* setup()
          yield* server.enqueue(
            Reply.scripted({ text: Array.from({ length: 400 }, (_, i) => `t${i} `), usage: { inputTokens: 33 } }, {
              delayBetweenEventsMillis: 5
            })
          )
          const firstText = yield* Deferred.make<void>()
          const seen: Array<string> = []
          const fiber = yield* llm.stream(ask("Hi", { model: target.model })).pipe(
            Stream.runForEach((event) =>
              event._tag === "TextDelta"
                ? Effect.zipRight(Effect.sync(() => seen.push(event.text)), Deferred.succeed(firstText, undefined))
                : Effect.void
            ),
            Effect.fork
          )
          yield* Deferred.await(firstText).pipe(withinRealTime(3_000, "the stream's first text"))
          expect(yield* server.inFlightResponses).toBe(1)
          expect(yield* server.abortedResponses).toBe(0)
          const exit = yield* Fiber.interrupt(fiber)
          expect(Exit.isInterrupted(exit)).toBe(true)
          // The server sees its response cut off by the client (its socket closed), long before
          // the 2 s it would take to write the whole reply.
          yield* awaitAborted(server)
          expect(yield* server.inFlightResponses).toBe(0)
          expect(yield* server.abortedResponses).toBe(1)
          expect(seen.length).toBeLessThan(400)
          expect(yield* server.requests).toHaveLength(1)
          const usage = yield* llm.usage
          expect(usage).toMatchObject({ calls: 1, failures: 1 })
          expect(usage.inputTokens).toBe(target.protocol === "anthropic" ? 33 : 0)
        }))

      it.scoped("interrupting a complete aborts the request", () =>
        Effect.gen(function*() {
          const { llm, server } = yield* setup()
          yield* server.enqueue(Reply.hang)
          const fiber = yield* Effect.fork(llm.complete(ask("Hi", { model: target.model })))
          yield* Helpers.awaitRequests(server, 1)
          expect(yield* server.inFlightResponses).toBe(1)
          expect(Exit.isInterrupted(yield* Fiber.interrupt(fiber))).toBe(true)
          yield* awaitAborted(server)
          expect(yield* server.inFlightResponses).toBe(0)
          expect(yield* llm.usage).toMatchObject({ calls: 1, failures: 1 })
        }))
    })

    describe("secrets", () => {
      it.scoped("the API key appears in no error, String, JSON, inspect output or log line", () =>
        Effect.gen(function*() {
          const key = "sk-live-SECRET-0123456789abcdef"
          const logs: Array<string> = []
          const logger = Logger.make(({ message }) => logs.push(inspect(message, { depth: 10 })))
          const { llm, server } = yield* setup({ apiKey: Redacted.make(key) })
          // A provider that echoes the key back in its error.
          yield* server.enqueue(
            providerError(target.protocol)(401, {
              anthropic: "authentication_error",
              openai: { type: "invalid_request_error", code: "invalid_api_key" }
            }, `Incorrect API key provided: ${key}`),
            providerError(target.protocol)(401, {
              anthropic: "authentication_error",
              openai: { type: "invalid_request_error", code: "invalid_api_key" }
            }, `Incorrect API key provided: ${key}`)
          )
          const viaComplete = yield* Effect.flip(llm.complete(ask("Hi", { model: target.model })))
          const viaStream = yield* Effect.flip(Stream.runDrain(llm.stream(ask("Hi", { model: target.model }))))
          yield* Effect.logError("call failed", viaComplete, viaStream).pipe(
            Effect.provide(Logger.replace(Logger.defaultLogger, logger))
          )
          const request = (yield* server.requests)[0]!
          expect(JSON.stringify(request.headers)).toContain(key) // it was really sent
          for (const error of [viaComplete, viaStream]) {
            expect(error._tag).toBe("AuthenticationError")
            for (
              const rendering of [
                error.message,
                String(error),
                JSON.stringify(error),
                inspect(error, { depth: 10 }),
                ...logs
              ]
            ) {
              expect(rendering).not.toContain(key)
            }
          }
          expect(inspect(llm, { depth: 10 })).not.toContain(key)
          expect(JSON.stringify(yield* llm.usage)).not.toContain(key)
        }))
    })
  })
