/**
 * The telemetry of the shared call path: span attributes, metric updates and content encoding.
 * Everything here is synchronous and allocation-light; the call path (`pipeline.ts`, through the
 * call recorder) calls it once when a call starts, once for a stream's first event, and once when
 * the call settles.
 */
import * as Arr from "effect/Array"
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import type * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import type * as LLM from "../LLM.js"
import type * as Message from "../Message.js"
import type * as Response from "../Response.js"
import * as Telemetry from "../Telemetry.js"
import type * as Usage from "../Usage.js"

const A = Telemetry.Attributes

/** Why a call failed, as telemetry reports it. Never holds a secret: messages are the errors' own,
 * which providers scrub. */
export interface ErrorInfo {
  readonly tag: string
  readonly message: string
  readonly requestId: string | undefined
  readonly status: number | undefined
  /** Interrupted, or a stream its consumer stopped reading before its end: counted as a failure
   * of the call, but not an error of the provider (the span keeps an OK status). */
  readonly interrupted: boolean
}

/** A call interrupted (or a stream abandoned before its end). */
export const interrupted: ErrorInfo = {
  tag: "Interrupted",
  message: "interrupted",
  requestId: undefined,
  status: undefined,
  interrupted: true
}

/** The `ErrorInfo` of a typed error. */
export const errorInfo = (error: unknown): ErrorInfo => {
  if (typeof error === "object" && error !== null) {
    const e = error as {
      readonly _tag?: unknown
      readonly message?: unknown
      readonly requestId?: unknown
      readonly status?: unknown
    }
    return {
      tag: typeof e._tag === "string" ? e._tag : "UnknownError",
      message: typeof e.message === "string" ? e.message : "",
      requestId: typeof e.requestId === "string" ? e.requestId : undefined,
      status: typeof e.status === "number" ? e.status : undefined,
      interrupted: false
    }
  }
  return { tag: "UnknownError", message: "", requestId: undefined, status: undefined, interrupted: false }
}

const defect: ErrorInfo = {
  tag: "Defect",
  message: "an unexpected defect (see the span's exception)",
  requestId: undefined,
  status: undefined,
  interrupted: false
}

/** The `ErrorInfo` of a failed call's cause: its typed error, else a defect, else an interruption. */
export const errorOfCause = (cause: Cause.Cause<unknown>): ErrorInfo => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) return errorInfo(failure.value)
  return Cause.isInterruptedOnly(cause) ? interrupted : defect
}

/** The attributes a call's span starts with. */
export const requestAttributes = (
  providerType: LLM.ProviderType,
  providerId: string,
  request: LLM.ResolvedRequest
): Record<string, unknown> => {
  const attributes: Record<string, unknown> = {
    [A.system]: providerType,
    [A.operationName]: "chat",
    [A.requestModel]: request.model,
    [A.requestMaxTokens]: request.maxTokens,
    [A.providerId]: providerId
  }
  if (request.temperature !== undefined) attributes[A.requestTemperature] = request.temperature
  if (request.topP !== undefined) attributes[A.requestTopP] = request.topP
  if (request.stopSequences !== undefined && request.stopSequences.length > 0) {
    attributes[A.requestStopSequences] = request.stopSequences
  }
  return attributes
}

// -----------------------------------------------------------------------------
// Spans
// -----------------------------------------------------------------------------

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
export const unobservedSpan: Tracer.Span = {
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

/** The options of a call's span. */
export const spanOptions = (
  providerType: LLM.ProviderType,
  providerId: string,
  request: LLM.ResolvedRequest
): Tracer.SpanOptions => ({
  kind: "client",
  // The stack of the call path would name this file, not the caller: not worth an `Error` per call.
  captureStackTrace: false,
  attributes: requestAttributes(providerType, providerId, request)
})

/** How a call settled. */
export interface Settled {
  /** What the provider reported; `undefined` when it reported none: unknown, not zero (unmetered). */
  readonly usage: Usage.Tokens | undefined
  /** `undefined` when the model has no known price. */
  readonly costUsd: number | undefined
  readonly error: ErrorInfo | undefined
  readonly requestId: string | undefined
  readonly responseModel: string | undefined
  readonly finishReason: Response.FinishReason | undefined
  /** The reply's parts, only when content is recorded. */
  readonly parts: ReadonlyArray<Message.Part> | undefined
}

/** Sets the attributes of a settled call on its span. */
export const annotateSettled = (span: Tracer.Span, settled: Settled): void => {
  const error = settled.error
  if (error !== undefined) {
    if (error.interrupted) {
      span.attribute(A.interrupted, true)
    } else {
      span.attribute(A.errorType, error.tag)
      if (error.status !== undefined) span.attribute(A.httpStatusCode, error.status)
    }
  }
  const requestId = settled.requestId ?? error?.requestId
  if (requestId !== undefined) span.attribute(A.responseId, requestId)
  if (settled.responseModel !== undefined && settled.responseModel !== "") {
    span.attribute(A.responseModel, settled.responseModel)
  }
  if (settled.finishReason !== undefined) span.attribute(A.responseFinishReasons, [settled.finishReason])
  const usage = settled.usage
  if (usage !== undefined) {
    span.attribute(A.usageInputTokens, usage.inputTokens)
    span.attribute(A.usageOutputTokens, usage.outputTokens)
    span.attribute(A.cacheReadTokens, usage.cacheReadTokens)
    span.attribute(A.cacheWriteTokens, usage.cacheWriteTokens)
    span.attribute(A.reasoningTokens, usage.reasoningTokens)
  }
  if (usage === undefined) span.attribute(A.unmetered, true)
  else if (settled.costUsd === undefined) span.attribute(A.unpriced, true)
  else span.attribute(A.costUsd, settled.costUsd)
}

/** Sets the attributes of a call refused before any request. */
export const annotateRefused = (span: Tracer.Span, error: ErrorInfo): void => {
  span.attribute(A.errorType, error.tag)
  span.attribute(A.refused, true)
}

/** Milliseconds since `started` (nanoseconds on `clock`). */
export const elapsedMs = (clock: Clock.Clock, started: bigint): number =>
  Number(clock.unsafeCurrentTimeNanos() - started) / 1_000_000

// -----------------------------------------------------------------------------
// Metrics
// -----------------------------------------------------------------------------

/** A provider's metric updates. Label arrays are cached per model (and error), so that Effect's
 * metric hooks are found without a registry lookup on every call. */
export interface Instruments {
  /** The single update of a settled call, next to the usage tally. */
  readonly settle: (
    model: string,
    settled: Settled,
    durationMs: number,
    extra: ReadonlyArray<MetricLabel.MetricLabel>
  ) => void
  readonly firstEvent: (model: string, millis: number, extra: ReadonlyArray<MetricLabel.MetricLabel>) => void
  readonly refuse: (model: string, error: string, extra: ReadonlyArray<MetricLabel.MetricLabel>) => void
}

const withExtra = (
  labels: ReadonlyArray<MetricLabel.MetricLabel>,
  extra: ReadonlyArray<MetricLabel.MetricLabel>
): ReadonlyArray<MetricLabel.MetricLabel> => extra.length === 0 ? labels : Arr.union(labels, extra)

/** Makes the metric updates of one provider. */
export const makeInstruments = (providerId: string): Instruments => {
  const byModel = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()
  const byError = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()
  const modelLabels = (model: string) => {
    let labels = byModel.get(model)
    if (labels === undefined) {
      labels = Telemetry.labels(providerId, model)
      byModel.set(model, labels)
    }
    return labels
  }
  const errorLabels = (model: string, error: string) => {
    const key = `${model}\u0000${error}`
    let labels = byError.get(key)
    if (labels === undefined) {
      labels = Telemetry.labels(providerId, model, error)
      byError.set(key, labels)
    }
    return labels
  }
  return {
    settle: (model, settled, durationMs, extra) => {
      const tags = withExtra(modelLabels(model), extra)
      Telemetry.calls.unsafeUpdate(1, tags)
      const usage = settled.usage
      if (usage !== undefined) {
        if (usage.inputTokens > 0) Telemetry.inputTokens.unsafeUpdate(usage.inputTokens, tags)
        if (usage.outputTokens > 0) Telemetry.outputTokens.unsafeUpdate(usage.outputTokens, tags)
        if (usage.cacheReadTokens > 0) Telemetry.cacheReadTokens.unsafeUpdate(usage.cacheReadTokens, tags)
        if (usage.cacheWriteTokens > 0) Telemetry.cacheWriteTokens.unsafeUpdate(usage.cacheWriteTokens, tags)
        if (usage.reasoningTokens > 0) Telemetry.reasoningTokens.unsafeUpdate(usage.reasoningTokens, tags)
      }
      if (usage === undefined) Telemetry.unmeteredCalls.unsafeUpdate(1, tags)
      else if (settled.costUsd === undefined) Telemetry.unpricedCalls.unsafeUpdate(1, tags)
      else if (settled.costUsd > 0) Telemetry.costUsd.unsafeUpdate(settled.costUsd, tags)
      if (settled.error === undefined) {
        Telemetry.duration.unsafeUpdate(durationMs, tags)
      } else {
        const failed = withExtra(errorLabels(model, settled.error.tag), extra)
        Telemetry.failures.unsafeUpdate(1, failed)
        Telemetry.duration.unsafeUpdate(durationMs, failed)
      }
    },
    firstEvent: (model, millis, extra) => {
      Telemetry.timeToFirstToken.unsafeUpdate(millis, withExtra(modelLabels(model), extra))
    },
    refuse: (model, error, extra) => {
      Telemetry.refusals.unsafeUpdate(1, withExtra(errorLabels(model, error), extra))
    }
  }
}

// -----------------------------------------------------------------------------
// Content (only when recorded)
// -----------------------------------------------------------------------------

const partJson = (part: Message.Part): unknown => {
  switch (part._tag) {
    case "Text":
      return { type: "text", text: part.text }
    case "Image":
      return part.source._tag === "Url"
        ? { type: "image", url: part.source.url }
        : { type: "image", media_type: part.source.mediaType, data: `<${part.source.data.length} base64 characters>` }
    case "ToolCall":
      return { type: "tool_call", id: part.id, name: part.name, arguments: part.input }
    case "ToolResult":
      return { type: "tool_result", tool_call_id: part.toolCallId, content: part.content, is_error: part.isError }
    case "Thinking":
      return { type: "thinking", thinking: part.thinking }
    case "RedactedThinking":
      return { type: "redacted_thinking" }
  }
}

const messageJson = (role: string, parts: ReadonlyArray<Message.Part>): unknown => {
  const only = parts.length === 1 ? parts[0] : undefined
  return { role, content: only !== undefined && only._tag === "Text" ? only.text : parts.map(partJson) }
}

const stringify = (value: unknown): string => {
  try {
    return JSON.stringify(value)
  } catch {
    return "<not serialisable>"
  }
}

/** The prompt as the `gen_ai.prompt` attribute: the system prompt and messages, as JSON (inline
 * images are replaced by their size). */
export const promptJson = (request: LLM.CompletionRequest): string => {
  const messages: Array<unknown> = []
  if (request.system !== undefined) messages.push({ role: "system", content: request.system })
  for (const message of request.messages) messages.push(messageJson(message.role, message.content))
  return stringify(messages)
}

/** The reply as the `gen_ai.completion` attribute: its parts, as JSON. */
export const completionJson = (parts: ReadonlyArray<Message.Part>): string =>
  stringify([messageJson("assistant", parts)])
