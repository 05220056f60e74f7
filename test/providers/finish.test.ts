/**
 * "Finish is last": every provider drops what a server sends after its terminal event
 * (`message_stop`, `[DONE]`), prices the `Finish` wherever it is in a batch, and stops reading once
 * it arrived (a server that keeps the connection open must not turn a finished call into a timeout).
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as LLM from "../../src/LLM.js"
import * as Message from "../../src/Message.js"
import * as Anthropic from "../../src/providers/Anthropic.js"
import * as LiteLLM from "../../src/providers/LiteLLM.js"
import * as OpenAI from "../../src/providers/OpenAI.js"
import * as FakeProviderServer from "../../src/testing/FakeProviderServer.js"

const { Reply } = FakeProviderServer

interface Target {
  readonly name: string
  readonly make: (
    server: FakeProviderServer.Service,
    timeout: Duration.DurationInput
  ) => Effect.Effect<LLM.Service, never, Scope.Scope>
}

const targets: ReadonlyArray<Target> = [
  {
    name: "Anthropic",
    make: (server, timeout) =>
      Anthropic.make({ apiKey: Redacted.make("sk-ant-test"), baseUrl: server.anthropicBaseUrl, timeout })
  },
  {
    name: "OpenAI",
    make: (server, timeout) => OpenAI.make({ apiKey: Redacted.make("sk-test"), baseUrl: server.openaiBaseUrl, timeout })
  },
  {
    name: "LiteLLM",
    make: (server, timeout) =>
      LiteLLM.make({
        defaultModel: "openai/gpt-4o",
        apiKey: Redacted.make("sk-test"),
        baseUrl: server.openaiBaseUrl,
        timeout
      }).pipe(Effect.provide(FetchHttpClient.layer))
  }
]

const request: LLM.CompletionRequest = { messages: [Message.user("Hi")], maxTokens: 64 }

const collect = (llm: LLM.Service, req: LLM.CompletionRequest = request) =>
  Effect.map(Stream.runCollect(llm.stream(req)), Chunk.toReadonlyArray)

for (const target of targets) {
  describe(`${target.name}: nothing after the terminal event`, () => {
    it.scoped("events after the terminal event are dropped; the Finish is priced and recorded once", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.make()
        const llm = yield* target.make(server, "30 seconds")
        yield* server.enqueue(Reply.scripted({ text: ["Hel", "lo"] }, { afterTerminal: { events: true } }))
        const events = yield* collect(llm)
        expect(events.map((event) => event._tag)).toEqual(["TextDelta", "TextDelta", "Finish"])
        const finish = events[events.length - 1]!
        if (finish._tag !== "Finish") throw new Error("no Finish")
        expect(finish.usage.outputTokens).toBe(5)
        expect(finish.finishReason).toBe("stop")
        expect(finish.costUsd).toBeGreaterThan(0)
        const usage = yield* llm.usage
        expect(usage.calls).toBe(1)
        expect(usage.failures).toBe(0)
        expect(usage.outputTokens).toBe(5)
        expect(usage.costUsd).toBe(finish.costUsd)
      }))

    it.live("a server that keeps the connection open after the terminal event: the stream ends, no TimeoutError", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.make()
        const llm = yield* target.make(server, "300 millis")
        yield* server.enqueue(Reply.scripted({ text: "Hello" }, { afterTerminal: { keepOpen: true } }))
        const events = yield* collect(llm)
        expect(events.map((event) => event._tag)).toEqual(["TextDelta", "Finish"])
        const usage = yield* llm.usage
        expect(usage.calls).toBe(1)
        expect(usage.failures).toBe(0)
      }).pipe(Effect.scoped))
  })
}

describe("Anthropic complete with a long maxTokens (streamed internally)", () => {
  it.live("drops events after message_stop and stops reading there", () =>
    Effect.gen(function*() {
      const server = yield* FakeProviderServer.make()
      const llm = yield* targets[0]!.make(server, "300 millis")
      yield* server.enqueue(
        Reply.scripted({ text: ["Hel", "lo"] }, { afterTerminal: { events: true, keepOpen: true } })
      )
      const reply = yield* llm.complete({ ...request, maxTokens: 30_000 })
      expect(reply.content).toBe("Hello")
      expect(reply.finishReason).toBe("stop")
      expect(reply.usage.outputTokens).toBe(5)
      expect(reply.costUsd).toBeGreaterThan(0)
      const usage = yield* llm.usage
      expect(usage.calls).toBe(1)
      expect(usage.failures).toBe(0)
    }).pipe(Effect.scoped))
})
