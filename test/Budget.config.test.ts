/**
 * Budgets from the registry config: `budget` per provider and agent, `budgets` at the top; bad
 * values reported with file:line like the rest of the config.
 */
import { describe, expect, it, layer } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Budget from "../src/Budget.js"
import * as Message from "../src/Message.js"
import * as ProviderRegistry from "../src/ProviderRegistry.js"
import * as ProvidersConfig from "../src/ProvidersConfig.js"
import * as FakeProviderServer from "../src/testing/FakeProviderServer.js"

const { Reply } = FakeProviderServer

const parse = (text: string, vars: Record<string, string> = {}) =>
  ProvidersConfig.parse(text, "test/budgets.yaml").pipe(
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(vars))))
  )

const problems = (text: string) => Effect.map(Effect.flip(parse(text)), (error) => error.problems)

describe("budget settings in the config", () => {
  it.effect("per provider, per agent and budgets (total, scopes, rules) decode to Budget's options", () =>
    Effect.gen(function*() {
      const config = yield* parse(`
providers:
  gpt:
    api_key: k
    default_model: gpt-4o-mini
    budget: { usd: 5, window: 1 day }
agents:
  planner:
    provider: gpt
    budget: { usd: 1, tokens: 200000 }
budgets:
  total: { usd: 20, window: 1 day }
  scopes:
    "*": { usd: 2, window: 1 hour }
  thresholds: [0.5, 0.9]
  committed_thresholds: [1]
  unpriced: allow
  unmetered: zero
  max_reserve_usd: 0.5
`)
      expect(config.providers.gpt!.budget).toEqual({ usd: 5, window: Duration.days(1) })
      expect(config.agents.planner!.budget).toEqual({ usd: 1, tokens: 200000 })
      expect(config.budgets).toEqual({
        total: { usd: 20, window: Duration.days(1) },
        scopes: { "*": { usd: 2, window: Duration.hours(1) } },
        thresholds: [0.5, 0.9],
        committedThresholds: [1],
        unpriced: "allow",
        unmetered: "zero",
        maxReserveUsd: 0.5
      })
    }))

  it.effect("bad budget values name their file:line, path, what they expect and what they got", () =>
    Effect.gen(function*() {
      expect(
        yield* problems(`providers:
  gpt:
    api_key: k
    default_model: gpt-4o-mini
    budget: { usd: -1, window: soon }
agents:
  planner: { provider: gpt, budget: { usd: 1 } }
  coder: { provider: gpt, budget: { dollars: 1 } }
budgets:
  total: {}
  scopes:
    planner: { usd: 2 }
  unpriced: maybe
  max_reserve_usd: 0
`)
      ).toEqual([
        "test/budgets.yaml:5:15: providers.gpt.budget.usd: expected a non-negative number, got -1",
        "test/budgets.yaml:5:24: providers.gpt.budget.window: expected a duration such as \"30 seconds\" or a number of seconds, got \"soon\"",
        "test/budgets.yaml:7:29: agents.planner.budget: agent planner's budget is also set as budgets.scopes.planner; set it in one place",
        "test/budgets.yaml:8:27: agents.coder.budget: set at least one of usd, tokens",
        "test/budgets.yaml:8:37: agents.coder.budget.dollars: unknown field; expected one of: usd, tokens, window",
        "test/budgets.yaml:10:3: budgets.total: set at least one of usd, tokens",
        "test/budgets.yaml:13:3: budgets.unpriced: expected refuse or allow, got \"maybe\"",
        "test/budgets.yaml:14:3: budgets.max_reserve_usd: expected a positive number, got 0"
      ])
    }))
})

layer(FakeProviderServer.layer())("budgets in the registry", (it) => {
  const yaml = `
providers:
  gpt:
    api_key: k
    default_model: gpt-4o-mini
    base_url: \${FAKE_URL}/v1
    pricing: { gpt-4o-mini: { input: 0, output: 10 } }
    budget: { usd: 0.05 }
agents:
  planner:
    provider: gpt
    max_tokens: 1000
    budget: { usd: 0.02 }
  coder:
    provider: gpt
    max_tokens: 1000
budgets:
  total: { usd: 1 }
  scopes:
    "*": { usd: 0.03 }
`

  it.scoped("an agent's calls reserve on the total, its provider and its scope; a provider's on the first two", () =>
    Effect.gen(function*() {
      const server = yield* FakeProviderServer.FakeProviderServer
      yield* server.reset
      yield* server.setHandler(() => Reply.scripted({ text: "ok", usage: { inputTokens: 1, outputTokens: 1000 } }))
      const config = yield* parse(yaml, { FAKE_URL: server.url })
      yield* Effect.gen(function*() {
        const registry = yield* ProviderRegistry.ProviderRegistry
        const budget = Option.getOrThrow(registry.budget)
        const planner = yield* registry.getForAgent("planner")
        const coder = yield* registry.getForAgent("coder")
        const gpt = yield* registry.get("gpt")
        const ask = { messages: [Message.user("hi")] }
        // planner: $0.02 of its own, so two calls of $0.01.
        yield* planner.complete(ask)
        yield* planner.complete(ask)
        const refused = yield* Effect.flip(planner.complete(ask))
        expect(refused.message).toContain("scope \"planner\"")
        // coder: the "*" scope's $0.03, counted apart.
        yield* coder.complete(ask)
        yield* coder.complete(ask)
        // The provider's $0.05 is reached by the fifth call, whoever makes it.
        yield* gpt.complete({ ...ask, maxTokens: 1000 })
        const byProvider = yield* Effect.flip(coder.complete(ask))
        expect(byProvider.message).toContain("provider \"gpt\"")
        expect(yield* budget.spent(Budget.Target.scope("planner"))).toEqual({ usd: 0.02, tokens: 2002 })
        expect(yield* budget.spent(Budget.Target.scope("coder"))).toEqual({ usd: 0.02, tokens: 2002 })
        expect((yield* budget.spent(Budget.Target.provider("gpt"))).usd).toBeCloseTo(0.05, 12)
        expect((yield* budget.spent(Budget.Target.total)).usd).toBeCloseTo(0.05, 12)
        expect(yield* server.requests).toHaveLength(5)
        // The registry's usage agrees.
        expect((yield* registry.totalUsage).calls).toBe(5)
      }).pipe(Effect.provide(ProviderRegistry.layerFromConfig(config)))
    }))

  it.scoped("a config without budgets builds no budget", () =>
    Effect.gen(function*() {
      const server = yield* FakeProviderServer.FakeProviderServer
      const config = yield* parse(
        `providers:\n  gpt: { api_key: k, default_model: gpt-4o-mini, base_url: "${server.url}/v1" }\n`
      )
      const registry = yield* Effect.provide(
        ProviderRegistry.ProviderRegistry,
        ProviderRegistry.layerFromConfig(config)
      )
      expect(Option.isNone(registry.budget)).toBe(true)
    }))
})
