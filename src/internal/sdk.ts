/**
 * The plumbing shared by the providers built on an official SDK (Anthropic, OpenAI): the SDK
 * sends the request and classifies HTTP errors; this module gives each call the fiber's abort
 * signal, puts Effect's timers around what the SDK's own timer does not cover, and hands a
 * streamed body to the shared SSE decoder.
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type * as LLMError from "../LLMError.js"
import type * as Response from "../Response.js"
import * as Errors from "./errors.js"
import type * as Provider from "./provider.js"
import * as Sse from "./sse.js"

/** What every call of one provider shares. */
export interface Call {
  readonly ctx: Errors.ErrorContext
  readonly timeout: Duration.Duration
  /** The response header carrying the provider's request id. */
  readonly requestIdHeader: string
}

const withTimeout = <A>(call: Call, effect: Effect.Effect<A, LLMError.LLMError>) =>
  Effect.timeoutFail(effect, { duration: call.timeout, onTimeout: () => Errors.timedOut(call.ctx) })

/**
 * A streamed call: `send` starts the request (aborted when the stream ends or is interrupted)
 * and resolves with the raw `fetch` response once its headers are in.
 */
export const stream = (
  call: Call,
  send: (signal: AbortSignal) => PromiseLike<globalThis.Response>,
  handler: (requestId: string | undefined) => Sse.EventHandler
): Stream.Stream<Response.StreamEvent, LLMError.LLMError> =>
  Stream.unwrapScoped(Effect.gen(function*() {
    // Aborted when the stream is interrupted or fails; a body read to its end needs no abort
    // (aborting it anyway costs an exception and the SDK's listeners on every stream).
    let complete = false
    const controller = yield* Effect.acquireRelease(
      Effect.sync(() => new AbortController()),
      (controller) => Effect.sync(() => complete ? undefined : controller.abort())
    )
    const response = yield* withTimeout(
      call,
      Effect.tryPromise({ try: () => send(controller.signal), catch: (error) => Errors.fromThrown(call.ctx, error) })
    )
    const requestId = response.headers.get(call.requestIdHeader) ?? undefined
    const inner = handler(requestId)
    return Sse.decode(response.body, {
      onEvent: inner.onEvent,
      onEnd: (out) => {
        inner.onEnd(out)
        complete = true
      }
    }, { ctx: call.ctx, idleTimeout: call.timeout })
  }))

/**
 * A complete call: `send` resolves with the SDK's parsed body and the raw response; `decode`
 * maps the body to neutral events and may throw an `LLMError` (a malformed reply). The SDK's
 * timer stops at the reply's headers; a body that stalls after them is ours to end.
 */
export const complete = <A>(
  call: Call,
  send: (signal: AbortSignal) => PromiseLike<{ readonly data: A; readonly response: globalThis.Response }>,
  decode: (data: A, requestId: string | undefined) => Provider.Completed
): Effect.Effect<Provider.Completed, LLMError.LLMError> =>
  withTimeout(
    call,
    Effect.tryPromise({ try: (signal) => send(signal), catch: (error) => Errors.fromThrown(call.ctx, error) })
  ).pipe(
    Effect.flatMap(({ data, response }) =>
      Effect.try({
        try: () => decode(data, response.headers.get(call.requestIdHeader) ?? undefined),
        catch: (error) => Errors.fromThrown(call.ctx, error)
      })
    )
  )

/** Folds a stream into the neutral form of a complete reply (its last event is the `Finish`). */
export const collect = (
  events: Stream.Stream<Response.StreamEvent, LLMError.LLMError>
): Effect.Effect<Provider.Completed, LLMError.LLMError> =>
  Effect.map(Stream.runCollect(events), (chunk) => {
    const all = Array.from(chunk)
    const finish = all.pop() as Response.Finish
    return { events: all, finish }
  })
