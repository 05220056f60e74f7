/**
 * Budgets that reserve: through the real SDKs against FakeProviderServer, with the providers' own
 * forecasts (`LLM.Service.forecast`).
 */
import { expect, layer } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as Budget from "../src/Budget.js"
import type * as LLM from "../src/LLM.js"
import * as Message from "../src/Message.js"
import * as Pricing from "../src/Pricing.js"
import * as Anthropic from "../src/providers/Anthropic.js"
import * as OpenAI from "../src/providers/OpenAI.js"
import * as Response from "../src/Response.js"
import * as FakeProviderServer from "../src/testing/FakeProviderServer.js"
import * as Usage from "../src/Usage.js"
import { awaitRequests, awaitTrue, realPause } from "./helpers.js"

const { Reply } = FakeProviderServer

/** $10 per million output tokens, input free: 1000 output tokens forecast $0.01, 800 cost $0.008. */
const flatPricing: Pricing.PriceTable = { "gpt-4o-mini": { input: 0, output: 10 } }

const ask = (text: string, maxTokens = 1000): LLM.CompletionRequest => ({
  messages: [Message.user(text)],
  maxTokens
})

const openai = (server: FakeProviderServer.Service, pricing: Pricing.PriceTable = flatPricing) =>
  OpenAI.make({
    apiKey: Redacted.make("sk-test"),
    baseUrl: server.openaiBaseUrl,
    defaultModel: "gpt-4o-mini",
    pricing
  })

const anthropic = (server: FakeProviderServer.Service) =>
  Anthropic.make({
    apiKey: Redacted.make("sk-ant-test"),
    baseUrl: server.anthropicBaseUrl,
    defaultModel: "claude-sonnet-4-6"
  })

const nano = (usd: number) => Math.round(usd * 1e9)

layer(FakeProviderServer.layer())("Budget reservations (real SDKs, FakeProviderServer)", (it) => {
  const setup = Effect.gen(function*() {
    const server = yield* FakeProviderServer.FakeProviderServer
    yield* server.reset
    return server
  })

  it.scoped(
    "200 concurrent calls against $1 (forecast $0.01, cost $0.008): exactly the calls that fit reach the provider",
    () =>
      Effect.gen(function*() {
        const server = yield* setup
        // Slow replies (≈ 10 events × 15 ms): every call of a wave reserves before any settles.
        yield* server.setHandler(() =>
          Reply.scripted({ text: ["a", "b", "c"], usage: { inputTokens: 12, outputTokens: 800 } }, {
            delayBetweenEventsMillis: 15
          })
        )
        const provider = yield* openai(server)
        const forecast = yield* provider.forecast(ask("call"))
        expect(forecast.maxUsd).toBeCloseTo(0.01, 12)
        const budget = yield* Budget.make({ total: { usd: 1 }, committedThresholds: [1] })
        const alerts = yield* budget.subscribe
        const llm = Budget.guard(provider, budget)

        // The most reserved at once, sampled in real time while the calls run.
        const peak = yield* Ref.make(0)
        const sampler = yield* Effect.fork(Effect.forever(Effect.zipRight(
          Effect.flatMap(budget.state(Budget.Target.total), (state) =>
            Ref.update(peak, (max) => Math.max(max, nano(state.reserved.usd)))),
          realPause()
        )))

        // 200 callers start together; 150 call at once, the other 50 as soon as the first wave settled.
        const firstWaveDone = yield* Deferred.make<void>()
        const call = (i: number) =>
          Effect.zipRight(
            i < 150 ? Effect.void : Deferred.await(firstWaveDone),
            Effect.either(Response.collect(llm.stream(ask(`call ${i}`))))
          )
        const callers = yield* Effect.fork(
          Effect.all(
            Array.from({ length: 200 }, (_, i) =>
              call(i)),
            { concurrency: "unbounded" }
          )
        )
        yield* awaitTrue(
          Effect.map(Effect.orDie(budget.state(Budget.Target.total)), (state) => state.spent.usd >= 0.8 - 1e-9),
          "the first wave settled",
          10_000
        )
        const afterFirst = yield* server.requests
        yield* Deferred.succeed(firstWaveDone, undefined)
        const results = yield* Fiber.join(callers)
        yield* Fiber.interrupt(sampler)

        const succeeded = results.filter(Either.isRight)
        const refused = results.filter(Either.isLeft)
        // The first wave: exactly 100 × $0.01 fit in $1; the second: spent $0.80, so 20 more fit.
        expect(afterFirst).toHaveLength(100)
        expect(succeeded).toHaveLength(120)
        expect(refused).toHaveLength(80)
        expect(refused.every((r) => r.left._tag === "BudgetExceededError")).toBe(true)
        // Refused calls reached no server.
        expect(yield* server.requests).toHaveLength(120)
        // Never more than 100 reservations ($1.00) at once.
        expect(yield* Ref.get(peak)).toBeLessThanOrEqual(nano(1))
        const state = yield* budget.state(Budget.Target.total)
        expect(nano(state.spent.usd)).toBe(nano(120 * 0.008))
        expect(state.spent.usd).toBeLessThanOrEqual(1)
        expect(state.reserved).toEqual({ usd: 0, tokens: 0 })
        // The budget and the provider's usage agree, call for call.
        const usage = yield* provider.usage
        expect(usage.calls).toBe(120)
        expect(nano(usage.costUsd)).toBe(nano(state.spent.usd))
        expect(state.spent.tokens).toBe(usage.inputTokens + usage.outputTokens)
        // The committed alert fired when reservations filled the budget.
        const published = yield* Queue.takeAll(alerts)
        expect([...published].some((a) => a.basis === "committed" && a.threshold === 1)).toBe(true)
      }),
    30_000
  )

  it.scoped("a refused call reserves nothing anywhere: refused by its provider's limit, it leaves the total and scope untouched", () =>
    Effect.gen(function*() {
      const server = yield* setup
      yield* server.enqueue(Reply.delayed(200, Reply.scripted({ text: "slow", usage: { outputTokens: 800 } })))
      const provider = yield* openai(server)
      const budget = yield* Budget.make({
        total: { usd: 10 },
        providers: { openai: { usd: 0.015 } },
        scopes: { planner: { usd: 10 } }
      })
      const llm = Budget.guard(provider, budget, { scope: "planner" })
      // The first call holds $0.01 of the provider's $0.015 while it runs.
      const first = yield* Effect.fork(llm.complete(ask("one")))
      yield* awaitRequests(server, 1)
      const refused = yield* Effect.flip(llm.complete(ask("two")))
      expect(refused._tag).toBe("BudgetExceededError")
      expect(refused.message).toContain("provider \"openai\"")
      expect(refused.message).toContain("does not fit")
      // Only the first call's reservation, on each of its three accounts.
      for (const target of [Budget.Target.total, Budget.Target.provider("openai"), Budget.Target.scope("planner")]) {
        expect(nano((yield* budget.state(target)).reserved.usd)).toBe(nano(0.01))
      }
      yield* Fiber.join(first)
      for (const target of [Budget.Target.total, Budget.Target.provider("openai"), Budget.Target.scope("planner")]) {
        expect(yield* budget.state(target)).toMatchObject({ reserved: { usd: 0, tokens: 0 } })
        expect(nano((yield* budget.spent(target)).usd)).toBe(nano(0.008))
      }
      expect(yield* server.requests).toHaveLength(1)
    }))

  it.scoped("a stream cut after message_start settles to the prompt Anthropic billed, once in the budget and in usage", () =>
    Effect.gen(function*() {
      const server = yield* setup
      yield* server.enqueue(
        Reply.scripted({ text: ["never ", "seen"], usage: { inputTokens: 1000, outputTokens: 50 } }, {
          dropAfterEvents: 1
        })
      )
      const provider = yield* anthropic(server)
      const budget = yield* Budget.make({ total: { usd: 1 } })
      const llm = Budget.guard(provider, budget)
      const error = yield* Effect.flip(Stream.runDrain(llm.stream(ask("cut me", 500))))
      expect(error._tag).not.toBe("BudgetExceededError")
      const billed = Pricing.cost("claude-sonnet-4-6", Usage.tokens({ inputTokens: 1000, outputTokens: 1 }))!
      const state = yield* budget.state(Budget.Target.total)
      expect(nano(state.spent.usd)).toBe(nano(billed))
      expect(state.spent.tokens).toBe(1001)
      expect(state.reserved).toEqual({ usd: 0, tokens: 0 })
      const usage = yield* provider.usage
      expect(usage).toMatchObject({ calls: 1, failures: 1, inputTokens: 1000, outputTokens: 1 })
      expect(nano(usage.costUsd)).toBe(nano(billed))
    }))

  it.scoped("a stream whose consumer stops early settles once, to what was reported", () =>
    Effect.gen(function*() {
      const server = yield* setup
      yield* server.enqueue(Reply.scripted({ text: ["one ", "two ", "three"], usage: { inputTokens: 100 } }))
      const provider = yield* anthropic(server)
      const budget = yield* Budget.make({ total: { usd: 1 } })
      const llm = Budget.guard(provider, budget)
      const first = yield* Stream.runHead(
        Stream.filter(llm.stream(ask("stop early", 500)), (event) => event._tag === "TextDelta")
      )
      expect(first._tag).toBe("Some")
      const state = yield* budget.state(Budget.Target.total)
      expect(state.reserved).toEqual({ usd: 0, tokens: 0 })
      const usage = yield* provider.usage
      expect(usage.calls).toBe(1)
      expect(state.spent.tokens).toBe(usage.inputTokens + usage.outputTokens)
      expect(nano(state.spent.usd)).toBe(nano(usage.costUsd))
    }))

  it.scoped("a call the consumer of a guarded stream makes while it streams is not counted in the stream's settle", () =>
    Effect.gen(function*() {
      const server = yield* setup
      yield* server.setHandler(() => Reply.scripted({ text: ["a", "b", "c"], usage: { inputTokens: 100 } }))
      const provider = yield* anthropic(server)
      const budget = yield* Budget.make({ total: { usd: 1 } })
      const llm = Budget.guard(provider, budget)
      let asked = false
      yield* Stream.runForEach(llm.stream(ask("outer", 500)), (event) => {
        if (event._tag !== "TextDelta" || asked) return Effect.void
        asked = true
        // Not guarded: it must not land in the guarded stream's tally.
        return Effect.asVoid(provider.complete(ask("inner", 500)))
      })
      const usage = yield* provider.usage
      expect(usage.calls).toBe(2)
      const one = Pricing.cost("claude-sonnet-4-6", Usage.tokens({ inputTokens: 100, outputTokens: 5 }))!
      expect(nano((yield* budget.spent(Budget.Target.total)).usd)).toBe(nano(one))
      expect(nano(usage.costUsd)).toBe(2 * nano(one))
    }))

  it.scoped("a call the provider answers with an error status before any event settles to nothing (stream and complete)", () =>
    Effect.gen(function*() {
      const server = yield* setup
      yield* server.enqueue(
        Reply.anthropicError(429, "rate_limit_error", "slow down"),
        Reply.anthropicError(529, "overloaded_error", "overloaded")
      )
      const provider = yield* anthropic(server)
      const budget = yield* Budget.make({ total: { usd: 1 } })
      const llm = Budget.guard(provider, budget)
      const streamed = yield* Effect.flip(Stream.runDrain(llm.stream(ask("429", 500))))
      expect(streamed._tag).toBe("RateLimitError")
      const completed = yield* Effect.flip(llm.complete(ask("529", 500)))
      expect(completed._tag).toBe("ProviderUnavailableError")
      expect(yield* budget.state(Budget.Target.total)).toEqual({
        spent: { usd: 0, tokens: 0 },
        reserved: { usd: 0, tokens: 0 }
      })
      expect((yield* provider.usage).calls).toBe(2)
    }))

  it.scoped("an interrupted call settles: to the prompt reported before the interruption, else to its reservation", () =>
    Effect.gen(function*() {
      const server = yield* setup
      const provider = yield* anthropic(server)
      const budget = yield* Budget.make({ total: { usd: 1 } })
      const llm = Budget.guard(provider, budget)

      // A stream that stalls after message_start: interrupted, it settles to the prompt billed.
      yield* server.enqueue(Reply.scripted({ text: "x", usage: { inputTokens: 2000 } }, { stallAfterEvents: 1 }))
      const streaming = yield* Effect.fork(Stream.runDrain(llm.stream(ask("stall", 500))))
      yield* awaitRequests(server, 1)
      yield* realPause(100)
      yield* Fiber.interrupt(streaming)
      const billed = Pricing.cost("claude-sonnet-4-6", Usage.tokens({ inputTokens: 2000, outputTokens: 1 }))!
      expect(nano((yield* budget.spent(Budget.Target.total)).usd)).toBe(nano(billed))

      // A complete that never answers: nothing reported, so it settles to its reservation.
      yield* server.enqueue(Reply.hang)
      const forecast = yield* provider.forecast(ask("silent", 500))
      const completing = yield* Effect.fork(llm.complete({ ...ask("silent", 500), maxTokens: 500 }))
      yield* awaitRequests(server, 2)
      yield* Fiber.interrupt(completing)
      const state = yield* budget.state(Budget.Target.total)
      expect(nano(state.spent.usd)).toBe(nano(billed) + nano(forecast.maxUsd!))
      expect(state.reserved).toEqual({ usd: 0, tokens: 0 })
      // Both recorded once in the provider's usage too.
      expect((yield* provider.usage).calls).toBe(2)
    }))

  it.scoped("calls interrupted at any point leave no reservation behind", () =>
    Effect.gen(function*() {
      const server = yield* setup
      yield* server.setHandler((_, index) =>
        index % 3 === 0
          ? Reply.delayed(index, Reply.scripted({ text: "late", usage: { inputTokens: 50, outputTokens: 20 } }))
          : Reply.scripted({ text: ["a", "b", "c", "d"], usage: { inputTokens: 50, outputTokens: 20 } }, {
            delayBetweenEventsMillis: index % 7
          })
      )
      const provider = yield* anthropic(server)
      const budget = yield* Budget.make({ total: { usd: 10 }, providers: { anthropic: { tokens: 1_000_000 } } })
      const llm = Budget.guard(provider, budget, { scope: "stress" })
      const fibers = yield* Effect.forEach(Array.from({ length: 40 }, (_, i) => i), (i) =>
        Effect.fork(
          i % 2 === 0
            ? Effect.asVoid(llm.complete(ask(`c${i}`, 200)))
            : Stream.runDrain(llm.stream(ask(`s${i}`, 200)))
        ))
      // Interrupt them one by one, a real millisecond apart: some before their request, some
      // while it waits, some mid-stream, some after they ended.
      for (const fiber of fibers) {
        yield* realPause(1)
        yield* Fiber.interrupt(fiber)
      }
      for (const target of [Budget.Target.total, Budget.Target.provider("anthropic"), Budget.Target.scope("stress")]) {
        expect((yield* budget.state(target)).reserved).toEqual({ usd: 0, tokens: 0 })
      }
      // Each call settled once: the spend of the three accounts is the same.
      const total = yield* budget.spent(Budget.Target.total)
      expect(yield* budget.spent(Budget.Target.scope("stress"))).toEqual(total)
      expect(yield* budget.spent(Budget.Target.provider("anthropic"))).toEqual(total)
      expect((yield* provider.usage).calls).toBeLessThanOrEqual(40)
    }))

  it.scoped("an unmetered call settles to its reservation, or to nothing with unmetered: \"zero\"", () =>
    Effect.gen(function*() {
      const server = yield* setup
      // An OpenAI-compatible reply without `usage`.
      const unmetered = () =>
        Reply.json({
          id: "chatcmpl-1",
          object: "chat.completion",
          created: 0,
          model: "gpt-4o-mini",
          choices: [{ index: 0, message: { role: "assistant", content: "hi" }, finish_reason: "stop" }]
        })
      yield* server.setHandler(unmetered)
      const provider = yield* openai(server)
      const forecast = yield* provider.forecast(ask("how much?"))
      const charged = yield* Budget.make({ total: { usd: 1 } })
      const reply = yield* Budget.guard(provider, charged).complete(ask("how much?"))
      expect(reply.usageUnknown).toBe(true)
      const state = yield* charged.state(Budget.Target.total)
      expect(nano(state.spent.usd)).toBe(nano(forecast.maxUsd!))
      expect(state.spent.tokens).toBe(forecast.inputTokens + forecast.maxOutputTokens)
      expect(state.reserved).toEqual({ usd: 0, tokens: 0 })

      const zero = yield* Budget.make({ total: { usd: 1 }, unmetered: "zero" })
      yield* Budget.guard(provider, zero).complete(ask("how much?"))
      expect(yield* zero.state(Budget.Target.total)).toEqual({
        spent: { usd: 0, tokens: 0 },
        reserved: { usd: 0, tokens: 0 }
      })
    }))

  it.scoped("an unpriced model is refused by a USD budget before any request, unless unpriced: \"allow\"", () =>
    Effect.gen(function*() {
      const server = yield* setup
      const provider = yield* openai(server, {})
      const request: LLM.CompletionRequest = { ...ask("who prices me?"), model: "my-local-model" }
      expect((yield* provider.forecast(request)).maxUsd).toBeUndefined()
      const strict = yield* Budget.make({ total: { usd: 1 } })
      const refused = yield* Effect.flip(Budget.guard(provider, strict).complete(request))
      expect(refused._tag).toBe("BudgetExceededError")
      expect(refused.message).toContain("no known price")
      expect(yield* server.requests).toHaveLength(0)
      // A tokens-only budget has nothing to price: it admits the call.
      const tokensOnly = yield* Budget.make({ total: { tokens: 100_000 } })
      yield* Budget.guard(provider, tokensOnly).complete(request)
      // Allowed: its tokens count, no USD.
      const lenient = yield* Budget.make({ total: { usd: 1 }, unpriced: "allow" })
      yield* Budget.guard(provider, lenient).complete(request)
      expect(yield* lenient.spent(Budget.Target.total)).toEqual({ usd: 0, tokens: 15 })
      expect(yield* server.requests).toHaveLength(2)
    }))

  it.scoped("maxReserveUsd caps a call's reservation; the call may then spend up to its forecast", () =>
    Effect.gen(function*() {
      const server = yield* setup
      yield* server.setHandler(() => Reply.scripted({ text: "long", usage: { inputTokens: 1, outputTokens: 10_000 } }))
      const provider = yield* openai(server)
      const budget = yield* Budget.make({ total: { usd: 0.05 }, maxReserveUsd: 0.02 })
      const llm = Budget.guard(provider, budget)
      // Forecast $0.10 (10 000 tokens at $10/M) does not fit $0.05, but its capped reservation does.
      const fiber = yield* Effect.fork(llm.complete(ask("long", 10_000)))
      const reply = yield* Fiber.join(fiber)
      expect(reply.costUsd).toBeCloseTo(0.1, 12)
      // The overshoot: at most forecast - maxReserveUsd per call in flight ($0.08 here; $0.05 over).
      expect((yield* budget.spent(Budget.Target.total)).usd).toBeCloseTo(0.1, 12)
      expect((yield* Effect.flip(llm.complete(ask("again", 100))))._tag).toBe("BudgetExceededError")
    }))

  it.scoped("a rolling window (TestClock): calls refused until the window has moved past the spend", () =>
    Effect.gen(function*() {
      const server = yield* setup
      yield* server.setHandler(() => Reply.scripted({ text: "ok", usage: { inputTokens: 1, outputTokens: 1000 } }))
      const provider = yield* openai(server)
      const budget = yield* Budget.make({ total: { usd: 0.02, window: "1 hour" } })
      const llm = Budget.guard(provider, budget)
      yield* llm.complete(ask("1"))
      yield* TestClock.adjust("30 minutes")
      yield* llm.complete(ask("2"))
      const refused = yield* Effect.flip(llm.complete(ask("3")))
      expect(refused.message).toContain("rolling 1h")
      yield* TestClock.adjust("30 minutes") // the first spend is an hour old
      yield* llm.complete(ask("3"))
      expect((yield* Effect.flip(llm.complete(ask("4"))))._tag).toBe("BudgetExceededError")
      expect(nano((yield* budget.spent(Budget.Target.total)).usd)).toBe(nano(0.02))
      expect(yield* server.requests).toHaveLength(3)
    }))
})
