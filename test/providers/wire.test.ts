/**
 * Wire facts the parsers must not trust or must not miss (issue 12, defects 7, 10, 11, 12, 13, 16),
 * through the real providers and their SDKs against `FakeProviderServer`.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { expect, layer } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import type * as LLM from "../../src/LLM.js"
import * as LLMError from "../../src/LLMError.js"
import * as Message from "../../src/Message.js"
import * as Anthropic from "../../src/providers/Anthropic.js"
import * as LiteLLM from "../../src/providers/LiteLLM.js"
import * as OpenAI from "../../src/providers/OpenAI.js"
import * as Response from "../../src/Response.js"
import * as FakeProviderServer from "../../src/testing/FakeProviderServer.js"

const { Reply, SseItem } = FakeProviderServer

const ask = (text = "Hi") => ({ messages: [Message.user(text)] })

const anthropic = (server: FakeProviderServer.Service, options: Partial<Anthropic.Options> = {}) =>
  Anthropic.make({
    apiKey: Redacted.make("sk-ant-test"),
    baseUrl: server.anthropicBaseUrl,
    defaultModel: "claude-sonnet-4-6",
    ...options
  })

const openai = (server: FakeProviderServer.Service, options: Partial<OpenAI.Options> = {}) =>
  OpenAI.make({ apiKey: Redacted.make("sk-test"), baseUrl: server.openaiBaseUrl, defaultModel: "gpt-4o", ...options })

const litellm = (options: LiteLLM.Options, env: Record<string, string> = {}) =>
  LiteLLM.make(options).pipe(
    Effect.provide(FetchHttpClient.layer),
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
  )

const failure = <A>(effect: Effect.Effect<A, LLMError.LLMError>) => Effect.flip(effect)

const server = FakeProviderServer.FakeProviderServer

const fresh = Effect.tap(server, (s) => s.reset)

layer(FakeProviderServer.layer())("wire values are validated (defect 7)", (it) => {
  it.scoped("OpenAI: token counts sent as strings, negative or fractional are a MalformedResponseError", () =>
    Effect.gen(function*() {
      const s = yield* fresh
      const llm = yield* openai(s)
      const chunk = (extra: object) =>
        SseItem.event({ id: "c1", object: "chat.completion.chunk", created: 1, model: "gpt-4o", ...extra })
      for (const bad of ["12", -1, 1.5, 1e300]) {
        yield* s.enqueue(
          Reply.json({
            id: "chatcmpl-1",
            object: "chat.completion",
            model: "gpt-4o",
            choices: [{ index: 0, message: { role: "assistant", content: "Hi" }, finish_reason: "stop" }],
            usage: { prompt_tokens: bad, completion_tokens: 2, total_tokens: 3 }
          }),
          Reply.sse([
            chunk({ choices: [{ index: 0, delta: { role: "assistant", content: "Hi" }, finish_reason: null }] }),
            chunk({ choices: [{ index: 0, delta: {}, finish_reason: "stop" }] }),
            chunk({ choices: [], usage: { prompt_tokens: 1, completion_tokens: bad, total_tokens: 3 } }),
            SseItem.event("[DONE]")
          ])
        )
        const viaComplete = yield* failure(llm.complete(ask()))
        const viaStream = yield* failure(Response.collect(llm.stream(ask())))
        for (const error of [viaComplete, viaStream]) {
          expect(error._tag, String(bad)).toBe("MalformedResponseError")
          expect(error.message).toContain("token")
        }
      }
      const usage = yield* llm.usage
      expect(usage.inputTokens).toBe(0)
      expect(typeof usage.inputTokens).toBe("number")
    }))

  it.scoped("Anthropic: token counts sent as strings never concatenate in the tally (\"012\")", () =>
    Effect.gen(function*() {
      const s = yield* fresh
      const llm = yield* anthropic(s)
      const ev = (data: Record<string, unknown> & { type: string }) => SseItem.event(data, data.type)
      yield* s.enqueue(
        Reply.json({
          id: "msg_1",
          type: "message",
          role: "assistant",
          model: "claude-sonnet-4-6",
          content: [{ type: "text", text: "Hi" }],
          stop_reason: "end_turn",
          stop_sequence: null,
          usage: { input_tokens: "0", output_tokens: 12, cache_read_input_tokens: "12" }
        }),
        Reply.sse([
          ev({
            type: "message_start",
            message: {
              id: "msg_2",
              type: "message",
              role: "assistant",
              model: "claude-sonnet-4-6",
              content: [],
              stop_reason: null,
              usage: { input_tokens: "0", output_tokens: 1 }
            }
          }),
          ev({ type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }),
          ev({ type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "Hi" } }),
          ev({ type: "content_block_stop", index: 0 }),
          ev({ type: "message_delta", delta: { stop_reason: "end_turn" }, usage: { output_tokens: "12" } }),
          ev({ type: "message_stop" })
        ])
      )
      const viaComplete = yield* failure(llm.complete(ask()))
      const viaStream = yield* failure(Response.collect(llm.stream(ask())))
      for (const error of [viaComplete, viaStream]) {
        expect(error._tag).toBe("MalformedResponseError")
        expect(error.message).toContain("input_tokens")
      }
      const usage = yield* llm.usage
      expect(usage.inputTokens).toBe(0)
      expect(usage.outputTokens).toBe(0)
      expect(typeof usage.inputTokens).toBe("number")
    }))
})

layer(FakeProviderServer.layer())("parallel tool calls that all say index 0 (defect 11)", (it) => {
  // Ollama (ollama/ollama#15457) and some other compatible servers send every call of a parallel
  // batch with `index: 0`, told apart only by their `id`.
  const chunk = (delta: Record<string, unknown>, finishReason: string | null = null) =>
    SseItem.event({
      id: "chatcmpl-1",
      object: "chat.completion.chunk",
      created: 1,
      model: "llama3.1",
      choices: [{ index: 0, delta, finish_reason: finishReason }]
    })
  const call = (id: string | undefined, name: string | undefined, args: string) => ({
    tool_calls: [{
      index: 0,
      ...(id !== undefined ? { id, type: "function" } : {}),
      function: { ...(name !== undefined ? { name } : {}), arguments: args }
    }]
  })
  const ollamaStream = Reply.sse([
    chunk({ role: "assistant", content: "" }),
    chunk(call("call_a", "get_weather", "{\"city\":")),
    chunk(call(undefined, undefined, "\"Paris\"}")),
    chunk(call("call_b", "get_time", "{\"zone\":\"CET\"}")),
    // the same id again at the same index: a fragment of the call in progress
    chunk(call("call_c", "get_weather", "{\"city\":")),
    chunk(call("call_c", undefined, "\"Rome\"}")),
    chunk({}, "tool_calls"),
    SseItem.event({
      id: "chatcmpl-1",
      object: "chat.completion.chunk",
      model: "llama3.1",
      choices: [],
      usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 }
    }),
    SseItem.event("[DONE]")
  ])
  const expected = [
    { id: "call_a", name: "get_weather", input: { city: "Paris" } },
    { id: "call_b", name: "get_time", input: { zone: "CET" } },
    { id: "call_c", name: "get_weather", input: { city: "Rome" } }
  ]

  it.scoped("a different id at an occupied index starts a new tool call (OpenAI and LiteLLM)", () =>
    Effect.gen(function*() {
      const s = yield* fresh
      const llms = [
        yield* openai(s, { defaultModel: "llama3.1" }),
        yield* litellm({ defaultModel: "ollama/llama3.1", baseUrl: s.openaiBaseUrl })
      ]
      for (const llm of llms) {
        yield* s.enqueue(ollamaStream)
        const events = Array.from(yield* Stream.runCollect(llm.stream(ask())))
        const reply = Response.collect(Stream.fromIterable(events))
        const collected = yield* reply
        expect(collected.toolCalls.map(({ id, input, name }) => ({ id, name, input })), llm.providerId)
          .toEqual(expected)
        expect(collected.finishReason).toBe("tool_calls")
        const starts = events.filter((e) => e._tag === "ToolCallStart").map((e) => (e as any).id)
        expect(starts).toEqual(["call_a", "call_b", "call_c"])
        const deltas = events.filter((e) => e._tag === "ToolCallDelta").map((e) => (e as any).id)
        expect(deltas).toEqual(["call_a", "call_a", "call_b", "call_c", "call_c"])
      }
    }))
})

layer(FakeProviderServer.layer())("through a compatible gateway (defect 16)", (it) => {
  const completion = (finishReason: string, usage: Record<string, unknown>) =>
    Reply.json({
      id: "chatcmpl-1",
      object: "chat.completion",
      model: "claude-sonnet-4-6",
      choices: [{ index: 0, message: { role: "assistant", content: "Hi" }, finish_reason: finishReason }],
      usage
    })
  const chunk = (extra: object) =>
    SseItem.event({ id: "c1", object: "chat.completion.chunk", created: 1, model: "claude-sonnet-4-6", ...extra })
  const streamed = (finishReason: string, usage: Record<string, unknown>) =>
    Reply.sse([
      chunk({ choices: [{ index: 0, delta: { role: "assistant", content: "Hi" }, finish_reason: null }] }),
      chunk({ choices: [{ index: 0, delta: {}, finish_reason: finishReason }], usage }),
      SseItem.event("[DONE]")
    ])

  it.scoped("usage.cache_creation_input_tokens is read: cache writes counted and priced, input whole", () =>
    Effect.gen(function*() {
      const s = yield* fresh
      const llms = [
        yield* openai(s, { defaultModel: "claude-sonnet-4-6" }),
        yield* litellm({
          defaultModel: "openai/claude-sonnet-4-6",
          baseUrl: s.openaiBaseUrl,
          apiKey: Redacted.make("k")
        })
      ]
      const cases: ReadonlyArray<readonly [string, Record<string, unknown>]> = [
        // Portkey translating Anthropic: prompt_tokens is Anthropic's input_tokens (no cache), the
        // cache counts beside it, total_tokens sums all four
        ["prompt excludes cache reads and writes", {
          prompt_tokens: 100,
          completion_tokens: 5,
          total_tokens: 605,
          cache_read_input_tokens: 300,
          cache_creation_input_tokens: 200
        }],
        // LiteLLM: prompt_tokens counts every prompt token, reads in prompt_tokens_details
        ["prompt includes both", {
          prompt_tokens: 600,
          completion_tokens: 5,
          total_tokens: 605,
          prompt_tokens_details: { cached_tokens: 300 },
          cache_creation_input_tokens: 200
        }],
        ["prompt includes reads, not writes", {
          prompt_tokens: 400,
          completion_tokens: 5,
          total_tokens: 605,
          prompt_tokens_details: { cached_tokens: 300 },
          cache_creation_input_tokens: 200
        }]
      ]
      for (const llm of llms) {
        for (const [what, usage] of cases) {
          yield* s.enqueue(completion("stop", usage), streamed("stop", usage))
          const replies = [yield* llm.complete(ask()), yield* Response.collect(llm.stream(ask()))]
          for (const reply of replies) {
            expect(reply.usage, `${llm.providerId}: ${what}`).toEqual({
              inputTokens: 600,
              outputTokens: 5,
              cacheReadTokens: 300,
              cacheWriteTokens: 200,
              reasoningTokens: 0
            })
          }
        }
      }
    }))

  it.scoped("raw Anthropic stop reasons passed through map to their finish reasons", () =>
    Effect.gen(function*() {
      const s = yield* fresh
      const llm = yield* openai(s, { defaultModel: "claude-sonnet-4-6" })
      const usage = { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 }
      const cases = [
        ["end_turn", "stop"],
        ["stop_sequence", "stop"],
        ["max_tokens", "length"],
        ["tool_use", "tool_calls"]
      ] as const
      for (const [raw, expected] of cases) {
        yield* s.enqueue(completion(raw, usage), streamed(raw, usage))
        const replies = [yield* llm.complete(ask()), yield* Response.collect(llm.stream(ask()))]
        for (const reply of replies) {
          expect(reply.finishReason, raw).toBe(expected)
          expect(reply.rawFinishReason).toBe(raw)
        }
      }
    }))

  it.scoped("OpenAI: the gateway's request-id is the request id when there is no x-request-id", () =>
    Effect.gen(function*() {
      const s = yield* fresh
      const llm = yield* openai(s)
      const headers = { "x-request-id": "", "request-id": "req_upstream_1" }
      yield* s.enqueue(
        Reply.scripted({ text: "Hi", headers }),
        Reply.scripted({ text: "Hi", headers }),
        Reply.openaiError(500, { message: "boom", type: "server_error" }, {
          "x-request-id": "",
          "request-id": "req_upstream_2"
        })
      )
      expect((yield* llm.complete(ask())).requestId).toBe("req_upstream_1")
      expect((yield* Response.collect(llm.stream(ask()))).requestId).toBe("req_upstream_1")
      expect((yield* failure(llm.complete(ask()))).requestId).toBe("req_upstream_2")
    }))

  it.scoped("Anthropic: a plain-text error body (a proxy's) is the message, the status said once", () =>
    Effect.gen(function*() {
      const s = yield* fresh
      const llm = yield* anthropic(s)
      const reply = Reply.text("Missing header: x-api-version", { status: 400 })
      yield* s.enqueue(reply, reply, Reply.text("", { status: 502 }))
      const errors = [yield* failure(llm.complete(ask())), yield* failure(Stream.runDrain(llm.stream(ask())))]
      for (const error of errors) {
        expect(error._tag).toBe("InvalidRequestError")
        expect(error.message).toBe("anthropic: HTTP 400 Missing header: x-api-version")
      }
      const empty = yield* failure(llm.complete(ask()))
      expect(empty._tag).toBe("ProviderUnavailableError")
      expect(empty.message).toBe("anthropic: HTTP 502 request failed")
    }))

  it.scoped("OpenAI: error bodies that are not { error: {...} } keep their message", () =>
    Effect.gen(function*() {
      const s = yield* fresh
      const llm = yield* openai(s)
      const cases: ReadonlyArray<readonly [FakeProviderServer.Reply, string, LLMError.Tag]> = [
        [
          Reply.json({ status: "failure", message: "x-portkey-provider header is missing" }, { status: 400 }),
          "x-portkey-provider header is missing",
          "InvalidRequestError"
        ],
        [Reply.json({ detail: "Not authenticated" }, { status: 401 }), "Not authenticated", "AuthenticationError"],
        [
          Reply.text("Missing header: x-api-version", { status: 400 }),
          "Missing header: x-api-version",
          "InvalidRequestError"
        ],
        [
          Reply.json({ error: "model not loaded", code: 503 }, { status: 503 }),
          "model not loaded",
          "ProviderUnavailableError"
        ]
      ]
      for (const [reply, text, tag] of cases) {
        yield* s.enqueue(reply, reply)
        const errors = [
          yield* failure(llm.complete(ask())),
          yield* failure(Stream.runDrain(llm.stream(ask())))
        ]
        for (const error of errors) {
          expect(error._tag, text).toBe(tag)
          expect(error.message).toContain(text)
          expect(error.message).not.toContain("(no body)")
          expect(error.message).not.toMatch(/HTTP (\d+) \1/)
        }
      }
    }))
})

layer(FakeProviderServer.layer())("error rows (defect 10)", (it) => {
  /** The three providers against the same server. */
  const all = (s: FakeProviderServer.Service) =>
    Effect.all({
      anthropic: anthropic(s),
      openai: openai(s),
      litellm: litellm({ defaultModel: "openai/gpt-4o", baseUrl: s.openaiBaseUrl, apiKey: Redacted.make("k") })
    })
  const errorOf = (protocol: "anthropic" | "openai", status: number, kind: string, message: string, headers = {}) =>
    protocol === "anthropic"
      ? Reply.anthropicError(status, kind, message, headers)
      : Reply.openaiError(status, { message, type: kind }, headers)
  /** The error of `complete` and of `stream`, for the same reply. */
  const failures = (s: FakeProviderServer.Service, llm: LLM.Service, reply: FakeProviderServer.Reply) =>
    Effect.gen(function*() {
      yield* s.enqueue(reply, reply)
      return [yield* failure(llm.complete(ask())), yield* failure(Stream.runDrain(llm.stream(ask())))] as const
    })

  it.scoped("retry-after on 503 and 529 is read into the ProviderUnavailableError", () =>
    Effect.gen(function*() {
      const s = yield* fresh
      const llms = yield* all(s)
      const cases = [
        [llms.anthropic, errorOf("anthropic", 529, "overloaded_error", "Overloaded", { "retry-after": "7" }), 7000],
        [llms.anthropic, errorOf("anthropic", 503, "api_error", "down", { "retry-after-ms": "2500" }), 2500],
        [llms.openai, errorOf("openai", 503, "server_error", "down", { "retry-after": "7" }), 7000],
        [llms.litellm, errorOf("openai", 503, "server_error", "down", { "retry-after": "7" }), 7000]
      ] as const
      for (const [llm, reply, millis] of cases) {
        for (const error of yield* failures(s, llm, reply)) {
          expect(error._tag, llm.providerId).toBe("ProviderUnavailableError")
          expect(error.isRetryable).toBe(true)
          expect(LLMError.retryAfter(error), llm.providerId).toEqual(Option.some(Duration.millis(millis)))
        }
      }
    }))

  it.scoped("x-should-retry is honoured: true makes an error retryable, false makes it not", () =>
    Effect.gen(function*() {
      const s = yield* fresh
      const llms = yield* all(s)
      for (
        const [llm, protocol] of [[llms.anthropic, "anthropic"], [llms.openai, "openai"], [
          llms.litellm,
          "openai"
        ]] as const
      ) {
        const cases = [
          [
            errorOf(protocol, 529, "overloaded_error", "Overloaded", { "x-should-retry": "false" }),
            "ProviderUnavailableError",
            false
          ],
          [
            errorOf(protocol, 500, "api_error", "internal", { "x-should-retry": "false" }),
            "ProviderUnavailableError",
            false
          ],
          [
            errorOf(protocol, 429, "rate_limit_error", "slow down", { "x-should-retry": "false" }),
            "RateLimitError",
            false
          ],
          [errorOf(protocol, 408, "timeout_error", "late", { "x-should-retry": "false" }), "TimeoutError", false],
          [
            errorOf(protocol, 400, "invalid_request_error", "try again", { "x-should-retry": "true" }),
            "ProviderUnavailableError",
            true
          ],
          [
            errorOf(protocol, 529, "overloaded_error", "Overloaded", { "x-should-retry": "true" }),
            "ProviderUnavailableError",
            true
          ]
        ] as const
        for (const [reply, tag, retryable] of cases) {
          for (const error of yield* failures(s, llm, reply)) {
            const what = `${llm.providerId} ${(reply as any).status} x-should-retry`
            expect(error._tag, what).toBe(tag)
            expect(LLMError.isRetryable(error), what).toBe(retryable)
          }
        }
      }
    }))

  it.scoped("stream error events map to their rows; an unknown kind is not retryable", () =>
    Effect.gen(function*() {
      const s = yield* fresh
      const llms = yield* all(s)
      const cases: ReadonlyArray<readonly [string, LLMError.Tag, boolean]> = [
        ["rate_limit_error", "RateLimitError", true],
        ["authentication_error", "AuthenticationError", false],
        ["permission_error", "AuthenticationError", false],
        ["invalid_request_error", "InvalidRequestError", false],
        ["not_found_error", "InvalidRequestError", false],
        ["request_too_large", "InvalidRequestError", false],
        ["billing_error", "QuotaExceededError", false],
        ["overloaded_error", "ProviderUnavailableError", true],
        ["api_error", "ProviderUnavailableError", true],
        ["timeout_error", "ProviderUnavailableError", true],
        ["a_kind_from_the_future", "ProviderUnavailableError", false]
      ]
      for (const [type, tag, retryable] of cases) {
        yield* s.enqueue(Reply.scripted({ text: ["a ", "b"] }, { errorAfterEvents: { count: 3, type, message: "m" } }))
        const error = yield* failure(Stream.runDrain(llms.anthropic.stream(ask())))
        expect(error._tag, type).toBe(tag)
        expect(LLMError.isRetryable(error), type).toBe(retryable)
      }
      // OpenAI-compatible error events: OpenAI's types, and a numeric code that is an HTTP status
      const chat: ReadonlyArray<readonly [{ type: string; status?: number }, LLMError.Tag, boolean]> = [
        [{ type: "server_error" }, "ProviderUnavailableError", true],
        [{ type: "invalid_request_error" }, "InvalidRequestError", false],
        [{ type: "BadRequestError", status: 400 }, "InvalidRequestError", false],
        [{ type: "RateLimitError", status: 429 }, "RateLimitError", true],
        [{ type: "ServiceUnavailableError", status: 503 }, "ProviderUnavailableError", true],
        [{ type: "a_kind_from_the_future" }, "ProviderUnavailableError", false]
      ]
      for (const llm of [llms.openai, llms.litellm]) {
        for (const [fault, tag, retryable] of chat) {
          yield* s.enqueue(
            Reply.scripted({ text: ["a ", "b"] }, { errorAfterEvents: { count: 3, message: "m", ...fault } })
          )
          const error = yield* failure(Stream.runDrain(llm.stream(ask())))
          expect(error._tag, `${llm.providerId} ${fault.type}`).toBe(tag)
          expect(LLMError.isRetryable(error), `${llm.providerId} ${fault.type}`).toBe(retryable)
        }
      }
    }))

  it.scoped("Groq: a request too large for the TPM limit (413 or 429) can never succeed: not retryable", () =>
    Effect.gen(function*() {
      const s = yield* fresh
      const llm = yield* litellm({ defaultModel: "groq/llama-3.3-70b-versatile", baseUrl: s.openaiBaseUrl }, {
        GROQ_API_KEY: "gsk-test"
      })
      const message = "Request too large for model `llama-3.3-70b-versatile` in organization `org_01` service tier " +
        "`on_demand` on tokens per minute (TPM): Limit 12000, Requested 15211, please reduce your message size and try again."
      for (const status of [413, 429]) {
        const reply = Reply.openaiError(status, { message, type: "tokens", code: "rate_limit_exceeded" }, {
          "retry-after": "2"
        })
        for (const error of yield* failures(s, llm, reply)) {
          expect(error._tag, String(status)).toBe("InvalidRequestError")
          expect(error.isRetryable).toBe(false)
          expect(error.message).toContain("Request too large")
        }
      }
      // An ordinary Groq rate limit stays retryable
      const limited = Reply.openaiError(429, {
        message: "Rate limit reached for model `llama-3.3-70b-versatile` on tokens per minute (TPM): Limit 12000, " +
          "Used 11000, Requested 2000. Please try again in 5s.",
        type: "tokens",
        code: "rate_limit_exceeded"
      }, { "retry-after": "5" })
      for (const error of yield* failures(s, llm, limited)) {
        expect(error._tag).toBe("RateLimitError")
        expect(error.isRetryable).toBe(true)
      }
    }))

  it.scoped("an HTTP-date retry-after counts from Effect's Clock (TestClock), not the wall clock", () =>
    Effect.gen(function*() {
      const s = yield* fresh
      const now = Date.parse("2031-05-06T07:08:00Z")
      yield* TestClock.setTime(now)
      const llms = yield* all(s)
      const retryAfter = { "retry-after": new Date(now + 90_000).toUTCString() }
      for (
        const [llm, protocol] of [[llms.anthropic, "anthropic"], [llms.openai, "openai"], [
          llms.litellm,
          "openai"
        ]] as const
      ) {
        for (const status of [429, 529]) {
          const reply = errorOf(
            protocol,
            status,
            status === 429 ? "rate_limit_error" : "overloaded_error",
            "wait",
            retryAfter
          )
          for (const error of yield* failures(s, llm, reply)) {
            expect(LLMError.retryAfter(error), `${llm.providerId} ${status}`).toEqual(Option.some(Duration.seconds(90)))
          }
        }
      }
    }))
})

layer(FakeProviderServer.layer())("the LiteLLM proxy's cost (defect 12)", (it) => {
  it.scoped("litellm_proxy/: the cost comes from the header of a JSON reply and from usage.cost of a stream", () =>
    Effect.gen(function*() {
      const s = yield* fresh
      const llm = yield* litellm({ defaultModel: "litellm_proxy/claude-sonnet-4-6", baseUrl: s.openaiBaseUrl })
      const reply = Reply.scripted({ text: "hi", usage: { inputTokens: 1000, outputTokens: 100 }, costUsd: 0.0421 })
      yield* s.enqueue(reply, reply)
      const completed = yield* llm.complete(ask())
      const streamed = yield* Response.collect(llm.stream(ask()))
      expect(completed.costUsd).toBe(0.0421)
      expect(streamed.costUsd).toBe(0.0421)
      const usage = yield* llm.usage
      expect(usage.costUsd).toBeCloseTo(0.0842, 12)
      // The fake answers as the proxy does: the header on the JSON reply only
      const [json, sse] = yield* s.requests
      expect((json!.body as any).stream).toBeUndefined()
      expect((sse!.body as any).stream).toBe(true)
    }))

  it.scoped("litellm_proxy/: a JSON reply with usage.cost and no header is costed by the proxy too", () =>
    Effect.gen(function*() {
      const s = yield* fresh
      const llm = yield* litellm({ defaultModel: "litellm_proxy/claude-sonnet-4-6", baseUrl: s.openaiBaseUrl })
      yield* s.enqueue(Reply.json({
        id: "chatcmpl-1",
        object: "chat.completion",
        model: "claude-sonnet-4-6",
        choices: [{ index: 0, message: { role: "assistant", content: "Hi" }, finish_reason: "stop" }],
        usage: { prompt_tokens: 1000, completion_tokens: 100, total_tokens: 1100, cost: 0.0042 }
      }))
      expect((yield* llm.complete(ask())).costUsd).toBe(0.0042)
    }))
})

layer(FakeProviderServer.layer())("Anthropic requests the API would reject (defect 13)", (it) => {
  const thinkingAsk = (extra: Partial<LLM.CompletionRequest>): LLM.CompletionRequest => ({
    messages: [Message.user("Hi")],
    ...extra
  })

  it.scoped("thinking that cannot fit maxTokens, temperature, topP or forced tools with thinking: refused before any request, naming the field", () =>
    Effect.gen(function*() {
      const s = yield* fresh
      const llm = yield* anthropic(s)
      const cases: ReadonlyArray<readonly [LLM.CompletionRequest, ReadonlyArray<string>]> = [
        [thinkingAsk({ thinking: { effort: "low" }, maxTokens: 1024 }), ["maxTokens", "1024", "thinking"]],
        [thinkingAsk({ thinking: { effort: "high" }, maxTokens: 512 }), ["maxTokens", "512", "thinking"]],
        [thinkingAsk({ thinking: { budgetTokens: 500 }, maxTokens: 4096 }), ["thinking.budgetTokens", "1024"]],
        [thinkingAsk({ thinking: { budgetTokens: 4096 }, maxTokens: 2048 }), ["thinking.budgetTokens", "maxTokens"]],
        [thinkingAsk({ thinking: { budgetTokens: 2048 }, maxTokens: 4096, temperature: 0.7 }), ["temperature"]],
        [thinkingAsk({ thinking: { budgetTokens: 2048 }, maxTokens: 4096, topP: 0.5 }), ["topP", "0.95"]],
        [thinkingAsk({ thinking: { budgetTokens: 2048 }, maxTokens: 4096, toolChoice: "required" }), ["toolChoice"]]
      ]
      for (const [request, words] of cases) {
        for (
          const error of [yield* failure(llm.complete(request)), yield* failure(Stream.runDrain(llm.stream(request)))]
        ) {
          expect(error._tag, JSON.stringify(request)).toBe("InvalidRequestError")
          for (const word of words) expect(error.message).toContain(word)
        }
      }
      expect(yield* s.requests).toHaveLength(0)
      expect((yield* llm.usage).calls).toBe(0)
    }))

  it.scoped("what the API accepts is sent: the effort budget below maxTokens, temperature 1, topP 0.95", () =>
    Effect.gen(function*() {
      const s = yield* fresh
      const llm = yield* anthropic(s)
      yield* llm.complete(thinkingAsk({ thinking: { effort: "high" }, maxTokens: 1025, temperature: 1, topP: 0.95 }))
      yield* llm.complete(thinkingAsk({ thinking: { effort: "medium" }, maxTokens: 20_000 }))
      const [first, second] = (yield* s.requests).map((r) => r.body as any)
      expect(first.thinking).toEqual({ type: "enabled", budget_tokens: 1024 })
      expect(first.max_tokens).toBe(1025)
      expect(first.temperature).toBe(1)
      expect(second.thinking).toEqual({ type: "enabled", budget_tokens: 8192 })
      // With interleaved thinking (a beta), the budget may exceed max_tokens
      const interleaved = yield* anthropic(s, { headers: { "anthropic-beta": "interleaved-thinking-2025-05-14" } })
      yield* interleaved.complete(thinkingAsk({ thinking: { budgetTokens: 4096 }, maxTokens: 2048 }))
      expect(((yield* s.requests)[2]!.body as any).thinking).toEqual({ type: "enabled", budget_tokens: 4096 })
    }))
})
