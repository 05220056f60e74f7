/**
 * Turns an `LLM` into a sturdier `LLM`, and gives the pieces to Effect users:
 *
 * - `retryPolicy` / `retry` / `withRetry`: a retry `Schedule` over `LLMError`s that honours the
 *   provider's `retry-after`, applied to an `Effect`, a `Stream` (only while it has emitted nothing,
 *   so no consumer ever sees an event twice) or every call of an `LLM`;
 * - `withTimeout`: total, time-to-first-event and idle timeouts, failing with `TimeoutError`;
 * - `withCircuitBreaker`: stops calling a failing provider for a while (`CircuitOpenError`), with a
 *   breaker from the `CircuitBreaker` module;
 * - `withFallback` / `fallbackChain`: an ordered chain of providers, built on `ExecutionPlan`;
 * - `wrap` / `layer`: a chosen set of the above, in one documented order:
 *   `fallback(retry(circuitBreaker(timeout(llm))))`.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { Anthropic, LLM, Message, Resilience } from "@orchestify/providers"
 *
 * // One call, retried with the defaults: 3 retries, 500 ms exponential backoff with jitter,
 * // at least the provider's retry-after, never on an error that is not retryable
 * const reply = LLM.complete({ messages: [Message.user("Hello")] }).pipe(Resilience.retry())
 *
 * // Every call of the LLM in context: 30 s per attempt, a circuit breaker, 5 retries
 * const live = Resilience.layer({
 *   timeout: { total: "30 seconds", firstEvent: "10 seconds", idle: "5 seconds" },
 *   circuitBreaker: { failureThreshold: 5, resetTimeout: "30 seconds" },
 *   retry: { maxRetries: 5, maxDelay: "10 seconds" }
 * }).pipe(Layer.provide(Anthropic.layerConfig()))
 *
 * const program = reply.pipe(Effect.provide(live))
 * ```
 *
 * @since 0.1.0
 */
import type * as Arr from "effect/Array"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionPlan from "effect/ExecutionPlan"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Breaker from "./CircuitBreaker.js"
import * as Retry from "./internal/retry.js"
import * as LLM from "./LLM.js"
import * as LLMError from "./LLMError.js"
import * as Usage from "./Usage.js"

/**
 * Options of {@link retryPolicy}.
 *
 * @since 0.1.0
 * @category Models
 */
export interface RetryOptions {
  /** Retries after the first attempt. Default 3 (so at most 4 calls). */
  readonly maxRetries?: number | undefined
  /** The first backoff delay. Default 500 millis. */
  readonly baseDelay?: Duration.DurationInput | undefined
  /** Each backoff delay is the previous one times this. Default 2. */
  readonly factor?: number | undefined
  /** Randomise each backoff delay between 0.8x and 1.2x. Default `true`. */
  readonly jitter?: boolean | undefined
  /** The longest backoff delay (after jitter). Default 30 seconds. A provider's `retryAfter` may exceed it. */
  readonly maxDelay?: Duration.DurationInput | undefined
  /**
   * Give up rather than wait longer than this for a provider's `retryAfter`: an error asking for
   * more is returned at once. Default 60 seconds.
   */
  readonly maxRetryAfter?: Duration.DurationInput | undefined
  /**
   * Schedule no retry that would start later than this after the first failure. Default: no limit
   * (only `maxRetries` bounds the retries).
   */
  readonly maxElapsed?: Duration.DurationInput | undefined
}

/**
 * A retry schedule over `LLMError` inputs, as {@link retry} takes it (its output is not used).
 *
 * @since 0.1.0
 * @category Models
 */
export type RetryPolicy = Schedule.Schedule<unknown, LLMError.LLMError>

/**
 * What {@link retry} applies to: an `Effect` or a `Stream` failing with `LLMError`s.
 *
 * @since 0.1.0
 * @category Models
 */
export type Retryable =
  | Effect.Effect<any, LLMError.LLMError, any>
  | Stream.Stream<any, LLMError.LLMError, any>

/**
 * The type of a retried `Effect` or `Stream`: the same successes, errors and requirements.
 *
 * @since 0.1.0
 * @category Models
 */
export type Retried<S> = S extends Effect.Effect<infer A, infer E, infer R> ? Effect.Effect<A, E, R>
  : S extends Stream.Stream<infer A, infer E, infer R> ? Stream.Stream<A, E, R>
  : never

const withinRetryAfter = (max: Duration.Duration) => (error: LLMError.LLMError): boolean =>
  Option.match(LLMError.retryAfter(error), {
    onNone: () => true,
    onSome: (wait) => Duration.lessThanOrEqualTo(wait, max)
  })

/**
 * The retry schedule for LLM calls: exponential backoff (default 500 ms, x2) with jitter, each
 * delay capped at `maxDelay`, raised to the error's `retryAfter` when the provider asked for
 * longer; it stops on an error that is not retryable (`LLMError.isRetryable`), on a `retryAfter`
 * above `maxRetryAfter`, after `maxRetries` retries, and (when set) past `maxElapsed`. Its output
 * is the delay before the next attempt.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const retryPolicy = (options?: RetryOptions): Schedule.Schedule<Duration.Duration, LLMError.LLMError> => {
  const maxRetries = options?.maxRetries ?? 3
  const maxDelay = Duration.decode(options?.maxDelay ?? Duration.seconds(30))
  const maxRetryAfter = Duration.decode(options?.maxRetryAfter ?? Duration.seconds(60))
  const exponential = Schedule.exponential(options?.baseDelay ?? Duration.millis(500), options?.factor ?? 2)
  const backoff = (options?.jitter ?? true) ? Schedule.jittered(exponential) : exponential
  const policy = backoff.pipe(
    Schedule.modifyDelay((_, delay) => Duration.min(delay, maxDelay)),
    Schedule.zipRight(Schedule.identity<LLMError.LLMError>()),
    Schedule.modifyDelay((error, delay) =>
      Option.match(LLMError.retryAfter(error), {
        onNone: () => delay,
        onSome: (wait) => Duration.max(delay, wait)
      })
    ),
    Schedule.whileInput(LLMError.isRetryable),
    Schedule.whileInput(withinRetryAfter(maxRetryAfter)),
    Schedule.intersect(Schedule.recurs(maxRetries)),
    Schedule.delays
  )
  if (options?.maxElapsed === undefined) return policy
  const maxElapsed = Duration.decode(options.maxElapsed)
  return policy.pipe(
    Schedule.intersect(Schedule.elapsed),
    Schedule.whileOutput(([delay, elapsed]) => Duration.lessThanOrEqualTo(Duration.sum(elapsed, delay), maxElapsed)),
    Schedule.map(([delay]) => delay)
  )
}

const toPolicy = (options: RetryOptions | RetryPolicy | undefined): RetryPolicy =>
  Schedule.isSchedule(options) ? options as RetryPolicy : retryPolicy(options)

const isRetryable = (u: unknown): u is Retryable => Effect.isEffect(u) || Predicate.hasProperty(u, Stream.StreamTypeId)

/**
 * Retries an `Effect` or a `Stream` that fails with `LLMError`s, with {@link retryPolicy} built from
 * the options, or with a ready schedule. An `Effect` is retried with `Effect.retry`. A `Stream` is
 * retried only while the failing attempt has emitted nothing: once an element has reached the
 * consumer, a failure reaches the consumer unchanged, so no element is ever seen twice.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const retry: {
  (options?: RetryOptions | RetryPolicy): <S extends Retryable>(self: S) => Retried<S>
  <S extends Retryable>(self: S, options?: RetryOptions | RetryPolicy): Retried<S>
} = dual(
  (args) => isRetryable(args[0]),
  (self: Retryable, options?: RetryOptions | RetryPolicy): Retryable => {
    const policy = toPolicy(options)
    // Check Effect first: in Effect 3 every Effect is also a Stream.
    return Effect.isEffect(self)
      ? Retry.effect(self as Effect.Effect<unknown, LLMError.LLMError, unknown>, policy)
      : Retry.stream(self as Stream.Stream<unknown, LLMError.LLMError, unknown>, policy)
  }
)

/**
 * An `LLM` whose `complete` and `stream` are retried (see {@link retry}); every attempt after the
 * first is counted in the `llm.retries` metric, tagged with the error that caused it. Usage,
 * capabilities and the rest are the wrapped provider's. Both `withRetry(llm, options)` and
 * `pipe(llm, withRetry(options))` work.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const withRetry: {
  (options?: RetryOptions | RetryPolicy): (llm: LLM.Service) => LLM.Service
  (llm: LLM.Service, options?: RetryOptions | RetryPolicy): LLM.Service
} = dual(
  (args) => LLM.isLLM(args[0]),
  (llm: LLM.Service, options?: RetryOptions | RetryPolicy): LLM.Service => Retry.service(llm, toPolicy(options))
)

/**
 * The old name of {@link withRetry}.
 *
 * @deprecated Use {@link withRetry}.
 * @since 0.1.0
 * @category Combinators
 */
export const retryLLM: {
  (options?: RetryOptions | RetryPolicy): (llm: LLM.Service) => LLM.Service
  (llm: LLM.Service, options?: RetryOptions | RetryPolicy): LLM.Service
} = withRetry

/**
 * Replaces the `LLM` in context with one that retries its calls.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerRetry = (options?: RetryOptions | RetryPolicy): Layer.Layer<LLM.LLM, never, LLM.LLM> =>
  Layer.effect(LLM.LLM, Effect.map(LLM.LLM, withRetry(options)))

// -----------------------------------------------------------------------------
// Timeouts
// -----------------------------------------------------------------------------

/**
 * The timeouts of {@link withTimeout}. Each is optional; a bare duration is `total`.
 *
 * - `total`: the whole call (`complete`), or the whole stream from its start to its last event.
 * - `firstEvent`: a stream's wait for its first event (the time to first token, roughly).
 * - `idle`: a stream's wait for each further event.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Timeouts {
  readonly total?: Duration.DurationInput | undefined
  readonly firstEvent?: Duration.DurationInput | undefined
  readonly idle?: Duration.DurationInput | undefined
}

/**
 * What {@link withTimeout} takes: a total timeout, or {@link Timeouts}.
 *
 * @since 0.1.0
 * @category Models
 */
export type TimeoutOptions = Duration.DurationInput | Timeouts

interface ResolvedTimeouts {
  readonly total: Duration.Duration | undefined
  readonly firstEvent: Duration.Duration | undefined
  readonly idle: Duration.Duration | undefined
}

const isTimeouts = (u: TimeoutOptions): u is Timeouts =>
  typeof u === "object" && u !== null && !Array.isArray(u) && !Duration.isDuration(u)

const decodeOptional = (input: Duration.DurationInput | undefined): Duration.Duration | undefined =>
  input === undefined ? undefined : Duration.decode(input)

const resolveTimeouts = (options: TimeoutOptions): ResolvedTimeouts =>
  isTimeouts(options)
    ? {
      total: decodeOptional(options.total),
      firstEvent: decodeOptional(options.firstEvent),
      idle: decodeOptional(options.idle)
    }
    : { total: Duration.decode(options), firstEvent: undefined, idle: undefined }

type TimeoutKind = "total" | "firstEvent" | "idle"

const timeoutError = (provider: string, kind: TimeoutKind, timeout: Duration.Duration): LLMError.TimeoutError =>
  new LLMError.TimeoutError({
    provider,
    timeout,
    message: kind === "total"
      ? `${provider}: no complete answer within ${Duration.format(timeout)} (total timeout)`
      : kind === "firstEvent"
      ? `${provider}: no first event within ${Duration.format(timeout)} (first-event timeout)`
      : `${provider}: the stream was silent for ${Duration.format(timeout)} (idle timeout)`
  })

const timeStream = <A>(
  self: Stream.Stream<A, LLMError.LLMError>,
  provider: string,
  timeouts: ResolvedTimeouts
): Stream.Stream<A, LLMError.LLMError> =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    // Pulling from the stream by hand, each pull under the tightest timeout that applies to it.
    // A timeout interrupts the pull and closes this scope, which closes the provider's stream:
    // its HTTP request is aborted.
    const pull = yield* Stream.toPull(self)
    const emitted = yield* Ref.make(false)
    const timedPull = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const seen = yield* Ref.get(emitted)
      let limit: [TimeoutKind, Duration.Duration, Duration.Duration] | undefined = undefined
      if (timeouts.total !== undefined) {
        const left = Duration.millis(Math.max(0, Duration.toMillis(timeouts.total) - (now - start)))
        limit = ["total", timeouts.total, left]
      }
      const phase: TimeoutKind = seen ? "idle" : "firstEvent"
      const phaseTimeout = timeouts[phase]
      if (phaseTimeout !== undefined && (limit === undefined || Duration.lessThan(phaseTimeout, limit[2]))) {
        limit = [phase, phaseTimeout, phaseTimeout]
      }
      if (limit === undefined) return yield* pull
      const [kind, timeout, wait] = limit
      if (Duration.isZero(wait)) return yield* Effect.fail(Option.some(timeoutError(provider, kind, timeout)))
      return yield* Effect.timeoutFail(pull, {
        duration: wait,
        onTimeout: () => Option.some(timeoutError(provider, kind, timeout))
      })
    }).pipe(Effect.tap((chunk) => Chunk.isEmpty(chunk) ? Effect.void : Ref.set(emitted, true)))
    return Stream.repeatEffectChunkOption(timedPull)
  }))

/**
 * An `LLM` whose calls fail with `LLMError.TimeoutError` (carrying the timeout that fired) when they
 * take too long: `complete` gets the `total` timeout; `stream` gets `total` for the whole stream,
 * `firstEvent` for its first event and `idle` between two events. A bare duration is `total`.
 *
 * A call that times out is interrupted, and an interrupted provider call aborts its HTTP request,
 * so the provider stops generating (and billing); the usage it reported so far is still recorded.
 * The idle timer runs while the consumer waits for the next event, not while it handles one.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const withTimeout: {
  (options: TimeoutOptions): (llm: LLM.Service) => LLM.Service
  (llm: LLM.Service, options: TimeoutOptions): LLM.Service
} = dual(2, (llm: LLM.Service, options: TimeoutOptions): LLM.Service => {
  const timeouts = resolveTimeouts(options)
  const total = timeouts.total
  return {
    ...llm,
    complete: total === undefined
      ? llm.complete
      : (request) =>
        Effect.timeoutFail(llm.complete(request), {
          duration: total,
          onTimeout: () => timeoutError(llm.providerId, "total", total)
        }),
    stream: (request) => timeStream(llm.stream(request), llm.providerId, timeouts)
  }
})

// -----------------------------------------------------------------------------
// Circuit breaker
// -----------------------------------------------------------------------------

/**
 * Options of {@link withCircuitBreaker}: `CircuitBreaker.Options`.
 *
 * @since 0.1.0
 * @category Models
 */
export type CircuitBreakerOptions = Breaker.Options

/**
 * The state of a circuit breaker.
 *
 * @deprecated Use `CircuitBreaker.State`.
 * @since 0.1.0
 * @category Models
 */
export type CircuitState = Breaker.State

/**
 * A transition of a circuit breaker.
 *
 * @deprecated Use `CircuitBreaker.StateChange`.
 * @since 0.1.0
 * @category Models
 */
export type CircuitStateChange = Breaker.StateChange

/**
 * A circuit breaker on its own.
 *
 * @deprecated Use `CircuitBreaker.CircuitBreaker` (the `CircuitBreaker` module).
 * @since 0.1.0
 * @category Models
 */
export type CircuitBreaker = Breaker.CircuitBreaker

/**
 * Makes a circuit breaker.
 *
 * @deprecated Use `CircuitBreaker.make`.
 * @since 0.1.0
 * @category Constructors
 */
export const makeCircuitBreaker: (
  options: Breaker.Options & { readonly provider: string }
) => Effect.Effect<Breaker.CircuitBreaker> = Breaker.make

/**
 * An `LLM` behind a circuit breaker, so that a failing provider is left alone for a while instead
 * of being hammered (by every caller, and by every retry).
 *
 * - Closed: calls go through. After `failureThreshold` (default 5) consecutive failures (or a
 *   `failureRate` over a `window`) it opens. Failures are retryable errors (rate limits, 5xx,
 *   connection errors, timeouts); an authentication or invalid-request error does not count.
 * - Open: every call fails at once with `LLMError.CircuitOpenError`, without touching the provider;
 *   its `retryAfter` is the time left until the breaker half-opens (`resetTimeout`, default 30 s).
 * - Half-open: exactly one trial call goes through (callers racing it are refused); its success
 *   closes the breaker, its failure opens it again for another `resetTimeout`.
 *
 * A stream counts as a success at its first event, as a failure if it fails before it. The state
 * lives in a `Ref` made when the returned effect runs: run it once per provider and share the
 * result. Usage and identity are the wrapped provider's.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const withCircuitBreaker: {
  (options?: CircuitBreakerOptions): (llm: LLM.Service) => Effect.Effect<LLM.Service>
  (llm: LLM.Service, options?: CircuitBreakerOptions): Effect.Effect<LLM.Service>
} = dual(
  (args) => LLM.isLLM(args[0]),
  (llm: LLM.Service, options?: CircuitBreakerOptions): Effect.Effect<LLM.Service> =>
    Effect.map(Breaker.make({ ...options, provider: llm.providerId }), (breaker) => Breaker.protectLLM(llm, breaker))
)

// -----------------------------------------------------------------------------
// Fallback
// -----------------------------------------------------------------------------

/**
 * Options of {@link withFallback}.
 *
 * @since 0.1.0
 * @category Models
 */
export interface FallbackOptions {
  /** Move on to the next provider after an error for which this holds. Default `LLMError.isRetryable`. */
  readonly when?: ((error: LLMError.LLMError) => boolean) | undefined
  /**
   * Send the request's `model` to every provider. Default `false`: the first provider gets the
   * request as is, each fallback gets it without `model` and answers with its own `defaultModel`
   * (a model name seldom means anything to another vendor).
   */
  readonly sameModel?: boolean | undefined
  /** The chain's `providerId`. Default `"fallback(a,b,c)"` from the providers' ids. */
  readonly providerId?: string | undefined
}

/** A fallback as a step of the chain sees it: announced in the log, and without `model` unless `sameModel`. */
const asFallback = (llm: LLM.Service, sameModel: boolean): LLM.Service => {
  const prepare = (request: LLM.CompletionRequest): LLM.CompletionRequest => {
    if (sameModel || request.model === undefined) return request
    const { model: _, ...rest } = request
    return rest
  }
  const announce = Effect.logWarning(`fallback: trying ${llm.providerId}`)
  return {
    ...llm,
    complete: (request) => Effect.zipRight(announce, llm.complete(prepare(request))),
    stream: (request) => Stream.unwrap(Effect.as(announce, llm.stream(prepare(request)))),
    countTokens: (request, options) => llm.countTokens(prepare(request), options),
    forecast: (request, options) => llm.forecast(prepare(request), options)
  }
}

/**
 * An ordered chain of providers as one `LLM`; see {@link withFallback}.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const fallbackChain = (
  llms: Arr.NonEmptyReadonlyArray<LLM.Service>,
  options?: FallbackOptions
): LLM.Service => {
  const [first, ...rest] = llms
  const when = options?.when ?? LLMError.isRetryable
  // Each step provides the `LLM` tag; the call (`LLM.complete(request)`) is the same for every step,
  // which is exactly what an `ExecutionPlan` runs. A later step runs once (`attempts: 1`), and only
  // if the previous step's error passes `when`; otherwise that error is the chain's. (`while` is
  // also asked about the step's own error before its `attempts` stop it, so it must stay a pure
  // predicate. Steps provide a `Layer` rather than a `Context`: with a `Context` step the plan's
  // error type is inferred as `unknown`.)
  const plan = ExecutionPlan.make(
    { provide: Layer.succeed(LLM.LLM, first) },
    ...rest.map((llm) => ({
      provide: Layer.succeed(LLM.LLM, asFallback(llm, options?.sameModel === true)),
      attempts: 1,
      while: when
    }))
  )
  return {
    providerId: options?.providerId ?? `fallback(${llms.map((llm) => llm.providerId).join(",")})`,
    providerType: first.providerType,
    defaultModel: first.defaultModel,
    capabilities: first.capabilities,
    complete: (request) => Effect.withExecutionPlan(LLM.complete(request), plan),
    // A stream moves on only while it has emitted nothing: no consumer sees two providers' events.
    stream: (request) => Stream.withExecutionPlan(LLM.stream(request), plan, { preventFallbackOnPartialStream: true }),
    // Counted and forecast as the first provider would answer it.
    countTokens: first.countTokens,
    forecast: first.forecast,
    usage: Effect.map(
      Effect.forEach(llms, (llm) => llm.usage),
      (usages) => usages.reduce(Usage.combine, Usage.empty)
    ),
    resetUsage: Effect.forEach(llms, (llm) => llm.resetUsage, { discard: true })
  }
}

/**
 * An `LLM` that asks `primary`, then each of `fallbacks` in order, moving on after an error for
 * which `options.when` holds (by default a retryable one: rate limit, 5xx, connection, timeout,
 * open circuit) and stopping at any other. Built on Effect's `ExecutionPlan`.
 *
 * The answer says who gave it: `LLMResponse.providerId` and `Finish.providerId` are the answering
 * provider's. Each provider records its own usage (a failed attempt counts as a call and a failure
 * of the provider that failed); the chain's `usage` is their sum. A stream falls back only while it
 * has emitted nothing; after its first event a failure reaches the consumer. Both
 * `withFallback(primary, fallbacks)` and `pipe(primary, withFallback(fallbacks))` work.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const withFallback: {
  (fallbacks: ReadonlyArray<LLM.Service>, options?: FallbackOptions): (primary: LLM.Service) => LLM.Service
  (primary: LLM.Service, fallbacks: ReadonlyArray<LLM.Service>, options?: FallbackOptions): LLM.Service
} = dual(
  (args) => LLM.isLLM(args[0]),
  (primary: LLM.Service, fallbacks: ReadonlyArray<LLM.Service>, options?: FallbackOptions): LLM.Service =>
    fallbacks.length === 0 && options?.providerId === undefined
      ? primary
      : fallbackChain([primary, ...fallbacks], options)
)

// -----------------------------------------------------------------------------
// All together
// -----------------------------------------------------------------------------

/**
 * Options of {@link wrap} and {@link layer}: the pieces to apply; a piece left out is not applied.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /** Per attempt (see {@link withTimeout}). */
  readonly timeout?: TimeoutOptions | undefined
  /** Sees every attempt (see {@link withCircuitBreaker}). */
  readonly circuitBreaker?: CircuitBreakerOptions | undefined
  /** Options or a ready schedule (see {@link retry}); `{}` for the defaults. */
  readonly retry?: RetryOptions | RetryPolicy | undefined
  /** Asked in order once the wrapped provider has given up (see {@link withFallback}), used as given. */
  readonly fallbacks?: ReadonlyArray<LLM.Service> | undefined
  readonly fallback?: FallbackOptions | undefined
}

/**
 * Applies a chosen set of the combinators, always in this order (innermost first):
 *
 * `fallback(retry(circuitBreaker(timeout(llm))))`
 *
 * - the timeout bounds each attempt, not the sum of the attempts and the waits between them (bound
 *   those with the retry's `maxElapsed`);
 * - the circuit breaker sees every attempt, so retries count towards opening it and, once open, it
 *   refuses them without touching the provider;
 * - the retry waits out rate limits and short outages of this provider, honouring `retry-after`;
 * - the fallbacks are asked only once this provider has given up. With fallbacks, an open circuit
 *   is not waited for (`CircuitOpenError` is not retried): the call moves on to the next provider.
 *
 * The fallbacks are used as given: wrap them first if they need their own timeouts or retries.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const wrap: {
  (options: Options): (llm: LLM.Service) => Effect.Effect<LLM.Service>
  (llm: LLM.Service, options: Options): Effect.Effect<LLM.Service>
} = dual(2, (llm: LLM.Service, options: Options): Effect.Effect<LLM.Service> =>
  Effect.gen(function*() {
    const fallbacks = options.fallbacks ?? []
    let service = options.timeout === undefined ? llm : withTimeout(llm, options.timeout)
    if (options.circuitBreaker !== undefined) service = yield* withCircuitBreaker(service, options.circuitBreaker)
    if (options.retry !== undefined) {
      const policy = toPolicy(options.retry)
      service = Retry.service(service, fallbacks.length === 0 ? policy : Retry.beforeFallback(policy))
    }
    return fallbacks.length === 0 && options.fallback === undefined
      ? service
      : withFallback(service, fallbacks, options.fallback)
  }))

/**
 * Replaces the `LLM` in context with a sturdier one: {@link wrap} with these options. Build the
 * layer once per provider; its circuit breaker state lives as long as the layer.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layer = (options: Options): Layer.Layer<LLM.LLM, never, LLM.LLM> =>
  Layer.effect(LLM.LLM, Effect.flatMap(LLM.LLM, wrap(options)))
