/**
 * The registry's rate limits (issue 14): `rate_limits` of providers and agents, on the registry's
 * shared state when it has one, else in memory.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
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

/** The wiring, on the registry's shared state when it has one (see `sharedState.ts`), else in memory. */
export const make = (
  config: ProvidersConfig.ProvidersConfig,
  shared: Option.Option<SharedState.Service>
): Effect.Effect<Wiring> =>
  Effect.gen(function*() {
    const providers = Object.values(config.providers).filter((p) => p.rateLimits !== undefined)
    const agents = Object.values(config.agents).filter((a) => a.rateLimits !== undefined)
    if (providers.length === 0 && agents.length === 0) return identity
    const state = Option.isSome(shared) ? shared.value : yield* SharedState.make
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
