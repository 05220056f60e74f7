/**
 * The registry's shared usage (issue 14): when a `SharedState` is configured (the config's
 * `shared_state` Redis, else a `SharedState` in context), each provider's settled replies are
 * added to `SharedState.usage`, and the registry's totals read from there.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as LLM from "../../LLM.js"
import type * as ProvidersConfig from "../../ProvidersConfig.js"
import * as SharedState from "../../SharedState.js"
import type * as Usage from "../../Usage.js"

/** The store: a `SharedState` in context, else the config's Redis; none (local totals) otherwise. */
export const store = (
  config: ProvidersConfig.ProvidersConfig
): Effect.Effect<Option.Option<SharedState.Service>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const inContext = yield* Effect.serviceOption(SharedState.SharedState)
    if (Option.isSome(inContext)) return inContext
    const settings = config.sharedState
    if (settings?.redisUrl === undefined) return Option.none()
    const built = yield* Effect.either(Layer.build(SharedState.layerRedis({
      url: settings.redisUrl,
      namespace: settings.namespace,
      timeout: settings.timeout
    })))
    if (built._tag === "Right") return Option.some(Context.get(built.right, SharedState.SharedState))
    yield* Effect.logWarning(`usage: shared state unavailable at start (${built.left.message}); local totals only`)
    return Option.none()
  })

/** Adds each settled reply of `llm` (complete, or a stream's `Finish`) to the shared usage. */
export const record = (llm: LLM.Service, usage: SharedState.UsageStore): LLM.Service => {
  const provider = llm.providerId
  const add = (reply: {
    readonly model: string
    readonly usage: Usage.Tokens
    readonly costUsd: number | undefined
    readonly usageUnknown?: true
  }) =>
    usage.add(SharedState.usageEntry(provider, {
      model: reply.model,
      tokens: reply.usageUnknown === true ? undefined : reply.usage,
      costUsd: reply.usageUnknown === true ? undefined : reply.costUsd,
      failed: false
    }))
  return {
    ...llm,
    complete: (request) => Effect.tap(llm.complete(request), add),
    stream: (request) => Stream.tap(llm.stream(request), (event) => event._tag === "Finish" ? add(event) : Effect.void)
  }
}
