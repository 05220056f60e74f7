/**
 * A provider (or an agent) wrapped in the resilience settings of its config, in `Resilience.wrap`'s
 * order: `fallback(retry(circuitBreaker(timeout(llm))))`, with a breaker made beforehand (one per
 * provider, shared) and waits between retries that end when the registry closes.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as CircuitBreaker from "../../CircuitBreaker.js"
import type * as LLM from "../../LLM.js"
import type * as ProvidersConfig from "../../ProvidersConfig.js"
import * as Resilience from "../../Resilience.js"
import * as Retry from "../retry.js"

/** A setting that is present and not turned off with `false`. */
export const isOn = <A>(setting: A | false | undefined): setting is A => setting !== undefined && setting !== false

/** An agent's settings on top of its provider's: each one the agent sets replaces the provider's. */
export const agentSettings = (
  provider: ProvidersConfig.ResilienceSettings,
  agent: ProvidersConfig.ResilienceSettings
): ProvidersConfig.ResilienceSettings => ({
  retry: agent.retry ?? provider.retry,
  requestTimeout: agent.requestTimeout ?? provider.requestTimeout,
  circuitBreaker: agent.circuitBreaker ?? provider.circuitBreaker,
  fallbacks: agent.fallbacks ?? provider.fallbacks,
  sameModel: agent.sameModel ?? provider.sameModel
})

/** Whether an agent sets any resilience setting of its own (then it gets its own wrapping). */
export const hasOwnSettings = (agent: ProvidersConfig.ResilienceSettings): boolean =>
  agent.retry !== undefined || agent.requestTimeout !== undefined || agent.circuitBreaker !== undefined ||
  agent.fallbacks !== undefined || agent.sameModel !== undefined

/**
 * The registry's wait between two retries: it ends when the registry closes, and the next attempt
 * then fails with `released` (not retryable), so a call waiting between two retries ends with the
 * registry. Only the waits race the close, never the calls; the policy itself stays pure, so its
 * filters decide before any wait.
 */
const waitUntilClosed = (closed: Deferred.Deferred<void>): Retry.Wait => (delay) =>
  Effect.raceFirst(Effect.sleep(delay), Deferred.await(closed))

/**
 * `base` wrapped as `Resilience.wrap` does, `fallback(retry(circuitBreaker(timeout(base))))`, with a
 * circuit breaker made beforehand (so that its state is shared by everything built on the same
 * provider) and fallbacks already wrapped in their own settings. The result keeps `base`'s
 * `providerId`, `usage` and `resetUsage`: each provider's calls count on that provider only.
 */
export const resilient = (
  base: LLM.Service,
  settings: ProvidersConfig.ResilienceSettings,
  breaker: CircuitBreaker.CircuitBreaker | undefined,
  fallbacks: ReadonlyArray<LLM.Service>,
  closed: Deferred.Deferred<void>
): LLM.Service => {
  let service = isOn(settings.requestTimeout) ? Resilience.withTimeout(base, settings.requestTimeout) : base
  if (breaker !== undefined) service = CircuitBreaker.protectLLM(service, breaker)
  if (isOn(settings.retry)) {
    const policy = Resilience.retryPolicy(settings.retry)
    service = Retry.service(
      service,
      fallbacks.length === 0 ? policy : Retry.beforeFallback(policy),
      waitUntilClosed(closed)
    )
  }
  if (fallbacks.length > 0) {
    service = Resilience.withFallback(service, fallbacks, {
      sameModel: settings.sameModel === true,
      providerId: base.providerId
    })
  }
  return { ...service, usage: base.usage, resetUsage: base.resetUsage }
}
