/**
 * Each SDK provider layer provides its own tag (the client and the resolved options) and `LLM.LLM`,
 * built once and shared (DESIGN.md, "Publishing the pipeline").
 */
import AnthropicClient from "@anthropic-ai/sdk"
import { expect, layer } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as LLM from "../../src/LLM.js"
import * as Message from "../../src/Message.js"
import * as Anthropic from "../../src/providers/Anthropic.js"
import * as OpenAI from "../../src/providers/OpenAI.js"
import * as FakeProviderServer from "../../src/testing/FakeProviderServer.js"

const { Reply } = FakeProviderServer

layer(FakeProviderServer.layer())("provider tags", (it) => {
  it.scoped("Anthropic.layer provides Anthropic.Anthropic (client, options) and LLM.LLM, one provider", () =>
    Effect.gen(function*() {
      const server = yield* FakeProviderServer.FakeProviderServer
      yield* server.reset
      const provided = Anthropic.layer({
        apiKey: Redacted.make("sk-ant-test"),
        baseUrl: server.anthropicBaseUrl,
        providerId: "claude_main",
        defaultModel: "claude-haiku-4-5"
      })
      yield* Effect.gen(function*() {
        const anthropic = yield* Anthropic.Anthropic
        const llm = yield* LLM.LLM
        expect(anthropic.options.providerId).toBe("claude_main")
        expect(anthropic.options.defaultModel).toBe("claude-haiku-4-5")
        expect(anthropic.options.maxTokens).toBe(4096)
        expect(Duration.toMinutes(anthropic.options.timeout)).toBe(10)
        expect(llm.providerId).toBe("claude_main")
        // One provider: the tag holds the LLM service itself, as LiteLLM.LiteLLM does
        expect(anthropic).toBe(llm)
        expect(anthropic.client).toBeInstanceOf(AnthropicClient)
        // The client is the configured SDK client: it reaches the same server with the same key
        yield* server.enqueue(Reply.scripted({ text: "from the client" }), Reply.scripted({ text: "from LLM" }))
        const message = yield* Effect.promise(() =>
          anthropic.client.messages.create({
            model: "claude-haiku-4-5",
            max_tokens: 16,
            messages: [{ role: "user", content: "Hi" }]
          })
        )
        expect(message.content).toEqual([{ type: "text", text: "from the client" }])
        expect((yield* LLM.complete({ messages: [Message.user("Hi")] })).content).toBe("from LLM")
        const requests = yield* server.requests
        expect(requests.map((r) => r.headers.authorization)).toEqual(["Bearer sk-ant-test", "Bearer sk-ant-test"])
      }).pipe(Effect.provide(provided))
    }))

  it.scoped("OpenAI.layerConfig provides OpenAI.OpenAI (client, options) and LLM.LLM", () =>
    Effect.gen(function*() {
      const server = yield* FakeProviderServer.FakeProviderServer
      yield* server.reset
      const provided = OpenAI.layerConfig().pipe(
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["OPENAI_API_KEY", "sk-from-config"]]))))
      )
      yield* Effect.gen(function*() {
        const openai = yield* OpenAI.OpenAI
        const llm = yield* LLM.LLM
        expect(openai.options.providerId).toBe("openai")
        expect(openai.options.defaultModel).toBe("gpt-4o")
        expect(Redacted.value(openai.options.apiKey)).toBe("sk-from-config")
        expect(llm.providerId).toBe("openai")
        expect(openai).toBe(llm)
        expect(openai.client.baseURL).toBe("https://api.openai.com/v1")
      }).pipe(Effect.provide(provided))
      // And through the fake server, with options given directly
      const direct = OpenAI.layer({
        apiKey: Redacted.make("sk-test"),
        baseUrl: server.openaiBaseUrl,
        organization: "org-1"
      })
      yield* Effect.gen(function*() {
        const openai = yield* OpenAI.OpenAI
        expect(openai.options.organization).toBe("org-1")
        yield* server.enqueue(Reply.scripted({ text: "from the client" }))
        const completion = yield* Effect.promise(() =>
          openai.client.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "Hi" }] })
        )
        expect(completion.choices[0]!.message.content).toBe("from the client")
        expect((yield* LLM.LLM).providerId).toBe("openai")
      }).pipe(Effect.provide(direct))
    }))
})
