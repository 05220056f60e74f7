/**
 * Observability of every call, written once in the shared call path so that every provider
 * (Anthropic, OpenAI, LiteLLM, the mock) reports the same way:
 *
 * - a span per call, `LLM.complete` or `LLM.stream` (kind `client`), with the OpenTelemetry GenAI
 *   semantic-convention attributes (`gen_ai.system`, `gen_ai.request.model`,
 *   `gen_ai.usage.input_tokens`, ...) and ours (`llm.provider_id`, `llm.cost_usd`, ...), see
 *   {@link Attributes}. A stream's span covers the whole stream;
 * - Effect `Metric`s tagged by `provider` (the provider id), `model` (the requested model) and, for
 *   failures, `error` (the error's tag): {@link calls}, {@link failures}, the token counters,
 *   {@link costUsd}, {@link duration}, {@link timeToFirstToken}, {@link retries}. They are updated
 *   at the same point as the provider's usage `Ref`, so they always agree with it;
 * - log lines through Effect's `Logger`, annotated with `provider`, `model` and `request_id`: a
 *   debug line per call, a warning per failure, a warning per unpriced model.
 *
 * Prompts and completions are not recorded unless asked for, with {@link recordContent}
 * ({@link withRecordContent}, {@link layerRecordContent}). An API key never is, nor the value of
 * any configured extra header: the providers scrub them from errors, and redact every configured
 * header name from `@effect/platform`'s `HttpClient` spans ({@link withRedactedHeaders}).
 *
 * Export spans and metrics with `@effect/opentelemetry` (see `docs/observability.md`), or read the
 * metrics in process with `Metric.value` / `Metric.snapshot`.
 *
 * @example
 * ```ts
 * import { Effect, Metric } from "effect"
 * import { LLM, Message, Telemetry } from "@orchestify/providers"
 *
 * const program = Effect.gen(function*() {
 *   yield* LLM.complete({ messages: [Message.user("Hello")] })
 *   const calls = yield* Metric.value(
 *     Metric.taggedWithLabels(Telemetry.calls, Telemetry.labels("anthropic", "claude-sonnet-4-6"))
 *   )
 *   yield* Effect.log(`${calls.count} calls`)
 * })
 *
 * // Record prompts and completions on the spans of this program (off by default)
 * const withContent = program.pipe(Telemetry.withRecordContent(true))
 * ```
 *
 * @since 0.1.0
 */
import * as Headers from "@effect/platform/Headers"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import { dual } from "effect/Function"
import { globalValue } from "effect/GlobalValue"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricLabel from "effect/MetricLabel"

// -----------------------------------------------------------------------------
// Options
// -----------------------------------------------------------------------------

/**
 * Whether calls record their prompt and completion on their span (as the events
 * `gen_ai.content.prompt` and `gen_ai.content.completion`, with the attributes `gen_ai.prompt` and
 * `gen_ai.completion`). Off by default: prompts and completions often hold personal data. Read in
 * the fiber that makes the call.
 *
 * @since 0.1.0
 * @category Options
 */
export const recordContent: FiberRef.FiberRef<boolean> = globalValue(
  Symbol.for("@orchestify/providers/Telemetry/recordContent"),
  () => FiberRef.unsafeMake(false)
)

/**
 * Runs an effect with content recording on (or off).
 *
 * @since 0.1.0
 * @category Options
 */
export const withRecordContent: {
  (enabled: boolean): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  <A, E, R>(self: Effect.Effect<A, E, R>, enabled: boolean): Effect.Effect<A, E, R>
} = dual(
  2,
  <A, E, R>(self: Effect.Effect<A, E, R>, enabled: boolean): Effect.Effect<A, E, R> =>
    Effect.locally(self, recordContent, enabled)
)

/**
 * A layer turning content recording on (or off) for the program it is provided to.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerRecordContent = (enabled: boolean = true): Layer.Layer<never> =>
  Layer.locallyScoped(recordContent, enabled)

// -----------------------------------------------------------------------------
// Spans
// -----------------------------------------------------------------------------

/**
 * Runs an effect with more request header names redacted from `@effect/platform`'s `HttpClient`
 * spans (`http.request.header.<name>` shows `<redacted>`), on top of the ones redacted already
 * (`Headers.currentRedactedNames`: `authorization`, `cookie`, `set-cookie`, `x-api-key` by default).
 * Names are compared case-insensitively. The LiteLLM provider applies it with `api-key` and every
 * configured extra header; a provider written on `LLM.make` over `HttpClient` should too.
 *
 * @example
 * ```ts
 * import { HttpClient, HttpClientRequest } from "@effect/platform"
 * import { Effect } from "effect"
 * import { Telemetry } from "@orchestify/providers"
 *
 * const sent = Effect.flatMap(HttpClient.HttpClient, (client) =>
 *   client.execute(HttpClientRequest.get("https://gateway.example/v1/models").pipe(
 *     HttpClientRequest.setHeader("Ocp-Apim-Subscription-Key", "...")
 *   ))
 * ).pipe(Telemetry.withRedactedHeaders(["Ocp-Apim-Subscription-Key"]))
 * ```
 *
 * @since 0.1.0
 * @category Spans
 */
export const withRedactedHeaders: {
  (names: Iterable<string>): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  <A, E, R>(self: Effect.Effect<A, E, R>, names: Iterable<string>): Effect.Effect<A, E, R>
} = dual(
  2,
  <A, E, R>(self: Effect.Effect<A, E, R>, names: Iterable<string>): Effect.Effect<A, E, R> => {
    const added = [...names].map((name) => name.toLowerCase())
    return added.length === 0
      ? self
      : Effect.locallyWith(self, Headers.currentRedactedNames, (current) => [...current, ...added])
  }
)

/**
 * The names of the spans.
 *
 * @since 0.1.0
 * @category Spans
 */
export const SpanNames = {
  complete: "LLM.complete",
  stream: "LLM.stream",
  /** A count request to the provider (Anthropic's `count_tokens`): `countTokens({ method: "provider" })` and the context-fit guard's confirming count. */
  countTokens: "LLM.countTokens"
} as const

/**
 * The span attributes. The `gen_ai.*` ones follow the OpenTelemetry GenAI semantic conventions;
 * the `llm.*` ones are ours. Attributes a call does not know (a temperature it did not set, the
 * usage of a call that failed before any was reported) are left out.
 *
 * @since 0.1.0
 * @category Spans
 */
export const Attributes = {
  /** The provider type: `anthropic`, `openai`, `litellm`, `mock`. */
  system: "gen_ai.system",
  /** Always `chat`. */
  operationName: "gen_ai.operation.name",
  requestModel: "gen_ai.request.model",
  requestMaxTokens: "gen_ai.request.max_tokens",
  requestTemperature: "gen_ai.request.temperature",
  requestTopP: "gen_ai.request.top_p",
  requestStopSequences: "gen_ai.request.stop_sequences",
  /** The provider's request id (the one to quote to its support). */
  responseId: "gen_ai.response.id",
  responseModel: "gen_ai.response.model",
  /** An array with the normalised finish reason (`stop`, `length`, `tool_calls`, ...). */
  responseFinishReasons: "gen_ai.response.finish_reasons",
  usageInputTokens: "gen_ai.usage.input_tokens",
  usageOutputTokens: "gen_ai.usage.output_tokens",
  /** The error's tag (`RateLimitError`, ...) on a failed call. */
  errorType: "error.type",
  /** The HTTP status of a failed call, when there was one. */
  httpStatusCode: "http.response.status_code",
  providerId: "llm.provider_id",
  costUsd: "llm.cost_usd",
  cacheReadTokens: "llm.usage.cache_read_tokens",
  cacheWriteTokens: "llm.usage.cache_write_tokens",
  reasoningTokens: "llm.usage.reasoning_tokens",
  /** `true` when the model has no known price: the call is not costed. */
  unpriced: "llm.unpriced",
  /** `true` when the provider reported no usage for the call (tokens and cost unknown). */
  unmetered: "llm.unmetered",
  /** `true` when the call was refused locally, before any request (it reached no provider). */
  refused: "llm.refused",
  /** `true` when the call was interrupted, or its stream abandoned before its end. */
  interrupted: "llm.interrupted",
  /** Streams: milliseconds from the call to its first event. */
  timeToFirstEventMs: "llm.time_to_first_event_ms",
  /** Attribute of the `gen_ai.content.prompt` event: the system prompt and messages, as JSON. */
  prompt: "gen_ai.prompt",
  /** Attribute of the `gen_ai.content.completion` event: the reply's parts, as JSON. */
  completion: "gen_ai.completion"
} as const

/**
 * The names of the span events that carry content when {@link recordContent} is on.
 *
 * @since 0.1.0
 * @category Spans
 */
export const EventNames = {
  prompt: "gen_ai.content.prompt",
  completion: "gen_ai.content.completion"
} as const

// -----------------------------------------------------------------------------
// Metrics
// -----------------------------------------------------------------------------

/**
 * The keys of the metrics' tags, in the order the call path applies them.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const TagKeys = {
  /** The provider id (`claude_main`, or the provider type when none was given). */
  provider: "provider",
  /** The requested model (the key of the usage `byModel` breakdown). */
  model: "model",
  /** The error's tag, on failures; `Interrupted` for a call interrupted or a stream abandoned. */
  error: "error"
} as const

/**
 * The tags of a provider's metrics for a model (and an error tag), in the order the call path
 * applies them: use it to read one series back, e.g.
 * `Metric.value(Metric.taggedWithLabels(Telemetry.calls, Telemetry.labels("claude_main", "claude-sonnet-4-6")))`.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const labels = (provider: string, model: string, error?: string): ReadonlyArray<MetricLabel.MetricLabel> =>
  error === undefined
    ? [MetricLabel.make(TagKeys.provider, provider), MetricLabel.make(TagKeys.model, model)]
    : [
      MetricLabel.make(TagKeys.provider, provider),
      MetricLabel.make(TagKeys.model, model),
      MetricLabel.make(TagKeys.error, error)
    ]

/**
 * Calls that reached a provider (succeeded or failed), as the usage `calls`. Tags: provider, model.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const calls = Metric.counter("llm.calls", {
  description: "LLM calls that reached a provider",
  incremental: true
})

/**
 * Of those, calls that failed, as the usage `failures`. Tags: provider, model, error.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const failures = Metric.counter("llm.failures", {
  description: "LLM calls that failed, by error tag",
  incremental: true
})

/**
 * Calls refused before any request, so counted in no usage: a local validation, and whatever
 * else refuses a call (a budget, a circuit breaker) through {@link recordRefusal}. Tags: provider,
 * model, error.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const refusals = Metric.counter("llm.refusals", {
  description: "LLM calls refused locally, before any request, by error tag",
  incremental: true
})

/**
 * Calls on a model with no known price, as the usage `unpricedCalls`. Tags: provider, model.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const unpricedCalls = Metric.counter("llm.unpriced_calls", {
  description: "LLM calls on a model with no known price (not costed)",
  incremental: true
})

/**
 * Calls whose usage the provider never reported (unknown, not zero), as the usage
 * `unmeteredCalls`. Tags: provider, model.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const unmeteredCalls = Metric.counter("llm.unmetered_calls", {
  description: "LLM calls whose usage the provider never reported (tokens and cost unknown)",
  incremental: true
})

/**
 * Prompt tokens, cache reads and writes included, as the usage `inputTokens`. Tags: provider, model.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const inputTokens = Metric.counter("llm.tokens.input", {
  description: "Prompt tokens, cache reads and writes included",
  incremental: true
})

/**
 * Generated tokens, reasoning included, as the usage `outputTokens`. Tags: provider, model.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const outputTokens = Metric.counter("llm.tokens.output", {
  description: "Generated tokens, reasoning included",
  incremental: true
})

/**
 * Prompt tokens read from the provider's cache, as the usage `cacheReadTokens`. Tags: provider, model.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const cacheReadTokens = Metric.counter("llm.tokens.cache_read", {
  description: "Prompt tokens read from the provider's cache",
  incremental: true
})

/**
 * Prompt tokens written to the provider's cache, as the usage `cacheWriteTokens`. Tags: provider, model.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const cacheWriteTokens = Metric.counter("llm.tokens.cache_write", {
  description: "Prompt tokens written to the provider's cache",
  incremental: true
})

/**
 * Generated reasoning tokens, as the usage `reasoningTokens`. Tags: provider, model.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const reasoningTokens = Metric.counter("llm.tokens.reasoning", {
  description: "Generated reasoning tokens",
  incremental: true
})

/**
 * Cost in USD (a double), as the usage `costUsd`; unpriced calls add nothing. Tags: provider, model.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const costUsd = Metric.counter("llm.cost_usd", {
  description: "Cost of LLM calls in USD (unpriced calls add nothing)",
  incremental: true
})

/**
 * Call duration in milliseconds: for `complete` until the reply, for a stream until its end
 * (or its failure). Tags: provider, model, and error for a failed call.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const duration = Metric.histogram(
  "llm.call.duration_ms",
  MetricBoundaries.exponential({ start: 25, factor: 2, count: 16 }),
  "Duration of LLM calls in milliseconds"
)

/**
 * Streams: milliseconds from the call to its first event. Tags: provider, model.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const timeToFirstToken = Metric.histogram(
  "llm.stream.time_to_first_token_ms",
  MetricBoundaries.exponential({ start: 10, factor: 2, count: 15 }),
  "Time from an LLM stream's call to its first event, in milliseconds"
)

/**
 * Retries of calls, for retry code to increment (through {@link recordRetry}). Tags: provider,
 * model, error (the error that caused the retry).
 *
 * @since 0.1.0
 * @category Metrics
 */
export const retries = Metric.counter("llm.retries", {
  description: "Retried LLM calls, by the error that caused the retry",
  incremental: true
})

/**
 * Counts one retry of a call on a provider's model, caused by an error tag.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const recordRetry = (provider: string, model: string, error: string): Effect.Effect<void> =>
  Metric.increment(Metric.taggedWithLabels(retries, labels(provider, model, error)))

/**
 * Counts one call refused before any request (by a budget, a breaker, a local check).
 *
 * @since 0.1.0
 * @category Metrics
 */
export const recordRefusal = (provider: string, model: string, error: string): Effect.Effect<void> =>
  Metric.increment(Metric.taggedWithLabels(refusals, labels(provider, model, error)))
