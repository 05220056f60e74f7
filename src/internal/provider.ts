/**
 * The shared call path. A provider only maps requests to its wire format and replies to neutral
 * events (a `Driver`); this module does the rest once for all of them: defaults, local
 * validation, pricing, the usage tally (every call that reaches the provider recorded exactly
 * once), the unpriced-model warning, and the response fold.
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as HashSet from "effect/HashSet"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import type * as Capabilities from "../Capabilities.js"
import type * as LLM from "../LLM.js"
import type * as LLMError from "../LLMError.js"
import * as Pricing from "../Pricing.js"
import type * as Response from "../Response.js"
import * as Usage from "../Usage.js"
import { ResponseBuilder } from "./builder.js"

/** A request with the provider's defaults applied. */
export interface ResolvedRequest extends LLM.CompletionRequest {
  readonly model: string
  readonly maxTokens: number
}

/** The end of a reply as a provider reports it, before pricing. */
export interface RawFinish {
  readonly finishReason: Response.FinishReason
  readonly rawFinishReason?: string | undefined
  readonly usage: Usage.Tokens
  readonly model: string
  readonly requestId?: string | undefined
  /** Cost the provider itself reported (a gateway); wins over the price table. */
  readonly costUsd?: number | undefined
}

/** A complete (non-streamed) reply in neutral form: content events in order, then the end. */
export interface Completed {
  readonly events: ReadonlyArray<Response.StreamEvent>
  readonly finish: RawFinish
}

/** Called by a streaming driver whenever the provider reports usage before the end. */
export type ReportUsage = (usage: Usage.Tokens) => void

/** What a provider module supplies. */
export interface Driver {
  readonly providerId: string
  readonly providerType: LLM.ProviderType
  readonly defaultModel: string
  readonly defaultMaxTokens: number
  readonly capabilities: (model: string) => Capabilities.Capabilities
  /** Price overrides from config; looked up before the built-in table. */
  readonly pricing?: Pricing.PriceTable | undefined
  /** A local check run before any request; a failure reaches no provider and is not counted. */
  readonly validate?: (request: ResolvedRequest) => LLMError.LLMError | undefined
  readonly complete: (request: ResolvedRequest) => Effect.Effect<Completed, LLMError.LLMError>
  /** Must end with one `Finish` event (its `costUsd` may be left undefined) or fail. */
  readonly stream: (
    request: ResolvedRequest,
    report: ReportUsage
  ) => Stream.Stream<Response.StreamEvent, LLMError.LLMError>
}

/** Builds a raw `Finish` event; the shared path prices it. */
export const finishEvent = (providerId: string, raw: RawFinish): Response.Finish => {
  const event: { -readonly [K in keyof Response.Finish]: Response.Finish[K] } = {
    _tag: "Finish",
    finishReason: raw.finishReason,
    usage: raw.usage,
    costUsd: raw.costUsd,
    model: raw.model,
    providerId
  }
  if (raw.rawFinishReason !== undefined) event.rawFinishReason = raw.rawFinishReason
  if (raw.requestId !== undefined) event.requestId = raw.requestId
  return event
}

/** Builds the `LLM` service from a driver. */
export const make = (driver: Driver): Effect.Effect<LLM.Service> =>
  Effect.gen(function*() {
    const tracker = yield* Usage.makeTracker
    const warned = yield* Ref.make(HashSet.empty<string>())

    const resolve = (request: LLM.CompletionRequest): ResolvedRequest => ({
      ...request,
      model: request.model ?? driver.defaultModel,
      maxTokens: request.maxTokens ?? driver.defaultMaxTokens
    })

    const priceOf = (requested: string, finish: Response.Finish): number | undefined => {
      if (finish.costUsd !== undefined) return finish.costUsd
      const byReply = finish.model === "" ? undefined : Pricing.cost(finish.model, finish.usage, driver.pricing)
      return byReply ?? Pricing.cost(requested, finish.usage, driver.pricing)
    }

    const warnUnpriced = (model: string) =>
      Ref.modify(warned, (set) => HashSet.has(set, model) ? [false, set] : [true, HashSet.add(set, model)]).pipe(
        Effect.flatMap((first) =>
          first
            ? Effect.logWarning(
              `${driver.providerId}: no price known for model "${model}"; its calls are counted as unpriced, not costed. ` +
                `Add it under providers.${driver.providerId}.pricing to cost it.`
            ).pipe(Effect.annotateLogs({ provider: driver.providerId, model }))
            : Effect.void
        )
      )

    const record = (model: string, tokens: Usage.Tokens, costUsd: number | undefined, failed: boolean) =>
      Effect.zipRight(
        tracker.record({ model, tokens, costUsd, failed }),
        costUsd === undefined ? warnUnpriced(model) : Effect.void
      )

    const price = (requested: string, finish: Response.Finish): Response.Finish => {
      const costUsd = priceOf(requested, finish)
      return costUsd === finish.costUsd ? finish : { ...finish, costUsd }
    }

    const complete = (request: LLM.CompletionRequest): Effect.Effect<Response.LLMResponse, LLMError.LLMError> =>
      Effect.suspend(() => {
        const resolved = resolve(request)
        const invalid = driver.validate?.(resolved)
        if (invalid !== undefined) return Effect.fail(invalid)
        return driver.complete(resolved).pipe(
          Effect.map((completed) => {
            const builder = new ResponseBuilder()
            builder.addAll(completed.events)
            builder.add(price(resolved.model, finishEvent(driver.providerId, completed.finish)))
            return builder.build()
          }),
          Effect.onExit((exit) =>
            Exit.isSuccess(exit)
              ? record(resolved.model, exit.value.usage, exit.value.costUsd, false)
              : record(resolved.model, Usage.emptyTokens, 0, true)
          )
        )
      })

    const stream = (request: LLM.CompletionRequest): Stream.Stream<Response.StreamEvent, LLMError.LLMError> =>
      Stream.suspend(() => {
        const resolved = resolve(request)
        const invalid = driver.validate?.(resolved)
        if (invalid !== undefined) return Stream.fail(invalid)
        // Per-stream scratch, touched only by this stream's fiber.
        let reported: Usage.Tokens | undefined = undefined
        let recorded = false
        const report: ReportUsage = (usage) => {
          reported = usage
        }
        return driver.stream(resolved, report).pipe(
          Stream.mapChunksEffect((chunk) => {
            const last = Chunk.last(chunk)
            if (Option.isNone(last) || last.value._tag !== "Finish") return Effect.succeed(chunk)
            const finish = price(resolved.model, last.value)
            recorded = true
            return Effect.as(
              record(resolved.model, finish.usage, finish.costUsd, false),
              Chunk.append(Chunk.dropRight(chunk, 1), finish)
            )
          }),
          Stream.ensuring(Effect.suspend(() => {
            if (recorded) return Effect.void
            recorded = true
            const tokens = reported ?? Usage.emptyTokens
            const costUsd = reported === undefined ? 0 : Pricing.cost(resolved.model, tokens, driver.pricing)
            return record(resolved.model, tokens, costUsd, true)
          }))
        )
      })

    return {
      providerId: driver.providerId,
      providerType: driver.providerType,
      defaultModel: driver.defaultModel,
      capabilities: (model) => driver.capabilities(model ?? driver.defaultModel),
      complete,
      stream,
      usage: tracker.get,
      resetUsage: tracker.reset
    } satisfies LLM.Service
  })
