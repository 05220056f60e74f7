/**
 * `npx tsx examples/otel.ts`: spans and metrics of LLM calls exported through OpenTelemetry.
 *
 * Needs no API key: it starts FakeProviderServer on 127.0.0.1 and talks to it through the real
 * Anthropic and OpenAI layers (the official SDKs, real HTTP, real SSE). `@effect/opentelemetry`'s
 * `NodeSdk` turns Effect's spans into OpenTelemetry spans (printed by `ConsoleSpanExporter` as they
 * end) and Effect's metrics into OpenTelemetry metrics (printed by `ConsoleMetricExporter` when the
 * program ends and the SDK shuts down). Swap the console exporters for OTLP ones
 * (`@opentelemetry/exporter-trace-otlp-http`, ...) to send them to a collector.
 *
 * The calls: a `complete`, a `stream`, a call rate-limited by the provider (a failed span, the
 * `llm.failures` metric with `error=RateLimitError`), a call on a model with no known price (one
 * warning, `llm.unpriced_calls`), and one call with prompt and completion recording turned on.
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { ConsoleMetricExporter, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics"
import { BatchSpanProcessor, ConsoleSpanExporter } from "@opentelemetry/sdk-trace-base"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Metric from "effect/Metric"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import { Anthropic, LLM, Message, OpenAI, Response } from "../src/index.js"
import * as Telemetry from "../src/Telemetry.js"
import * as FakeProviderServer from "../src/testing/FakeProviderServer.js"

const { Reply } = FakeProviderServer

/** Exports spans and metrics to the console; flushed when the layer closes. */
const OtelLive = NodeSdk.layer(() => ({
  resource: { serviceName: "orchestify-providers-example", serviceVersion: "0.1.0" },
  spanProcessor: new BatchSpanProcessor(new ConsoleSpanExporter()),
  // Exports every 10 s while the program runs, and once more at shutdown.
  metricReader: new PeriodicExportingMetricReader({
    exporter: new ConsoleMetricExporter(),
    exportIntervalMillis: 10_000
  })
}))

/** What the program does with the `LLM` in context. */
const calls = (fake: FakeProviderServer.Service) =>
  Effect.gen(function*() {
    const llm = yield* LLM.LLM
    const protocol = llm.providerType === "anthropic" ? "anthropic" : "openai"
    const unpriced = llm.providerType === "anthropic" ? "claude-experimental-9" : "gpt-experimental-9"
    yield* fake.enqueue(
      Reply.scripted({ text: "Effect makes failures values.", usage: { inputTokens: 1200, outputTokens: 9 } }),
      Reply.scripted({
        text: ["Spans ", "cover ", "the ", "whole ", "stream."],
        usage: { inputTokens: 900, outputTokens: 5, cacheReadTokens: 800 }
      }),
      protocol === "anthropic"
        ? Reply.anthropicError(429, "rate_limit_error", "Too many requests", { "retry-after": "2" })
        : Reply.openaiError(429, { message: "Too many requests", type: "rate_limit_error" }, { "retry-after": "2" }),
      Reply.scripted({ text: "An unpriced model answers.", usage: { inputTokens: 10, outputTokens: 5 } }),
      Reply.scripted({ text: "Paris.", usage: { inputTokens: 20, outputTokens: 2 } })
    )

    yield* LLM.complete({ messages: [Message.user("What does Effect do with failures?")], temperature: 0.2 })
    yield* Response.collect(LLM.stream({ messages: [Message.user("What do spans cover?")], maxTokens: 256 }))
    const failed = yield* Effect.flip(LLM.complete({ messages: [Message.user("Again!")] }))
    yield* Console.log(`[${llm.providerId}] expected failure: ${failed._tag}`)
    yield* LLM.complete({ model: unpriced, messages: [Message.user("Hi")] })
    // Prompts and completions are recorded only when asked for.
    yield* LLM.complete({ system: "Be terse.", messages: [Message.user("Capital of France?")] }).pipe(
      Telemetry.withRecordContent(true)
    )

    const usage = yield* llm.usage
    const counted = yield* Metric.value(
      Metric.taggedWithLabels(Telemetry.calls, Telemetry.labels(llm.providerId, llm.defaultModel))
    )
    yield* Console.log(
      `[${llm.providerId}] usage: ${usage.calls} calls (${usage.failures} failed, ${usage.unpricedCalls} unpriced), ` +
        `${usage.inputTokens} in / ${usage.outputTokens} out, $${usage.costUsd.toFixed(6)}; ` +
        `llm.calls{model=${llm.defaultModel}} = ${counted.count}`
    )
  })

const program = Effect.gen(function*() {
  const fake = yield* FakeProviderServer.make()
  yield* Console.log(`FakeProviderServer on ${fake.url}; no API key needed.\n`)
  const apiKey = Redacted.make("not-a-real-key")

  yield* calls(fake).pipe(
    Effect.provide(Anthropic.layer({ apiKey, baseUrl: fake.anthropicBaseUrl, providerId: "claude_main" })),
    Effect.withSpan("example.anthropic")
  )
  yield* calls(fake).pipe(
    Effect.provide(OpenAI.layer({ apiKey, baseUrl: fake.openaiBaseUrl, providerId: "openai_main" })),
    Effect.withSpan("example.openai")
  )
  // Streams can be consumed lazily: the span stays open until the stream ends.
  yield* fake.enqueue(Reply.scripted({ text: ["one ", "two ", "three"] }))
  yield* LLM.stream({ messages: [Message.user("Count")] }).pipe(
    Response.textDeltas,
    Stream.runForEach((text) => Console.log(`  delta: ${JSON.stringify(text)}`)),
    Effect.provide(Anthropic.layer({ apiKey, baseUrl: fake.anthropicBaseUrl, providerId: "claude_main" }))
  )
  yield* Console.log("\nShutting down: the SDK flushes the last spans and exports the metrics.\n")
}).pipe(
  Effect.scoped,
  // Per-call debug lines; the default minimum level (info) keeps only warnings.
  Logger.withMinimumLogLevel(LogLevel.Debug),
  Effect.provide(OtelLive)
)

Effect.runPromise(program).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
