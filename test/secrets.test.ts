/**
 * No secret reaches a span, a log line, an error or the inspection of a provider's options: the API
 * key and the values of every configured extra header (`x-litellm-api-key`,
 * `Ocp-Apim-Subscription-Key`), through each of the three providers (Anthropic, OpenAI, LiteLLM) and
 * through the registry, which keeps the config's header values `Redacted`.
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { describe, expect, layer } from "@effect/vitest"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import * as ConfigProvider from "effect/ConfigProvider"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import { inspect } from "node:util"
import type * as LLM from "../src/LLM.js"
import * as Message from "../src/Message.js"
import * as ProviderRegistry from "../src/ProviderRegistry.js"
import * as Anthropic from "../src/providers/Anthropic.js"
import * as LiteLLM from "../src/providers/LiteLLM.js"
import * as OpenAI from "../src/providers/OpenAI.js"
import * as ProvidersConfig from "../src/ProvidersConfig.js"
import * as Response from "../src/Response.js"
import * as Telemetry from "../src/Telemetry.js"
import * as FakeProviderServer from "../src/testing/FakeProviderServer.js"

const { Reply } = FakeProviderServer

const API_KEY = "sk-live-APIKEY-SECRET-4b1d9e"
const PROXY_KEY = "sk-litellm-HEADER-SECRET-77c2aa"
const APIM_KEY = "apim-HEADER-SECRET-0f9e31d2"
const secrets = [API_KEY, PROXY_KEY, APIM_KEY]

/** Every way a value can be shown: `inspect`, `String()`, JSON. */
const shown = (u: unknown): string => {
  let json: string
  try {
    json = JSON.stringify(u) ?? ""
  } catch {
    json = ""
  }
  return [inspect(u, { depth: null, showHidden: false }), String(u), json].join("\n")
}

const expectNoSecret = (what: string, text: string) => {
  for (const secret of secrets) expect(text, `${what} shows a secret`).not.toContain(secret)
}

// -----------------------------------------------------------------------------
// Spans and logs, all of them
// -----------------------------------------------------------------------------

interface RecordedSpan {
  readonly name: string
  readonly attributes: Map<string, unknown>
  readonly events: Array<{ readonly name: string; readonly attributes: unknown }>
  exit: Exit.Exit<unknown, unknown> | undefined
}

const recordingTracer = () => {
  const spans: Array<RecordedSpan> = []
  let id = 0
  const tracer = Tracer.make({
    span: (name, parent, context: Context.Context<never>, links, startTime, kind) => {
      const n = ++id
      const recorded: RecordedSpan = { name, attributes: new Map(), events: [], exit: undefined }
      spans.push(recorded)
      const span: Tracer.Span = {
        _tag: "Span",
        name,
        spanId: `span${n}`,
        traceId: Option.isSome(parent) ? parent.value.traceId : `trace${n}`,
        parent,
        context,
        status: { _tag: "Started", startTime },
        attributes: recorded.attributes,
        links: [...links],
        sampled: true,
        kind,
        end: (_endTime, exit) => {
          recorded.exit = exit
        },
        attribute: (key, value) => {
          recorded.attributes.set(key, value)
        },
        event: (eventName, _time, attributes) => {
          recorded.events.push({ name: eventName, attributes })
        },
        addLinks: () => {}
      }
      return span
    },
    context: (f) => f()
  })
  return { tracer, spans }
}

/** Runs `program` with content recorded, every log level on, spans recorded and exported through OpenTelemetry. */
const observe = <A, E, R>(program: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const { spans, tracer } = recordingTracer()
    const logs: Array<string> = []
    const logger = Logger.make(({ annotations, cause, message }) =>
      logs.push(shown({ message, annotations: Object.fromEntries(annotations), cause }))
    )
    const result = yield* program.pipe(
      Telemetry.withRecordContent(true),
      Logger.withMinimumLogLevel(LogLevel.All),
      Effect.provide(Logger.add(logger)),
      Effect.withTracer(tracer)
    )
    // The same program once more through @effect/opentelemetry's exporter.
    const exporter = new InMemorySpanExporter()
    const exported = yield* Effect.zipRight(program, Effect.sync(() => exporter.getFinishedSpans())).pipe(
      Telemetry.withRecordContent(true),
      Effect.provide(
        NodeSdk.layer(() => ({
          resource: { serviceName: "secrets-test" },
          spanProcessor: new SimpleSpanProcessor(exporter)
        }))
      )
    )
    return { result, spans, logs, exported }
  })

const expectCleanTelemetry = (observed: {
  readonly spans: ReadonlyArray<RecordedSpan>
  readonly logs: ReadonlyArray<string>
  readonly exported: ReadonlyArray<{ readonly name: string; readonly attributes: unknown; readonly events: unknown }>
}) => {
  expect(observed.spans.filter((span) => span.name.startsWith("LLM."))).toHaveLength(4)
  expect(observed.logs.length).toBeGreaterThanOrEqual(4)
  for (const span of observed.spans) {
    expectNoSecret(`span ${span.name}`, span.name)
    expectNoSecret(`span ${span.name} attributes`, shown([...span.attributes]))
    expectNoSecret(`span ${span.name} events`, shown(span.events))
    // Our spans' exits too. (`@effect/platform`'s own `http.client` span ends with the
    // `HttpClientResponse`, whose `request.toJSON()` lists the raw request headers: only a tracer
    // that serialises exit values could see it; no exporter does.)
    if (span.name.startsWith("LLM.")) expectNoSecret(`span ${span.name} exit`, shown(span.exit))
  }
  expect(observed.exported.filter((span) => span.name.startsWith("LLM."))).toHaveLength(4)
  for (const span of observed.exported) {
    expectNoSecret(
      `exported span ${span.name}`,
      shown({ name: span.name, attributes: span.attributes, events: span.events })
    )
  }
  for (const line of observed.logs) expectNoSecret("log line", line)
}

// -----------------------------------------------------------------------------
// The providers
// -----------------------------------------------------------------------------

const extraHeaders = {
  "x-litellm-api-key": Redacted.make(PROXY_KEY),
  "Ocp-Apim-Subscription-Key": Redacted.make(APIM_KEY)
}

const echo = `Invalid credentials: key ${API_KEY}, x-litellm-api-key ${PROXY_KEY}, subscription ${APIM_KEY}`

interface Target {
  readonly name: string
  readonly protocol: FakeProviderServer.Protocol
  readonly model: string
  readonly make: (
    server: FakeProviderServer.Service
  ) => Effect.Effect<{ readonly llm: LLM.Service; readonly options: ReadonlyArray<unknown> }, never, Scope.Scope>
}

const targets: ReadonlyArray<Target> = [
  {
    name: "Anthropic",
    protocol: "anthropic",
    model: "claude-sonnet-4-6",
    make: (server) => {
      const options = {
        apiKey: Redacted.make(API_KEY),
        baseUrl: server.anthropicBaseUrl,
        defaultModel: "claude-sonnet-4-6",
        headers: extraHeaders
      }
      return Effect.map(Anthropic.make(options), (llm) => ({ llm, options: [options] }))
    }
  },
  {
    name: "OpenAI",
    protocol: "openai",
    model: "gpt-4o",
    make: (server) => {
      const options = { apiKey: Redacted.make(API_KEY), baseUrl: server.openaiBaseUrl, headers: extraHeaders }
      return Effect.map(OpenAI.make(options), (llm) => ({ llm, options: [options] }))
    }
  },
  {
    name: "LiteLLM",
    protocol: "openai",
    model: "litellm_proxy/gpt-4o",
    make: (server) => {
      const options = {
        apiKey: Redacted.make(API_KEY),
        baseUrl: server.openaiBaseUrl,
        defaultModel: "litellm_proxy/gpt-4o",
        headers: extraHeaders
      }
      return LiteLLM.make(options).pipe(
        Effect.map((llm) => ({ llm, options: [options, llm.options, llm] })),
        Effect.provide(FetchHttpClient.layer)
      )
    }
  },
  {
    name: "LiteLLM (azure/, api-key header)",
    protocol: "openai",
    model: "azure/gpt-4o",
    make: (server) => {
      const options = {
        apiKey: Redacted.make(API_KEY),
        baseUrl: server.url,
        defaultModel: "azure/gpt-4o",
        headers: extraHeaders
      }
      return LiteLLM.make(options).pipe(
        Effect.map((llm) => ({ llm, options: [options, llm.options, llm] })),
        Effect.provide(FetchHttpClient.layer)
      )
    }
  }
]

const ask = (model: string): LLM.CompletionRequest => ({ model, messages: [Message.user("Hi")] })

const unauthorized = (protocol: FakeProviderServer.Protocol) =>
  protocol === "anthropic"
    ? Reply.anthropicError(401, "authentication_error", echo)
    : Reply.openaiError(401, { message: echo, type: "invalid_request_error", code: "invalid_api_key" })

/** Two calls that succeed and two that fail with a body echoing every secret; returns the failures. */
const calls = (llm: LLM.Service, model: string) =>
  Effect.gen(function*() {
    yield* llm.complete(ask(model))
    yield* Response.collect(llm.stream(ask(model)))
    const failed = yield* Effect.exit(llm.complete(ask(model)))
    const failedStream = yield* Effect.exit(Stream.runDrain(llm.stream(ask(model))))
    return [failed, failedStream]
  })

layer(FakeProviderServer.layer())("secrets", (it) => {
  describe("no API key or extra header value in any span, log, error or options", () => {
    for (const target of targets) {
      it.scoped(target.name, () =>
        Effect.gen(function*() {
          const server = yield* FakeProviderServer.FakeProviderServer
          yield* server.reset
          const { llm, options } = yield* target.make(server)
          const replies = [
            Reply.scripted({ text: "ok" }),
            Reply.scripted({ text: ["o", "k"] }),
            unauthorized(target.protocol),
            unauthorized(target.protocol)
          ]
          yield* server.enqueue(...replies, ...replies)
          const observed = yield* observe(calls(llm, target.model))

          // The secrets were really sent, each in its own header.
          const [first] = yield* server.requests
          expect(first!.headers["x-litellm-api-key"]).toBe(PROXY_KEY)
          expect(first!.headers["ocp-apim-subscription-key"]).toBe(APIM_KEY)
          expect(shown(first!.headers)).toContain(API_KEY)

          expectCleanTelemetry(observed)
          for (const failure of observed.result) {
            expect(failure._tag).toBe("Failure")
            expectNoSecret("a failed call's exit", shown(failure))
          }
          for (const option of options) expectNoSecret("the provider's options", shown(option))
        }))
    }
  })

  it.scoped("LiteLLM: the HttpClient span names every configured header, with its value redacted", () =>
    Effect.gen(function*() {
      const server = yield* FakeProviderServer.FakeProviderServer
      yield* server.reset
      // One value Redacted, one plain: every configured name is redacted either way.
      const llm = yield* LiteLLM.make({
        apiKey: Redacted.make(API_KEY),
        baseUrl: server.openaiBaseUrl,
        defaultModel: "litellm_proxy/gpt-4o",
        headers: { "X-LiteLLM-Api-Key": Redacted.make(PROXY_KEY), "Ocp-Apim-Subscription-Key": APIM_KEY }
      }).pipe(Effect.provide(FetchHttpClient.layer))
      yield* server.enqueue(Reply.scripted({ text: "ok" }))
      const { spans, tracer } = recordingTracer()
      yield* llm.complete(ask("litellm_proxy/gpt-4o")).pipe(Effect.withTracer(tracer))
      const [request] = yield* server.requests
      expect(request!.headers["x-litellm-api-key"]).toBe(PROXY_KEY)
      expect(request!.headers["ocp-apim-subscription-key"]).toBe(APIM_KEY)
      const http = spans.find((span) => span.attributes.has("http.request.header.x-litellm-api-key"))
      expect(http, "the HttpClient's span").toBeDefined()
      for (const name of ["x-litellm-api-key", "ocp-apim-subscription-key", "authorization"]) {
        expect(String(http!.attributes.get(`http.request.header.${name}`)), name).toBe("<redacted>")
      }
      // A header no one configured as a secret is still shown.
      expect(http!.attributes.get("http.request.header.content-type")).toBe("application/json")
    }))

  it.scoped("through the registry: config headers stay Redacted into every provider", () =>
    Effect.gen(function*() {
      const server = yield* FakeProviderServer.FakeProviderServer
      yield* server.reset
      const env = ConfigProvider.fromMap(
        new Map([
          ["FAKE_URL", server.url],
          ["API_KEY", API_KEY],
          ["PROXY_KEY", PROXY_KEY],
          ["APIM_KEY", APIM_KEY]
        ])
      )
      const headers = [
        "    headers:",
        "      x-litellm-api-key: ${PROXY_KEY}",
        "      Ocp-Apim-Subscription-Key: ${APIM_KEY}"
      ]
      const yaml = [
        "providers:",
        "  claude:",
        "    type: anthropic",
        "    api_key: ${API_KEY}",
        "    default_model: claude-sonnet-4-6",
        "    base_url: ${FAKE_URL}",
        ...headers,
        "  gpt:",
        "    type: openai",
        "    api_key: ${API_KEY}",
        "    default_model: gpt-4o",
        "    base_url: ${FAKE_URL}/v1",
        ...headers,
        "  proxy:",
        "    type: litellm",
        "    api_key: ${API_KEY}",
        "    default_model: litellm_proxy/gpt-4o",
        "    base_url: ${FAKE_URL}/v1",
        ...headers,
        ""
      ].join("\n")
      const config = yield* ProvidersConfig.parse(yaml, "secrets.yaml").pipe(Effect.withConfigProvider(env))
      const program = Effect.gen(function*() {
        const failures = []
        for (const [id, protocol] of [["claude", "anthropic"], ["gpt", "openai"], ["proxy", "openai"]] as const) {
          yield* server.reset
          const replies = [
            Reply.scripted({ text: "ok" }),
            Reply.scripted({ text: ["o", "k"] }),
            unauthorized(protocol),
            unauthorized(protocol)
          ]
          yield* server.enqueue(...replies, ...replies)
          const llm = yield* ProviderRegistry.get(id)
          const observed = yield* observe(calls(llm, llm.defaultModel))
          const [first] = yield* server.requests
          expect(first!.headers["x-litellm-api-key"], id).toBe(PROXY_KEY)
          expect(first!.headers["ocp-apim-subscription-key"], id).toBe(APIM_KEY)
          expectCleanTelemetry(observed)
          failures.push(...observed.result)
          expectNoSecret(`the registry's ${id}`, shown(llm))
        }
        return failures
      })
      const failures = yield* program.pipe(
        Effect.provide(ProviderRegistry.layerFromConfig(config)),
        Effect.withConfigProvider(env)
      )
      expect(failures).toHaveLength(6)
      for (const failure of failures) expectNoSecret("a failed call's exit", shown(failure))
    }))
})

layer(FakeProviderServer.layer())("an agent naming another prefix", (it) => {
  it.scoped("gets that route's own key, or is refused before any request; never the provider's api_key", () =>
    Effect.gen(function*() {
      const server = yield* FakeProviderServer.FakeProviderServer
      yield* server.reset
      const groqKey = "gsk-REGISTRY-GROQ-SECRET-31"
      const env = ConfigProvider.fromMap(
        new Map([
          ["FAKE_URL", server.url],
          ["GROQ_KEY", groqKey],
          ["OPENAI_API_KEY", "sk-openai-own-key"],
          ["OPENAI_API_BASE", server.openaiBaseUrl],
          ["OLLAMA_API_BASE", server.openaiBaseUrl]
        ])
      )
      const yaml = [
        "providers:",
        "  fast:",
        "    type: litellm",
        "    api_key: ${GROQ_KEY}",
        "    default_model: groq/llama-3.3-70b-versatile",
        "    base_url: ${FAKE_URL}/groq/v1",
        "agents:",
        "  writer: { provider: fast }",
        "  gpt: { provider: fast, model: openai/gpt-4o }",
        "  local: { provider: fast, model: ollama/llama3.1 }",
        "  router: { provider: fast, model: openrouter/anthropic/claude-3.5-sonnet }",
        ""
      ].join("\n")
      const config = yield* ProvidersConfig.parse(yaml, "agents.yaml").pipe(Effect.withConfigProvider(env))
      const refused = yield* Effect.gen(function*() {
        yield* server.enqueue(
          Reply.scripted({ text: "ok" }),
          Reply.scripted({ text: "ok" }),
          Reply.scripted({ text: "ok" })
        )
        for (const agent of ["writer", "gpt", "local"]) {
          const llm = yield* ProviderRegistry.getForAgent(agent)
          yield* llm.complete({ messages: [Message.user("Hi")] })
        }
        const router = yield* ProviderRegistry.getForAgent("router")
        return yield* Effect.flip(router.complete({ messages: [Message.user("Hi")] }))
      }).pipe(Effect.provide(ProviderRegistry.layerFromConfig(config)), Effect.withConfigProvider(env))
      const sent = (yield* server.requests).map((request) => [request.path, request.headers.authorization])
      expect(sent).toEqual([
        ["/groq/v1/chat/completions", `Bearer ${groqKey}`],
        ["/v1/chat/completions", "Bearer sk-openai-own-key"],
        ["/v1/chat/completions", undefined]
      ])
      expect(refused._tag).toBe("InvalidRequestError")
      expect(refused.message).toContain("openrouter/")
      expect(refused.message).toContain("OPENROUTER_API_KEY")
      expect(shown(refused)).not.toContain(groqKey)
    }))
})
