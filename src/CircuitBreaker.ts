/**
 * A circuit breaker on its own: stops calling a failing provider for a while instead of hammering
 * it (with every caller, and with every retry). `Resilience.withCircuitBreaker` puts an `LLM` behind
 * one; the registry makes one per provider and shares it between the provider, its agents and its
 * role as a fallback.
 *
 * - Closed: calls go through. After `failureThreshold` (default 5) consecutive failures (or a
 *   `failureRate` over a `window`) it opens. Failures are retryable errors (rate limits, 5xx,
 *   connection errors, timeouts); an authentication or invalid-request error does not count.
 * - Open: every call fails at once with `LLMError.CircuitOpenError`, without touching the provider;
 *   its `retryAfter` is the time left until the breaker half-opens (`resetTimeout`, default 30 s).
 * - Half-open: exactly one trial call goes through (callers racing it are refused); its success
 *   closes the breaker, its failure opens it again for another `resetTimeout`.
 *
 * A stream counts as a success at its first event, as a failure if it fails before it. Time is
 * Effect's `Clock`, so `TestClock` drives it in tests.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker, LLM, Message } from "@orchestify/providers"
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make({ provider: "claude", failureThreshold: 3, resetTimeout: "1 minute" })
 *   const llm = CircuitBreaker.protectLLM(yield* LLM.LLM, breaker)
 *   const reply = yield* llm.complete({ messages: [Message.user("Hello")] })
 *   return [reply.content, yield* breaker.state] as const
 * })
 * ```
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { dual } from "effect/Function"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import * as SharedBreaker from "./internal/breaker/shared.js"
import type * as LLM from "./LLM.js"
import * as LLMError from "./LLMError.js"
import * as SharedState from "./SharedState.js"

/**
 * The state of a circuit breaker: `Closed` lets calls through, `Open` refuses them, `HalfOpen`
 * lets one trial call through.
 *
 * @since 0.1.0
 * @category Models
 */
export type State = "Closed" | "Open" | "HalfOpen"

/**
 * A transition of a circuit breaker, as `onStateChange` receives it.
 *
 * @since 0.1.0
 * @category Models
 */
export interface StateChange {
  readonly provider: string
  readonly from: State
  readonly to: State
}

/**
 * Options of a circuit breaker ({@link make}, `Resilience.withCircuitBreaker`).
 *
 * The breaker opens after `failureThreshold` consecutive failures; or, when `failureRate` is set,
 * when at least `minimumCalls` calls ended within the last `window` and that share of them failed
 * (with `failureRate` set, the consecutive rule applies only if `failureThreshold` is given too).
 *
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /** Consecutive failures that open the breaker. Default 5. */
  readonly failureThreshold?: number | undefined
  /** Open when this share (0 to 1) of the calls in `window` failed. Default: not used. */
  readonly failureRate?: number | undefined
  /** The rate rule needs at least this many calls in the window. Default 10. */
  readonly minimumCalls?: number | undefined
  /** The window of the rate rule, on Effect's `Clock`. Default 60 seconds. */
  readonly window?: Duration.DurationInput | undefined
  /** How long the breaker stays open before it lets a trial call through. Default 30 seconds. */
  readonly resetTimeout?: Duration.DurationInput | undefined
  /**
   * Which errors count as failures of the provider. Default: the retryable ones
   * (`LLMError.isRetryable`) other than `CircuitOpenError`; an authentication or invalid-request
   * error says nothing about the provider's health and counts neither way.
   */
  readonly isFailure?: ((error: LLMError.LLMError) => boolean) | undefined
  /** Run on every transition (after it happened). */
  readonly onStateChange?: ((change: StateChange) => Effect.Effect<void>) | undefined
}

/**
 * A circuit breaker, for guarding any `Effect` or `Stream` that fails with `LLMError`s; its state
 * is shared by everything it guards.
 *
 * @since 0.1.0
 * @category Models
 */
export interface CircuitBreaker {
  /** The current state. */
  readonly state: Effect.Effect<State>
  /** Runs the effect if the breaker allows it, and counts its outcome. */
  readonly protect: <A, R>(effect: Effect.Effect<A, LLMError.LLMError, R>) => Effect.Effect<A, LLMError.LLMError, R>
  /**
   * Runs the stream if the breaker allows it; it counts as a success at its first event, as a
   * failure if it fails before it.
   */
  readonly protectStream: <A, R>(
    stream: Stream.Stream<A, LLMError.LLMError, R>
  ) => Stream.Stream<A, LLMError.LLMError, R>
}

interface CallOutcome {
  readonly at: number
  readonly failed: boolean
}

type BreakerState =
  | { readonly _tag: "Closed"; readonly consecutive: number; readonly outcomes: ReadonlyArray<CallOutcome> }
  | { readonly _tag: "Open"; readonly until: number }
  | { readonly _tag: "HalfOpen"; readonly trialInFlight: boolean }

type Permit = { readonly trial: boolean }

type Admission =
  | { readonly _tag: "Admitted"; readonly permit: Permit; readonly change: StateChange | undefined }
  | { readonly _tag: "Refused"; readonly retryAfter: number }

type Outcome = SharedBreaker.Outcome

const closed: BreakerState = { _tag: "Closed", consecutive: 0, outcomes: [] }

const defaultIsFailure = (error: LLMError.LLMError): boolean =>
  LLMError.isRetryable(error) && error._tag !== "CircuitOpenError"

/**
 * Makes a circuit breaker whose `CircuitOpenError`s name `provider`; its state lives in a `Ref`
 * made when the returned effect runs (run it once per provider and share the result). The rules
 * are in the module's header.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make = (
  options: Options & { readonly provider: string }
): Effect.Effect<CircuitBreaker> => Effect.map(makeLocal(options), (local) => fromCore(local.core, local.isFailure))

/** The breaker of one process: its decisions (admit, settle) on a `Ref`. */
const makeLocal = (options: Options & { readonly provider: string }) =>
  Effect.gen(function*() {
    const provider = options.provider
    const resetMillis = Duration.toMillis(Duration.decode(options.resetTimeout ?? Duration.seconds(30)))
    const failureRate = options.failureRate
    const threshold = options.failureThreshold ?? (failureRate === undefined ? 5 : undefined)
    const minimumCalls = options.minimumCalls ?? 10
    const windowMillis = Duration.toMillis(Duration.decode(options.window ?? Duration.seconds(60)))
    const isFailure = options.isFailure ?? defaultIsFailure
    const onStateChange = options.onStateChange
    const state = yield* Ref.make<BreakerState>(closed)

    const notify = (change: StateChange | undefined): Effect.Effect<void> =>
      change === undefined ? Effect.void : Effect.zipRight(
        Effect.logDebug(`${provider}: circuit breaker ${change.from} -> ${change.to}`),
        onStateChange === undefined ? Effect.void : onStateChange(change)
      )

    const trips = (consecutive: number, outcomes: ReadonlyArray<CallOutcome>): boolean => {
      if (threshold !== undefined && consecutive >= threshold) return true
      if (failureRate === undefined || outcomes.length < minimumCalls) return false
      const failures = outcomes.reduce((n, outcome) => outcome.failed ? n + 1 : n, 0)
      return failures / outcomes.length >= failureRate
    }

    const admit: Effect.Effect<Permit, LLMError.CircuitOpenError> = Effect.flatMap(
      Clock.currentTimeMillis,
      (now) =>
        Ref.modify(state, (s): [Admission, BreakerState] => {
          switch (s._tag) {
            case "Closed":
              return [{ _tag: "Admitted", permit: { trial: false }, change: undefined }, s]
            case "Open":
              return now >= s.until
                ? [
                  {
                    _tag: "Admitted",
                    permit: { trial: true },
                    change: { provider, from: "Open", to: "HalfOpen" }
                  },
                  { _tag: "HalfOpen", trialInFlight: true }
                ]
                : [{ _tag: "Refused", retryAfter: s.until - now }, s]
            case "HalfOpen":
              // Exactly one trial at a time: the modify is atomic, so of two racing callers one wins.
              return s.trialInFlight
                ? [{ _tag: "Refused", retryAfter: 0 }, s]
                : [{ _tag: "Admitted", permit: { trial: true }, change: undefined }, {
                  _tag: "HalfOpen",
                  trialInFlight: true
                }]
          }
        }).pipe(Effect.flatMap((admission) =>
          admission._tag === "Admitted"
            ? Effect.as(notify(admission.change), admission.permit)
            : Effect.fail(
              new LLMError.CircuitOpenError({
                provider,
                retryAfter: Duration.millis(admission.retryAfter),
                message: admission.retryAfter > 0
                  ? `${provider}: circuit breaker open; the next trial call in ${
                    Duration.format(Duration.millis(admission.retryAfter))
                  }`
                  : `${provider}: circuit breaker half-open and its one trial call is in flight`
              })
            )
        ))
    )

    const settle = (permit: Permit, outcome: Outcome): Effect.Effect<void> =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Ref.modify(state, (s): [StateChange | undefined, BreakerState] => {
          if (permit.trial) {
            // Only the trial settles a half-open breaker; it holds the one slot until it ends.
            if (s._tag !== "HalfOpen") {
              return [undefined, s]
            }
            switch (outcome) {
              case "Success":
                return [{ provider, from: "HalfOpen", to: "Closed" }, closed]
              case "Failure":
                return [{ provider, from: "HalfOpen", to: "Open" }, { _tag: "Open", until: now + resetMillis }]
              case "Released":
                return [undefined, { _tag: "HalfOpen", trialInFlight: false }]
            }
          }
          // A call admitted while closed that ends after the breaker opened changes nothing.
          if (s._tag !== "Closed" || outcome === "Released") {
            return [undefined, s]
          }
          const outcomes = failureRate === undefined
            ? s.outcomes
            : [
              ...s.outcomes.filter((o) => o.at > now - windowMillis),
              { at: now, failed: outcome === "Failure" }
            ]
          if (outcome === "Success") return [undefined, { _tag: "Closed", consecutive: 0, outcomes }]
          const consecutive = s.consecutive + 1
          return trips(consecutive, outcomes)
            ? [{ provider, from: "Closed", to: "Open" }, { _tag: "Open", until: now + resetMillis }]
            : [undefined, { _tag: "Closed", consecutive, outcomes }]
        })).pipe(Effect.flatMap(notify))

    const core: SharedBreaker.Core<Permit> = { admit, settle, state: Effect.map(Ref.get(state), (s) => s._tag) }
    return { core, notify, threshold, isFailure, resetMillis }
  })

/** A breaker from its decisions: protect and protectStream admit, then settle once. */
const fromCore = <P>(
  core: SharedBreaker.Core<P>,
  isFailure: (error: LLMError.LLMError) => boolean = defaultIsFailure
): CircuitBreaker => {
  const { admit, settle } = core
  {
    const outcomeOfError = (error: LLMError.LLMError): Outcome => isFailure(error) ? "Failure" : "Released"

    const outcomeOfExit = (exit: Exit.Exit<unknown, LLMError.LLMError>): Outcome => {
      if (Exit.isSuccess(exit)) return "Success"
      return Option.match(Cause.failureOption(exit.cause), { onNone: () => "Released", onSome: outcomeOfError })
    }

    return {
      state: core.state,
      protect: (effect) =>
        Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(
            admit,
            (permit) => restore(effect).pipe(Effect.onExit((exit) => settle(permit, outcomeOfExit(exit))))
          )
        ),
      protectStream: (stream) =>
        Stream.unwrapScoped(Effect.flatMap(Ref.make(false), (settled) => {
          const once = (permit: P, outcome: Outcome) =>
            Effect.flatMap(Ref.getAndSet(settled, true), (done) => done ? Effect.void : settle(permit, outcome))
          return Effect.map(
            // Released with the stream's scope if it ended (or was interrupted) before it settled.
            Effect.acquireRelease(admit, (permit) => once(permit, "Released")),
            (permit) =>
              stream.pipe(
                Stream.mapChunksEffect((chunk) =>
                  Chunk.isEmpty(chunk) ? Effect.succeed(chunk) : Effect.as(once(permit, "Success"), chunk)
                ),
                Stream.tapError((error) => once(permit, outcomeOfError(error)))
              )
          )
        }))
    } satisfies CircuitBreaker
  }
}

/**
 * Counts the breaker decisions made by this process alone because the shared state was
 * unavailable ({@link makeShared}), tagged by `operation`.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const sharedFallbacks: Metric.Metric.Counter<number> = Metric.counter(
  "orchestify_circuit_breaker_shared_fallbacks_total",
  { description: "circuit breaker decisions made locally because the shared state was unavailable", incremental: true }
)

/**
 * Makes a circuit breaker whose state lives in the `SharedState` in context: on
 * `SharedState.layerRedis` every worker on the namespace sees one breaker per provider (it opens
 * for all, and when half-open exactly one trial call goes through across all of them; a trial
 * whose worker died frees its slot after `trialLease`, default 60 s). Redis unavailable: this
 * process' own breaker decides, with a log line and {@link sharedFallbacks}. On
 * `SharedState.layerMemory` it is {@link make}. The shared breaker counts consecutive failures
 * (`failureThreshold`); a `failureRate` rule stays per process.
 *
 * @example
 * ```ts
 * import { Effect, Redacted } from "effect"
 * import { CircuitBreaker, SharedState } from "@orchestify/providers"
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.makeShared({ provider: "openai", failureThreshold: 5 })
 *   return yield* breaker.state
 * })
 * Effect.runPromise(Effect.provide(program, SharedState.layerMemory))
 * const shared = SharedState.layerRedis({ url: Redacted.make("redis://127.0.0.1:6379"), namespace: "prod" })
 * ```
 *
 * @since 0.1.0
 * @category Constructors
 */
export const makeShared = (
  options: Options & { readonly provider: string; readonly trialLease?: Duration.DurationInput | undefined }
): Effect.Effect<CircuitBreaker, never, SharedState.SharedState> =>
  Effect.gen(function*() {
    const shared = yield* SharedState.SharedState
    const local = yield* makeLocal(options)
    if (shared.redis === undefined || (local.threshold === undefined)) return fromCore(local.core, local.isFailure)
    const core = SharedBreaker.make({
      redis: shared.redis,
      provider: options.provider,
      threshold: local.threshold,
      resetMillis: local.resetMillis,
      trialLeaseMillis: Duration.toMillis(Duration.decode(options.trialLease ?? Duration.seconds(60))),
      local: local.core,
      notify: local.notify,
      onFallback: (operation) => Metric.increment(Metric.tagged(sharedFallbacks, "operation", operation))
    })
    return fromCore(core, local.isFailure)
  })

/**
 * An `LLM` whose `complete` and `stream` go through `breaker`; usage and identity are the wrapped
 * provider's. Both `protectLLM(llm, breaker)` and `pipe(llm, protectLLM(breaker))` work.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const protectLLM: {
  (breaker: CircuitBreaker): (llm: LLM.Service) => LLM.Service
  (llm: LLM.Service, breaker: CircuitBreaker): LLM.Service
} = dual(2, (llm: LLM.Service, breaker: CircuitBreaker): LLM.Service => ({
  ...llm,
  complete: (request) => breaker.protect(llm.complete(request)),
  stream: (request) => breaker.protectStream(llm.stream(request))
}))
