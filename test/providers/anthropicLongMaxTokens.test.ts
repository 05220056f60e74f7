/**
 * Anthropic `complete` with a `maxTokens` above `nonStreamingMaxTokens` streams internally: it
 * must account for the call exactly as the non-streaming path and `stream` do.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Message from "../../src/Message.js"
import * as Anthropic from "../../src/providers/Anthropic.js"
import * as FakeProviderServer from "../../src/testing/FakeProviderServer.js"

const { Reply, SseItem } = FakeProviderServer

const setup = Effect.gen(function*() {
  const server = yield* FakeProviderServer.make()
  const llm = yield* Anthropic.make({ apiKey: Redacted.make("sk-ant-test"), baseUrl: server.anthropicBaseUrl })
  return { server, llm }
})

const long = { messages: [Message.user("Write a book")], maxTokens: Anthropic.nonStreamingMaxTokens + 1 }

describe("Anthropic complete, long maxTokens (streamed internally)", () => {
  it.scoped("a reply cut mid-stream records the usage the provider reported before it broke", () =>
    Effect.gen(function*() {
      const { llm, server } = yield* setup
      // message_start (10 input tokens, 1 output token reported), then the socket is dropped.
      yield* server.enqueue(
        Reply.scripted({ text: ["Once", " upon", " a time"], usage: { inputTokens: 10, outputTokens: 3 } }, {
          dropAfterEvents: 3
        })
      )
      const error = yield* Effect.flip(llm.complete(long))
      expect(error._tag).toBe("ConnectionError")
      const usage = yield* llm.usage
      expect(usage.calls).toBe(1)
      expect(usage.failures).toBe(1)
      expect(usage.unmeteredCalls).toBe(0)
      expect(usage.inputTokens).toBe(10)
      expect(usage.outputTokens).toBe(1)
      expect(usage.costUsd).toBeGreaterThan(0)
    }))

  it.scoped("a reply that reports no usage stays usageUnknown (not zero tokens)", () =>
    Effect.gen(function*() {
      const { llm, server } = yield* setup
      const event = (data: Record<string, unknown>) => SseItem.event(data, data.type as string)
      yield* server.enqueue(Reply.sse([
        event({
          type: "message_start",
          message: {
            id: "msg_1",
            type: "message",
            role: "assistant",
            model: "claude-sonnet-4-6",
            content: [],
            stop_reason: null,
            stop_sequence: null
          }
        }),
        event({ type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }),
        event({ type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "Hi" } }),
        event({ type: "content_block_stop", index: 0 }),
        event({ type: "message_delta", delta: { stop_reason: "end_turn", stop_sequence: null } }),
        event({ type: "message_stop" })
      ]))
      const reply = yield* llm.complete(long)
      expect(reply.content).toBe("Hi")
      expect(reply.usageUnknown).toBe(true)
      expect(reply.costUsd).toBeUndefined()
      const usage = yield* llm.usage
      expect(usage.calls).toBe(1)
      expect(usage.unmeteredCalls).toBe(1)
      expect(usage.unpricedCalls).toBe(0)
    }))
})
