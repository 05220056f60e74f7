/**
 * Bad local input (a BigInt, a cycle) in what is sent as JSON is the caller's mistake: every
 * provider refuses it with `InvalidRequestError` before any request, and counts no call.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { describe, expect, it } from "@effect/vitest"
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

const targets: ReadonlyArray<{
  readonly name: string
  readonly make: (server: FakeProviderServer.Service) => Effect.Effect<LLM.Service, never, Scope.Scope>
}> = [
  {
    name: "Anthropic",
    make: (server) => Anthropic.make({ apiKey: Redacted.make("sk-ant-test"), baseUrl: server.anthropicBaseUrl })
  },
  {
    name: "OpenAI",
    make: (server) => OpenAI.make({ apiKey: Redacted.make("sk-test"), baseUrl: server.openaiBaseUrl })
  },
  {
    name: "LiteLLM",
    make: (server) =>
      LiteLLM.make({ defaultModel: "openai/gpt-4o", apiKey: Redacted.make("sk-test"), baseUrl: server.openaiBaseUrl })
        .pipe(Effect.provide(FetchHttpClient.layer))
  }
]

const cycle: Record<string, unknown> = { a: 1 }
cycle.self = cycle

const bad: ReadonlyArray<{ readonly what: string; readonly request: LLM.CompletionRequest; readonly names: string }> = [
  {
    what: "a BigInt in tool parameters",
    names: "parameters of tool \"lookup\"",
    request: {
      messages: [Message.user("Hi")],
      tools: [{
        name: "lookup",
        parameters: { type: "object", properties: { n: { type: "integer", maximum: BigInt(10) as any } } }
      }]
    }
  },
  {
    what: "a cycle in a tool call's input",
    names: "input of tool call \"call_1\"",
    request: {
      messages: [
        Message.user("Hi"),
        { role: "assistant", content: [{ _tag: "ToolCall", id: "call_1", name: "lookup", input: cycle }] },
        { role: "user", content: [{ _tag: "ToolResult", toolCallId: "call_1", content: "42", isError: false }] }
      ]
    }
  },
  {
    what: "a BigInt in metadata",
    names: "metadata",
    request: { messages: [Message.user("Hi")], metadata: { userId: BigInt(7) as any } }
  }
]

for (const target of targets) {
  describe(`${target.name}: input that cannot be sent as JSON`, () => {
    for (const { names, request, what } of bad) {
      it.scoped(`${what}: InvalidRequestError, no request sent, no call counted (complete and stream)`, () =>
        Effect.gen(function*() {
          const server = yield* FakeProviderServer.make()
          const llm = yield* target.make(server)
          const completed = yield* Effect.flip(llm.complete(request))
          expect(completed._tag).toBe("InvalidRequestError")
          expect(completed.message).toContain(names)
          const streamed = yield* Effect.flip(Stream.runDrain(llm.stream(request)))
          expect(streamed._tag).toBe("InvalidRequestError")
          expect(yield* server.requests).toHaveLength(0)
          const usage = yield* llm.usage
          expect(usage.calls).toBe(0)
          expect(usage.failures).toBe(0)
        }))
    }
  })
}
