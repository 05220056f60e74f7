import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { describe, expect, it, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as LLM from "../../src/LLM.js"
import * as Message from "../../src/Message.js"
import * as LiteLLM from "../../src/providers/LiteLLM.js"
import * as Response from "../../src/Response.js"
import * as FakeProviderServer from "../../src/testing/FakeProviderServer.js"
import { conformance } from "./conformance.js"

const { Reply, SseItem } = FakeProviderServer

// Built through layerConfig, which reads the routes' variables from `env` and hands them to `make`.
const makeLlm = (options: LiteLLM.Options, env: Record<string, string> = {}) =>
  Layer.build(LiteLLM.layerConfig(Config.succeed(options))).pipe(
    Effect.map(Context.get(LiteLLM.LiteLLM)),
    Effect.orDie,
    Effect.provide(FetchHttpClient.layer),
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
  )

// The same behaviour as the OpenAI provider, on the same scripted replies, through our own HTTP path.
conformance({
  name: "LiteLLM",
  protocol: "openai",
  model: "openai/gpt-4o",
  wireModel: "gpt-4o",
  maxTokensField: "max_completion_tokens",
  make: (server, options) =>
    makeLlm({
      defaultModel: "openai/gpt-4o",
      apiKey: options?.apiKey ?? Redacted.make("sk-test"),
      baseUrl: options?.baseUrl !== undefined ? `${options.baseUrl}/v1` : server.openaiBaseUrl,
      ...(options?.timeout !== undefined ? { timeout: options.timeout } : {})
    })
})

const ask = (model: string, text = "Hi") => ({ model, messages: [Message.user(text)] })

layer(FakeProviderServer.layer())("LiteLLM routing against FakeProviderServer", (it) => {
  const setup = (options: Partial<LiteLLM.Options> = {}, env: Record<string, string> = {}) =>
    Effect.gen(function*() {
      const server = yield* FakeProviderServer.FakeProviderServer
      yield* server.reset
      const llm = yield* makeLlm({ defaultModel: "groq/llama-3.3-70b-versatile", ...options }, env)
      return { server, llm }
    })

  it.scoped("each prefix sends the right path, auth header, dialect and model (prefix stripped)", () =>
    Effect.gen(function*() {
      const { llm, server } = yield* setup({ baseUrl: "unused" }, {})
      void llm
      const cases: ReadonlyArray<readonly [string, string, string, string]> = [
        ["groq/llama-3.3-70b-versatile", "GROQ_API_KEY", "llama-3.3-70b-versatile", "max_tokens"],
        [
          "together_ai/meta-llama/Llama-3-70b-chat-hf",
          "TOGETHERAI_API_KEY",
          "meta-llama/Llama-3-70b-chat-hf",
          "max_tokens"
        ],
        ["openrouter/anthropic/claude-3.5-sonnet", "OPENROUTER_API_KEY", "anthropic/claude-3.5-sonnet", "max_tokens"],
        ["deepseek/deepseek-chat", "DEEPSEEK_API_KEY", "deepseek-chat", "max_tokens"],
        ["mistral/mistral-large-latest", "MISTRAL_API_KEY", "mistral-large-latest", "max_tokens"],
        [
          "fireworks_ai/accounts/fireworks/models/llama-v3p1-8b",
          "FIREWORKS_AI_API_KEY",
          "accounts/fireworks/models/llama-v3p1-8b",
          "max_tokens"
        ],
        ["xai/grok-3", "XAI_API_KEY", "grok-3", "max_tokens"],
        ["ollama/llama3.1", "OLLAMA_API_KEY", "llama3.1", "max_tokens"],
        ["hosted_vllm/Qwen/Qwen2.5-7B", "HOSTED_VLLM_API_KEY", "Qwen/Qwen2.5-7B", "max_tokens"],
        ["vllm/Qwen/Qwen2.5-7B", "HOSTED_VLLM_API_KEY", "Qwen/Qwen2.5-7B", "max_tokens"],
        ["openai/gpt-4o-mini", "OPENAI_API_KEY", "gpt-4o-mini", "max_completion_tokens"],
        ["litellm_proxy/claude-sonnet-4-6", "LITELLM_PROXY_API_KEY", "claude-sonnet-4-6", "max_tokens"]
      ]
      for (const [model, keyVar, wireModel, maxField] of cases) {
        yield* server.reset
        const env = { [keyVar]: `key-for-${keyVar}` }
        const routed = yield* makeLlm({ defaultModel: model, baseUrl: server.openaiBaseUrl }, env)
        yield* server.enqueue(Reply.scripted({ text: "ok" }), Reply.scripted({ text: "ok" }))
        yield* routed.complete({ messages: [Message.user("Hi")], maxTokens: 12 })
        yield* Response.collect(routed.stream({ messages: [Message.user("Hi")] }))
        const requests = yield* server.requests
        for (const request of requests) {
          expect(request.method).toBe("POST")
          expect(request.path).toBe("/v1/chat/completions")
          expect(request.headers.authorization, model).toBe(`Bearer key-for-${keyVar}`)
          expect(request.headers["api-key"]).toBeUndefined()
          expect((request.body as any).model, model).toBe(wireModel)
        }
        expect((requests[0]!.body as any)[maxField], model).toBe(12)
        // Mistral rejects stream_options; it sends usage anyway.
        expect((requests[1]!.body as any).stream_options, model).toEqual(
          model.startsWith("mistral/") ? undefined : { include_usage: true }
        )
      }
    }))

  it.scoped("azure/ uses the deployment path, api-version and the api-key header, never Authorization: Bearer", () =>
    Effect.gen(function*() {
      const { server } = yield* setup()
      const llm = yield* makeLlm({ defaultModel: "azure/my-gpt4o", baseUrl: `${server.url}/` }, {
        AZURE_API_KEY: "azure-secret-key",
        AZURE_API_VERSION: "2025-01-01-preview"
      })
      yield* server.enqueue(Reply.scripted({ text: "from azure" }), Reply.scripted({ text: "streamed" }))
      const reply = yield* llm.complete({ messages: [Message.user("Hi")] })
      expect(reply.content).toBe("from azure")
      yield* Response.collect(llm.stream({ messages: [Message.user("Hi")] }))
      for (const request of yield* server.requests) {
        expect(request.path).toBe("/openai/deployments/my-gpt4o/chat/completions")
        expect(request.query["api-version"]).toBe("2025-01-01-preview")
        expect(request.headers["api-key"]).toBe("azure-secret-key")
        expect(request.headers.authorization).toBeUndefined()
      }
    }))

  it.scoped("the base URL comes from the route's variable when no base_url is given", () =>
    Effect.gen(function*() {
      const { server } = yield* setup()
      const llm = yield* makeLlm({ defaultModel: "azure/dep" }, { AZURE_API_BASE: server.url, AZURE_API_KEY: "k-1234" })
      yield* server.enqueue(Reply.scripted({ text: "ok" }))
      yield* llm.complete({ messages: [Message.user("Hi")] })
      const [request] = yield* server.requests
      expect(request!.path).toBe("/openai/deployments/dep/chat/completions")
      expect(request!.query["api-version"]).toBe("2024-10-21")
    }))

  it.scoped("litellm_proxy/: the proxy's cost is the cost, streamed (usage.cost) and not (x-litellm-response-cost)", () =>
    Effect.gen(function*() {
      const { server } = yield* setup()
      const llm = yield* makeLlm({ defaultModel: "litellm_proxy/claude-sonnet-4-6", baseUrl: server.openaiBaseUrl })
      // As the proxy answers: the header on the JSON reply, `usage.cost` in the stream's last chunk
      const reply = Reply.scripted({ text: "hi", usage: { inputTokens: 1000, outputTokens: 100 }, costUsd: 0.0421 })
      yield* server.enqueue(reply, reply)
      const completed = yield* llm.complete({ messages: [Message.user("Hi")] })
      const streamed = yield* Response.collect(llm.stream({ messages: [Message.user("Hi")] }))
      expect(completed.costUsd).toBe(0.0421)
      expect(streamed.costUsd).toBe(0.0421)
      const usage = yield* llm.usage
      expect(usage.costUsd).toBeCloseTo(0.0842, 12)
      expect(usage.unpricedCalls).toBe(0)
    }))

  it.scoped("the rate-limit headers of a successful reply are on the reply (complete and stream), as the SDK providers do", () =>
    Effect.gen(function*() {
      const { server } = yield* setup()
      const llm = yield* makeLlm({
        defaultModel: "openai/gpt-4o",
        apiKey: Redacted.make("sk-test"),
        baseUrl: server.openaiBaseUrl
      })
      const headers = {
        "x-ratelimit-limit-requests": "500",
        "x-ratelimit-remaining-requests": "7",
        "x-ratelimit-reset-requests": "120ms"
      }
      yield* server.enqueue(Reply.scripted({ text: "a", headers }), Reply.scripted({ text: "b", headers }))
      expect((yield* llm.complete({ messages: [Message.user("Hi")] })).rateLimits).toEqual(headers)
      expect((yield* Response.collect(llm.stream({ messages: [Message.user("Hi")] }))).rateLimits).toEqual(headers)
      // None sent: none on the reply
      yield* server.enqueue(Reply.scripted({ text: "c" }))
      expect((yield* llm.complete({ messages: [Message.user("Hi")] })).rateLimits).toBeUndefined()
    }))

  it.scoped("a bare model with base_url reaches any OpenAI-compatible server", () =>
    Effect.gen(function*() {
      const { server } = yield* setup()
      const llm = yield* makeLlm({
        defaultModel: "meta-llama/Llama-3.1-8B-Instruct",
        baseUrl: server.openaiBaseUrl,
        apiKey: Redacted.make("local-key")
      })
      yield* server.enqueue(Reply.scripted({ text: "local" }))
      const reply = yield* llm.complete({ messages: [Message.user("Hi")] })
      expect(reply.content).toBe("local")
      const [request] = yield* server.requests
      expect((request!.body as any).model).toBe("meta-llama/Llama-3.1-8B-Instruct")
      expect(request!.headers.authorization).toBe("Bearer local-key")
      // Unpriced: counted, not costed at zero.
      expect(reply.costUsd).toBeUndefined()
      expect((yield* llm.usage).unpricedCalls).toBe(1)
    }))

  it.scoped("an unknown prefix, a missing base URL or a missing Azure key fail before any request, naming what is missing", () =>
    Effect.gen(function*() {
      const { server, llm } = yield* setup()
      const unknown = yield* Effect.flip(llm.complete(ask("bedrockx/some-model")))
      expect(unknown._tag).toBe("InvalidRequestError")
      expect(unknown.message).toContain("unknown provider prefix in model \"bedrockx/some-model\"")
      expect(unknown.message).toContain("azure/, deepseek/, fireworks_ai/, groq/")
      expect(unknown.message).toContain("vllm/")
      const bare = yield* Effect.flip(llm.complete(ask("gpt-4o")))
      expect(bare.message).toContain("model \"gpt-4o\" has no provider prefix")
      const noBase = yield* Effect.flip(Stream.runDrain(llm.stream(ask("hosted_vllm/qwen"))))
      expect(noBase.message).toContain("needs a base URL")
      expect(noBase.message).toContain("HOSTED_VLLM_API_BASE")
      const noKey = yield* Effect.flip(llm.complete(ask("azure/dep")))
      expect(noKey.message).toContain("needs a base URL")
      const azure = yield* makeLlm({ defaultModel: "azure/dep", baseUrl: server.url })
      const azureNoKey = yield* Effect.flip(azure.complete(ask("azure/dep")))
      expect(azureNoKey._tag).toBe("AuthenticationError")
      expect(azureNoKey.message).toContain("AZURE_API_KEY")
      expect(yield* server.requests).toHaveLength(0)
      expect((yield* llm.usage).calls).toBe(0)
    }))

  it.scoped("flat {error, code} bodies and 402 billing map like OpenAI's", () =>
    Effect.gen(function*() {
      const { server } = yield* setup()
      const llm = yield* makeLlm({ defaultModel: "deepseek/deepseek-chat", baseUrl: server.openaiBaseUrl })
      yield* server.enqueue(
        Reply.json({ error: "Insufficient Balance", code: "billing_error" }, { status: 402 }),
        Reply.json({ error: "rate limited", code: 429 }, { status: 429, headers: { "retry-after-ms": "250" } }),
        Reply.json({ detail: "Model not found" }, { status: 404 })
      )
      const billing = yield* Effect.flip(llm.complete(ask("deepseek/deepseek-chat")))
      expect(billing._tag).toBe("QuotaExceededError")
      expect(billing.message).toContain("Insufficient Balance")
      const limited = yield* Effect.flip(llm.complete(ask("deepseek/deepseek-chat")))
      expect(limited._tag).toBe("RateLimitError")
      const missing = yield* Effect.flip(llm.complete(ask("deepseek/deepseek-chat")))
      expect(missing._tag).toBe("InvalidRequestError")
      expect(missing.message).toContain("Model not found")
    }))

  it.scoped("a 1 MB stream written in a single network write decodes every event", () =>
    Effect.gen(function*() {
      const { server } = yield* setup()
      const llm = yield* makeLlm({ defaultModel: "groq/llama", baseUrl: server.openaiBaseUrl })
      const pieces: Array<string> = []
      let body = ""
      for (let i = 0; body.length < 1_000_000; i++) {
        const text = `token-${i} `
        pieces.push(text)
        body += `data: ${
          JSON.stringify({
            id: "c",
            object: "chat.completion.chunk",
            created: 1,
            model: "llama",
            choices: [{ index: 0, delta: { content: text }, finish_reason: null }]
          })
        }\n\n`
      }
      body += `data: ${
        JSON.stringify({
          id: "c",
          object: "chat.completion.chunk",
          created: 1,
          model: "llama",
          choices: [{ index: 0, delta: {}, finish_reason: "stop" }],
          usage: { prompt_tokens: 5, completion_tokens: pieces.length }
        })
      }\n\ndata: [DONE]\n\n`
      yield* server.enqueue(Reply.sse([SseItem.raw(body)]))
      const events = yield* Stream.runCollect(llm.stream(ask("groq/llama")))
      const text = Chunk.toReadonlyArray(events).flatMap((e) => e._tag === "TextDelta" ? [e.text] : [])
      expect(text).toHaveLength(pieces.length)
      expect(text.join("")).toBe(pieces.join(""))
      const finish = Chunk.unsafeLast(events) as Response.Finish
      expect(finish.usage.outputTokens).toBe(pieces.length)
    }))
})

describe("LiteLLM default base URLs", () => {
  // A recording HttpClient: checks the URL each route builds without any network.
  const recording = (seen: Array<{ url: string; headers: Record<string, string> }>) =>
    Layer.succeed(
      HttpClient.HttpClient,
      HttpClient.make((request, url) =>
        Effect.sync(() => {
          seen.push({ url: url.toString(), headers: { ...request.headers } })
          return HttpClientResponse.fromWeb(
            request,
            new globalThis.Response(
              JSON.stringify({
                id: "x",
                object: "chat.completion",
                created: 1,
                model: "m",
                choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }],
                usage: { prompt_tokens: 1, completion_tokens: 1 }
              }),
              { status: 200, headers: { "content-type": "application/json" } }
            )
          )
        })
      )
    )

  it.effect("each prefix knows its endpoint", () =>
    Effect.gen(function*() {
      const expected: Record<string, string> = {
        "groq/m": "https://api.groq.com/openai/v1/chat/completions",
        "together_ai/m": "https://api.together.xyz/v1/chat/completions",
        "openrouter/m": "https://openrouter.ai/api/v1/chat/completions",
        "deepseek/m": "https://api.deepseek.com/v1/chat/completions",
        "mistral/m": "https://api.mistral.ai/v1/chat/completions",
        "fireworks_ai/m": "https://api.fireworks.ai/inference/v1/chat/completions",
        "xai/m": "https://api.x.ai/v1/chat/completions",
        "ollama/m": "http://localhost:11434/v1/chat/completions",
        "openai/m": "https://api.openai.com/v1/chat/completions"
      }
      for (const [model, url] of Object.entries(expected)) {
        const seen: Array<{ url: string; headers: Record<string, string> }> = []
        yield* Effect.scoped(
          Effect.gen(function*() {
            const llm = yield* LiteLLM.make({ defaultModel: model })
            yield* llm.complete({ messages: [Message.user("Hi")] })
          }).pipe(Effect.provide(recording(seen)))
        )
        expect(seen[0]?.url, model).toBe(url)
        // No key configured: no Authorization header at all.
        expect(seen[0]?.headers.authorization, model).toBeUndefined()
      }
    }))
})

layer(FakeProviderServer.layer())("LiteLLM keys stay with their route", (it) => {
  // Every hosted route is pointed at the fake server, so each request's Authorization can be read back.
  const local = (server: FakeProviderServer.Service) =>
    Object.fromEntries(
      (["groq", "openrouter", "xai", "openai", "together_ai"] as const).map((prefix) => [
        prefix,
        { ...LiteLLM.routes[prefix]!, baseUrl: server.openaiBaseUrl }
      ])
    )

  it.scoped("an explicit apiKey goes only to the default model's route; other routes use their own key or are refused", () =>
    Effect.gen(function*() {
      const server = yield* FakeProviderServer.FakeProviderServer
      yield* server.reset
      const groqKey = "gsk-GROQ-ONLY-SECRET-1234"
      const llm = yield* makeLlm(
        { defaultModel: "groq/llama-3.3-70b-versatile", apiKey: Redacted.make(groqKey), routes: local(server) },
        { OPENROUTER_API_KEY: "or-own-key" }
      )
      yield* server.enqueue(...Array.from({ length: 4 }, () => Reply.scripted({ text: "ok" })))
      // The default model's route, and a request naming another model of the same route: the explicit key.
      yield* llm.complete({ messages: [Message.user("Hi")] })
      yield* Response.collect(llm.stream(ask("groq/llama-3.1-8b-instant")))
      // Another route with its own key: that key, never the Groq one.
      yield* llm.complete(ask("openrouter/anthropic/claude-3.5-sonnet"))
      yield* Response.collect(llm.stream(ask("openrouter/anthropic/claude-3.5-sonnet")))
      const sent = (yield* server.requests).map((
        request
      ) => [(request.body as any).model, request.headers.authorization])
      expect(sent).toEqual([
        ["llama-3.3-70b-versatile", `Bearer ${groqKey}`],
        ["llama-3.1-8b-instant", `Bearer ${groqKey}`],
        ["anthropic/claude-3.5-sonnet", "Bearer or-own-key"],
        ["anthropic/claude-3.5-sonnet", "Bearer or-own-key"]
      ])
      // Routes with no key of their own: refused before any request, naming the route and the variable.
      yield* server.reset
      for (
        const [model, prefix, variable] of [
          ["xai/grok-3", "xai/", "XAI_API_KEY"],
          ["openai/gpt-4o", "openai/", "OPENAI_API_KEY"],
          ["together_ai/meta-llama/Llama-3-70b-chat-hf", "together_ai/", "TOGETHERAI_API_KEY"]
        ] as const
      ) {
        const completed = yield* Effect.flip(llm.complete(ask(model)))
        const streamed = yield* Effect.flip(Stream.runDrain(llm.stream(ask(model))))
        for (const error of [completed, streamed]) {
          expect(error._tag, model).toBe("InvalidRequestError")
          expect(error.message, model).toContain(prefix)
          expect(error.message, model).toContain(variable)
          expect(error.message, model).not.toContain(groqKey)
        }
      }
      expect(yield* server.requests).toHaveLength(0)
      expect((yield* llm.usage).calls).toBe(4)
    }))

  it.scoped("a key-optional route (ollama) with no key of its own is reached without Authorization, never with the explicit key", () =>
    Effect.gen(function*() {
      const server = yield* FakeProviderServer.FakeProviderServer
      yield* server.reset
      const llm = yield* makeLlm(
        { defaultModel: "groq/llama", apiKey: Redacted.make("gsk-GROQ-ONLY-SECRET-5678"), routes: local(server) },
        { OLLAMA_API_BASE: server.openaiBaseUrl }
      )
      yield* server.enqueue(Reply.scripted({ text: "ok" }))
      yield* llm.complete(ask("ollama/llama3.1"))
      const [request] = yield* server.requests
      expect(request!.headers.authorization).toBeUndefined()
    }))

  it.scoped("base_url belongs to the default model's route too: another prefix goes to its own backend", () =>
    Effect.gen(function*() {
      const server = yield* FakeProviderServer.FakeProviderServer
      yield* server.reset
      const llm = yield* makeLlm(
        {
          defaultModel: "litellm_proxy/claude-sonnet-4-6",
          baseUrl: `${server.url}/proxy/v1`,
          apiKey: Redacted.make("sk-PROXY-MASTER-KEY-91"),
          routes: local(server)
        },
        { OPENROUTER_API_KEY: "or-own-key" }
      )
      yield* server.enqueue(
        Reply.scripted({ text: "ok" }),
        Reply.scripted({ text: "ok" }),
        Reply.scripted({ text: "ok" })
      )
      yield* llm.complete({ messages: [Message.user("Hi")] })
      // A bare model (unknown prefix) goes to base_url, with its key.
      yield* llm.complete(ask("my-local-model"))
      yield* llm.complete(ask("openrouter/x"))
      const sent = (yield* server.requests).map((request) => [request.path, request.headers.authorization])
      expect(sent).toEqual([
        ["/proxy/v1/chat/completions", "Bearer sk-PROXY-MASTER-KEY-91"],
        ["/proxy/v1/chat/completions", "Bearer sk-PROXY-MASTER-KEY-91"],
        ["/v1/chat/completions", "Bearer or-own-key"]
      ])
    }))
})

layer(FakeProviderServer.layer())("LiteLLM make, layer and layerConfig", (it) => {
  const env = (vars: Record<string, string>) => ConfigProvider.fromMap(new Map(Object.entries(vars)))
  const groqHere = (server: FakeProviderServer.Service) => ({
    groq: { ...LiteLLM.routes.groq!, baseUrl: server.openaiBaseUrl }
  })

  it.scoped("make is pure: it reads no environment, only the keys and bases it is given", () =>
    Effect.gen(function*() {
      const server = yield* FakeProviderServer.FakeProviderServer
      yield* server.reset
      const vars = { GROQ_API_KEY: "env-groq-key", AZURE_API_KEY: "env-azure-key", AZURE_API_BASE: server.url }
      const groq = yield* LiteLLM.make({ defaultModel: "groq/llama", routes: groqHere(server) }).pipe(
        Effect.provide(FetchHttpClient.layer),
        Effect.withConfigProvider(env(vars))
      )
      const azure = yield* LiteLLM.make({
        defaultModel: "azure/dep",
        keys: { azure: Redacted.make("given-azure-key") },
        bases: { azure: server.url }
      }).pipe(Effect.provide(FetchHttpClient.layer), Effect.withConfigProvider(env(vars)))
      yield* server.enqueue(Reply.scripted({ text: "ok" }), Reply.scripted({ text: "ok" }))
      yield* groq.complete({ messages: [Message.user("Hi")] })
      yield* azure.complete({ messages: [Message.user("Hi")] })
      const [toGroq, toAzure] = yield* server.requests
      expect(toGroq!.headers.authorization).toBeUndefined()
      expect(toAzure!.path).toBe("/openai/deployments/dep/chat/completions")
      expect(toAzure!.query["api-version"]).toBe("2024-10-21")
      expect(toAzure!.headers["api-key"]).toBe("given-azure-key")
    }))

  it.scoped("layerConfig reads route keys, bases and api-version; it and layer provide LiteLLM.LiteLLM and LLM.LLM, one service", () =>
    Effect.gen(function*() {
      const server = yield* FakeProviderServer.FakeProviderServer
      yield* server.reset
      const context = yield* Layer.build(
        LiteLLM.layerConfig({
          defaultModel: Config.succeed("groq/llama"),
          routes: Config.succeed(groqHere(server))
        })
      ).pipe(
        Effect.provide(FetchHttpClient.layer),
        Effect.withConfigProvider(env({
          GROQ_API_KEY: "env-groq-key",
          AZURE_API_BASE: server.url,
          AZURE_API_VERSION: "2025-01-01-preview"
        }))
      )
      const litellm = Context.get(context, LiteLLM.LiteLLM)
      const llm = Context.get(context, LLM.LLM)
      expect(litellm.options.defaultModel).toBe("groq/llama")
      expect(litellm.options.apiVersion).toBe("2025-01-01-preview")
      expect(litellm.options.bases.azure).toBe(server.url)
      const groqKey = litellm.options.keys.groq
      expect(Redacted.isRedacted(groqKey)).toBe(true)
      expect(Redacted.value(groqKey!)).toBe("env-groq-key")
      expect(litellm.client).toBeDefined()
      yield* server.enqueue(Reply.scripted({ text: "ok" }))
      yield* llm.complete({ messages: [Message.user("Hi")] })
      const [request] = yield* server.requests
      expect(request!.headers.authorization).toBe("Bearer env-groq-key")
      // One service behind both tags: the call counts in the LiteLLM tag's usage.
      expect((yield* litellm.usage).calls).toBe(1)
      expect(llm.providerId).toBe(litellm.providerId)

      const plain = yield* Layer.build(LiteLLM.layer({ defaultModel: "ollama/llama3.1", providerId: "local" })).pipe(
        Effect.provide(FetchHttpClient.layer)
      )
      expect(Context.get(plain, LiteLLM.LiteLLM).options.providerId).toBe("local")
      expect(Context.get(plain, LLM.LLM).providerId).toBe("local")
      expect(Context.get(plain, LiteLLM.LiteLLM).options.keys).toEqual({})
    }))
})
