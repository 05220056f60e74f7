/**
 * The shared call path. A provider only maps requests to its wire format and replies to neutral
 * events (a `Driver`); this module does the rest once for all of them: defaults, local
 * validation, pricing, the usage tally (every call that reaches the provider recorded exactly
 * once), the unpriced-model warning, the response fold, and the telemetry of every call (a span
 * per call, the metrics, updated with the tally at one point, and the logs; see `Telemetry`).
 */
import * as Cause from "effect/Cause"
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as HashSet from "effect/HashSet"
import * as LogLevel from "effect/LogLevel"
import type * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import type * as Capabilities from "../Capabilities.js"
import type * as LLM from "../LLM.js"
import type * as LLMError from "../LLMError.js"
import type * as Message from "../Message.js"
import * as Pricing from "../Pricing.js"
import type * as Response from "../Response.js"
import * as Telemetry from "../Telemetry.js"
import * as Usage from "../Usage.js"
import { ResponseBuilder } from "./builder.js"
import * as internal from "./telemetry.js"

/** A request with the provider's defaults applied. */
export interface ResolvedRequest extends LLM.CompletionRequest {
  readonly model: string
  readonly maxTokens: number
}

/** The end of a reply as a provider reports it, before pricing. */
export interface RawFinish {
  readonly finishReason: Response.FinishReason
  readonly rawFinishReason?: string | undefined
  /** `undefined` when the provider reported none: unknown, not zero. */
  readonly usage: Usage.Tokens | undefined
  readonly model: string
  readonly requestId?: string | undefined
  /** Cost the provider itself reported (a gateway); wins over the price table. */
  readonly costUsd?: number | undefined
}

/** A complete (non-streamed) reply in neutral form: content events in order, then the end. */
export interface Completed {
  readonly events: ReadonlyArray<Response.StreamEvent>
  readonly finish: RawFinish
}

/** Called by a streaming driver whenever the provider reports usage before the end. */
export type ReportUsage = (usage: Usage.Tokens) => void

/** What a provider module supplies. */
export interface Driver {
  readonly providerId: string
  readonly providerType: LLM.ProviderType
  readonly defaultModel: string
  readonly defaultMaxTokens: number
  readonly capabilities: (model: string) => Capabilities.Capabilities
  /** Price overrides from config; looked up before the built-in table. */
  readonly pricing?: Pricing.PriceTable | undefined
  /** A local check run before any request; a failure reaches no provider and is not counted. */
  readonly validate?: (request: ResolvedRequest) => LLMError.LLMError | undefined
  readonly complete: (request: ResolvedRequest) => Effect.Effect<Completed, LLMError.LLMError>
  /** Must end with one `Finish` event (its `costUsd` may be left undefined) or fail. */
  readonly stream: (
    request: ResolvedRequest,
    report: ReportUsage
  ) => Stream.Stream<Response.StreamEvent, LLMError.LLMError>
}

/** Builds a raw `Finish` event; the shared path prices it. */
export const finishEvent = (providerId: string, raw: RawFinish): Response.Finish => {
  const event: { -readonly [K in keyof Response.Finish]: Response.Finish[K] } = {
    _tag: "Finish",
    finishReason: raw.finishReason,
    usage: raw.usage ?? Usage.emptyTokens,
    costUsd: raw.usage === undefined ? undefined : raw.costUsd,
    model: raw.model,
    providerId
  }
  if (raw.usage === undefined) event.usageUnknown = true
  if (raw.rawFinishReason !== undefined) event.rawFinishReason = raw.rawFinishReason
  if (raw.requestId !== undefined) event.requestId = raw.requestId
  return event
}

/** One call in flight, as its telemetry sees it: read once when the call starts. */
interface Call {
  readonly operation: string
  readonly span: Tracer.Span
  /** The requested model: the key of the usage breakdown and the metrics' `model` tag. */
  readonly model: string
  readonly clock: Clock.Clock
  /** Nanoseconds on `clock`. */
  readonly started: bigint
  /** The caller's metric tags (`Effect.tagMetrics`), added to ours. */
  readonly metricTags: ReadonlyArray<MetricLabel.MetricLabel>
  readonly logLevel: LogLevel.LogLevel
  readonly recordContent: boolean
  /** Whether the span is observed (see `observed`); when not, `span` is a no-op. */
  readonly tracing: boolean
  /** Whether spans take their times from the clock (`FiberRef.currentTracerTimingEnabled`). */
  readonly timing: boolean
}

/**
 * Effect annotates an error that fails inside a span by wrapping it in a `Proxy` that points to the
 * span. Callers get the driver's own error instances back, as before the call had a span (errors
 * are compared by identity; the span trace is on the span itself). Maps the cause, not the error:
 * failing again would wrap again.
 */
const originalErrors = <E>(cause: Cause.Cause<E>): Cause.Cause<E> => Cause.map(cause, Cause.originalError)

/** Effect's own tracer, the default: it keeps its spans to itself (nothing exports them). */
const nativeTracer = Context.get(DefaultServices.liveServices, Tracer.Tracer)

/**
 * Whether anyone can see a span of this call: tracing is on (`Effect.withTracerEnabled`) and a
 * tracer other than Effect's default one is installed (OpenTelemetry, or any `Tracer.make`).
 * When no one can, a call makes no span at all: building one with its attributes was a tenth of
 * what a non-streaming call cost on our side.
 */
export const observed = (fiber: Fiber.RuntimeFiber<unknown, unknown>): boolean =>
  fiber.getFiberRef(FiberRef.currentTracerEnabled) && fiber.currentTracer !== nativeTracer

/** The span of a call no one observes: takes attributes and events, and keeps nothing. */
const unobservedSpan: Tracer.Span = {
  _tag: "Span",
  name: "unobserved",
  spanId: "noop",
  traceId: "noop",
  parent: Option.none(),
  context: Context.empty(),
  status: { _tag: "Ended", startTime: BigInt(0), endTime: BigInt(0), exit: Exit.void },
  attributes: new Map(),
  links: [],
  sampled: false,
  kind: "client",
  attribute() {},
  event() {},
  end() {},
  addLinks() {}
}

const spanOptions = (driver: Driver, request: ResolvedRequest): Tracer.SpanOptions => ({
  kind: "client",
  // The stack of the call path would name this file, not the caller: not worth an `Error` per call.
  captureStackTrace: false,
  attributes: internal.requestAttributes(driver.providerType, driver.providerId, request)
})

/** Builds the `LLM` service from a driver. */
export const make = (driver: Driver): Effect.Effect<LLM.Service> =>
  Effect.gen(function*() {
    const tracker = yield* Usage.makeTracker
    const warned = yield* Ref.make(HashSet.empty<string>())
    const instruments = internal.makeInstruments(driver.providerId)

    const resolve = (request: LLM.CompletionRequest): ResolvedRequest => {
      if (request.model !== undefined && request.maxTokens !== undefined) return request as ResolvedRequest
      // A plain copy, then the defaults: a spread that also overrides keys takes V8's slow path.
      const resolved: { -readonly [K in keyof ResolvedRequest]: ResolvedRequest[K] } = { ...request } as any
      resolved.model ??= driver.defaultModel
      resolved.maxTokens ??= driver.defaultMaxTokens
      return resolved
    }

    const priceOf = (requested: string, finish: Response.Finish): number | undefined => {
      if (finish.costUsd !== undefined) return finish.costUsd
      const byReply = finish.model === "" ? undefined : Pricing.cost(finish.model, finish.usage, driver.pricing)
      return byReply ?? Pricing.cost(requested, finish.usage, driver.pricing)
    }

    const warnUnpriced = (model: string) =>
      Ref.modify(warned, (set) => HashSet.has(set, model) ? [false, set] : [true, HashSet.add(set, model)]).pipe(
        Effect.flatMap((first) =>
          first
            ? Effect.logWarning(
              `${driver.providerId}: no price known for model "${model}"; its calls are counted as unpriced, not costed. ` +
                `Give it a price with the provider's \`pricing\` option (providers.${driver.providerId}.pricing in a registry config).`
            ).pipe(Effect.annotateLogs({ provider: driver.providerId, model }))
            : Effect.void
        )
      )

    /** Reads what the call's telemetry needs from the calling fiber, once. */
    const begin = <A, E>(
      fiber: Fiber.RuntimeFiber<A, E>,
      operation: string,
      span: Tracer.Span,
      request: ResolvedRequest
    ): Call => {
      const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
      const started = clock.unsafeCurrentTimeNanos()
      const recordContent = fiber.getFiberRef(Telemetry.recordContent)
      if (recordContent) {
        span.event(Telemetry.EventNames.prompt, started, {
          [Telemetry.Attributes.prompt]: internal.promptJson(request)
        })
      }
      return {
        operation,
        span,
        model: request.model,
        clock,
        started,
        metricTags: fiber.getFiberRef(FiberRef.currentMetricLabels),
        logLevel: fiber.getFiberRef(FiberRef.currentMinimumLogLevel),
        recordContent,
        tracing: span !== unobservedSpan,
        timing: fiber.getFiberRef(FiberRef.currentTracerTimingEnabled)
      }
    }

    const logSettled = (call: Call, settled: internal.Settled, durationMs: number): Effect.Effect<void> => {
      const error = settled.error
      const level = error === undefined || error.interrupted ? LogLevel.Debug : LogLevel.Warning
      if (LogLevel.greaterThan(call.logLevel, level)) return Effect.void
      let message: string
      if (error === undefined) {
        const usage = settled.usage
        const cost = settled.costUsd === undefined ? "unpriced" : `$${settled.costUsd.toFixed(6)}`
        message = usage === undefined
          ? `${call.operation} ${call.model}: usage not reported, ${durationMs.toFixed(1)} ms`
          : `${call.operation} ${call.model}: ${usage.inputTokens} input / ${usage.outputTokens} output tokens, ` +
            `${cost}, ${durationMs.toFixed(1)} ms`
      } else if (error.interrupted) {
        message = `${call.operation} ${call.model}: interrupted after ${durationMs.toFixed(1)} ms`
      } else {
        message = `${call.operation} ${call.model} failed with ${error.tag}: ${error.message}`
      }
      const requestId = settled.requestId ?? error?.requestId
      const annotations: Record<string, unknown> = { provider: driver.providerId, model: call.model }
      if (requestId !== undefined) annotations.request_id = requestId
      if (error !== undefined) annotations.error = error.tag
      return Effect.annotateLogs(Effect.logWithLevel(level, message), annotations)
    }

    /**
     * The single point where a call that reached the provider is accounted for: the usage tally,
     * the metrics (so the two always agree), the span's attributes, the logs.
     */
    const record = (call: Call, settled: internal.Settled): Effect.Effect<void> =>
      Effect.uninterruptible(Effect.zipRight(
        tracker.record({
          model: call.model,
          tokens: settled.usage,
          costUsd: settled.costUsd,
          failed: settled.error !== undefined
        }),
        Effect.suspend(() => {
          const durationMs = internal.elapsedMs(call.clock, call.started)
          instruments.settle(call.model, settled, durationMs, call.metricTags)
          internal.annotateSettled(call.span, settled)
          if (settled.parts !== undefined) {
            call.span.event(Telemetry.EventNames.completion, call.clock.unsafeCurrentTimeNanos(), {
              [Telemetry.Attributes.completion]: internal.completionJson(settled.parts)
            })
          }
          const log = logSettled(call, settled, durationMs)
          return settled.costUsd === undefined && settled.usage !== undefined
            ? Effect.zipRight(warnUnpriced(call.model), log)
            : log
        })
      ))

    /** A call refused before any request: counted in no usage, only in the refusals metric. */
    const refuse = (call: Call, error: LLMError.LLMError): Effect.Effect<void> =>
      Effect.suspend(() => {
        const info = internal.errorInfo(error)
        internal.annotateRefused(call.span, info)
        instruments.refuse(call.model, info.tag, call.metricTags)
        if (LogLevel.greaterThan(call.logLevel, LogLevel.Warning)) return Effect.void
        return Effect.logWarning(`${call.operation} ${call.model} refused before any request: ${info.message}`).pipe(
          Effect.annotateLogs({ provider: driver.providerId, model: call.model, error: info.tag })
        )
      })

    const price = (requested: string, finish: Response.Finish): Response.Finish => {
      if (finish.usageUnknown === true) return finish
      const costUsd = priceOf(requested, finish)
      return costUsd === finish.costUsd ? finish : { ...finish, costUsd }
    }

    const failed = (
      usage: Usage.Tokens | undefined,
      costUsd: number | undefined,
      error: internal.ErrorInfo,
      parts: ReadonlyArray<Message.Part> | undefined
    ): internal.Settled => ({
      usage,
      costUsd,
      error,
      requestId: undefined,
      responseModel: undefined,
      finishReason: undefined,
      parts
    })

    /**
     * A `complete` that failed: a provider that answered with an error status billed nothing; one
     * that timed out, was cut, was interrupted or sent a malformed reply may have billed the call,
     * so its usage is unknown.
     */
    const failedCall = (error: internal.ErrorInfo): internal.Settled =>
      error.status !== undefined
        ? failed(Usage.emptyTokens, 0, error, undefined)
        : failed(undefined, undefined, error, undefined)

    const succeeded = (
      response: Response.LLMResponse,
      parts: ReadonlyArray<Message.Part> | undefined
    ): internal.Settled => ({
      usage: response.usageUnknown === true ? undefined : response.usage,
      costUsd: response.costUsd,
      error: undefined,
      requestId: response.requestId,
      responseModel: response.model,
      finishReason: response.finishReason,
      parts
    })

    const completeIn = (
      fiber: Fiber.RuntimeFiber<unknown, unknown>,
      resolved: ResolvedRequest,
      span: Tracer.Span
    ): Effect.Effect<Response.LLMResponse, LLMError.LLMError> => {
      const call = begin(fiber, Telemetry.SpanNames.complete, span, resolved)
      const invalid = driver.validate?.(resolved)
      if (invalid !== undefined) return Effect.zipRight(refuse(call, invalid), Effect.failCause(Cause.fail(invalid)))
      return driver.complete(resolved).pipe(
        Effect.mapErrorCause(originalErrors),
        Effect.map((completed) => {
          const builder = new ResponseBuilder()
          builder.addAll(completed.events)
          builder.add(price(resolved.model, finishEvent(driver.providerId, completed.finish)))
          return builder.build()
        }),
        Effect.onExit((exit) =>
          Exit.isSuccess(exit)
            ? record(call, succeeded(exit.value, call.recordContent ? exit.value.parts : undefined))
            : record(call, failedCall(internal.errorOfCause(exit.cause)))
        )
      )
    }

    const complete = (request: LLM.CompletionRequest): Effect.Effect<Response.LLMResponse, LLMError.LLMError> =>
      Effect.withFiberRuntime((fiber) => {
        const resolved = resolve(request)
        if (!observed(fiber)) return completeIn(fiber, resolved, unobservedSpan)
        return Effect.useSpan(
          Telemetry.SpanNames.complete,
          spanOptions(driver, resolved),
          // The span is the parent of everything the call does.
          (span) => Effect.withParentSpan(completeIn(fiber, resolved, span), span)
        )
      })

    const stream = (request: LLM.CompletionRequest): Stream.Stream<Response.StreamEvent, LLMError.LLMError> =>
      // One channel finalizer ends the span and records a stream that did not reach its `Finish`
      // (lighter than `Stream.withSpan` + `Stream.unwrap` + `Stream.ensuringWith`).
      Stream.fromChannel(Channel.suspend(() => {
        const resolved = resolve(request)
        // Per-stream scratch, touched only by this stream's fiber.
        let call: Call | undefined = undefined
        let reported: Usage.Tokens | undefined = undefined
        let recorded = false
        let first = true
        let content: ResponseBuilder | undefined = undefined
        const report: ReportUsage = (usage) => {
          reported = usage
        }

        /** `record`, with the stream's span as the parent of its log lines (which become span events). */
        const settle = (call: Call, settled: internal.Settled) =>
          call.tracing ? Effect.withParentSpan(record(call, settled), call.span) : record(call, settled)

        type Batch = Chunk.Chunk<Response.StreamEvent>
        type Events = Channel.Channel<Batch, unknown, LLMError.LLMError>

        /**
         * The driver's events, each batch looked at once: the time to the first event, the content
         * when it is recorded, and at the `Finish` the price and the tally. A reader written by hand,
         * so that a batch without a `Finish` (all but the last) costs no effect.
         */
        const body = (call: Call): Events => {
          const reader: Channel.Channel<Batch, Batch, LLMError.LLMError, LLMError.LLMError, unknown, unknown> = Channel
            .readWithCause({
              onInput: (chunk: Batch) => {
                if (first && Chunk.isNonEmpty(chunk)) {
                  // Once per stream, at its first batch of events.
                  first = false
                  const millis = internal.elapsedMs(call.clock, call.started)
                  call.span.attribute(Telemetry.Attributes.timeToFirstEventMs, millis)
                  instruments.firstEvent(call.model, millis, call.metricTags)
                }
                if (content !== undefined) {
                  content.addAll(chunk)
                }
                const last = Chunk.last(chunk)
                if (Option.isNone(last) || last.value._tag !== "Finish") {
                  return Channel.flatMap(Channel.write(chunk), () => reader)
                }
                const finish = price(resolved.model, last.value)
                recorded = true
                const settled = settle(call, {
                  usage: finish.usageUnknown === true ? undefined : finish.usage,
                  costUsd: finish.costUsd,
                  error: undefined,
                  requestId: finish.requestId,
                  responseModel: finish.model,
                  finishReason: finish.finishReason,
                  parts: content === undefined ? undefined : content.build().parts
                })
                // Not Chunk.append(Chunk.dropRight(...)): that pair loses elements when chunks are later
                // concatenated in effect 3.22 (Effect-TS/effect#7616).
                const priced = Chunk.unsafeFromArray([...Chunk.toReadonlyArray(chunk).slice(0, -1), finish])
                return Channel.flatMap(
                  Channel.fromEffect(settled),
                  () => Channel.flatMap(Channel.write(priced), () => reader)
                )
              },
              onFailure: (cause) => Channel.failCause(originalErrors(cause)),
              onDone: () => Channel.void
            })
          return Channel.pipeTo(Stream.toChannel(driver.stream(resolved, report)), reader)
        }

        const open = Effect.uninterruptible(Effect.withFiberRuntime<Events>((fiber) => {
          const tracing = observed(fiber)
          return Effect.flatMap(
            tracing
              ? Effect.makeSpan(Telemetry.SpanNames.stream, spanOptions(driver, resolved))
              : Effect.succeed(unobservedSpan),
            (span): Effect.Effect<Events> => {
              const started = begin(fiber, Telemetry.SpanNames.stream, span, resolved)
              call = started
              const invalid = driver.validate?.(resolved)
              if (invalid !== undefined) {
                recorded = true
                return Effect.as(
                  tracing ? Effect.withParentSpan(refuse(started, invalid), span) : refuse(started, invalid),
                  Channel.failCause(Cause.fail(invalid))
                )
              }
              if (started.recordContent) content = new ResponseBuilder()
              // The span is not provided to the driver's stream as its parent: a channel provides its
              // context again on every pull, which would double the cost of each batch of events.
              return Effect.succeed(body(started))
            }
          )
        }))

        return Channel.ensuringWith(Channel.unwrap(open), (exit) =>
          Effect.suspend(() => {
            const settled = call
            if (settled === undefined) {
              return Effect.void
            }
            const end = Effect.sync(() =>
              settled.span.end(settled.timing ? settled.clock.unsafeCurrentTimeNanos() : BigInt(0), exit)
            )
            if (recorded) {
              return end
            }
            recorded = true
            // What the provider reported before the stream broke; nothing reported is unknown, not zero.
            const tokens = reported
            const costUsd = tokens === undefined ? undefined : Pricing.cost(resolved.model, tokens, driver.pricing)
            // A stream that ends without its `Finish` and without an error was abandoned by its consumer.
            const error = Exit.isFailure(exit) ? internal.errorOfCause(exit.cause) : internal.interrupted
            return Effect.zipRight(settle(settled, failed(tokens, costUsd, error, content?.build().parts)), end)
          }))
      }))

    return {
      providerId: driver.providerId,
      providerType: driver.providerType,
      defaultModel: driver.defaultModel,
      capabilities: (model) => driver.capabilities(model ?? driver.defaultModel),
      complete,
      stream,
      usage: tracker.get,
      resetUsage: tracker.reset
    } satisfies LLM.Service
  })
