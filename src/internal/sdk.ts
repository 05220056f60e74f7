/**
 * The plumbing shared by the providers built on an official SDK (Anthropic, OpenAI): the SDK
 * sends the request and classifies HTTP errors; this module gives each call an abort signal (the
 * fiber's interruption aborts the request and closes its socket), enforces the provider's
 * `timeout` with the provider's watchdog (on Effect's clock: the wait for the headers, and the
 * silence between two reads of a streamed body), and hands a streamed body to the shared SSE
 * decoder.
 */
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type * as LLMError from "../LLMError.js"
import type * as Response from "../Response.js"
import * as Errors from "./errors.js"
import type * as Provider from "./provider.js"
import * as Sse from "./sse.js"
import type * as Watchdog from "./watchdog.js"

/**
 * The provider's `timeout` as the SDK's own timer takes it: `setTimeout` holds at most 2^31 - 1 ms
 * (about 24.8 days) and fires at once beyond that, so an infinite timeout would abort every call.
 */
export const sdkTimeoutMillis = (timeout: Duration.Duration): number =>
  Math.min(Duration.toMillis(timeout), 2 ** 31 - 1)

/** What every call of one provider shares. */
export interface Call {
  readonly ctx: Errors.ErrorContext
  /** The provider's timer (its `timeout`). */
  readonly watchdog: Watchdog.Watchdog
  /** The response headers that may carry the provider's request id, the first one set wins. */
  readonly requestIdHeaders: ReadonlyArray<string>
}

const requestIdOf = (call: Call, headers: globalThis.Headers): string | undefined => {
  for (const name of call.requestIdHeaders) {
    const value = headers.get(name)
    if (value !== null && value !== "") return value
  }
  return undefined
}

/**
 * Runs `send` with an abort signal: aborted when the fiber is interrupted, or (failing with
 * `TimeoutError`) when it does not settle within the provider's timeout.
 */
const request = <A>(
  call: Call,
  controller: AbortController,
  send: (signal: AbortSignal) => PromiseLike<A>
): Effect.Effect<A, LLMError.LLMError> =>
  Effect.async<A, LLMError.LLMError>((resume) => {
    let done = false
    const deadline = call.watchdog.arm(() => {
      done = true
      controller.abort()
      resume(Effect.fail(Errors.timedOut(call.ctx)))
    })
    const settle = (result: Effect.Effect<A, LLMError.LLMError>) => {
      if (done) return
      done = true
      call.watchdog.disarm(deadline)
      resume(result)
    }
    try {
      send(controller.signal).then(
        (value) => settle(Effect.succeed(value)),
        (error) => settle(Effect.fail(Errors.fromThrown(call.ctx, error)))
      )
    } catch (error) {
      settle(Effect.fail(Errors.fromThrown(call.ctx, error)))
    }
    return Effect.sync(() => {
      if (done) return
      done = true
      call.watchdog.disarm(deadline)
      controller.abort()
    })
  })

/**
 * A streamed call: `send` starts the request and resolves with the raw `fetch` response once its
 * headers are in. One finalizer per stream: it aborts the request unless the body was
 * read to its end (aborting a finished request costs an exception and the listeners of the SDK
 * and of `undici`), which also cancels the body and releases the socket.
 */
export const stream = (
  call: Call,
  send: (signal: AbortSignal) => PromiseLike<globalThis.Response>,
  handler: (requestId: string | undefined) => Sse.EventHandler
): Stream.Stream<Response.StreamEvent, LLMError.LLMError> =>
  // Channels rather than `Stream.unwrapScoped`: a stream's `flatten` passes every batch of events
  // through one more step, and one finalizer needs no scope.
  Stream.fromChannel(Channel.suspend(() => {
    const { ctx, watchdog } = call
    const controller = new AbortController()
    let complete = false
    let deadline: Watchdog.Deadline | undefined = undefined
    const release = Effect.sync(() => {
      if (deadline !== undefined) watchdog.disarm(deadline)
      if (!complete) controller.abort()
    })
    const events = Effect.map(request(call, controller, send), (response) => {
      const body = response.body
      if (body === null) return Channel.fail(Errors.malformed(ctx, "the streamed reply has no body"))
      const reader = body.getReader()
      const inner = handler(requestIdOf(call, response.headers))
      const read: Sse.Read = Effect.async((resume) => {
        reader.read().then(
          (result) => resume(Effect.succeed(result.done ? undefined : result.value)),
          (error) => resume(Effect.fail(Option.some(Errors.fromThrown(ctx, error))))
        )
      })
      // A read that stays pending for the provider's timeout is cancelled (its promise then
      // settles as the end of the body) and fails the stream with `TimeoutError`.
      const silence = watchdog.arm(() => {
        reader.cancel().catch(() => undefined)
      })
      deadline = silence
      return Stream.toChannel(Sse.fromReads(Sse.timedRead(watchdog, silence, read, ctx), {
        onEvent: inner.onEvent,
        onEnd: (out) => {
          inner.onEnd(out)
          complete = true
        }
      }, ctx))
    })
    return Channel.ensuring(Channel.unwrap(events), release)
  }))

/**
 * A complete call: `send` resolves with the raw response once its headers are in (the SDK has
 * thrown for an error status by then); its JSON body is read here, which costs less than the
 * SDK's own parsing. `decode` maps the body to neutral events and may throw an `LLMError` (a
 * malformed reply). The provider's timeout covers the whole call, the body included (the SDK's
 * own timer stops at the headers).
 */
export const complete = (
  call: Call,
  send: (signal: AbortSignal) => PromiseLike<globalThis.Response>,
  decode: (data: unknown, requestId: string | undefined) => Provider.Completed
): Effect.Effect<Provider.Completed, LLMError.LLMError> =>
  Effect.suspend(() =>
    Effect.flatMap(
      request(call, new AbortController(), (signal) =>
        send(signal).then((response) => response.json().then((data: unknown) => ({ data, response })))),
      ({ data, response }) => {
        try {
          return Effect.succeed(decode(data, requestIdOf(call, response.headers)))
        } catch (error) {
          return Effect.fail(Errors.fromThrown(call.ctx, error))
        }
      }
    )
  )

/**
 * Folds a stream into the neutral form of a complete reply. The `Finish` ends the reply wherever
 * it is: what follows is dropped and the stream is not read further (a server that keeps the
 * connection open after its terminal event does not hold the call); a reply without one is
 * malformed.
 */
export const collect = (
  ctx: Errors.ErrorContext,
  events: Stream.Stream<Response.StreamEvent, LLMError.LLMError>
): Effect.Effect<Provider.Completed, LLMError.LLMError> =>
  Effect.flatMap(
    Stream.runCollect(Stream.takeUntil(events, (event) => event._tag === "Finish")),
    (chunk) => {
      const all = Chunk.toReadonlyArray(chunk)
      const last = all[all.length - 1]
      if (last === undefined || last._tag !== "Finish") {
        return Effect.fail(Errors.malformed(ctx, "the reply ended without its Finish event"))
      }
      return Effect.succeed({ events: all.slice(0, -1), finish: rawFinishOf(last) })
    }
  )

/** The raw end of a reply, from its (unpriced) `Finish` event: unknown usage stays unknown. */
const rawFinishOf = (finish: Response.Finish): Provider.RawFinish => ({
  finishReason: finish.finishReason,
  rawFinishReason: finish.rawFinishReason,
  usage: finish.usageUnknown === true ? undefined : finish.usage,
  model: finish.model,
  requestId: finish.requestId,
  costUsd: finish.costUsd
})
