/**
 * Counting and forecasts before the call (`Tokens.count`, `Tokens.forecast`, `LLM.Service.countTokens`)
 * and the context-fit guard, through the real SDKs against the fake server.
 *
 * The recorded replies (`fixtures/recorded/`) carry the prompt tokens the real APIs reported, but
 * not the requests: the prompts below are the Vercel AI SDK examples that recorded them, read back
 * from the replies (an OpenAI reply to the holiday prompt, a strawberry-counting reply, ...). The
 * tolerances per method (docs/tokens.md): `"provider"` exact; `"tokenizer"` exact for text
 * messages (the OpenAI fixture: 16 of 16); `"estimate"` never below what the provider reported.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { describe, expect, it, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Url from "node:url"
import type * as LLM from "../src/LLM.js"
import * as Message from "../src/Message.js"
import * as Pricing from "../src/Pricing.js"
import * as Anthropic from "../src/providers/Anthropic.js"
import * as LiteLLM from "../src/providers/LiteLLM.js"
import * as OpenAI from "../src/providers/OpenAI.js"
import * as FakeProviderServer from "../src/testing/FakeProviderServer.js"
import * as MockLLM from "../src/testing/MockLLM.js"
import * as Tokens from "../src/Tokens.js"

const recorded = Path.join(import.meta.dirname, "fixtures", "recorded")

/** The prompt tokens a recorded reply says the API billed. */
const reportedPromptTokens = (file: string): number => {
  const body = JSON.parse(Fs.readFileSync(Path.join(recorded, file), "utf8")) as {
    readonly usage: { readonly prompt_tokens?: number; readonly input_tokens?: number }
  }
  return body.usage.prompt_tokens ?? body.usage.input_tokens ?? Number.NaN
}

const holiday = "Invent a new holiday and describe its traditions."
const strawberry = "How many \"r\"s are in the word \"strawberry\"?"

const weather: LLM.CompletionRequest["tools"] = [{
  name: "weather",
  description: "Get the weather in a location",
  parameters: {
    type: "object",
    properties: { location: { type: "string", description: "The location to get the weather for" } },
    required: ["location"]
  }
}]

const openai = (server: FakeProviderServer.Service, options: Partial<OpenAI.Options> = {}) =>
  OpenAI.make({ apiKey: Redacted.make("sk-test"), baseUrl: server.openaiBaseUrl, ...options })

const anthropic = (server: FakeProviderServer.Service, options: Partial<Anthropic.Options> = {}) =>
  Anthropic.make({
    apiKey: Redacted.make("sk-ant-test"),
    baseUrl: server.anthropicBaseUrl,
    defaultModel: "claude-haiku-4-5",
    ...options
  })

const litellm = (server: FakeProviderServer.Service) =>
  LiteLLM.make({ baseUrl: server.openaiBaseUrl, defaultModel: "deepseek-chat", apiKey: Redacted.make("sk-litellm") })
    .pipe(Effect.provide(FetchHttpClient.layer))

describe("Tokens (MockLLM)", () => {
  it.effect("count and forecast reach the LLM in context, sending nothing", () =>
    Effect.gen(function*() {
      const request = { messages: [Message.user("Hello there")], maxTokens: 100 }
      const counted = yield* Tokens.count(request)
      expect(counted.method).toBe("estimate")
      expect(counted.inputTokens).toBeGreaterThan(0)
      const forecast = yield* Tokens.forecast(request)
      expect(forecast).toEqual({
        model: "mock-model",
        inputTokens: counted.inputTokens,
        maxOutputTokens: 100,
        maxUsd: undefined,
        method: "estimate"
      })
      const priced = yield* Tokens.forecast({ ...request, model: "gpt-4o" })
      expect(priced.method).toBe("tokenizer")
      expect(priced.maxUsd).toBeGreaterThan(0)
      expect(yield* MockLLM.requests).toHaveLength(0)
    }).pipe(Effect.provide(MockLLM.layer([]))))

  it.effect("a count option answers { method: \"provider\" }; the local count stays local", () =>
    Effect.gen(function*() {
      const request = { messages: [Message.user("Hello there")] }
      expect(yield* Tokens.count(request, { method: "provider" })).toEqual({ inputTokens: 42, method: "provider" })
      expect((yield* Tokens.count(request)).method).toBe("estimate")
      expect((yield* Tokens.forecast(request, { method: "provider" })).inputTokens).toBe(42)
    }).pipe(Effect.provide(MockLLM.layer([], { countTokens: 42 }))))

  it.effect("OpenAI tool definitions as the cookbook counts them (its get_current_weather example)", () =>
    Effect.gen(function*() {
      const request: LLM.CompletionRequest = {
        system: "You are a helpful assistant that can answer to questions about the weather.",
        messages: [Message.user("What's the weather like in San Francisco?")],
        tools: [{
          name: "get_current_weather",
          description: "Get the current weather in a given location",
          parameters: {
            type: "object",
            properties: {
              location: { type: "string", description: "The city and state, e.g. San Francisco, CA" },
              unit: {
                type: "string",
                description: "The unit of temperature to return",
                enum: ["celsius", "fahrenheit"]
              }
            },
            required: ["location"]
          }
        }]
      }
      expect(yield* Tokens.count({ ...request, model: "gpt-4o" })).toEqual({ inputTokens: 101, method: "tokenizer" })
      expect(yield* Tokens.count({ ...request, model: "gpt-4o-mini" })).toEqual({
        inputTokens: 101,
        method: "tokenizer"
      })
      expect(yield* Tokens.count({ ...request, model: "gpt-4" })).toEqual({ inputTokens: 105, method: "tokenizer" })
      expect(yield* Tokens.count({ ...request, model: "openai/gpt-3.5-turbo" }))
        .toEqual({ inputTokens: 105, method: "tokenizer" })
    }).pipe(Effect.provide(MockLLM.layer([]))))

  it("importing the package loads no tokenizer module; the first count of an OpenAI model does", () => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "tokens-lazy-"))
    const log = Path.join(dir, "loaded.txt")
    const hook = Path.join(dir, "hook.mjs")
    Fs.writeFileSync(log, "")
    Fs.writeFileSync(
      hook,
      `import * as Fs from "node:fs"
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context)
  if (/gpt-tokenizer|js-tiktoken/.test(resolved.url)) Fs.appendFileSync(${JSON.stringify(log)}, resolved.url + "\\n")
  return resolved
}`
    )
    const register = `import { register } from "node:module"; register(${JSON.stringify(Url.pathToFileURL(hook).href)})`
    const run = (code: string) => {
      Fs.writeFileSync(log, "")
      ChildProcess.execFileSync(process.execPath, [
        "--import",
        "tsx",
        "--import",
        `data:text/javascript,${encodeURIComponent(register)}`,
        "--input-type=module",
        "-e",
        code
      ], { cwd: Path.join(import.meta.dirname, ".."), encoding: "utf8" })
      return Fs.readFileSync(log, "utf8").split("\n").filter((line) => line !== "")
    }
    try {
      expect(run(`await import("./src/index.ts"); await import("./src/testing/index.ts")`)).toEqual([])
      const counted = run(`
        const { Effect } = await import("effect")
        const { Message } = await import("./src/index.ts")
        const { MockLLM } = await import("./src/testing/index.ts")
        await Effect.runPromise(Effect.flatMap(MockLLM.make([]), (llm) =>
          llm.countTokens({ model: "gpt-4o", messages: [Message.user("Hi")] })))`)
      expect(counted.some((url) => url.includes("gpt-tokenizer"))).toBe(true)
    } finally {
      Fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)

  it.effect("a request that cannot be sent as JSON is refused, as a call is", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Tokens.count({
        messages: [Message.user("Hi")],
        tools: [{ name: "t", parameters: { type: "object", big: BigInt(1) } as any }]
      }))
      expect(error._tag).toBe("InvalidRequestError")
    }).pipe(Effect.provide(MockLLM.layer([]))))
})

layer(FakeProviderServer.layer())("Tokens through the providers", (it) => {
  const setup = Effect.gen(function*() {
    const server = yield* FakeProviderServer.FakeProviderServer
    yield* server.reset
    return server
  })

  // ---------------------------------------------------------------------------
  // Counting
  // ---------------------------------------------------------------------------

  it.scoped("OpenAI: the tokenizer matches the prompt tokens the API reported (openai-text: 16), locally", () =>
    Effect.gen(function*() {
      const server = yield* setup
      const llm = yield* openai(server)
      const counted = yield* llm.countTokens({ model: "gpt-4.1-nano", messages: [Message.user(holiday)] })
      expect(counted).toEqual({
        inputTokens: reportedPromptTokens("openai-chat/openai-text.json"),
        method: "tokenizer"
      })
      // "provider" falls back to the local count: OpenAI has no count endpoint.
      expect(
        yield* llm.countTokens({ model: "gpt-4.1-nano", messages: [Message.user(holiday)] }, { method: "provider" })
      )
        .toEqual(counted)
      expect(yield* server.requests).toHaveLength(0)
    }))

  it.scoped("OpenAI: framing per message, system prompt, tool results and tool definitions are counted", () =>
    Effect.gen(function*() {
      const server = yield* setup
      const llm = yield* openai(server)
      const base = yield* llm.countTokens({ model: "gpt-4o", messages: [Message.user(holiday)] })
      const withSystem = yield* llm.countTokens({
        model: "gpt-4o",
        system: "Be brief.",
        messages: [Message.user(holiday)]
      })
      // "Be brief." is 3 tokens, plus 3 of framing and 1 for the role
      expect(withSystem.inputTokens - base.inputTokens).toBe(7)
      const withTools = yield* llm.countTokens({ model: "gpt-4o", messages: [Message.user(holiday)], tools: weather })
      expect(withTools.method).toBe("tokenizer")
      expect(withTools.inputTokens - base.inputTokens).toBeGreaterThan(20)
      const cl100k = yield* llm.countTokens({ model: "gpt-4", messages: [Message.user(holiday)], tools: weather })
      expect(cl100k.method).toBe("tokenizer")
      const image = yield* llm.countTokens({
        model: "gpt-4o",
        messages: [Message.user([Message.text("What is it?"), Message.imageUrl("https://example.com/cat.png")])]
      })
      // An image's tokens depend on its size: the count is an estimate.
      expect(image.method).toBe("estimate")
      expect(yield* server.requests).toHaveLength(0)
    }))

  it.scoped("estimate: never below the prompt tokens the APIs reported (Anthropic, DeepSeek, Groq, xAI)", () =>
    Effect.gen(function*() {
      const server = yield* setup
      const llm = yield* litellm(server)
      const cases: ReadonlyArray<readonly [string, string, LLM.CompletionRequest]> = [
        ["anthropic/anthropic-text.json", "claude-sonnet-4-5", { messages: [Message.user("Hello, how are you?")] }],
        ["openai-compatible/deepseek-text.json", "deepseek-chat", { messages: [Message.user(holiday)] }],
        ["openai-compatible/groq-text.json", "llama-3.3-70b-versatile", { messages: [Message.user(holiday)] }],
        ["openai-compatible/deepseek-reasoning.json", "deepseek-reasoner", { messages: [Message.user(strawberry)] }],
        ["openai-compatible/groq-reasoning.json", "qwen/qwen3-32b", { messages: [Message.user(strawberry)] }],
        [
          "openai-compatible/xai-tool-call.json",
          "grok-3-mini",
          { messages: [Message.user("What is the weather in San Francisco?")], tools: weather }
        ],
        [
          "openai-compatible/deepseek-tool-call.json",
          "deepseek-reasoner",
          { messages: [Message.user("What is the weather in San Francisco?")], tools: weather }
        ]
      ]
      for (const [file, model, request] of cases) {
        const counted = yield* llm.countTokens({ ...request, model })
        expect(counted.method).toBe("estimate")
        expect(counted.inputTokens, file).toBeGreaterThanOrEqual(reportedPromptTokens(file))
      }
      expect(yield* server.requests).toHaveLength(0)
    }))

  it.scoped("Anthropic: count_tokens through the SDK, in the documented format, exact; local by default", () =>
    Effect.gen(function*() {
      const server = yield* setup
      const llm = yield* anthropic(server)
      const request: LLM.CompletionRequest = {
        system: "You are terse.",
        messages: [Message.user([Message.text("What is here?"), Message.imageBase64("image/png", "iVBORw0KGgo=")])],
        tools: weather,
        thinking: { budgetTokens: 2048 },
        maxTokens: 8192,
        temperature: 1
      }
      const local = yield* llm.countTokens(request)
      expect(local.method).toBe("estimate")
      expect(yield* server.requests).toHaveLength(0)

      const exact = yield* llm.countTokens(request, { method: "provider" })
      const [sent] = yield* server.requests
      expect(sent!.method).toBe("POST")
      expect(sent!.path).toBe("/v1/messages/count_tokens")
      const body = sent!.body as Record<string, unknown>
      expect(Object.keys(body).sort()).toEqual(["messages", "model", "system", "thinking", "tools"])
      expect(body.thinking).toEqual({ type: "enabled", budget_tokens: 2048 })
      expect((body.tools as Array<{ name: string }>)[0]!.name).toBe("weather")
      expect(JSON.stringify(body.messages)).toContain("\"type\":\"image\"")
      expect(exact).toEqual({ inputTokens: FakeProviderServer.countTokensOf(body), method: "provider" })

      // The count of a recorded reply, scripted: what the provider says, exactly.
      yield* server.setTokenCount(reportedPromptTokens("anthropic/anthropic-json-tool.1.json"))
      expect(yield* llm.countTokens(request, { method: "provider" })).toEqual({ inputTokens: 1151, method: "provider" })
      expect((yield* llm.usage).calls).toBe(0)
    }))

  it.scoped("Anthropic: a failed count is the provider's error; a model that is not Claude is refused unsent", () =>
    Effect.gen(function*() {
      const server = yield* setup
      const llm = yield* anthropic(server)
      yield* server.setTokenCount(() => FakeProviderServer.Reply.anthropicError(529, "overloaded_error", "Overloaded"))
      const error = yield* Effect.flip(llm.countTokens({ messages: [Message.user("Hi")] }, { method: "provider" }))
      expect(error._tag).toBe("ProviderUnavailableError")
      const refused = yield* Effect.flip(
        llm.countTokens({ model: "gpt-4o", messages: [Message.user("Hi")] }, { method: "provider" })
      )
      expect(refused._tag).toBe("InvalidRequestError")
      expect(yield* server.requests).toHaveLength(1)
    }))

  // ---------------------------------------------------------------------------
  // Forecasts
  // ---------------------------------------------------------------------------

  it.scoped("forecast: the request's maxTokens, else the provider default; priced from Pricing or unpriced", () =>
    Effect.gen(function*() {
      const server = yield* setup
      const llm = yield* anthropic(server, { maxTokens: 2000 })
      const request = { messages: [Message.user("Hello, how are you?")] }
      const forecast = yield* llm.forecast(request)
      const price = { input: 1, output: 5 } // claude-haiku-4-5 in the built-in table
      expect(Pricing.lookup("claude-haiku-4-5").pipe((p) => p._tag === "Some" ? p.value : undefined))
        .toMatchObject(price)
      expect(forecast).toEqual({
        model: "claude-haiku-4-5",
        inputTokens: forecast.inputTokens,
        maxOutputTokens: 2000,
        maxUsd: (forecast.inputTokens * price.input + 2000 * price.output) / 1e6,
        method: "estimate"
      })
      expect((yield* llm.forecast({ ...request, maxTokens: 10 })).maxOutputTokens).toBe(10)
      const exact = yield* llm.forecast(request, { method: "provider" })
      expect(exact.method).toBe("provider")

      const overridden = yield* anthropic(server, { pricing: { "claude-haiku-4-5": { input: 0, output: 1 } } })
      expect((yield* overridden.forecast({ ...request, maxTokens: 1_000_000 })).maxUsd).toBe(1)
      const unpriced = yield* litellm(server)
      expect((yield* unpriced.forecast({ ...request, model: "my-own-model" })).maxUsd).toBeUndefined()
    }))

  // ---------------------------------------------------------------------------
  // The context-fit guard
  // ---------------------------------------------------------------------------

  // About 135,000 o200k tokens ("word" is one token, " word" one more): over gpt-4o's 128,000.
  const overGpt4o = "word" + " word".repeat(135_000)

  it.scoped("a request over the context window fails with ContextLengthError before any request", () =>
    Effect.gen(function*() {
      const server = yield* setup
      const llm = yield* openai(server)
      const request = { model: "gpt-4o", messages: [Message.user(overGpt4o)], maxTokens: 1000 }
      const error = yield* Effect.flip(llm.complete(request))
      expect(error._tag).toBe("ContextLengthError")
      expect(error.message).toMatch(
        /the prompt \(13\d{4} tokens, by the tokenizer\) plus maxTokens 1000 is more than the context window of gpt-4o \(128000 tokens\), refused before any request/
      )
      const streamed = yield* Effect.flip(Stream.runDrain(llm.stream(request)))
      expect(streamed._tag).toBe("ContextLengthError")
      const forecast = yield* llm.forecast(request)
      expect(forecast.inputTokens + forecast.maxOutputTokens).toBeGreaterThan(128_000)
      expect(yield* server.requests).toHaveLength(0)
      expect((yield* llm.usage).calls).toBe(0)
    }))

  it.scoped("a prompt that fits with maxTokens too large: refused, or maxTokens clamped with clampMaxTokens", () =>
    Effect.gen(function*() {
      const server = yield* setup
      const text = "word" + " word".repeat(119_999) // 120,000 tokens
      const request = { model: "gpt-4o", messages: [Message.user(text)], maxTokens: 16_000 }
      const strict = yield* openai(server)
      const error = yield* Effect.flip(strict.complete(request))
      expect(error._tag).toBe("ContextLengthError")
      const counted = yield* strict.countTokens(request)
      expect(error.message).toContain(`lower maxTokens to ${128_000 - counted.inputTokens} or less`)
      expect(yield* server.requests).toHaveLength(0)

      const clamping = yield* openai(server, { clampMaxTokens: true })
      expect((yield* clamping.forecast(request)).maxOutputTokens).toBe(128_000 - counted.inputTokens)
      yield* clamping.complete(request)
      const [sent] = yield* server.requests
      expect((sent!.body as any).max_completion_tokens).toBe(128_000 - counted.inputTokens)
      // Far from the window: sent as asked.
      yield* clamping.complete({ model: "gpt-4o", messages: [Message.user("Hi")], maxTokens: 16_000 })
      expect(((yield* server.requests)[1]!.body as any).max_completion_tokens).toBe(16_000)
    }))

  // 720,000 bytes: the estimate (bytes / 3) is about 240,000 tokens, over claude-haiku-4-5's 200,000;
  // the fake server counts bytes / 4 (about 180,000).
  const nearHaiku = "abc ".repeat(180_000)

  it.scoped("Anthropic: an over-estimate near the window is confirmed by count_tokens, and the request passes", () =>
    Effect.gen(function*() {
      const server = yield* setup
      const llm = yield* anthropic(server)
      const request = { messages: [Message.user(nearHaiku)], maxTokens: 4096 }
      const local = yield* llm.countTokens(request)
      expect(local.inputTokens + 4096).toBeGreaterThan(200_000)
      const reply = yield* llm.complete(request)
      expect(reply.content).toBe("Hello from FakeProviderServer")
      expect((yield* server.requests).map((r) => r.path)).toEqual(["/v1/messages/count_tokens", "/v1/messages"])
    }))

  it.scoped("Anthropic: when count_tokens says it does not fit, refused with the exact numbers, or clamped", () =>
    Effect.gen(function*() {
      const server = yield* setup
      yield* server.setTokenCount(198_000)
      const request = { messages: [Message.user(nearHaiku)], maxTokens: 4096 }
      const llm = yield* anthropic(server)
      const error = yield* Effect.flip(llm.complete(request))
      expect(error._tag).toBe("ContextLengthError")
      expect(error.message).toContain(
        "the prompt (198000 tokens, counted by the provider) plus maxTokens 4096 is more than the context window of claude-haiku-4-5 (200000 tokens)"
      )
      expect((yield* server.requests).map((r) => r.path)).toEqual(["/v1/messages/count_tokens"])

      const clamping = yield* anthropic(server, { clampMaxTokens: true })
      yield* clamping.complete(request)
      const sent = (yield* server.requests).filter((r) => r.path === "/v1/messages")
      expect((sent[0]!.body as any).max_tokens).toBe(2000)
    }))

  it.scoped("a model whose window is unknown is never refused by the guard", () =>
    Effect.gen(function*() {
      const server = yield* setup
      const llm = yield* litellm(server)
      yield* llm.complete({ model: "my-own-model", messages: [Message.user("word ".repeat(20_000))], maxTokens: 4096 })
      expect(yield* server.requests).toHaveLength(1)
    }))
})
