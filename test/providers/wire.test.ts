/**
 * Wire facts the parsers must not trust or must not miss (issue 12, defects 7, 10, 11, 12, 13, 16),
 * through the real providers and their SDKs against `FakeProviderServer`.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { expect, layer } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import type * as LLM from "../../src/LLM.js"
import type * as LLMError from "../../src/LLMError.js"
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

/** Both ways of calling: `complete`, and `stream` folded by `Response.collect`. */
const both = (llm: LLM.Service, request = ask()) => ({
  complete: llm.complete(request),
  stream: Response.collect(llm.stream(request))
})

void Stream
void litellm
void SseItem
void both
void failure

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
