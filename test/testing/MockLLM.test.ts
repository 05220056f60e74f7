import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as Capabilities from "../../src/Capabilities.js"
import * as LLM from "../../src/LLM.js"
import * as LLMError from "../../src/LLMError.js"
import * as Message from "../../src/Message.js"
import * as Pricing from "../../src/Pricing.js"
import * as Response from "../../src/Response.js"
import * as MockLLM from "../../src/testing/MockLLM.js"
import * as Usage from "../../src/Usage.js"
import { events } from "../helpers.js"

const request: LLM.CompletionRequest = { messages: [Message.user("Hi")] }

const unavailable = new LLMError.ProviderUnavailableError({ provider: "mock", message: "overloaded", status: 529 })

describe("MockLLM", () => {
  it.effect("answers complete with a scripted text reply", () =>
    Effect.gen(function*() {
      const llm = yield* MockLLM.make([MockLLM.text("Hello!", { usage: { inputTokens: 5, outputTokens: 2 } })])
      const reply = yield* llm.complete(request)
      expect(reply).toEqual({
        content: "Hello!",
        parts: [{ _tag: "Text", text: "Hello!" }],
        toolCalls: [],
        model: "mock-model",
        finishReason: "stop",
        usage: Usage.tokens({ inputTokens: 5, outputTokens: 2 }),
        costUsd: undefined,
        providerId: "mock"
      })
      expect(llm.providerType).toBe("mock")
    }))

  it.effect("streams a scripted text reply, ending with its Finish", () =>
    Effect.gen(function*() {
      const llm = yield* MockLLM.make([MockLLM.text("Hello!", { model: "claude-sonnet-4-5" })])
      const out = yield* events(llm.stream(request))
      expect(out).toEqual([
        { _tag: "TextDelta", text: "Hello!" },
        {
          _tag: "Finish",
          finishReason: "stop",
          usage: Usage.emptyTokens,
          costUsd: 0,
          model: "claude-sonnet-4-5",
          providerId: "mock"
        }
      ])
    }))

  it.effect("folds a stream into exactly what complete returns for the same reply", () =>
    Effect.gen(function*() {
      const reply = MockLLM.reply({
        thinking: "The user wants the weather.",
        thinkingSignature: "sig-1",
        text: "Let me check.",
        toolCalls: [{ name: "get_weather", input: { city: "Paris" } }, { id: "t2", name: "get_time", input: {} }],
        usage: { inputTokens: 1_200, cacheReadTokens: 200, outputTokens: 300 },
        model: "claude-sonnet-4-5-20250929",
        rawFinishReason: "tool_use",
        requestId: "req_1"
      })
      const llm = yield* MockLLM.make([reply, reply])
      const completed = yield* llm.complete(request)
      const collected = yield* Response.collect(llm.stream(request))
      expect(collected).toEqual(completed)
      expect(completed.content).toBe("Let me check.")
      expect(completed.thinking).toBe("The user wants the weather.")
      expect(completed.parts[0]).toEqual({
        _tag: "Thinking",
        thinking: "The user wants the weather.",
        signature: "sig-1"
      })
      expect(completed.toolCalls).toEqual([
        { id: "call_1", name: "get_weather", input: { city: "Paris" } },
        { id: "t2", name: "get_time", input: {} }
      ])
      expect(completed.finishReason).toBe("tool_calls")
      expect(completed.rawFinishReason).toBe("tool_use")
      expect(completed.requestId).toBe("req_1")
      expect(completed.costUsd).toBeCloseTo((1_000 * 3 + 200 * 0.3 + 300 * 15) / 1e6, 12)
    }))

  it.effect("scripts a tool call, streamed as start, arguments and call", () =>
    Effect.gen(function*() {
      const llm = yield* MockLLM.make([MockLLM.toolCall("get_weather", { city: "Paris" }, { id: "toolu_1" })])
      const out = yield* events(llm.stream(request))
      expect(out.slice(0, 3)).toEqual([
        { _tag: "ToolCallStart", id: "toolu_1", name: "get_weather" },
        { _tag: "ToolCallDelta", id: "toolu_1", argumentsDelta: "{\"city\":\"Paris\"}" },
        { _tag: "ToolCall", id: "toolu_1", name: "get_weather", input: { city: "Paris" } }
      ])
      expect(out[3]).toMatchObject({ _tag: "Finish", finishReason: "tool_calls" })
    }))

  it.effect("records every request as it was sent, and counts the replies left", () =>
    Effect.gen(function*() {
      const first: LLM.CompletionRequest = { messages: [Message.user("one")], model: "claude-sonnet-4-5" }
      const second: LLM.CompletionRequest = { messages: [Message.user("two")], system: "Be brief", maxTokens: 16 }
      const result = yield* Effect.gen(function*() {
        expect(yield* MockLLM.remaining).toBe(3)
        yield* LLM.complete(first)
        yield* Stream.runDrain(LLM.stream(second))
        return { requests: yield* MockLLM.requests, remaining: yield* MockLLM.remaining }
      }).pipe(Effect.provide(MockLLM.layer([MockLLM.text("1"), MockLLM.text("2"), MockLLM.text("3")])))
      expect(result).toEqual({ requests: [first, second], remaining: 1 })
    }))

  it.effect("tallies usage like a real provider: tokens, cost, unpriced calls", () =>
    Effect.gen(function*() {
      const llm = yield* MockLLM.make([
        MockLLM.text("a", { usage: { inputTokens: 100, outputTokens: 10 } }),
        MockLLM.text("b", { usage: { inputTokens: 50, outputTokens: 5 } }),
        MockLLM.text("c", { usage: { inputTokens: 200, outputTokens: 20 } })
      ])
      const sonnet = { ...request, model: "claude-sonnet-4-5" }
      yield* llm.complete(sonnet)
      yield* Response.collect(llm.stream(request))
      yield* Response.collect(llm.stream(sonnet))
      const usage = yield* llm.usage
      const priced = Pricing.cost("claude-sonnet-4-5", Usage.tokens({ inputTokens: 300, outputTokens: 30 }))
      expect(priced).toBeGreaterThan(0)
      expect(usage).toMatchObject({
        calls: 3,
        failures: 0,
        unpricedCalls: 1,
        inputTokens: 350,
        outputTokens: 35
      })
      expect(usage.costUsd).toBeCloseTo(priced ?? 0, 12)
      expect(usage.byModel["mock-model"]).toMatchObject({ calls: 1, unpricedCalls: 1, costUsd: 0 })
      expect(usage.byModel["claude-sonnet-4-5"]).toMatchObject({ calls: 2, inputTokens: 300 })
      yield* llm.resetUsage
      expect(yield* llm.usage).toEqual(Usage.empty)
    }))

  it.effect("fails a call with a scripted typed error, counted as a failure", () =>
    Effect.gen(function*() {
      const llm = yield* MockLLM.make([MockLLM.fail(unavailable), MockLLM.fail(unavailable)])
      const error = yield* Effect.flip(llm.complete(request))
      expect(error).toBe(unavailable)
      const streamed = yield* events(Stream.either(llm.stream(request)))
      expect(streamed).toEqual([Either.left(unavailable)])
      expect(yield* llm.usage).toMatchObject({ calls: 2, failures: 2 })
    }))

  it.effect("streams chunks one by one, then fails with failWith", () =>
    Effect.gen(function*() {
      const reply = MockLLM.chunks(["Hel", "lo", { _tag: "ThinkingDelta", thinking: "hmm" }], {
        failWith: unavailable,
        usage: { inputTokens: 10, outputTokens: 3 }
      })
      const llm = yield* MockLLM.make([reply, reply])
      const streamed = yield* events(Stream.either(llm.stream(request)))
      expect(streamed).toEqual([
        Either.right({ _tag: "TextDelta", text: "Hel" }),
        Either.right({ _tag: "TextDelta", text: "lo" }),
        Either.right({ _tag: "ThinkingDelta", thinking: "hmm" }),
        Either.left(unavailable)
      ])
      expect(yield* Effect.flip(llm.complete(request))).toBe(unavailable)
      // The stream's reported usage is recorded although it failed.
      expect(yield* llm.usage).toMatchObject({ calls: 2, failures: 2, inputTokens: 10, outputTokens: 3 })
    }))

  it.effect("streams chunks without failWith to a Finish that collect folds", () =>
    Effect.gen(function*() {
      const llm = yield* MockLLM.make([MockLLM.chunks(["Hel", "lo"], { model: "gpt-4o", usage: { outputTokens: 2 } })])
      const reply = yield* Response.collect(llm.stream(request))
      expect(reply).toMatchObject({ content: "Hello", model: "gpt-4o", finishReason: "stop" })
      expect(reply.costUsd).toBeCloseTo(2 * 10 / 1e6, 12)
    }))

  it.effect("fails with a typed InvalidRequestError when the script is exhausted", () =>
    Effect.gen(function*() {
      const llm = yield* MockLLM.make([MockLLM.text("1"), MockLLM.text("2")])
      yield* llm.complete(request)
      yield* llm.complete(request)
      const error = yield* Effect.flip(llm.complete(request))
      expect(error._tag).toBe("InvalidRequestError")
      expect(error.message).toContain("MockLLM: script exhausted after 2 calls")
      const streamed = yield* Effect.flip(Stream.runDrain(llm.stream(request)))
      expect(streamed._tag).toBe("InvalidRequestError")
      expect(yield* llm.requests).toHaveLength(4)
      expect(yield* llm.remaining).toBe(0)
      // Refused by the mock, not answered: no call counted.
      expect((yield* llm.usage).calls).toBe(2)
    }))

  it.effect("answers from a function of the request and the call index", () =>
    Effect.gen(function*() {
      const llm = yield* MockLLM.make((req, index) => {
        const part = req.messages[0]?.content[0]
        return MockLLM.text(`${index}: ${part?._tag === "Text" ? part.text.toUpperCase() : "?"}`)
      })
      expect((yield* llm.complete({ messages: [Message.user("ping")] })).content).toBe("0: PING")
      expect((yield* Response.collect(llm.stream({ messages: [Message.user("pong")] }))).content).toBe("1: PONG")
      expect(yield* llm.remaining).toBe(Number.POSITIVE_INFINITY)
    }))

  it.effect("waits its latency on the Clock", () =>
    Effect.gen(function*() {
      const llm = yield* MockLLM.make([MockLLM.text("slow"), MockLLM.text("slower")], { latency: "2 seconds" })
      const fiber = yield* Effect.fork(llm.complete(request))
      yield* TestClock.adjust("1999 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      expect((yield* Fiber.join(fiber)).content).toBe("slow")
      const streaming = yield* Effect.fork(events(llm.stream(request)))
      yield* TestClock.adjust("2 seconds")
      expect((yield* Fiber.join(streaming))[0]).toEqual({ _tag: "TextDelta", text: "slower" })
    }))

  it.effect("takes its options and describes its models", () =>
    Effect.gen(function*() {
      const llm = yield* MockLLM.make([MockLLM.text("hi")], {
        providerId: "fake",
        defaultModel: "my-finetune",
        pricing: { "my-finetune": { input: 1, output: 2 } }
      })
      const reply = yield* llm.complete(request)
      expect(reply).toMatchObject({ providerId: "fake", model: "my-finetune", costUsd: 0 })
      expect((yield* llm.usage).unpricedCalls).toBe(0)
      expect(llm.capabilities("claude-sonnet-4-5")).toEqual(Capabilities.forModel("claude-sonnet-4-5"))
      expect(llm.capabilities()).toMatchObject({ tools: true, thinking: true, vision: true, parallelToolCalls: true })
    }))

  it.effect("provides the same service as LLM and MockLLM", () =>
    Effect.gen(function*() {
      const llm = yield* LLM.LLM
      const mock = yield* MockLLM.MockLLM
      expect(llm).toBe(mock)
    }).pipe(Effect.provide(MockLLM.layer([]))))
})
