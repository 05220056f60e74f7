/**
 * `rate_limits` (per provider and agent) and `shared_state` in the config, and the registry
 * wiring them: through the real SDK against FakeProviderServer; two registries on one real
 * redis-server of the test's own share a provider's limit.
 */
import { describe, expect, it, layer } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Message from "../src/Message.js"
import * as ProviderRegistry from "../src/ProviderRegistry.js"
import * as ProvidersConfig from "../src/ProvidersConfig.js"
import * as FakeProviderServer from "../src/testing/FakeProviderServer.js"
import * as RedisHarness from "./redis.js"

const parse = (text: string, vars: Record<string, string> = {}) =>
  ProvidersConfig.parse(text, "test/rate-limits.yaml").pipe(
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(vars))))
  )

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

describe("rate_limits and shared_state in the config", () => {
  it.effect("decode per provider, per agent and top level; the Redis URL is a secret", () =>
    Effect.gen(function*() {
      const config = yield* parse(
        `
shared_state:
  redis_url: \${REDIS_URL}
  namespace: prod
  on_unavailable: local
  timeout: 200 millis
providers:
  gpt:
    api_key: k
    default_model: gpt-4o-mini
    rate_limits: { rpm: 500, tpm: 200000, max_wait: 10 seconds }
agents:
  planner:
    provider: gpt
    rate_limits: { rpm: 5, period: 1 second }
`,
        { REDIS_URL: "redis://:hunter2@127.0.0.1:6390" }
      )
      expect(config.providers.gpt!.rateLimits).toEqual({ rpm: 500, tpm: 200000, maxWait: Duration.seconds(10) })
      expect(config.agents.planner!.rateLimits).toEqual({ rpm: 5, period: Duration.seconds(1) })
      expect(config.sharedState?.namespace).toBe("prod")
      expect(config.sharedState?.onUnavailable).toBe("local")
      expect(Redacted.isRedacted(config.sharedState?.redisUrl)).toBe(true)
      expect(Redacted.value(config.sharedState!.redisUrl!)).toBe("redis://:hunter2@127.0.0.1:6390")
      expect(JSON.stringify(config)).not.toContain("hunter2")
    }))

  it.effect("bad values are reported with their place", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(parse(`
shared_state: { on_unavailable: maybe, extra: 1 }
providers:
  gpt:
    api_key: k
    default_model: gpt-4o-mini
    rate_limits: { rpm: -1, tpx: 3 }
`))
      const text = error.problems.join("\n")
      expect(text).toContain("shared_state.on_unavailable")
      expect(text).toContain("fail or local")
      expect(text).toContain("providers.gpt.rate_limits.rpm")
      expect(text).toContain("tpx")
    }))
})

class Redis extends Context.Tag("test/RateLimit.config/Redis")<Redis, RedisHarness.RedisServer>() {}

const TestEnv = Layer.merge(FakeProviderServer.layer(), Layer.scoped(Redis, RedisHarness.make()))

layer(TestEnv, { excludeTestServices: true })("rate limits in the registry", (it) => {
  const yaml = `
shared_state:
  redis_url: \${REDIS_URL}
  namespace: \${NAMESPACE}
providers:
  gpt:
    api_key: k
    default_model: gpt-4o-mini
    base_url: \${FAKE_URL}/v1
    rate_limits: { rpm: 4, max_wait: 1 millis }
agents:
  planner:
    provider: gpt
    rate_limits: { rpm: 1, max_wait: 1 millis }
`
  const ask = { messages: [Message.user("hi")] }
  let namespaces = 0

  it.scoped("two registries (two workers) on one Redis share a provider's rpm; an agent has its own on top", () =>
    Effect.gen(function*() {
      const server = yield* FakeProviderServer.FakeProviderServer
      const redis = yield* Redis
      yield* server.reset
      const config = yield* parse(yaml, {
        FAKE_URL: server.url,
        REDIS_URL: redis.url,
        NAMESPACE: `cfg${process.pid}-${++namespaces}`
      })
      const a = Context.get(
        yield* Layer.build(ProviderRegistry.layerFromConfig(config)),
        ProviderRegistry.ProviderRegistry
      )
      const b = Context.get(
        yield* Layer.build(ProviderRegistry.layerFromConfig(config)),
        ProviderRegistry.ProviderRegistry
      )
      // The agent: 1 per minute of its own.
      const planner = yield* a.getForAgent("planner")
      yield* planner.complete(ask)
      expect(failureOf(yield* Effect.exit(planner.complete(ask)))?._tag).toBe("RateLimitError")
      // The provider: 4 per minute across both registries (the planner's call counted).
      const gptA = yield* a.get("gpt")
      const gptB = yield* b.get("gpt")
      const exits = yield* Effect.forEach([gptA, gptB, gptA, gptB, gptA], (llm) => Effect.exit(llm.complete(ask)))
      expect(exits.filter(Exit.isSuccess).length).toBe(3)
      expect((yield* server.requests).length).toBe(4)
    }))

  it.scoped("Redis down at start: the registry builds, with local limits and a warning", () =>
    Effect.gen(function*() {
      const server = yield* FakeProviderServer.FakeProviderServer
      yield* server.reset
      const redis = yield* Redis
      const config = yield* parse(yaml, {
        FAKE_URL: server.url,
        REDIS_URL: `redis://127.0.0.1:${redis.port + 1}`,
        NAMESPACE: "down"
      })
      const registry = Context.get(
        yield* Layer.build(ProviderRegistry.layerFromConfig(config)),
        ProviderRegistry.ProviderRegistry
      )
      const gpt = yield* registry.get("gpt")
      const exits = yield* Effect.forEach([1, 2, 3, 4, 5], () => Effect.exit(gpt.complete(ask)))
      expect(exits.filter(Exit.isSuccess).length).toBe(4)
    }))
})
