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
import { InFlight } from "./inflight.js"
import * as Provider from "./provider.js"
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
 * Runs `send` with the call's abort signal: aborted when the fiber is interrupted, or (failing with
 * `TimeoutError`) when it does not settle before the call's deadline.
 */
const request = <A>(
  call: Call,
  flight: InFlight,
  signal: AbortSignal,
  send: (signal: AbortSignal) => PromiseLike<A>
): Effect.Effect<A, LLMError.LLMError> =>
  Effect.async<A, LLMError.LLMError>((resume) => {
    flight.awaitReply(() => resume(Effect.fail(Errors.timedOut(call.ctx))))
    try {
      send(signal).then(
        (value) => {
          if (flight.answered()) resume(Effect.succeed(value))
        },
        (error) => {
          if (flight.answered()) resume(Effect.fail(Errors.fromThrown(call.ctx, error)))
        }
      )
    } catch (error) {
      if (flight.answered()) resume(Effect.fail(Errors.fromThrown(call.ctx, error)))
    }
    return Effect.sync(() => flight.release())
  })

/** A request in flight on the provider's watchdog, aborted through its own `AbortController`. */
const inFlight = (call: Call): { readonly flight: InFlight; readonly signal: AbortSignal } => {
  const controller = new AbortController()
  return { flight: new InFlight(call.watchdog, () => controller.abort()), signal: controller.signal }
}

/**
 * A streamed call: `send` starts the request and resolves with the raw `fetch` response once its
 * headers are in. One finalizer per stream releases the request in flight: it aborts it unless the
 * body was read to its end (aborting a finished request costs an exception and the listeners of
 * the SDK and of `undici`), which also cancels the body and releases the socket.
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
    const { flight, signal } = inFlight(call)
    const events = Effect.map(request(call, flight, signal, send), (response) => {
      const body = response.body
      if (body === null) return Channel.fail(Errors.malformed(ctx, "the streamed reply has no body"))
      const reader = body.getReader()
      const inner = handler(requestIdOf(call, response.headers))
      const rateLimits = Errors.rateLimitHeaders(response.headers)
      const read: Sse.Read = Effect.async((resume) => {
        reader.read().then(
          (result) => resume(Effect.succeed(result.done ? undefined : result.value)),
          (error) => resume(Effect.fail(Option.some(Errors.fromThrown(ctx, error))))
        )
      })
      // A read that stays pending past the deadline is aborted (its promise then settles) and
      // fails the stream with `TimeoutError`.
      const cancel = () => {
        reader.cancel().catch(() => undefined)
      }
      return Stream.toChannel(Sse.fromReads(Sse.timedRead(watchdog, flight.deadline, read, ctx), {
        onEvent: (event, data, out) => {
          const before = out.length
          inner.onEvent(event, data, out)
          // The terminal event arrived: the body may be let go of without an abort.
          if (out.length > before && out[out.length - 1]!._tag === "Finish") {
            flight.letGo = cancel
            if (rateLimits !== undefined) {
              out[out.length - 1] = Provider.withRateLimits(out[out.length - 1]!, rateLimits)
            }
          }
        },
        onEnd: (out) => {
          inner.onEnd(out)
          flight.finished = true
        }
      }, ctx))
    })
    return Channel.ensuring(Channel.unwrap(events), Effect.sync(() => flight.release()))
  }))

/** Sends a request whose reply is one JSON body, read to its end within the call's deadline. */
const json = (
  call: Call,
  send: (signal: AbortSignal) => PromiseLike<globalThis.Response>
): Effect.Effect<{ readonly data: unknown; readonly response: globalThis.Response }, LLMError.LLMError> =>
  Effect.suspend(() => {
    const { flight, signal } = inFlight(call)
    return request(
      call,
      flight,
      signal,
      (signal) =>
        send(signal).then((response) =>
          response.json().then((data: unknown) => {
            flight.finished = true
            return { data, response }
          })
        )
    )
  })

/**
 * A complete call: `send` resolves with the raw response once its headers are in (the SDK has
 * thrown for an error status by then); its JSON body is read here, which costs less than the
 * SDK's own parsing. `decode` maps the body to neutral events and may throw an `LLMError` (a
 * malformed reply); the call hands back the reply's events, its `Finish` last. The provider's timeout covers the whole call, the body included (the SDK's
 * own timer stops at the headers).
 */
export const complete = (
  call: Call,
  send: (signal: AbortSignal) => PromiseLike<globalThis.Response>,
  decode: (data: unknown, requestId: string | undefined) => Provider.Completed
): Effect.Effect<ReadonlyArray<Response.StreamEvent>, LLMError.LLMError> =>
  Effect.flatMap(
    json(call, send),
    ({ data, response }) => {
      try {
        const completed = decode(data, requestIdOf(call, response.headers))
        return Effect.succeed(
          Provider.withRateLimitsOnFinish(
            Provider.toEvents(call.ctx.provider, completed),
            Errors.rateLimitHeaders(response.headers)
          )
        )
      } catch (error) {
        return Effect.fail(Errors.fromThrown(call.ctx, error))
      }
    }
  )

/**
 * A token count (Anthropic `count_tokens`): `send` resolves with the raw response once its headers
 * are in; its body's `input_tokens` is the count. On the provider's watchdog, interruptible, and
 * its errors classified as a call's are.
 */
export const count = (
  call: Call,
  send: (signal: AbortSignal) => PromiseLike<globalThis.Response>
): Effect.Effect<number, LLMError.LLMError> =>
  Effect.flatMap(
    json(call, send),
    ({ data, response }) => {
      const tokens = (data as { readonly input_tokens?: unknown } | null)?.input_tokens
      return typeof tokens === "number" && Number.isInteger(tokens) && tokens >= 0
        ? Effect.succeed(tokens)
        : Effect.fail(
          Errors.malformed(
            call.ctx,
            "the token count has no input_tokens",
            requestIdOf(call, response.headers)
          )
        )
    }
  )

/**
 * Reads a stream as a complete reply (Anthropic's long `max_tokens` calls): its events up to its
 * `Finish`, which ends the reply wherever it is. The stream is not read further (a server that
 * keeps the connection open after its terminal event does not hold the call); the call path fails
 * a reply without a `Finish` as malformed.
 */
export const collect = (
  events: Stream.Stream<Response.StreamEvent, LLMError.LLMError>
): Effect.Effect<ReadonlyArray<Response.StreamEvent>, LLMError.LLMError> =>
  Effect.map(Stream.runCollect(Stream.takeUntil(events, (event) => event._tag === "Finish")), Chunk.toReadonlyArray)

/**
 * A provider's own service: its `LLM` service with the SDK `client` and the resolved `options`.
 * The client is not enumerable: the SDKs keep the API key on the client as plain text, so an
 * `inspect`, a `JSON.stringify` or a spread of the service must not reach it.
 */
export const providerService = <L extends object, C, O>(
  llm: L,
  client: C,
  options: O
): L & { readonly client: C; readonly options: O } =>
  Object.defineProperty({ ...llm, options }, "client", { value: client, enumerable: false }) as
    & L
    & { readonly client: C; readonly options: O }
