/**
 * The retry loops behind `Resilience.retry` / `Resilience.withRetry` and the registry's retries.
 *
 * The policy stays a pure `Schedule`: each step only decides (the next delay, or done), and this
 * loop does the wait afterwards, through `wait`. So every filter composed onto a policy
 * (`whileInput`, `intersect`, ...) is asked before any waiting, and a caller can race the wait
 * alone (the registry ends it when it closes) without touching the attempts.
 */
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Intervals from "effect/ScheduleIntervals"
import * as Stream from "effect/Stream"
import type * as LLM from "../LLM.js"
import type * as LLMError from "../LLMError.js"
import * as Telemetry from "../Telemetry.js"

/** The wait between two attempts. */
export type Wait = (delay: Duration.Duration) => Effect.Effect<void>

/** How a retry loop waits, and what it does before each attempt after the first. */
export interface Hooks<E> {
  /** Default `Effect.sleep` on Effect's `Clock`. */
  readonly wait?: Wait | undefined
  /** Runs after the wait, before the attempt that `error` caused. */
  readonly onRetry?: ((error: E) => Effect.Effect<void>) | undefined
}

interface Next {
  readonly state: unknown
  readonly delay: Duration.Duration
}

/** One step of `policy` after `error`: the next state and delay, or `None` when the policy is done. */
const step = <E, R>(policy: Schedule.Schedule<unknown, E, R>, state: unknown, error: E) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) =>
    Effect.map(
      Effect.suspend(() => policy.step(now, error, state)),
      ([next, _, decision]): Option.Option<Next> =>
        ScheduleDecision.isDone(decision)
          ? Option.none()
          : Option.some({ state: next, delay: Duration.millis(Math.max(0, Intervals.start(decision.intervals) - now)) })
    ))

const pause = (wait: Wait, delay: Duration.Duration): Effect.Effect<void> =>
  Duration.isZero(delay) ? Effect.void : wait(delay)

/** `Effect.retry(self, policy)`, waiting through `hooks.wait`. */
export const effect = <A, E, R, R2>(
  self: Effect.Effect<A, E, R>,
  policy: Schedule.Schedule<unknown, E, R2>,
  hooks?: Hooks<E>
): Effect.Effect<A, E, R | R2> => {
  const wait = hooks?.wait ?? Effect.sleep
  const onRetry = hooks?.onRetry
  const loop = (state: unknown): Effect.Effect<A, E, R | R2> =>
    Effect.catchAll(self, (error) =>
      Effect.flatMap(step(policy, state, error), (next) => {
        if (Option.isNone(next)) return Effect.fail(error)
        const again = Effect.suspend(() => loop(next.value.state))
        return Effect.zipRight(
          pause(wait, next.value.delay),
          onRetry === undefined ? again : Effect.zipRight(onRetry(error), again)
        )
      }))
  return Effect.suspend(() => loop(policy.initial))
}

/**
 * `self` retried with `policy` only while the failing attempt has emitted nothing: once an element
 * has reached the consumer, a failure reaches the consumer at once (no step, no wait), so no
 * element is ever seen twice.
 */
export const stream = <A, E, R, R2>(
  self: Stream.Stream<A, E, R>,
  policy: Schedule.Schedule<unknown, E, R2>,
  hooks?: Hooks<E>
): Stream.Stream<A, E, R | R2> => {
  const wait = hooks?.wait ?? Effect.sleep
  const onRetry = hooks?.onRetry
  const loop = (state: unknown): Stream.Stream<A, E, R | R2> =>
    Stream.suspend(() => {
      // This attempt's own record, written by its stream at its first non-empty chunk (one check
      // per chunk, no effect) and read when it fails.
      const attempt = { emitted: false }
      return self.pipe(
        Stream.mapChunks((chunk) => {
          if (!attempt.emitted && Chunk.isNonEmpty(chunk)) attempt.emitted = true
          return chunk
        }),
        Stream.catchAll((error) =>
          attempt.emitted ? Stream.fail(error) : Stream.unwrap(Effect.flatMap(step(policy, state, error), (next) => {
            if (Option.isNone(next)) return Effect.succeed(Stream.fail(error))
            const again = loop(next.value.state)
            return Effect.zipRight(
              pause(wait, next.value.delay),
              onRetry === undefined ? Effect.succeed(again) : Effect.as(onRetry(error), again)
            )
          }))
        )
      )
    })
  return Stream.suspend(() => loop(policy.initial))
}

/**
 * An `LLM` whose `complete` and `stream` are retried with `policy`, every attempt after the first
 * counted in the `llm.retries` metric, tagged with the error that caused it.
 */
export const service = (
  llm: LLM.Service,
  policy: Schedule.Schedule<unknown, LLMError.LLMError>,
  wait?: Wait
): LLM.Service => {
  const hooks = (request: LLM.CompletionRequest): Hooks<LLMError.LLMError> => ({
    wait,
    onRetry: (error) => Telemetry.recordRetry(llm.providerId, request.model ?? llm.defaultModel, error._tag)
  })
  return {
    ...llm,
    complete: (request) => effect(llm.complete(request), policy, hooks(request)),
    stream: (request) => stream(llm.stream(request), policy, hooks(request))
  }
}

/**
 * A policy for a provider that has fallbacks: an open circuit is not waited for (the call moves on
 * to the next provider at once).
 */
export const beforeFallback = <Out>(
  policy: Schedule.Schedule<Out, LLMError.LLMError>
): Schedule.Schedule<Out, LLMError.LLMError> =>
  Schedule.whileInput(policy, (error: LLMError.LLMError) => error._tag !== "CircuitOpenError")
