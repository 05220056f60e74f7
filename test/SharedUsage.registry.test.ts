/**
 * The registry's usage totals (issue 14): with `shared_state` in the config every registry
 * (worker) on one Redis records its providers' settled replies there, and `usageTotals` says
 * `"shared"` and sums them all exactly; without it, `"local"` (what `totalUsage` says).
 */
import { expect, layer } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as Message from "../src/Message.js"
import * as ProviderRegistry from "../src/ProviderRegistry.js"
import * as ProvidersConfig from "../src/ProvidersConfig.js"
import * as FakeProviderServer from "../src/testing/FakeProviderServer.js"
import * as Usage from "../src/Usage.js"
import * as RedisHarness from "./redis.js"

class Redis extends Context.Tag("test/SharedUsage.registry/Redis")<Redis, RedisHarness.RedisServer>() {}

const TestEnv = Layer.merge(FakeProviderServer.layer(), Layer.scoped(Redis, RedisHarness.make()))

const parse = (text: string, vars: Record<string, string> = {}) =>
  ProvidersConfig.parse(text, "test/shared-usage.yaml").pipe(
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(vars))))
  )

const providers = `
providers:
  gpt:
    api_key: k
    default_model: gpt-4o-mini
    base_url: \${FAKE_URL}/v1
`
const shared = `
shared_state:
  redis_url: \${REDIS_URL}
  namespace: \${NAMESPACE}
${providers}`

const ask = { messages: [Message.user("hi")] }

layer(TestEnv, { excludeTestServices: true })("ProviderRegistry.usageTotals", (it) => {
  it.scoped("two registries on one Redis: shared totals equal the sum of their local tallies exactly", () =>
    Effect.gen(function*() {
      const server = yield* FakeProviderServer.FakeProviderServer
      const redis = yield* Redis
      yield* server.reset
      const config = yield* parse(shared, {
        FAKE_URL: server.url,
        REDIS_URL: redis.url,
        NAMESPACE: `reg${process.pid}-${Date.now()}`
      })
      const registries = yield* Effect.forEach([1, 2], () =>
        Effect.map(
          Layer.build(ProviderRegistry.layerFromConfig(config)),
          (ctx) => Context.get(ctx, ProviderRegistry.ProviderRegistry)
        ))
      for (const [i, registry] of registries.entries()) {
        const gpt = yield* registry.get("gpt")
        yield* Effect.forEach(Array.from({ length: 5 + i }), () => gpt.complete(ask), { concurrency: 3 })
        yield* Stream.runDrain(gpt.stream(ask))
      }
      const locals = yield* Effect.forEach(registries, (r) => r.totalUsage)
      const sum = locals.reduce((acc, u) => Usage.combine(acc, u), Usage.empty)
      // Each worker's outbox flushes on an interval; reading the totals flushes the reader's own.
      yield* registries[1]!.usageTotals
      const totals = yield* registries[0]!.usageTotals
      expect(totals.scope).toBe("shared")
      expect((yield* server.requests).length).toBe(13)
      expect(totals.usage.calls).toBe(13)
      expect(sum.calls).toBe(13)
      expect({ ...totals.usage, costUsd: 0, byModel: {} }).toEqual({ ...sum, costUsd: 0, byModel: {} })
      expect(totals.usage.costUsd).toBeCloseTo(sum.costUsd, 9)
      // The other worker reads the same totals.
      expect((yield* registries[1]!.usageTotals).usage.calls).toBe(13)
    }))

  it.scoped("without shared_state: local, as totalUsage", () =>
    Effect.gen(function*() {
      const server = yield* FakeProviderServer.FakeProviderServer
      yield* server.reset
      const config = yield* parse(providers, { FAKE_URL: server.url })
      const registry = Context.get(
        yield* Layer.build(ProviderRegistry.layerFromConfig(config)),
        ProviderRegistry.ProviderRegistry
      )
      yield* (yield* registry.get("gpt")).complete(ask)
      const totals = yield* registry.usageTotals
      expect(totals.scope).toBe("local")
      expect(totals.usage).toEqual(yield* registry.totalUsage)
      expect(totals.usage.calls).toBe(1)
    }))
})
