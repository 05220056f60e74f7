/**
 * The one SSE decoder every provider uses. It reads the response body itself, one network read
 * at a time, feeds `eventsource-parser` (linear at any read size, spec compliant: comments and
 * blank data skipped) and hands each batch of SSE events to the provider's handler, which turns
 * them into `StreamEvent`s with `JSON.parse` and a switch on the event type. One stream step per
 * network read, never per event.
 */
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { createParser } from "eventsource-parser"
import * as LLMError from "../LLMError.js"
import type * as Response from "../Response.js"
import * as Errors from "./errors.js"
import type * as Watchdog from "./watchdog.js"

/**
 * Turns SSE events into `StreamEvent`s. `onEvent` pushes what it produces onto `out` and may
 * throw an `LLMError` (a malformed payload, an error event); `onEnd` runs when the body ends and
 * must throw (a `ConnectionError`) when the provider's terminal event never came.
 * Instances hold per-stream state; each stream makes its own.
 */
export interface EventHandler {
  readonly onEvent: (event: string | undefined, data: string, out: Array<Response.StreamEvent>) => void
  readonly onEnd: (out: Array<Response.StreamEvent>) => void
}

const toLLMError = (ctx: Errors.ErrorContext, error: unknown): LLMError.LLMError =>
  LLMError.isLLMError(error) ? error : Errors.fromThrown(ctx, error)

/**
 * One read of the body: the bytes of one network read, or `undefined` when the body has ended.
 * Fails with `Option.some(error)`.
 */
export type Read = Effect.Effect<Uint8Array | ReadonlyArray<Uint8Array> | undefined, Option.Option<LLMError.LLMError>>

/**
 * Decodes the reads of one body into `StreamEvent`s, one batch per read. The stream owns no
 * resource: whoever made `read` releases the body (and enforces any timeout on it).
 */
export const fromReads = (
  read: Read,
  handler: EventHandler,
  ctx: Errors.ErrorContext
): Stream.Stream<Response.StreamEvent, LLMError.LLMError> =>
  Stream.suspend(() => {
    const decoder = new TextDecoder()
    let out: Array<Response.StreamEvent> = []
    let pending: unknown = undefined
    let ended = false
    const parser = createParser({
      onEvent: (message) => {
        if (pending !== undefined) return
        try {
          handler.onEvent(message.event, message.data, out)
        } catch (error) {
          // A half-written last event of a cut body is a truncation (judged by `onEnd`), not a
          // malformed reply.
          if (!(ended && error instanceof LLMError.MalformedResponseError)) pending = error
        }
      }
    })
    // Events decoded before a failure in the same read are emitted first; the failure follows on
    // the next pull, so a consumer sees everything the provider sent before it broke.
    let failed = false
    const flush = (): Effect.Effect<Chunk.Chunk<Response.StreamEvent>, Option.Option<LLMError.LLMError>> => {
      if (pending !== undefined && (out.length === 0 || failed)) {
        return Effect.fail(Option.some(toLLMError(ctx, pending)))
      }
      if (pending !== undefined) failed = true
      const batch = out
      out = []
      return Effect.succeed(Chunk.unsafeFromArray(batch))
    }
    const step: Effect.Effect<Chunk.Chunk<Response.StreamEvent>, Option.Option<LLMError.LLMError>> = Effect.flatMap(
      read,
      (bytes) => {
        if (bytes === undefined) {
          ended = true
          try {
            const rest = decoder.decode()
            if (rest.length > 0) parser.feed(rest)
            parser.reset({ consume: true })
            if (pending === undefined) handler.onEnd(out)
          } catch (error) {
            pending ??= error
          }
          return flush()
        }
        if (bytes instanceof Uint8Array) {
          parser.feed(decoder.decode(bytes, { stream: true }))
        } else {
          for (const part of bytes) parser.feed(decoder.decode(part, { stream: true }))
        }
        return flush()
      }
    )
    return Stream.repeatEffectChunkOption(
      Effect.suspend(() => (failed ? flush() : ended ? Effect.fail(Option.none()) : step))
    )
  })

/** The `TimeoutError` of a body that went silent for `idle`. */
export const silent = (ctx: Errors.ErrorContext, idle: Duration.Duration): LLMError.TimeoutError =>
  new LLMError.TimeoutError({
    provider: ctx.provider,
    message: `${ctx.provider}: the stream went silent for ${Duration.format(idle)}`,
    timeout: idle
  })

/**
 * `read` under the provider's idle timeout: `deadline` is armed again for each read and disarmed
 * when it returns. A read that outlives it (the watchdog then cuts the body, so the read ends or
 * fails) fails with `TimeoutError`, whatever it returned.
 */
export const timedRead = (
  watchdog: Watchdog.Watchdog,
  deadline: Watchdog.Deadline,
  read: Read,
  ctx: Errors.ErrorContext
): Read => {
  const timedOut = () => Option.some<LLMError.LLMError>(silent(ctx, watchdog.timeout))
  return Effect.suspend(() => {
    watchdog.rearm(deadline)
    return Effect.matchEffect(read, {
      onFailure: (error) => Effect.fail(watchdog.disarm(deadline) ? error : timedOut()),
      onSuccess: (bytes) => watchdog.disarm(deadline) ? Effect.succeed(bytes) : Effect.fail(timedOut())
    })
  })
}

/**
 * Decodes a body given as an Effect `Stream` of bytes (an `HttpClientResponse.stream`) into
 * `StreamEvent`s. `onError` maps the byte stream's failures; `guard` wraps each read (with the
 * provider's idle timeout).
 */
export const decodeStream = <E>(
  bytes: Stream.Stream<Uint8Array, E>,
  onError: (error: E) => LLMError.LLMError,
  handler: EventHandler,
  ctx: Errors.ErrorContext,
  guard: (read: Read) => Read
): Stream.Stream<Response.StreamEvent, LLMError.LLMError> =>
  Stream.unwrapScoped(Effect.map(Stream.toPull(bytes), (pull) =>
    fromReads(
      guard(Effect.matchEffect(pull, {
        onFailure: (error) =>
          Option.isNone(error) ? Effect.succeed(undefined) : Effect.fail(Option.some(onError(error.value))),
        onSuccess: (chunk) => Effect.succeed(Chunk.toReadonlyArray(chunk))
      })),
      handler,
      ctx
    )))
