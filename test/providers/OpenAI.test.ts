import { expect, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Message from "../../src/Message.js"
import * as OpenAI from "../../src/providers/OpenAI.js"
import * as Response from "../../src/Response.js"
import * as FakeProviderServer from "../../src/testing/FakeProviderServer.js"
import { conformance } from "./conformance.js"

const { Reply, SseItem } = FakeProviderServer

const makeLlm = (server: FakeProviderServer.Service, options: Partial<OpenAI.Options> = {}) =>
  OpenAI.make({
    apiKey: Redacted.make("sk-test"),
    baseUrl: server.openaiBaseUrl,
    defaultModel: "gpt-4o",
    ...options
  })

conformance({
  name: "OpenAI",
  protocol: "openai",
  model: "gpt-4o",
  maxTokensField: "max_completion_tokens",
  make: (server, options) =>
    makeLlm(server, {
      ...(options?.apiKey !== undefined ? { apiKey: options.apiKey } : {}),
      ...(options?.timeout !== undefined ? { timeout: options.timeout } : {}),
      ...(options?.baseUrl !== undefined ? { baseUrl: `${options.baseUrl}/v1` } : {})
    })
})

layer(FakeProviderServer.layer())("OpenAI specifics", (it) => {
  const setup = (options: Partial<OpenAI.Options> = {}) =>
    Effect.gen(function*() {
      const server = yield* FakeProviderServer.FakeProviderServer
      yield* server.reset
      return { server, llm: yield* makeLlm(server, options) }
    })

  it.scoped("organization and project headers, reasoning effort and tool choice are sent", () =>
    Effect.gen(function*() {
      const { llm, server } = yield* setup({ organization: "org-1", project: "proj-1" })
      yield* server.enqueue(
        Reply.scripted({ text: "a", usage: { inputTokens: 10, outputTokens: 50, reasoningTokens: 40 } })
      )
      const reply = yield* llm.complete({
        model: "o3",
        messages: [Message.user("x")],
        thinking: { effort: "high" },
        toolChoice: { name: "get_weather" }
      })
      expect(reply.usage).toMatchObject({ outputTokens: 50, reasoningTokens: 40 })
      const [request] = yield* server.requests
      expect(request!.headers["openai-organization"]).toBe("org-1")
      expect(request!.headers["openai-project"]).toBe("proj-1")
      const body = request!.body as any
      expect(body.reasoning_effort).toBe("high")
      expect(body.tool_choice).toEqual({ type: "function", function: { name: "get_weather" } })
    }))

  it.scoped("chunks with empty choices and a usage-only last chunk are folded; usage never double counted", () =>
    Effect.gen(function*() {
      const { llm, server } = yield* setup()
      const chunk = (extra: object) =>
        SseItem.event({ id: "c1", object: "chat.completion.chunk", created: 1, model: "gpt-4o", ...extra })
      yield* server.enqueue(Reply.sse([
        chunk({ choices: [], prompt_filter_results: [] }),
        chunk({ choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }], usage: null }),
        SseItem.comment("keep-alive"),
        chunk({ choices: [{ index: 0, delta: { content: "Hi" }, finish_reason: null }], usage: null }),
        chunk({ choices: [{ index: 0, delta: {}, finish_reason: "stop" }], usage: null }),
        chunk({
          choices: [],
          usage: {
            prompt_tokens: 100,
            completion_tokens: 3,
            total_tokens: 103,
            prompt_tokens_details: { cached_tokens: 60 }
          }
        }),
        SseItem.event("[DONE]")
      ]))
      const reply = yield* Response.collect(llm.stream({ messages: [Message.user("x")] }))
      expect(reply.content).toBe("Hi")
      expect(reply.usage).toEqual({
        inputTokens: 100,
        outputTokens: 3,
        cacheReadTokens: 60,
        cacheWriteTokens: 0,
        reasoningTokens: 0
      })
      // gpt-4o at $2.50 input, $1.25 cache read, $10 output per million: 40 x 2.5 + 60 x 1.25 + 3 x 10 = 205
      expect(reply.costUsd).toBeCloseTo(0.000205, 12)
      // The provider's tally holds the call once: not once per chunk that mentions usage.
      const usage = yield* llm.usage
      expect(usage).toMatchObject({
        calls: 1,
        failures: 0,
        inputTokens: 100,
        outputTokens: 3,
        cacheReadTokens: 60,
        cacheWriteTokens: 0,
        reasoningTokens: 0,
        unmeteredCalls: 0
      })
      expect(usage.costUsd).toBeCloseTo(0.000205, 12)
      expect(usage.byModel["gpt-4o"]).toMatchObject({ calls: 1, inputTokens: 100, outputTokens: 3 })
    }))
})

layer(FakeProviderServer.layer())("OpenAI: a server that reports no usage", (it) => {
  const chunk = (delta: Record<string, unknown>, finishReason: string | null = null) =>
    SseItem.event({
      id: "chatcmpl-1",
      object: "chat.completion.chunk",
      model: "gpt-4o",
      choices: [{ index: 0, delta, finish_reason: finishReason }]
    })

  it.scoped("a reply without usage (streamed or not) is unknown usage, not zero: no cost, counted as unmetered", () =>
    Effect.gen(function*() {
      const server = yield* FakeProviderServer.FakeProviderServer
      yield* server.reset
      const llm = yield* makeLlm(server)
      // Some compatible servers ignore `stream_options.include_usage`, and send no `usage` at all
      yield* server.enqueue(
        Reply.sse([chunk({ role: "assistant", content: "Hi" }), chunk({}, "stop"), SseItem.event("[DONE]")]),
        Reply.json({
          id: "chatcmpl-2",
          object: "chat.completion",
          model: "gpt-4o",
          choices: [{ index: 0, message: { role: "assistant", content: "Hello" }, finish_reason: "stop" }]
        })
      )
      const streamed = yield* Response.collect(llm.stream({ messages: [Message.user("x")] }))
      const completed = yield* llm.complete({ messages: [Message.user("x")] })
      for (const reply of [streamed, completed]) {
        expect(reply.usageUnknown).toBe(true)
        expect(reply.costUsd).toBeUndefined()
        expect(reply.usage.inputTokens).toBe(0)
      }
      expect(streamed.content).toBe("Hi")
      expect(completed.content).toBe("Hello")
      expect(yield* llm.usage).toMatchObject({
        calls: 2,
        failures: 0,
        unmeteredCalls: 2,
        unpricedCalls: 0,
        costUsd: 0,
        inputTokens: 0
      })

      // With usage, nothing is unknown
      yield* server.enqueue(Reply.scripted({ text: "ok", usage: { inputTokens: 5, outputTokens: 1 } }))
      const known = yield* llm.complete({ messages: [Message.user("x")] })
      expect(known.usageUnknown).toBeUndefined()
      expect(known.costUsd).toBeGreaterThan(0)
      expect((yield* llm.usage).unmeteredCalls).toBe(2)
    }))
})
