/**
 * Telemetry of the shared call path, seen through the real Anthropic and OpenAI providers against
 * FakeProviderServer: one span per call with its GenAI attributes, metrics that agree with the usage
 * `Ref`s, logs, opt-in content, and no API key anywhere.
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { describe, expect, it, layer } from "@effect/vitest"
import * as OtelApi from "@opentelemetry/api"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import * as Chunk from "effect/Chunk"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Metric from "effect/Metric"
import * as MetricState from "effect/MetricState"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import { inspect } from "node:util"
import type * as LLM from "../src/LLM.js"
import * as Pricing from "../src/Pricing.js"
import * as Anthropic from "../src/providers/Anthropic.js"
import * as OpenAI from "../src/providers/OpenAI.js"
import * as Response from "../src/Response.js"
import * as Telemetry from "../src/Telemetry.js"
import * as FakeProviderServer from "../src/testing/FakeProviderServer.js"
import type * as Usage from "../src/Usage.js"
import { ask } from "./helpers.js"

const { Reply } = FakeProviderServer
const A = Telemetry.Attributes

// -----------------------------------------------------------------------------
// A tracer that keeps every span
// -----------------------------------------------------------------------------

interface RecordedEvent {
  readonly name: string
  readonly attributes: Record<string, unknown> | undefined
}

class RecordedSpan implements Tracer.Span {
  readonly _tag = "Span"
  readonly spanId: string
  readonly traceId: string
  readonly sampled = true
  status: Tracer.SpanStatus
  readonly attributes = new Map<string, unknown>()
  readonly events: Array<RecordedEvent> = []
  links: Array<Tracer.SpanLink>
  constructor(
    readonly name: string,
    readonly parent: Option.Option<Tracer.AnySpan>,
    readonly context: Context.Context<never>,
    links: ReadonlyArray<Tracer.SpanLink>,
    startTime: bigint,
    readonly kind: Tracer.SpanKind,
    id: number
  ) {
    this.spanId = `span${id}`
    this.traceId = Option.isSome(parent) ? parent.value.traceId : `trace${id}`
    this.status = { _tag: "Started", startTime }
    this.links = [...links]
  }
  end(endTime: bigint, exit: Exit.Exit<unknown, unknown>): void {
    this.status = { _tag: "Ended", startTime: this.status.startTime, endTime, exit }
  }
  attribute(key: string, value: unknown): void {
    this.attributes.set(key, value)
  }
  event(name: string, _startTime: bigint, attributes?: Record<string, unknown>): void {
    this.events.push({ name, attributes })
  }
  addLinks(links: ReadonlyArray<Tracer.SpanLink>): void {
    this.links.push(...links)
  }
}

const recordingTracer = () => {
  const spans: Array<RecordedSpan> = []
  const tracer = Tracer.make({
    span: (name, parent, context, links, startTime, kind) => {
      const span = new RecordedSpan(name, parent, context, links, startTime, kind, spans.length + 1)
      spans.push(span)
      return span
    },
    context: (f) => f()
  })
  return { tracer, spans, llmSpans: () => spans.filter((span) => span.name.startsWith("LLM.")) }
}

const ended = (span: RecordedSpan): Exit.Exit<unknown, unknown> => {
  if (span.status._tag !== "Ended") throw new Error(`span ${span.name} was not ended`)
  return span.status.exit
}

// -----------------------------------------------------------------------------
// Providers
// -----------------------------------------------------------------------------

interface Target {
  readonly system: LLM.ProviderType
  readonly model: string
  /** A model of this provider with no known price. */
  readonly unpricedModel: string
  readonly protocol: FakeProviderServer.Protocol
  readonly make: (
    server: FakeProviderServer.Service,
    options?: { readonly providerId?: string; readonly apiKey?: Redacted.Redacted<string> }
  ) => Effect.Effect<LLM.Service, never, Scope.Scope>
}

const targets: ReadonlyArray<Target> = [
  {
    system: "anthropic",
    model: "claude-sonnet-4-6",
    unpricedModel: "claude-experimental-9",
    protocol: "anthropic",
    make: (server, options) =>
      Anthropic.make({
        apiKey: options?.apiKey ?? Redacted.make("sk-ant-test"),
        baseUrl: server.anthropicBaseUrl,
        defaultModel: "claude-sonnet-4-6",
        providerId: options?.providerId
      })
  },
  {
    system: "openai",
    model: "gpt-4o",
    unpricedModel: "gpt-experimental-9",
    protocol: "openai",
    make: (server, options) =>
      OpenAI.make({
        apiKey: options?.apiKey ?? Redacted.make("sk-test"),
        baseUrl: server.openaiBaseUrl,
        defaultModel: "gpt-4o",
        providerId: options?.providerId
      })
  }
]

let unique = 0
/** Metrics are global: each test gets its own provider id to read exact values back. */
const uniqueProviderId = (name: string) => `telemetry-${name}-${Date.now()}-${++unique}`

const scriptedUsage = {
  inputTokens: 120,
  outputTokens: 30,
  cacheReadTokens: 100,
  cacheWriteTokens: 10,
  reasoningTokens: 8
}

const providerError = (protocol: FakeProviderServer.Protocol, status: number, message: string) =>
  protocol === "anthropic"
    ? Reply.anthropicError(status, status === 429 ? "rate_limit_error" : "api_error", message, { "retry-after": "1" })
    : Reply.openaiError(status, { message, type: status === 429 ? "rate_limit_error" : "server_error" }, {
      "retry-after": "1"
    })

// -----------------------------------------------------------------------------
// Metrics, read back per provider id
// -----------------------------------------------------------------------------

interface Series {
  readonly name: string
  readonly model: string | undefined
  readonly error: string | undefined
  /** A counter's count, or a histogram's number of observations. */
  readonly value: number
  readonly sum: number
}

const seriesOf = (providerId: string): Effect.Effect<ReadonlyArray<Series>> =>
  Effect.map(Metric.snapshot, (pairs) => {
    const out: Array<Series> = []
    for (const pair of pairs) {
      const tags = pair.metricKey.tags
      if (!tags.some((tag) => tag.key === "provider" && tag.value === providerId)) continue
      const state = pair.metricState
      const model = tags.find((tag) => tag.key === "model")?.value
      const error = tags.find((tag) => tag.key === "error")?.value
      if (MetricState.isCounterState(state)) {
        out.push({ name: pair.metricKey.name, model, error, value: Number(state.count), sum: Number(state.count) })
      } else if (MetricState.isHistogramState(state)) {
        out.push({ name: pair.metricKey.name, model, error, value: state.count, sum: state.sum })
      }
    }
    return out
  })

const total = (series: ReadonlyArray<Series>, name: string, model?: string, error?: string) =>
  series
    .filter((s) =>
      s.name === name && (model === undefined || s.model === model) && (error === undefined || s.error === error)
    )
    .reduce((acc, s) => acc + s.value, 0)

// -----------------------------------------------------------------------------
// Tests
// -----------------------------------------------------------------------------

layer(FakeProviderServer.layer())("Telemetry", (it) => {
  const setup = (
    target: Target,
    options?: { readonly providerId?: string; readonly apiKey?: Redacted.Redacted<string> }
  ) =>
    Effect.gen(function*() {
      const server = yield* FakeProviderServer.FakeProviderServer
      yield* server.reset
      const llm = yield* target.make(server, options)
      return { server, llm }
    })

  for (const target of targets) {
    describe(`${target.system} spans`, () => {
      it.scoped("complete: one client span with the request, response and usage attributes", () =>
        Effect.gen(function*() {
          const { llm, server } = yield* setup(target)
          const { llmSpans, tracer } = recordingTracer()
          yield* server.enqueue(Reply.scripted({ text: "Hello world", usage: scriptedUsage }))
          const reply = yield* llm.complete(ask("Hi", {
            model: target.model,
            system: "Be brief.",
            maxTokens: 77,
            temperature: 0.3,
            topP: 0.9
          })).pipe(Effect.withTracer(tracer))
          const spans = llmSpans()
          expect(spans).toHaveLength(1)
          const span = spans[0]!
          expect(span.name).toBe("LLM.complete")
          expect(span.kind).toBe("client")
          expect(Exit.isSuccess(ended(span))).toBe(true)
          expect(Object.fromEntries(span.attributes)).toEqual({
            [A.system]: target.system,
            [A.operationName]: "chat",
            [A.requestModel]: target.model,
            [A.requestMaxTokens]: 77,
            [A.requestTemperature]: 0.3,
            [A.requestTopP]: 0.9,
            [A.providerId]: llm.providerId,
            [A.responseId]: reply.requestId,
            [A.responseModel]: reply.model,
            [A.responseFinishReasons]: ["stop"],
            [A.usageInputTokens]: 120,
            [A.usageOutputTokens]: 30,
            [A.cacheReadTokens]: 100,
            [A.cacheWriteTokens]: reply.usage.cacheWriteTokens,
            [A.reasoningTokens]: reply.usage.reasoningTokens,
            [A.costUsd]: reply.costUsd
          })
          expect(reply.requestId).toMatch(/^req_/)
          expect(reply.costUsd).toBeGreaterThan(0)
          // Content is not recorded unless asked for.
          expect(span.events.filter((e) => e.name.startsWith("gen_ai."))).toEqual([])
          expect(JSON.stringify([...span.attributes.values()])).not.toContain("Hello world")
        }))

      it.scoped("stream: one span covering the whole stream, with the time to its first event", () =>
        Effect.gen(function*() {
          const { llm, server } = yield* setup(target)
          const { llmSpans, tracer } = recordingTracer()
          yield* server.enqueue(Reply.scripted({ text: ["Hel", "lo"], usage: scriptedUsage }))
          const statusesSeen: Array<string> = []
          const events = yield* llm.stream(ask("Hi", { model: target.model, maxTokens: 50 })).pipe(
            Stream.tap(() => Effect.sync(() => statusesSeen.push(llmSpans()[0]!.status._tag))),
            Stream.runCollect,
            Effect.withTracer(tracer)
          )
          const finish = Chunk.toReadonlyArray(events).find((e): e is Response.Finish => e._tag === "Finish")!
          // Open while the consumer reads it; ended once it ends.
          expect(statusesSeen.every((status) => status === "Started")).toBe(true)
          const spans = llmSpans()
          expect(spans).toHaveLength(1)
          const span = spans[0]!
          expect(span.name).toBe("LLM.stream")
          expect(span.kind).toBe("client")
          expect(Exit.isSuccess(ended(span))).toBe(true)
          expect(span.attributes.get(A.system)).toBe(target.system)
          expect(span.attributes.get(A.operationName)).toBe("chat")
          expect(span.attributes.get(A.requestModel)).toBe(target.model)
          expect(span.attributes.get(A.requestMaxTokens)).toBe(50)
          expect(span.attributes.has(A.requestTemperature)).toBe(false)
          expect(span.attributes.get(A.responseId)).toBe(finish.requestId)
          expect(span.attributes.get(A.responseModel)).toBe(finish.model)
          expect(span.attributes.get(A.responseFinishReasons)).toEqual(["stop"])
          expect(span.attributes.get(A.usageInputTokens)).toBe(120)
          expect(span.attributes.get(A.usageOutputTokens)).toBe(30)
          expect(span.attributes.get(A.cacheReadTokens)).toBe(100)
          expect(span.attributes.get(A.costUsd)).toBe(finish.costUsd)
          expect(span.attributes.get(A.providerId)).toBe(llm.providerId)
          expect(span.attributes.get(A.timeToFirstEventMs)).toBeTypeOf("number")
          expect(span.attributes.get(A.timeToFirstEventMs)).toBeGreaterThanOrEqual(0)
          expect(span.events.filter((e) => e.name.startsWith("gen_ai."))).toEqual([])
        }))

      it.scoped("failures: the span fails with the error, and records its tag, status and request id", () =>
        Effect.gen(function*() {
          const { llm, server } = yield* setup(target)
          const { llmSpans, tracer } = recordingTracer()
          yield* server.enqueue(
            providerError(target.protocol, 429, "slow down"),
            Reply.scripted({ text: ["a", "b", "c", "d"], usage: { inputTokens: 50, outputTokens: 4 } }, {
              dropAfterEvents: 5
            })
          )
          const rateLimited = yield* Effect.flip(llm.complete(ask("Hi", { model: target.model }))).pipe(
            Effect.withTracer(tracer)
          )
          const broken = yield* Effect.flip(Stream.runDrain(llm.stream(ask("Hi", { model: target.model })))).pipe(
            Effect.withTracer(tracer)
          )
          expect(rateLimited._tag).toBe("RateLimitError")
          expect(broken._tag).toBe("ConnectionError")
          const [completeSpan, streamSpan] = llmSpans()
          expect(llmSpans()).toHaveLength(2)

          const completeExit = ended(completeSpan!)
          expect(Exit.isFailure(completeExit)).toBe(true)
          expect(completeSpan!.attributes.get(A.errorType)).toBe("RateLimitError")
          expect(completeSpan!.attributes.get(A.httpStatusCode)).toBe(429)
          expect(completeSpan!.attributes.get(A.responseId)).toBe(rateLimited.requestId)
          // An error status: the provider billed nothing (zero, known)
          expect(completeSpan!.attributes.get(A.costUsd)).toBe(0)
          expect(completeSpan!.attributes.get(A.usageInputTokens)).toBe(0)
          expect(completeSpan!.attributes.has(A.unmetered)).toBe(false)
          expect(completeSpan!.attributes.get(A.requestModel)).toBe(target.model)

          expect(Exit.isFailure(ended(streamSpan!))).toBe(true)
          expect(streamSpan!.attributes.get(A.errorType)).toBe("ConnectionError")
          // Anthropic reports the prompt's tokens in message_start; OpenAI only at the end.
          // (without it, the stream's usage is unknown, not zero)
          if (target.protocol === "anthropic") {
            expect(streamSpan!.attributes.get(A.usageInputTokens)).toBe(50)
            expect(streamSpan!.attributes.has(A.unmetered)).toBe(false)
          } else {
            expect(streamSpan!.attributes.has(A.usageInputTokens)).toBe(false)
            expect(streamSpan!.attributes.get(A.unmetered)).toBe(true)
            expect(streamSpan!.attributes.has(A.unpriced)).toBe(false)
          }
          expect(streamSpan!.attributes.get(A.timeToFirstEventMs)).toBeTypeOf("number")
        }))

      it.scoped("a stream abandoned by its consumer ends its span, marked interrupted", () =>
        Effect.gen(function*() {
          const { llm, server } = yield* setup(target)
          const { llmSpans, tracer } = recordingTracer()
          yield* server.enqueue(
            Reply.scripted({ text: Array.from({ length: 50 }, (_, i) => `t${i} `) }, { delayBetweenEventsMillis: 2 })
          )
          const taken = yield* llm.stream(ask("Hi", { model: target.model })).pipe(
            Stream.take(2),
            Stream.runCollect,
            Effect.withTracer(tracer)
          )
          expect(Chunk.size(taken)).toBe(2)
          const [span] = llmSpans()
          expect(llmSpans()).toHaveLength(1)
          expect(span!.status._tag).toBe("Ended")
          expect(span!.attributes.get(A.interrupted)).toBe(true)
          expect(span!.attributes.has(A.errorType)).toBe(false)
          expect((yield* llm.usage).failures).toBe(1)
        }))

      it.scoped("the span is a child of the caller's span", () =>
        Effect.gen(function*() {
          const { llm, server } = yield* setup(target)
          const { spans, tracer } = recordingTracer()
          yield* server.enqueue(Reply.scripted({ text: "a" }), Reply.scripted({ text: "b" }))
          yield* llm.complete(ask("Hi", { model: target.model })).pipe(
            Effect.zipRight(Stream.runDrain(llm.stream(ask("Hi", { model: target.model })))),
            Effect.withSpan("agent.step"),
            Effect.withTracer(tracer)
          )
          const outer = spans.find((span) => span.name === "agent.step")!
          const children = spans.filter((span) => span.name.startsWith("LLM."))
          expect(children.map((span) => span.name)).toEqual(["LLM.complete", "LLM.stream"])
          for (const child of children) {
            expect(Option.map(child.parent, (p) => p.spanId)).toEqual(Option.some(outer.spanId))
            expect(child.traceId).toBe(outer.traceId)
          }
        }))
    })
  }

  it.scoped("a call refused before any request: a failed span, a refusal metric, no usage", () =>
    Effect.gen(function*() {
      const providerId = uniqueProviderId("refused")
      const { llm, server } = yield* setup(targets[0]!, { providerId })
      const { llmSpans, tracer } = recordingTracer()
      const error = yield* Effect.flip(llm.complete(ask("Hi", { model: "gpt-4o" }))).pipe(Effect.withTracer(tracer))
      expect(error._tag).toBe("InvalidRequestError")
      const [span] = llmSpans()
      expect(Exit.isFailure(ended(span!))).toBe(true)
      expect(span!.attributes.get(A.errorType)).toBe("InvalidRequestError")
      expect(span!.attributes.get(A.refused)).toBe(true)
      expect(yield* server.requests).toHaveLength(0)
      expect((yield* llm.usage).calls).toBe(0)
      const series = yield* seriesOf(providerId)
      expect(total(series, "llm.refusals", "gpt-4o", "InvalidRequestError")).toBe(1)
      expect(total(series, "llm.calls")).toBe(0)
    }))

  it.scoped("a count request (Anthropic count_tokens) has its own client span, counted in no usage", () =>
    Effect.gen(function*() {
      const { llm, server } = yield* setup(targets[0]!)
      yield* server.setTokenCount(1234)
      const { llmSpans, tracer } = recordingTracer()
      const counted = yield* llm.countTokens(ask("Hi", { model: "claude-sonnet-4-6" }), { method: "provider" }).pipe(
        Effect.withTracer(tracer)
      )
      expect(counted).toEqual({ inputTokens: 1234, method: "provider" })
      const spans = llmSpans()
      expect(spans.map((span) => [span.name, span.kind])).toEqual([["LLM.countTokens", "client"]])
      expect(Exit.isSuccess(ended(spans[0]!))).toBe(true)
      expect(spans[0]!.attributes.get(A.requestModel)).toBe("claude-sonnet-4-6")
      expect(spans[0]!.attributes.get(A.providerId)).toBe(llm.providerId)
      expect(spans[0]!.attributes.get(A.usageInputTokens)).toBe(1234)
      expect((yield* server.requests).map((request) => request.path)).toEqual(["/v1/messages/count_tokens"])
      expect((yield* llm.usage).calls).toBe(0)
    }))

  it.scoped("spans exported through @effect/opentelemetry: client kind, error status, GenAI attributes", () =>
    Effect.gen(function*() {
      const exporter = new InMemorySpanExporter()
      const target = targets[0]!
      const { llm, server } = yield* setup(target)
      yield* server.enqueue(
        Reply.scripted({ text: "Hi", usage: { inputTokens: 12, outputTokens: 3 } }),
        providerError("anthropic", 500, "boom")
      )
      const program = Effect.gen(function*() {
        yield* llm.complete(ask("Hi"))
        yield* Effect.exit(Response.collect(llm.stream(ask("Hi"))))
        // Read before the layer closes: shutting the SDK down empties the in-memory exporter.
        return exporter.getFinishedSpans()
      })
      const finished = yield* program.pipe(
        Effect.provide(
          NodeSdk.layer(() => ({
            resource: { serviceName: "telemetry-test" },
            spanProcessor: new SimpleSpanProcessor(exporter)
          }))
        )
      )
      const spans = finished.filter((span) => span.name.startsWith("LLM."))
      expect(spans.map((span) => span.name)).toEqual(["LLM.complete", "LLM.stream"])
      const [ok, failed] = spans
      expect(ok!.kind).toBe(OtelApi.SpanKind.CLIENT)
      expect(ok!.status.code).toBe(OtelApi.SpanStatusCode.OK)
      expect(ok!.attributes[A.system]).toBe("anthropic")
      expect(ok!.attributes[A.usageInputTokens]).toBe(12)
      expect(ok!.attributes[A.usageOutputTokens]).toBe(3)
      expect(ok!.attributes[A.costUsd]).toBeGreaterThan(0)
      expect(failed!.status.code).toBe(OtelApi.SpanStatusCode.ERROR)
      expect(failed!.attributes[A.errorType]).toBe("ProviderUnavailableError")
      expect(failed!.attributes[A.httpStatusCode]).toBe(500)
    }))

  for (const target of targets) {
    it.scoped(`${target.system}: metric values equal the usage Ref after a mix of calls`, () =>
      Effect.gen(function*() {
        const providerId = uniqueProviderId(`metrics-${target.system}`)
        const { llm, server } = yield* setup(target, { providerId })
        yield* server.enqueue(
          // priced complete, priced stream
          Reply.scripted({ text: "a", usage: scriptedUsage }),
          Reply.scripted({ text: ["b", "c"], usage: { inputTokens: 40, outputTokens: 9, cacheReadTokens: 20 } }),
          // a failure (complete) and a stream that breaks after some usage
          providerError(target.protocol, 429, "slow down"),
          Reply.scripted({ text: ["d", "e", "f"], usage: { inputTokens: 33, outputTokens: 3 } }, {
            dropAfterEvents: 4
          }),
          // an unpriced model, twice (complete and stream)
          Reply.scripted({ text: "g", usage: { inputTokens: 7, outputTokens: 2 } }),
          Reply.scripted({ text: ["h"], usage: { inputTokens: 8, outputTokens: 1 } }),
          // a stream abandoned by its consumer
          Reply.scripted({ text: Array.from({ length: 30 }, (_, i) => `${i}`) }, { delayBetweenEventsMillis: 2 })
        )
        yield* llm.complete(ask("1", { model: target.model }))
        yield* Response.collect(llm.stream(ask("2", { model: target.model })))
        yield* Effect.exit(llm.complete(ask("3", { model: target.model })))
        yield* Effect.exit(Stream.runDrain(llm.stream(ask("4", { model: target.model }))))
        yield* llm.complete(ask("5", { model: target.unpricedModel }))
        yield* Response.collect(llm.stream(ask("6", { model: target.unpricedModel })))
        yield* Stream.runDrain(Stream.take(llm.stream(ask("7", { model: target.model })), 1))

        const usage = yield* llm.usage
        const series = yield* seriesOf(providerId)
        expect(usage.calls).toBe(7)
        expect(usage.failures).toBe(3)
        expect(usage.unpricedCalls).toBe(2)
        expect(Object.keys(usage.byModel).sort()).toEqual([target.model, target.unpricedModel].sort())

        const check = (model: string | undefined, expected: Usage.ModelUsage) => {
          expect(total(series, "llm.calls", model)).toBe(expected.calls)
          expect(total(series, "llm.failures", model)).toBe(expected.failures)
          expect(total(series, "llm.unpriced_calls", model)).toBe(expected.unpricedCalls)
          expect(total(series, "llm.tokens.input", model)).toBe(expected.inputTokens)
          expect(total(series, "llm.tokens.output", model)).toBe(expected.outputTokens)
          expect(total(series, "llm.tokens.cache_read", model)).toBe(expected.cacheReadTokens)
          expect(total(series, "llm.tokens.cache_write", model)).toBe(expected.cacheWriteTokens)
          expect(total(series, "llm.tokens.reasoning", model)).toBe(expected.reasoningTokens)
          expect(total(series, "llm.cost_usd", model)).toBeCloseTo(expected.costUsd, 12)
          // One duration per call that reached the provider.
          expect(total(series, "llm.call.duration_ms", model)).toBe(expected.calls)
        }
        check(undefined, usage)
        for (const [model, modelUsage] of Object.entries(usage.byModel)) check(model, modelUsage)

        expect(usage.inputTokens).toBeGreaterThan(0)
        expect(usage.costUsd).toBeGreaterThan(0)
        expect(usage.costUsd).toBeCloseTo(
          Pricing.cost(target.model, usage.byModel[target.model]!)!,
          12
        )
        // Failures by error tag.
        expect(total(series, "llm.failures", target.model, "RateLimitError")).toBe(1)
        expect(total(series, "llm.failures", target.model, "ConnectionError")).toBe(1)
        expect(total(series, "llm.failures", target.model, "Interrupted")).toBe(1)
        // Time to first token: one per stream that emitted something (4 streams).
        expect(total(series, "llm.stream.time_to_first_token_ms")).toBe(4)
        // Readable directly too, with `Telemetry.labels`.
        const calls = yield* Metric.value(
          Metric.taggedWithLabels(Telemetry.calls, Telemetry.labels(providerId, target.model))
        )
        expect(calls.count).toBe(usage.byModel[target.model]!.calls)
      }))
  }

  it.effect("retries are counted through Telemetry.recordRetry", () =>
    Effect.gen(function*() {
      const providerId = uniqueProviderId("retries")
      yield* Telemetry.recordRetry(providerId, "m", "RateLimitError")
      yield* Telemetry.recordRetry(providerId, "m", "RateLimitError")
      const value = yield* Metric.value(
        Metric.taggedWithLabels(Telemetry.retries, Telemetry.labels(providerId, "m", "RateLimitError"))
      )
      expect(value.count).toBe(2)
    }))

  describe("content", () => {
    const request = ask("What is the capital of France?", {
      system: "You are terse.",
      model: "claude-sonnet-4-6"
    })

    it.scoped("recorded as span events only when opted in (FiberRef or layer)", () =>
      Effect.gen(function*() {
        const { llm, server } = yield* setup(targets[0]!)
        const { llmSpans, tracer } = recordingTracer()
        yield* server.enqueue(
          Reply.scripted({ text: "Paris." }),
          Reply.scripted({ text: "Paris." }),
          Reply.scripted({ text: ["Par", "is."] }),
          Reply.scripted({ text: "Paris." })
        )
        yield* llm.complete(request).pipe(Effect.withTracer(tracer))
        yield* llm.complete(request).pipe(Telemetry.withRecordContent(true), Effect.withTracer(tracer))
        yield* Response.collect(llm.stream(request)).pipe(
          Effect.provide(Telemetry.layerRecordContent()),
          Effect.withTracer(tracer)
        )
        yield* llm.complete(request).pipe(
          Telemetry.withRecordContent(false),
          Effect.provide(Telemetry.layerRecordContent()),
          Effect.withTracer(tracer)
        )
        const [off, onComplete, onStream, offAgain] = llmSpans()
        const rendered = (span: RecordedSpan) => JSON.stringify([[...span.attributes], span.events])
        for (const span of [off!, offAgain!]) {
          expect(span.events).toEqual([])
          expect(rendered(span)).not.toContain("capital of France")
          expect(rendered(span)).not.toContain("Paris")
        }
        for (const span of [onComplete!, onStream!]) {
          const prompt = span.events.find((e) => e.name === Telemetry.EventNames.prompt)
          const completion = span.events.find((e) => e.name === Telemetry.EventNames.completion)
          expect(JSON.parse(prompt!.attributes![A.prompt] as string)).toEqual([
            { role: "system", content: "You are terse." },
            { role: "user", content: "What is the capital of France?" }
          ])
          expect(JSON.parse(completion!.attributes![A.completion] as string)).toEqual([
            { role: "assistant", content: "Paris." }
          ])
        }
      }))
  })

  describe("logs", () => {
    it.scoped("a debug line per call, a warning per failure, one warning per unpriced model; annotated", () =>
      Effect.gen(function*() {
        const providerId = uniqueProviderId("logs")
        const { llm, server } = yield* setup(targets[0]!, { providerId })
        const lines: Array<{ level: string; message: string; annotations: Record<string, unknown> }> = []
        const logger = Logger.make(({ annotations, logLevel, message }) =>
          lines.push({
            level: logLevel.label,
            message: Array.isArray(message) ? message.join(" ") : String(message),
            annotations: Object.fromEntries(annotations)
          })
        )
        yield* server.enqueue(
          Reply.scripted({ text: "a" }),
          providerError("anthropic", 500, "boom"),
          Reply.scripted({ text: "b" }),
          Reply.scripted({ text: ["c"] })
        )
        const program = Effect.gen(function*() {
          const reply = yield* llm.complete(ask("Hi"))
          yield* Effect.exit(llm.complete(ask("Hi")))
          yield* llm.complete(ask("Hi", { model: "claude-experimental-9" }))
          yield* Response.collect(llm.stream(ask("Hi", { model: "claude-experimental-9" })))
          return reply
        })
        const reply = yield* program.pipe(
          Logger.withMinimumLogLevel(LogLevel.Debug),
          Effect.provide(Logger.add(logger))
        )
        const debug = lines.filter((line) => line.level === "DEBUG")
        const warnings = lines.filter((line) => line.level === "WARN")
        expect(debug).toHaveLength(3)
        expect(debug[0]!.annotations).toEqual({
          provider: providerId,
          model: "claude-sonnet-4-6",
          request_id: reply.requestId
        })
        expect(debug[0]!.message).toContain("LLM.complete claude-sonnet-4-6")
        expect(warnings).toHaveLength(2)
        expect(warnings[0]!.annotations).toMatchObject({
          provider: providerId,
          model: "claude-sonnet-4-6",
          error: "ProviderUnavailableError"
        })
        expect(warnings[0]!.annotations.request_id).toMatch(/^req_/)
        expect(warnings[0]!.message).toContain("ProviderUnavailableError")
        expect(warnings[0]!.message).toContain("boom")
        expect(warnings[1]!.message).toContain("no price known for model \"claude-experimental-9\"")
      }))

    it.scoped("at the default level (info) no per-call line is written", () =>
      Effect.gen(function*() {
        const { llm, server } = yield* setup(targets[0]!)
        const lines: Array<string> = []
        yield* server.enqueue(Reply.scripted({ text: "a" }))
        yield* llm.complete(ask("Hi")).pipe(
          Effect.provide(Logger.add(Logger.make(({ message }) => lines.push(String(message)))))
        )
        expect(lines).toEqual([])
      }))
  })

  describe("secrets", () => {
    for (const target of targets) {
      it.scoped(`${target.system}: the API key appears in no span attribute, span event, log line or metric`, () =>
        Effect.gen(function*() {
          const key = "sk-live-TELEMETRY-SECRET-7f3a9c"
          const providerId = uniqueProviderId(`secrets-${target.system}`)
          const { llm, server } = yield* setup(target, { providerId, apiKey: Redacted.make(key) })
          const { spans, tracer } = recordingTracer()
          const logs: Array<string> = []
          const logger = Logger.make(({ annotations, message }) =>
            logs.push(inspect({ message, annotations: Object.fromEntries(annotations) }, { depth: 10 }))
          )
          const echo = `Incorrect API key provided: ${key}`
          yield* server.enqueue(
            Reply.scripted({ text: "ok" }),
            Reply.scripted({ text: ["o", "k"] }),
            target.protocol === "anthropic"
              ? Reply.anthropicError(401, "authentication_error", echo)
              : Reply.openaiError(401, { message: echo, type: "invalid_request_error", code: "invalid_api_key" }),
            target.protocol === "anthropic"
              ? Reply.anthropicError(401, "authentication_error", echo)
              : Reply.openaiError(401, { message: echo, type: "invalid_request_error", code: "invalid_api_key" })
          )
          // The worst case: content recorded, every log level on.
          yield* Effect.gen(function*() {
            yield* llm.complete(ask("Hi", { model: target.model }))
            yield* Response.collect(llm.stream(ask("Hi", { model: target.model })))
            yield* Effect.exit(llm.complete(ask("Hi", { model: target.model })))
            yield* Effect.exit(Stream.runDrain(llm.stream(ask("Hi", { model: target.model }))))
          }).pipe(
            Telemetry.withRecordContent(true),
            Logger.withMinimumLogLevel(LogLevel.All),
            Effect.provide(Logger.add(logger)),
            Effect.withTracer(tracer)
          )
          const requests = yield* server.requests
          expect(JSON.stringify(requests[0]!.headers)).toContain(key) // it was really sent
          expect(spans.filter((span) => span.name.startsWith("LLM."))).toHaveLength(4)
          expect(logs.length).toBeGreaterThanOrEqual(4)
          for (const span of spans) {
            expect(inspect([...span.attributes], { depth: 10 })).not.toContain(key)
            expect(inspect(span.events, { depth: 10 })).not.toContain(key)
            expect(span.name).not.toContain(key)
          }
          for (const line of logs) expect(line).not.toContain(key)
          const snapshot = yield* Metric.snapshot
          expect(inspect(snapshot.map((pair) => pair.metricKey), { depth: 10 })).not.toContain(key)
        }))
    }
  })
})

describe("Telemetry options", () => {
  it.effect("recordContent is off by default; withRecordContent and layerRecordContent set it", () =>
    Effect.gen(function*() {
      expect(yield* FiberRef.get(Telemetry.recordContent)).toBe(false)
      expect(yield* FiberRef.get(Telemetry.recordContent).pipe(Telemetry.withRecordContent(true))).toBe(true)
      expect(yield* FiberRef.get(Telemetry.recordContent).pipe(Effect.provide(Telemetry.layerRecordContent()))).toBe(
        true
      )
    }))
})
