/**
 * The registry's rate limits (issue 14): `rate_limits` of providers and agents, on the config's
 * `shared_state` (Redis) when it names one, else on a `SharedState` in context, else in memory.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type * as LLM from "../../LLM.js"
import type * as ProvidersConfig from "../../ProvidersConfig.js"
import * as RateLimit from "../../RateLimit.js"
import * as SharedState from "../../SharedState.js"

/** What the registry applies: a provider's limits to its base, an agent's to its calls. */
export interface Wiring {
  readonly provider: (id: string, llm: LLM.Service) => LLM.Service
  readonly agent: (id: string, llm: LLM.Service) => LLM.Service
}

const identity: Wiring = { provider: (_, llm) => llm, agent: (_, llm) => llm }

const limitsOf = (settings: ProvidersConfig.RateLimitSettings): RateLimit.Limits => ({
  rpm: settings.rpm,
  tpm: settings.tpm,
  itpm: settings.itpm,
  otpm: settings.otpm,
  period: settings.period
})

/** The store: the config's Redis (local limits, with a warning, when it cannot be reached at start). */
const store = (config: ProvidersConfig.ProvidersConfig): Effect.Effect<SharedState.Service, never, Scope.Scope> =>
  Effect.gen(function*() {
    const settings = config.sharedState
    if (settings?.redisUrl !== undefined) {
      const built = yield* Effect.either(Layer.build(SharedState.layerRedis({
        url: settings.redisUrl,
        namespace: settings.namespace,
        timeout: settings.timeout
      })))
      if (built._tag === "Right") return Context.get(built.right, SharedState.SharedState)
      yield* Effect.logWarning(
        `rate limits: shared state unavailable at start (${built.left.message}); using local limits`
      )
    }
    const inContext = yield* Effect.serviceOption(SharedState.SharedState)
    return Option.isSome(inContext) ? inContext.value : yield* SharedState.make
  })

export const make = (config: ProvidersConfig.ProvidersConfig): Effect.Effect<Wiring, never, Scope.Scope> =>
  Effect.gen(function*() {
    const providers = Object.values(config.providers).filter((p) => p.rateLimits !== undefined)
    const agents = Object.values(config.agents).filter((a) => a.rateLimits !== undefined)
    if (providers.length === 0 && agents.length === 0) return identity
    const state = yield* store(config)
    const limiter = (bucket: string, settings: ProvidersConfig.RateLimitSettings) =>
      Effect.provideService(
        RateLimit.make({ limits: { [bucket]: limitsOf(settings) }, maxWait: settings.maxWait, bucket }),
        SharedState.SharedState,
        state
      )
    const byProvider = new Map<string, (llm: LLM.Service) => LLM.Service>()
    for (const p of providers) byProvider.set(p.id, yield* limiter(p.id, p.rateLimits!))
    const byAgent = new Map<string, (llm: LLM.Service) => LLM.Service>()
    for (const a of agents) byAgent.set(a.id, yield* limiter(`agent:${a.id}`, a.rateLimits!))
    return {
      provider: (id, llm) => byProvider.get(id)?.(llm) ?? llm,
      agent: (id, llm) => byAgent.get(id)?.(llm) ?? llm
    }
  })
