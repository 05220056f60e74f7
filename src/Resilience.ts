/**
 * Turns an `LLM` into a sturdier `LLM`, and gives the pieces to Effect users: a retry `Schedule`
 * over `LLMError`s that honours the provider's `retry-after`, and `retry`, which applies it to an
 * `Effect` or a `Stream` (a stream only while it has emitted nothing, so no consumer ever sees an
 * event twice).
 *
 * @example
 * import { Effect, Layer } from "effect"
 * import { Anthropic, LLM, Message, Resilience } from "@orchestify/providers"
 *
 * // One call, retried with the defaults: 3 retries, 500 ms exponential backoff with jitter,
 * // at least the provider's retry-after, never on an error that is not retryable
 * const reply = LLM.complete({ messages: [Message.user("Hello")] }).pipe(Resilience.retry())
 *
 * // Every call of the LLM in context, retried
 * const live = Resilience.layerRetry({ maxRetries: 5, maxDelay: "10 seconds" }).pipe(
 *   Layer.provide(Anthropic.layerConfig())
 * )
 *
 * const program = reply.pipe(Effect.provide(live))
 *
 * @since 0.1.0
 */
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as LLM from "./LLM.js"
import * as LLMError from "./LLMError.js"

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

const retryStream = <A, E extends LLMError.LLMError, R>(
  self: Stream.Stream<A, E, R>,
  policy: RetryPolicy
): Stream.Stream<A, E, R> =>
  Stream.unwrap(Effect.map(Ref.make(false), (emitted) =>
    self.pipe(
      // One check per chunk: the first non-empty chunk of an attempt marks it as seen.
      Stream.mapChunksEffect((chunk) =>
        Chunk.isEmpty(chunk) ? Effect.succeed(chunk) : Effect.as(Ref.set(emitted, true), chunk)
      ),
      // A retry only ever follows an attempt that emitted nothing, so the flag never needs a reset.
      Stream.retry(Schedule.whileInputEffect(policy, () => Effect.map(Ref.get(emitted), (seen) => !seen)))
    )))

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
      ? Effect.retry(self as Effect.Effect<unknown, LLMError.LLMError, unknown>, policy)
      : retryStream(self as Stream.Stream<unknown, LLMError.LLMError, unknown>, policy)
  }
)

const isService = (u: unknown): u is LLM.Service =>
  Predicate.hasProperty(u, "complete") && Predicate.hasProperty(u, "stream") && Predicate.hasProperty(u, "usage")

/**
 * An `LLM` whose `complete` and `stream` are retried (see {@link retry}); usage, capabilities and
 * the rest are the wrapped provider's.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const retryLLM: {
  (options?: RetryOptions | RetryPolicy): (llm: LLM.Service) => LLM.Service
  (llm: LLM.Service, options?: RetryOptions | RetryPolicy): LLM.Service
} = dual(
  (args) => isService(args[0]),
  (llm: LLM.Service, options?: RetryOptions | RetryPolicy): LLM.Service => {
    const policy = toPolicy(options)
    return {
      ...llm,
      complete: (request) => retry(llm.complete(request), policy),
      stream: (request) => retry(llm.stream(request), policy)
    }
  }
)

/**
 * Replaces the `LLM` in context with one that retries its calls.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerRetry = (options?: RetryOptions | RetryPolicy): Layer.Layer<LLM.LLM, never, LLM.LLM> =>
  Layer.effect(LLM.LLM, Effect.map(LLM.LLM, retryLLM(options)))
