import { expect, layer } from "@effect/vitest"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as LLM from "../../src/LLM.js"
import * as Message from "../../src/Message.js"
import * as Anthropic from "../../src/providers/Anthropic.js"
import * as Response from "../../src/Response.js"
import * as FakeProviderServer from "../../src/testing/FakeProviderServer.js"
import { conformance } from "./conformance.js"

const { Reply, SseItem } = FakeProviderServer

const makeLlm = (server: FakeProviderServer.Service, options: Partial<Anthropic.Options> = {}) =>
  Anthropic.make({
    apiKey: Redacted.make("sk-ant-test"),
    baseUrl: server.anthropicBaseUrl,
    defaultModel: "claude-sonnet-4-6",
    ...options
  })

conformance({
  name: "Anthropic",
  protocol: "anthropic",
  model: "claude-sonnet-4-6",
  maxTokensField: "max_tokens",
  make: (server, options) =>
    makeLlm(server, {
      ...(options?.apiKey !== undefined ? { apiKey: options.apiKey } : {}),
      ...(options?.timeout !== undefined ? { timeout: options.timeout } : {}),
      ...(options?.baseUrl !== undefined ? { baseUrl: options.baseUrl } : {})
    })
})

layer(FakeProviderServer.layer())("Anthropic specifics", (it) => {
  const setup = (options: Partial<Anthropic.Options> = {}) =>
    Effect.gen(function*() {
      const server = yield* FakeProviderServer.FakeProviderServer
      yield* server.reset
      return { server, llm: yield* makeLlm(server, options) }
    })

  it.scoped("a model that is not Claude is refused before any request, and counted nowhere", () =>
    Effect.gen(function*() {
      const { llm, server } = yield* setup()
      const error = yield* Effect.flip(llm.complete({ model: "gpt-4o", messages: [Message.user("Hi")] }))
      expect(error._tag).toBe("InvalidRequestError")
      expect(error.message).toContain("\"gpt-4o\" is not a Claude model")
      const streamed = yield* Effect.flip(
        Stream.runDrain(llm.stream({ model: "gpt-4o", messages: [Message.user("Hi")] }))
      )
      expect(streamed._tag).toBe("InvalidRequestError")
      expect(yield* server.requests).toHaveLength(0)
      expect((yield* llm.usage).calls).toBe(0)
    }))

  it.scoped("thinking and its signature go back unchanged in the next request; budget sent", () =>
    Effect.gen(function*() {
      const { llm, server } = yield* setup()
      yield* server.enqueue(
        Reply.scripted({
          thinking: {
            text: ["Consider ", "the user."],
            signature: "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"
          },
          toolCalls: [{ id: "toolu_1", name: "lookup", arguments: "{}" }]
        }),
        Reply.scripted({ text: "Done." })
      )
      const first = yield* Response.collect(llm.stream({
        messages: [Message.user("Go")],
        thinking: { budgetTokens: 2048 },
        maxTokens: 4096
      }))
      const firstBody = (yield* server.requests)[0]!.body as any
      expect(firstBody.thinking).toEqual({ type: "enabled", budget_tokens: 2048 })
      const events = first.parts
      expect(events[0]).toEqual({
        _tag: "Thinking",
        thinking: "Consider the user.",
        signature: "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"
      })
      yield* llm.complete({
        messages: [
          Message.user("Go"),
          Message.assistant(first.parts),
          Message.toolResults([Message.toolResult("toolu_1", "42")])
        ],
        thinking: { budgetTokens: 2048 }
      })
      const body = (yield* server.requests)[1]!.body as any
      expect(body.messages[1].content).toEqual([
        {
          type: "thinking",
          thinking: "Consider the user.",
          signature: "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"
        },
        { type: "tool_use", id: "toolu_1", name: "lookup", input: {} }
      ])
    }))

  it.scoped("redacted_thinking reaches the consumer and goes back unchanged", () =>
    Effect.gen(function*() {
      const { llm, server } = yield* setup()
      const message = (type: string, extra: object) => SseItem.event({ type, ...extra }, type)
      yield* server.enqueue(
        Reply.sse([
          message("message_start", {
            message: {
              id: "msg_1",
              type: "message",
              role: "assistant",
              model: "claude-sonnet-4-6",
              content: [],
              stop_reason: null,
              stop_sequence: null,
              usage: { input_tokens: 5, output_tokens: 1 }
            }
          }),
          message("content_block_start", {
            index: 0,
            content_block: { type: "redacted_thinking", data: "ENCRYPTED==" }
          }),
          message("content_block_stop", { index: 0 }),
          message("content_block_start", { index: 1, content_block: { type: "text", text: "" } }),
          message("content_block_delta", { index: 1, delta: { type: "text_delta", text: "Hi" } }),
          message("content_block_stop", { index: 1 }),
          message("message_delta", {
            delta: { stop_reason: "end_turn", stop_sequence: null },
            usage: { output_tokens: 7 }
          }),
          message("message_stop", {})
        ])
      )
      const reply = yield* Response.collect(llm.stream({ messages: [Message.user("Go")] }))
      expect(reply.parts).toEqual([{ _tag: "RedactedThinking", data: "ENCRYPTED==" }, { _tag: "Text", text: "Hi" }])
      expect(reply.usage.outputTokens).toBe(7)
      yield* server.enqueue(Reply.scripted({ text: "ok" }))
      yield* llm.complete({ messages: [Message.user("Go"), Message.assistant(reply.parts), Message.user("More")] })
      const body = (yield* server.requests)[1]!.body as any
      expect(body.messages[1].content[0]).toEqual({ type: "redacted_thinking", data: "ENCRYPTED==" })
    }))

  it.scoped("a large max_tokens completes through a stream (the SDK refuses such non-streaming calls)", () =>
    Effect.gen(function*() {
      const { llm, server } = yield* setup()
      yield* server.enqueue(Reply.scripted({ text: ["long ", "answer"], usage: { inputTokens: 20, outputTokens: 2 } }))
      const reply = yield* llm.complete({ messages: [Message.user("Write a book")], maxTokens: 64_000 })
      expect(reply.content).toBe("long answer")
      expect(reply.usage.inputTokens).toBe(20)
      const body = (yield* server.requests)[0]!.body as any
      expect(body.stream).toBe(true)
      expect(body.max_tokens).toBe(64_000)
      expect((yield* llm.usage).calls).toBe(1)
    }))

  it.scoped("tool choice and effort map to the Messages API", () =>
    Effect.gen(function*() {
      const { llm, server } = yield* setup()
      yield* server.enqueue(Reply.scripted({ text: "a" }), Reply.scripted({ text: "b" }), Reply.scripted({ text: "c" }))
      // The API refuses a forced tool choice with thinking: they go in separate requests
      yield* llm.complete({ messages: [Message.user("x")], toolChoice: "required" })
      yield* llm.complete({
        messages: [Message.user("x")],
        toolChoice: { name: "get_weather" },
        metadata: { userId: "u-1" }
      })
      yield* llm.complete({ messages: [Message.user("x")], toolChoice: "auto", thinking: { effort: "low" } })
      const [a, b, c] = (yield* server.requests).map((r) => r.body as any)
      expect(a.tool_choice).toEqual({ type: "any" })
      expect(c.tool_choice).toEqual({ type: "auto" })
      expect(c.thinking).toEqual({ type: "enabled", budget_tokens: 2048 })
      expect(b.tool_choice).toEqual({ type: "tool", name: "get_weather" })
      expect(b.metadata).toEqual({ user_id: "u-1" })
    }))
})

layer(FakeProviderServer.layer())("Anthropic layers", (it) => {
  const callThrough = (server: FakeProviderServer.Service, provided: Layer.Layer<LLM.LLM, unknown>) =>
    Effect.gen(function*() {
      yield* server.enqueue(Reply.scripted({ text: "from the layer", usage: { inputTokens: 4, outputTokens: 2 } }))
      const llm = yield* LLM.LLM
      const reply = yield* LLM.complete({ messages: [Message.user("Hi")] })
      return { llm, reply, usage: yield* LLM.usage, request: (yield* server.requests)[0]! }
    }).pipe(Effect.provide(provided))

  it.scoped("layer provides a working LLM with the options given", () =>
    Effect.gen(function*() {
      const server = yield* FakeProviderServer.FakeProviderServer
      yield* server.reset
      const { llm, reply, request, usage } = yield* callThrough(
        server,
        Anthropic.layer({
          apiKey: Redacted.make("sk-ant-layer"),
          baseUrl: server.anthropicBaseUrl,
          defaultModel: "claude-haiku-4-5",
          providerId: "claude_layer"
        })
      )
      expect([llm.providerType, llm.providerId, llm.defaultModel]).toEqual([
        "anthropic",
        "claude_layer",
        "claude-haiku-4-5"
      ])
      expect(reply.content).toBe("from the layer")
      expect(reply.model).toBe("claude-haiku-4-5")
      expect(reply.providerId).toBe("claude_layer")
      expect(request.headers.authorization).toBe("Bearer sk-ant-layer")
      expect((request.body as any).model).toBe("claude-haiku-4-5")
      expect(usage).toMatchObject({ calls: 1, inputTokens: 4, outputTokens: 2 })
    }))

  it.scoped("layerConfig reads its options through the ConfigProvider and provides a working LLM", () =>
    Effect.gen(function*() {
      const server = yield* FakeProviderServer.FakeProviderServer
      yield* server.reset
      const env = new Map([
        ["ANTHROPIC_API_KEY", "sk-ant-from-config"],
        ["ANTHROPIC_BASE_URL", server.anthropicBaseUrl],
        ["ANTHROPIC_MODEL", "claude-opus-4-5"],
        ["ANTHROPIC_MAX_TOKENS", "321"]
      ])
      const { llm, reply, request } = yield* callThrough(
        server,
        Anthropic.layerConfig({
          apiKey: Config.redacted("ANTHROPIC_API_KEY"),
          baseUrl: Config.string("ANTHROPIC_BASE_URL"),
          defaultModel: Config.string("ANTHROPIC_MODEL"),
          maxTokens: Config.integer("ANTHROPIC_MAX_TOKENS")
        }).pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(env))))
      )
      expect([llm.providerType, llm.providerId, llm.defaultModel]).toEqual([
        "anthropic",
        "anthropic",
        "claude-opus-4-5"
      ])
      expect(reply.content).toBe("from the layer")
      expect(request.headers.authorization).toBe("Bearer sk-ant-from-config")
      expect(request.body).toMatchObject({ model: "claude-opus-4-5", max_tokens: 321 })
    }))

  it.scoped("layerConfig fails with a ConfigError when the key is missing, before any request", () =>
    Effect.gen(function*() {
      const server = yield* FakeProviderServer.FakeProviderServer
      yield* server.reset
      const error = yield* Effect.flip(
        Effect.provide(
          LLM.LLM,
          Anthropic.layerConfig().pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map()))))
        )
      )
      expect(ConfigError.isConfigError(error)).toBe(true)
      expect(String(error)).toContain("ANTHROPIC_API_KEY")
      expect(yield* server.requests).toHaveLength(0)
    }))
})
