/**
 * The registry's shared state (issue 14), opened once and used by both its rate limits and its
 * usage totals: the config's `shared_state` Redis when it names one (none, with one warning, when
 * it cannot be reached at start), else a `SharedState` in context, else none.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type * as ProvidersConfig from "../../ProvidersConfig.js"
import * as SharedState from "../../SharedState.js"

export const connect = (
  config: ProvidersConfig.ProvidersConfig
): Effect.Effect<Option.Option<SharedState.Service>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const settings = config.sharedState
    if (settings?.redisUrl !== undefined) {
      const built = yield* Effect.either(Layer.build(SharedState.layerRedis({
        url: settings.redisUrl,
        namespace: settings.namespace,
        timeout: settings.timeout
      })))
      if (built._tag === "Right") return Option.some(Context.get(built.right, SharedState.SharedState))
      yield* Effect.logWarning(
        `shared state unavailable at start (${built.left.message}): rate limits are local, usage totals local only`
      )
      return Option.none()
    }
    return yield* Effect.serviceOption(SharedState.SharedState)
  })
