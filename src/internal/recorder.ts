/**
 * The call recorder: the one place where a call that reached the provider is accounted for (the
 * usage tally, the metrics, the span's attributes and end, the logs), exactly once.
 *
 * One `Recorder` per call, owned by that call (its `complete` effect, or its stream's channel):
 * it holds everything the call learns on the way (usage reported before the end, the content when
 * it is recorded, whether it was settled). `settle` checks and marks "settled" in the same
 * synchronous step that starts the uninterruptible record, so no interruption can land between
 * the two (which used to lose a call from usage, metrics and the span); `close`, run by the call's
 * finalizer whatever happened, records a call that did not settle and ends its span.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as HashSet from "effect/HashSet"
import * as LogLevel from "effect/LogLevel"
import type * as MetricLabel from "effect/MetricLabel"
import * as Ref from "effect/Ref"
import type * as Tracer from "effect/Tracer"
import type * as LLM from "../LLM.js"
import type * as LLMError from "../LLMError.js"
import type * as Message from "../Message.js"
import * as Pricing from "../Pricing.js"
import type * as Response from "../Response.js"
import * as Telemetry from "../Telemetry.js"
import * as Usage from "../Usage.js"
import * as CallObserver from "./budget/observer.js"
import { ResponseBuilder } from "./builder.js"
import * as internal from "./telemetry.js"

/** What the recorders of one provider share: its tally, its metric updates, its price overrides. */
export interface Ledger {
  readonly providerId: string
  readonly pricing: Pricing.PriceTable | undefined
  readonly tracker: Usage.Tracker
  readonly instruments: internal.Instruments
  /** Warns once per model that has no known price. */
  readonly warnUnpriced: (model: string) => Effect.Effect<void>
}

/** Makes the ledger of one provider. */
export const makeLedger = (providerId: string, pricing: Pricing.PriceTable | undefined): Effect.Effect<Ledger> =>
  Effect.gen(function*() {
    const tracker = yield* Usage.makeTracker
    const warned = yield* Ref.make(HashSet.empty<string>())
    const warnUnpriced = (model: string) =>
      Ref.modify(warned, (set) => HashSet.has(set, model) ? [false, set] : [true, HashSet.add(set, model)]).pipe(
        Effect.flatMap((first) =>
          first
            ? Effect.logWarning(
              `${providerId}: no price known for model "${model}"; its calls are counted as unpriced, not costed. ` +
                `Give it a price with the provider's \`pricing\` option (providers.${providerId}.pricing in a registry config).`
            ).pipe(Effect.annotateLogs({ provider: providerId, model }))
            : Effect.void
        )
      )
    return { providerId, pricing, tracker, instruments: internal.makeInstruments(providerId), warnUnpriced }
  })

/** What the call's telemetry reads from the calling fiber, once, when the call starts. */
interface Started {
  readonly operation: string
  readonly span: Tracer.Span
  readonly clock: Clock.Clock
  /** Nanoseconds on `clock`. */
  readonly started: bigint
  /** The caller's metric tags (`Effect.tagMetrics`), added to ours. */
  readonly metricTags: ReadonlyArray<MetricLabel.MetricLabel>
  readonly logLevel: LogLevel.LogLevel
  readonly recordContent: boolean
  /** Whether the span is observed; when not, `span` is a no-op. */
  readonly tracing: boolean
  /** Whether spans take their times from the clock (`FiberRef.currentTracerTimingEnabled`). */
  readonly timing: boolean
}

/** The recorder of one call. */
export class Recorder {
  /** Usage the provider reported before the end of the reply: what a broken call is billed. */
  private reported: Usage.Tokens | undefined = undefined
  /** The reply so far, only when content is recorded. */
  private content: ResponseBuilder | undefined = undefined
  private started: Started | undefined = undefined
  private first = true
  private settled = false
  /** The budget guards around the call (from the calling fiber's context), told how it settled. */
  private observer: CallObserver.CallObserver | undefined = undefined

  constructor(
    readonly ledger: Ledger,
    /** The requested model: the key of the usage breakdown and the metrics' `model` tag. */
    readonly model: string
  ) {}

  /** Handed to the driver: usage the provider reported before the end. */
  readonly report = (usage: Usage.Tokens): void => {
    this.reported = usage
  }

  /** Starts the call: reads its telemetry settings from the calling fiber. */
  start(
    fiber: Fiber.RuntimeFiber<unknown, unknown>,
    operation: string,
    span: Tracer.Span,
    request: LLM.CompletionRequest
  ): void {
    const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
    const started = clock.unsafeCurrentTimeNanos()
    const recordContent = fiber.getFiberRef(Telemetry.recordContent)
    this.observer = fiber.getFiberRef(CallObserver.currentCallObserver)
    if (recordContent) {
      span.event(Telemetry.EventNames.prompt, started, { [Telemetry.Attributes.prompt]: internal.promptJson(request) })
      this.content = new ResponseBuilder()
    }
    this.started = {
      operation,
      span,
      clock,
      started,
      metricTags: fiber.getFiberRef(FiberRef.currentMetricLabels),
      logLevel: fiber.getFiberRef(FiberRef.currentMinimumLogLevel),
      recordContent,
      tracing: span !== internal.unobservedSpan,
      timing: fiber.getFiberRef(FiberRef.currentTracerTimingEnabled)
    }
  }

  /** Whether content is recorded (then `complete` hands the reply's parts to `succeed`). */
  get recordsContent(): boolean {
    return this.started?.recordContent === true
  }

  /** A batch of a stream's events: the time to the first one, and the content when recorded. */
  events(events: Iterable<Response.StreamEvent>, nonEmpty: boolean): void {
    const call = this.started
    if (call === undefined) return
    if (this.first && nonEmpty) {
      this.first = false
      const millis = internal.elapsedMs(call.clock, call.started)
      call.span.attribute(Telemetry.Attributes.timeToFirstEventMs, millis)
      this.ledger.instruments.firstEvent(this.model, millis, call.metricTags)
    }
    if (this.content !== undefined) this.content.addAll(events)
  }

  /** The cost of a reply: the provider's own, else the price table's (by the answering model, then the requested one). */
  costOf(finish: Response.Finish): number | undefined {
    if (finish.costUsd !== undefined) return finish.costUsd
    const pricing = this.ledger.pricing
    const byReply = finish.model === "" ? undefined : Pricing.cost(finish.model, finish.usage, pricing)
    return byReply ?? Pricing.cost(this.model, finish.usage, pricing)
  }

  /** A `Finish` with its price and the provider's id. */
  price(finish: Response.Finish): Response.Finish {
    const providerId = this.ledger.providerId
    const costUsd = finish.usageUnknown === true ? finish.costUsd : this.costOf(finish)
    return costUsd === finish.costUsd && finish.providerId === providerId ? finish : { ...finish, costUsd, providerId }
  }

  /** Records a stream that reached its (priced) `Finish`. */
  finish(finish: Response.Finish): Effect.Effect<void> {
    return this.settle(() => ({
      usage: finish.usageUnknown === true ? undefined : finish.usage,
      costUsd: finish.costUsd,
      error: undefined,
      requestId: finish.requestId,
      responseModel: finish.model,
      finishReason: finish.finishReason,
      parts: this.content === undefined ? undefined : this.content.build().parts
    }))
  }

  /** Records a `complete` that succeeded. */
  succeed(response: Response.LLMResponse): Effect.Effect<void> {
    return this.settle(() => ({
      usage: response.usageUnknown === true ? undefined : response.usage,
      costUsd: response.costUsd,
      error: undefined,
      requestId: response.requestId,
      responseModel: response.model,
      finishReason: response.finishReason,
      parts: this.recordsContent ? response.parts : undefined
    }))
  }

  /**
   * Records a call that failed. What the provider reported before it broke is what it billed.
   * With nothing reported, its usage is unknown (not zero), except for a `complete` the provider
   * answered with an error status, which billed nothing (one that timed out, was cut, was
   * interrupted or sent a malformed reply may have billed the call).
   */
  fail(error: internal.ErrorInfo, statusBillsNothing: boolean): Effect.Effect<void> {
    return this.settle(() => {
      const tokens = this.reported
      if (tokens !== undefined) {
        return failed(tokens, Pricing.cost(this.model, tokens, this.ledger.pricing), error, this.content?.build().parts)
      }
      return statusBillsNothing && error.status !== undefined
        ? failed(Usage.emptyTokens, 0, error, undefined)
        : failed(undefined, undefined, error, this.content?.build().parts)
    })
  }

  /** A call refused before any request: counted in no usage, only in the refusals metric. */
  refuse(error: LLMError.LLMError): Effect.Effect<void> {
    return Effect.suspend(() => {
      const call = this.started
      if (this.settled || call === undefined) return Effect.void
      this.settled = true
      this.observer?.refused()
      const info = internal.errorInfo(error)
      internal.annotateRefused(call.span, info)
      this.ledger.instruments.refuse(this.model, info.tag, call.metricTags)
      if (LogLevel.greaterThan(call.logLevel, LogLevel.Warning)) return Effect.void
      const log = Effect.logWarning(`${call.operation} ${this.model} refused before any request: ${info.message}`).pipe(
        Effect.annotateLogs({ provider: this.ledger.providerId, model: this.model, error: info.tag })
      )
      return call.tracing ? Effect.withParentSpan(log, call.span) : log
    })
  }

  /**
   * The end of the call, whatever happened (run by its finalizer): records a call that did not
   * settle (a stream that failed, was interrupted or abandoned by its consumer), then ends the span.
   */
  close(exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> {
    return Effect.suspend(() => {
      const call = this.started
      if (call === undefined) return Effect.void
      const end = Effect.sync(() => call.span.end(call.timing ? call.clock.unsafeCurrentTimeNanos() : BigInt(0), exit))
      if (this.settled) return end
      // A call that ends without its `Finish` and without an error was abandoned by its consumer.
      const error = Exit.isFailure(exit) ? internal.errorOfCause(exit.cause) : internal.interrupted
      return Effect.zipRight(this.fail(error, false), end)
    })
  }

  /**
   * The single point where a call that reached the provider is accounted for. The check and the
   * mark happen in the first step of the uninterruptible region: a call is recorded once, and an
   * interruption can never skip it.
   */
  private settle(outcome: () => internal.Settled): Effect.Effect<void> {
    return Effect.uninterruptible(Effect.suspend(() => {
      const call = this.started
      if (this.settled || call === undefined) return Effect.void
      this.settled = true
      const settled = outcome()
      this.observer?.settled({
        usage: settled.usage,
        costUsd: settled.costUsd,
        refusedByStatus: settled.usage === undefined && this.first && settled.error?.status !== undefined &&
          !settled.error.interrupted
      })
      const record = Effect.zipRight(
        this.ledger.tracker.record({
          model: this.model,
          tokens: settled.usage,
          costUsd: settled.costUsd,
          failed: settled.error !== undefined
        }),
        Effect.suspend(() => {
          const durationMs = internal.elapsedMs(call.clock, call.started)
          this.ledger.instruments.settle(this.model, settled, durationMs, call.metricTags)
          internal.annotateSettled(call.span, settled)
          if (settled.parts !== undefined) {
            call.span.event(Telemetry.EventNames.completion, call.clock.unsafeCurrentTimeNanos(), {
              [Telemetry.Attributes.completion]: internal.completionJson(settled.parts)
            })
          }
          const log = this.log(call, settled, durationMs)
          return settled.costUsd === undefined && settled.usage !== undefined
            ? Effect.zipRight(this.ledger.warnUnpriced(this.model), log)
            : log
        })
      )
      // The span is the parent of the log lines (which become span events).
      return call.tracing ? Effect.withParentSpan(record, call.span) : record
    }))
  }

  private log(call: Started, settled: internal.Settled, durationMs: number): Effect.Effect<void> {
    const error = settled.error
    const level = error === undefined || error.interrupted ? LogLevel.Debug : LogLevel.Warning
    if (LogLevel.greaterThan(call.logLevel, level)) return Effect.void
    let message: string
    if (error === undefined) {
      const usage = settled.usage
      const cost = settled.costUsd === undefined ? "unpriced" : `$${settled.costUsd.toFixed(6)}`
      message = usage === undefined
        ? `${call.operation} ${this.model}: usage not reported, ${durationMs.toFixed(1)} ms`
        : `${call.operation} ${this.model}: ${usage.inputTokens} input / ${usage.outputTokens} output tokens, ` +
          `${cost}, ${durationMs.toFixed(1)} ms`
    } else if (error.interrupted) {
      message = `${call.operation} ${this.model}: interrupted after ${durationMs.toFixed(1)} ms`
    } else {
      message = `${call.operation} ${this.model} failed with ${error.tag}: ${error.message}`
    }
    const requestId = settled.requestId ?? error?.requestId
    const annotations: Record<string, unknown> = { provider: this.ledger.providerId, model: this.model }
    if (requestId !== undefined) annotations.request_id = requestId
    if (error !== undefined) annotations.error = error.tag
    return Effect.annotateLogs(Effect.logWithLevel(level, message), annotations)
  }
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
