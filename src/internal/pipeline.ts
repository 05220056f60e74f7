/**
 * The call path behind `LLM.make`. A driver only sends and maps its wire format to neutral events;
 * this module does the rest once for every provider: defaults, local validation, "the `Finish` is
 * the end" (found wherever it is, what follows dropped, a reply without one malformed), pricing, the
 * response fold, and through the call recorder (`recorder.ts`) the usage tally (every call that
 * reaches the provider recorded exactly once), the metrics, the span and the logs.
 */
import * as Cause from "effect/Cause"
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Stream from "effect/Stream"
import * as Capabilities from "../Capabilities.js"
import type * as LLM from "../LLM.js"
import * as LLMError from "../LLMError.js"
import * as Pricing from "../Pricing.js"
import type * as Response from "../Response.js"
import * as Telemetry from "../Telemetry.js"
import type * as Tokens from "../Tokens.js"
import * as Usage from "../Usage.js"
import { ResponseBuilder } from "./builder.js"
import { makeLedger, Recorder } from "./recorder.js"
import * as internal from "./telemetry.js"
import * as Tokenizer from "./tokenizer.js"

type ResolvedRequest = LLM.ResolvedRequest

/**
 * Effect annotates an error that fails inside a span by wrapping it in a `Proxy` that points to the
 * span. Callers get the driver's own error instances back, as before the call had a span (errors
 * are compared by identity; the span trace is on the span itself). Maps the cause, not the error:
 * failing again would wrap again.
 */
const originalErrors = <E>(cause: Cause.Cause<E>): Cause.Cause<E> => Cause.map(cause, Cause.originalError)

/** Where the `Finish` of a batch of events is; -1 when it has none. */
const finishIndex = (chunk: Iterable<Response.StreamEvent>): number => {
  let i = 0
  for (const event of chunk) {
    if (event._tag === "Finish") return i
    i++
  }
  return -1
}

/** A reply that ended without its `Finish`. */
const noFinish = (providerId: string): LLMError.MalformedResponseError =>
  new LLMError.MalformedResponseError({
    provider: providerId,
    message: `${providerId}: malformed reply: the reply ended without its Finish event`
  })

/**
 * The parts of a request that are sent as JSON but typed `unknown` (tool parameters, the input of
 * earlier tool calls, metadata), checked before any request: a BigInt or a cycle there is the
 * caller's mistake, refused with `InvalidRequestError`, not a failed (and retried) call.
 */
const unsendable = (providerId: string, request: ResolvedRequest): LLMError.InvalidRequestError | undefined => {
  const check = (what: string, value: unknown): LLMError.InvalidRequestError | undefined => {
    try {
      JSON.stringify(value)
      return undefined
    } catch (error) {
      return new LLMError.InvalidRequestError({
        provider: providerId,
        message: `${providerId}: the ${what} cannot be sent as JSON: ${error instanceof Error ? error.message : error}`
      })
    }
  }
  if (request.tools !== undefined) {
    for (const tool of request.tools) {
      const problem = check(`parameters of tool "${tool.name}"`, tool.parameters)
      if (problem !== undefined) return problem
    }
  }
  for (const message of request.messages) {
    for (const part of message.content) {
      if (part._tag !== "ToolCall") continue
      const problem = check(`input of tool call "${part.id}"`, part.input)
      if (problem !== undefined) return problem
    }
  }
  return request.metadata === undefined ? undefined : check("metadata", request.metadata)
}

/** Builds the `LLM` service from a driver. */
export const make = (driver: LLM.Driver): Effect.Effect<LLM.Service> =>
  Effect.gen(function*() {
    const ledger = yield* makeLedger(driver.providerId, driver.pricing)

    const resolve = (request: LLM.CompletionRequest): ResolvedRequest => {
      if (request.model !== undefined && request.maxTokens !== undefined) return request as ResolvedRequest
      // A plain copy, then the defaults: a spread that also overrides keys takes V8's slow path.
      const resolved: { -readonly [K in keyof ResolvedRequest]: ResolvedRequest[K] } = { ...request } as any
      resolved.model ??= driver.defaultModel
      resolved.maxTokens ??= driver.defaultMaxTokens
      return resolved
    }

    /** The local checks: a failure reaches no provider and is counted in no usage. */
    const validate = (request: ResolvedRequest): LLMError.LLMError | undefined =>
      unsendable(driver.providerId, request) ?? driver.validate?.(request)

    // -------------------------------------------------------------------------
    // The context-fit guard
    // -------------------------------------------------------------------------

    /** The context window of a model, `undefined` when the model is unknown (the window is a guess). */
    const windows = new Map<string, number | undefined>()
    const windowOf = (model: string): number | undefined => {
      if (windows.has(model)) return windows.get(model)
      const capabilities = driver.capabilities(model)
      const window = capabilities === Capabilities.unknown ? undefined : capabilities.contextWindow
      if (windows.size < 1024) windows.set(model, window)
      return window
    }

    /**
     * The driver's exact count (a request to the provider), in a client span of its own: counted in
     * no usage, as the provider bills no tokens for it.
     */
    const exactCount = (resolved: ResolvedRequest): Effect.Effect<number, LLMError.LLMError> => {
      const options = internal.spanOptions(driver.providerType, driver.providerId, resolved)
      return Effect.tap(
        driver.countTokens!(resolved),
        (inputTokens) => Effect.annotateCurrentSpan(Telemetry.Attributes.usageInputTokens, inputTokens)
      ).pipe(
        Effect.withSpan(Telemetry.SpanNames.countTokens, {
          ...options,
          attributes: { ...options.attributes, [Telemetry.Attributes.operationName]: "count_tokens" }
        })
      )
    }

    /**
     * Whether a request surely fits its model's window, with no count: every BPE token is at least
     * one UTF-8 byte and a UTF-16 unit at most 3 bytes, so 3 x its characters (plus generous
     * framing) bounds its tokens. Most requests are far from the window and pass here.
     */
    const fitsSurely = (resolved: ResolvedRequest): boolean => {
      const window = windowOf(resolved.model)
      return window === undefined || Tokenizer.upperBound(resolved) + resolved.maxTokens <= window
    }

    /**
     * A request near its model's window, counted: the request to send (itself, or with `maxTokens`
     * clamped to fit when the driver says so), or the `ContextLengthError` that refuses it. The
     * local count first; when it says the request does not fit, the driver's exact count decides
     * (an over-estimate never refuses a request that fits). With neither an exact count nor a
     * tokenizer, the estimate refuses only a request that would not fit even at twice its density;
     * a count that fails leaves the request to the provider.
     */
    const fit = (resolved: ResolvedRequest): Effect.Effect<ResolvedRequest | LLMError.ContextLengthError> => {
      const window = windowOf(resolved.model)
      if (window === undefined) return Effect.succeed(resolved)
      return Effect.flatMap(Tokenizer.countLocal(resolved), (local) => {
        if (local.inputTokens + resolved.maxTokens <= window) return Effect.succeed(resolved)
        if (driver.countTokens !== undefined) {
          return Effect.match(exactCount(resolved), {
            onFailure: () => driver.clampMaxTokens === true ? decide(resolved, window, local) : resolved,
            onSuccess: (inputTokens) => decide(resolved, window, { inputTokens, method: "provider" })
          })
        }
        if (local.method === "estimate" && driver.clampMaxTokens !== true) {
          const lower = Math.floor(local.inputTokens / 2)
          return Effect.succeed(
            lower + resolved.maxTokens <= window ? resolved : decide(resolved, window, { ...local, inputTokens: lower })
          )
        }
        return Effect.succeed(decide(resolved, window, local))
      })
    }

    const decide = (
      resolved: ResolvedRequest,
      window: number,
      counted: Tokens.TokenCount
    ): ResolvedRequest | LLMError.ContextLengthError => {
      if (counted.inputTokens + resolved.maxTokens <= window) return resolved
      const room = window - counted.inputTokens
      let why = ""
      if (driver.clampMaxTokens === true) {
        if (room >= 1) {
          const clamped: ResolvedRequest = { ...resolved, maxTokens: room }
          const problem = driver.validate?.(clamped)
          if (problem === undefined) return clamped
          why = `; maxTokens clamped to ${room} is refused: ${problem.message}`
        } else {
          why = "; no room is left for any output"
        }
      }
      const prompt = counted.method === "estimate"
        ? `at least ${counted.inputTokens} tokens, estimated`
        : `${counted.inputTokens} tokens, ${
          counted.method === "provider" ? "counted by the provider" : "by the tokenizer"
        }`
      return new LLMError.ContextLengthError({
        provider: driver.providerId,
        message: `${driver.providerId}: the prompt (${prompt}) plus maxTokens ${resolved.maxTokens} is more than ` +
          `the context window of ${resolved.model} (${window} tokens), refused before any request` +
          (why === ""
            ? `: lower maxTokens to ${Math.max(room, 0)} or less, shorten the prompt, or set clampMaxTokens`
            : why)
      })
    }

    const openSpan = (tracing: boolean, name: string, resolved: ResolvedRequest) =>
      tracing
        ? Effect.makeSpan(name, internal.spanOptions(driver.providerType, driver.providerId, resolved))
        : Effect.succeed(internal.unobservedSpan)

    const complete = (request: LLM.CompletionRequest): Effect.Effect<Response.LLMResponse, LLMError.LLMError> => {
      const resolved = resolve(request)
      const invalid = validate(resolved)
      if (invalid !== undefined || fitsSurely(resolved)) return completeResolved(resolved, invalid)
      // Near the context window: counted before the call starts (an interrupted count is no call).
      return Effect.flatMap(
        fit(resolved),
        (fitted) =>
          LLMError.isLLMError(fitted) ? completeResolved(resolved, fitted) : completeResolved(fitted, undefined)
      )
    }

    const completeResolved = (
      resolved: ResolvedRequest,
      invalid: LLMError.LLMError | undefined
    ): Effect.Effect<Response.LLMResponse, LLMError.LLMError> =>
      // The call starts (its span, its recorder, its finalizer) in one uninterruptible step; only the
      // driver's request can be interrupted, and whatever happens the recorder records the call.
      Effect.uninterruptibleMask((restore) =>
        Effect.withFiberRuntime<Response.LLMResponse, LLMError.LLMError>((fiber) => {
          const tracing = internal.observed(fiber)
          return Effect.flatMap(openSpan(tracing, Telemetry.SpanNames.complete, resolved), (span) => {
            const recorder = new Recorder(ledger, resolved.model)
            recorder.start(fiber, Telemetry.SpanNames.complete, span, resolved)
            const call: Effect.Effect<Response.LLMResponse, LLMError.LLMError> = invalid !== undefined
              ? Effect.zipRight(recorder.refuse(invalid), Effect.failCause(Cause.fail(invalid)))
              : restore(driver.send(resolved, recorder.report)).pipe(
                Effect.mapErrorCause(originalErrors),
                Effect.flatMap((events) => {
                  const at = finishIndex(events)
                  if (at < 0) return Effect.fail(noFinish(driver.providerId))
                  const builder = new ResponseBuilder()
                  for (let i = 0; i < at; i++) builder.add(events[i]!)
                  builder.add(recorder.price(events[at] as Response.Finish))
                  return Effect.succeed(builder.build())
                }),
                Effect.onExit((exit) =>
                  Exit.isSuccess(exit)
                    ? recorder.succeed(exit.value)
                    : recorder.fail(internal.errorOfCause(exit.cause), true)
                )
              )
            // The span is the parent of everything the call does.
            return Effect.onExit(tracing ? Effect.withParentSpan(call, span) : call, (exit) => recorder.close(exit))
          })
        })
      )

    const stream = (request: LLM.CompletionRequest): Stream.Stream<Response.StreamEvent, LLMError.LLMError> =>
      Stream.suspend(() => {
        const resolved = resolve(request)
        const invalid = validate(resolved)
        if (invalid !== undefined || fitsSurely(resolved)) return streamResolved(resolved, invalid)
        return Stream.unwrap(Effect.map(
          fit(resolved),
          (fitted) => LLMError.isLLMError(fitted) ? streamResolved(resolved, fitted) : streamResolved(fitted, undefined)
        ))
      })

    const streamResolved = (
      resolved: ResolvedRequest,
      invalid: LLMError.LLMError | undefined
    ): Stream.Stream<Response.StreamEvent, LLMError.LLMError> =>
      // One channel finalizer ends the span and records a stream that did not reach its `Finish`
      // (lighter than `Stream.withSpan` + `Stream.unwrap` + `Stream.ensuringWith`).
      Stream.fromChannel(Channel.suspend(() => {
        // The call's one piece of state, owned by this stream.
        const recorder = new Recorder(ledger, resolved.model)

        type Batch = Chunk.Chunk<Response.StreamEvent>
        type Events = Channel.Channel<Batch, unknown, LLMError.LLMError>

        /**
         * The driver's events, each batch looked at once: the time to the first event, the content
         * when it is recorded, and at the `Finish` the price and the tally. The `Finish` is the end
         * of the reply wherever it is in its batch: what follows it is dropped, and the driver is not
         * read again (its finalizer lets go of the connection, even one the server keeps open). A
         * reply that ends without one is malformed. A reader written by hand, so that a batch
         * without a `Finish` (all but the last) costs no effect.
         */
        const reader: Channel.Channel<Batch, Batch, LLMError.LLMError, LLMError.LLMError, unknown, unknown> = Channel
          .readWithCause({
            onInput: (chunk: Batch) => {
              const at = finishIndex(chunk)
              if (at < 0) {
                recorder.events(chunk, Chunk.isNonEmpty(chunk))
                return Channel.flatMap(Channel.write(chunk), () => reader)
              }
              const events = Chunk.toReadonlyArray(chunk)
              const finish = recorder.price(events[at] as Response.Finish)
              // A new array, not Chunk.append(Chunk.dropRight(...)): that pair loses elements when
              // chunks are later concatenated in effect 3.22 (Effect-TS/effect#7616).
              const priced = events.slice(0, at + 1)
              priced[at] = finish
              recorder.events(priced, true)
              return Channel.zipRight(
                Channel.fromEffect(recorder.finish(finish)),
                Channel.write(Chunk.unsafeFromArray(priced))
              )
            },
            onFailure: (cause) => Channel.failCause(originalErrors(cause)),
            onDone: () => Channel.fail(noFinish(driver.providerId))
          })

        const open = Effect.uninterruptible(Effect.withFiberRuntime<Events>((fiber) => {
          const tracing = internal.observed(fiber)
          return Effect.flatMap(
            openSpan(tracing, Telemetry.SpanNames.stream, resolved),
            (span): Effect.Effect<Events> => {
              recorder.start(fiber, Telemetry.SpanNames.stream, span, resolved)
              if (invalid !== undefined) {
                return Effect.as(recorder.refuse(invalid), Channel.failCause(Cause.fail(invalid)))
              }
              // The span is not provided to the driver's stream as its parent: a channel provides its
              // context again on every pull, which would double the cost of each batch of events.
              return Effect.succeed(
                Channel.pipeTo(Stream.toChannel(driver.sendStream(resolved, recorder.report)), reader)
              )
            }
          )
        }))

        return Channel.ensuringWith(Channel.unwrap(open), (exit) => recorder.close(exit))
      }))

    /** Counts a request: locally by default, with the driver's exact count when asked and it has one. */
    const countResolved = (
      resolved: ResolvedRequest,
      options: Tokens.CountOptions | undefined
    ): Effect.Effect<Tokens.TokenCount, LLMError.LLMError> => {
      // Counting JSON that cannot be sent would throw: the same refusal as a call.
      const unfit = unsendable(driver.providerId, resolved)
      if (unfit !== undefined) return Effect.fail(unfit)
      if (options?.method === "provider" && driver.countTokens !== undefined) {
        const invalid = driver.validate?.(resolved)
        if (invalid !== undefined) return Effect.fail(invalid)
        return Effect.map(
          Effect.mapErrorCause(exactCount(resolved), originalErrors),
          (inputTokens): Tokens.TokenCount => ({ inputTokens, method: "provider" })
        )
      }
      return Tokenizer.countLocal(resolved)
    }

    const countTokens = (
      request: LLM.CompletionRequest,
      options?: Tokens.CountOptions
    ): Effect.Effect<Tokens.TokenCount, LLMError.LLMError> =>
      Effect.suspend(() => countResolved(resolve(request), options))

    const forecast = (
      request: LLM.CompletionRequest,
      options?: Tokens.CountOptions
    ): Effect.Effect<Tokens.Forecast, LLMError.LLMError> =>
      Effect.suspend(() => {
        const resolved = resolve(request)
        return Effect.map(countResolved(resolved, options), (counted): Tokens.Forecast => {
          let maxOutputTokens = resolved.maxTokens > 0
            ? resolved.maxTokens
            : driver.capabilities(resolved.model).maxOutputTokens
          // What a clamping provider will send.
          const window = windowOf(resolved.model)
          if (
            driver.clampMaxTokens === true && window !== undefined && counted.inputTokens + maxOutputTokens > window
          ) {
            maxOutputTokens = Math.max(0, window - counted.inputTokens)
          }
          return {
            model: resolved.model,
            inputTokens: counted.inputTokens,
            maxOutputTokens,
            maxUsd: Pricing.cost(
              resolved.model,
              Usage.tokens({ inputTokens: counted.inputTokens, outputTokens: maxOutputTokens }),
              driver.pricing
            ),
            method: counted.method
          }
        })
      })

    return {
      providerId: driver.providerId,
      providerType: driver.providerType,
      defaultModel: driver.defaultModel,
      capabilities: (model) => driver.capabilities(model ?? driver.defaultModel),
      complete,
      stream,
      countTokens,
      forecast,
      usage: ledger.tracker.get,
      resetUsage: ledger.tracker.reset
    } satisfies LLM.Service
  })
