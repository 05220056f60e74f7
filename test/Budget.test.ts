import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { pipe } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as Budget from "../src/Budget.js"
import * as LLM from "../src/LLM.js"
import * as LLMError from "../src/LLMError.js"
import * as Message from "../src/Message.js"
import * as Response from "../src/Response.js"
import * as MockLLM from "../src/testing/MockLLM.js"

const request: LLM.CompletionRequest = { messages: [Message.user("Hi")] }

/**
 * A mock whose forecast is zero: the budget reserves nothing for its calls, so these tests see
 * limits reached by what calls spent (the reservations are tested in Budget.reserve.test.ts).
 */
const zeroForecast = (mock: MockLLM.Service): MockLLM.Service => ({
  ...mock,
  forecast: (r) =>
    Effect.succeed({
      model: r.model ?? mock.defaultModel,
      inputTokens: 0,
      maxOutputTokens: 0,
      maxUsd: 0,
      method: "estimate" as const
    })
})

/** A mock whose every call costs `costUsd` and `tokens` (half in, half out), with a zero forecast. */
const priced = (costUsd: number, options?: { readonly tokens?: number; readonly providerId?: string }) =>
  Effect.map(
    MockLLM.make(() =>
      MockLLM.text("ok", {
        costUsd,
        usage: { inputTokens: (options?.tokens ?? 20) / 2, outputTokens: (options?.tokens ?? 20) / 2 }
      }), { providerId: options?.providerId ?? "mock" }),
    zeroForecast
  )

const calls = (llm: MockLLM.Service) => Effect.map(llm.requests, (requests) => requests.length)

const drain = <A>(queue: Queue.Dequeue<A>) => Effect.map(Queue.takeAll(queue), Chunk.toReadonlyArray)

const close = (a: number, b: number) => Math.abs(a - b) < 1e-9

describe("Budget", () => {
  it.effect("a call over budget fails with BudgetExceededError before any request", () =>
    Effect.gen(function*() {
      const mock = yield* priced(0.1)
      const budget = yield* Budget.make({ total: { usd: 0.1 } })
      const llm = Budget.guard(mock, budget)
      yield* llm.complete(request)
      const error = yield* Effect.flip(llm.complete(request))
      expect(error).toBeInstanceOf(LLMError.BudgetExceededError)
      expect(error._tag === "BudgetExceededError" && [error.limit, error.spent]).toEqual([0.1, 0.1])
      expect(LLMError.isRetryable(error)).toBe(false)
      expect(error.message).toContain("the total budget")
      const streamed = yield* Effect.flip(Stream.runDrain(llm.stream(request)))
      expect(streamed._tag).toBe("BudgetExceededError")
      // Neither refused call reached the provider, nor its usage.
      expect(yield* calls(mock)).toBe(1)
      expect(yield* mock.usage).toMatchObject({ calls: 1 })
    }))

  it.effect("concurrent calls never overshoot by more than the calls in flight when the limit was crossed", () =>
    Effect.gen(function*() {
      const cost = 0.1
      const limit = 1
      const workers = 4
      const mock = zeroForecast(
        yield* MockLLM.make(() => MockLLM.text("ok", { costUsd: cost }), { latency: "1 second" })
      )
      const budget = yield* Budget.make({ total: { usd: limit } })
      // What the budget had spent when each call reached the provider.
      const spentAtStart = yield* Ref.make<ReadonlyArray<number>>([])
      const watched: LLM.Service = {
        ...mock,
        complete: (r) =>
          Effect.zipRight(
            Effect.flatMap(budget.spent(Budget.Target.total), (spent) =>
              Ref.update(spentAtStart, (all) => [...all, spent.usd])),
            mock.complete(r)
          )
      }
      const llm = Budget.guard(watched, budget)
      // Each worker calls until it is refused.
      const worker = Effect.flip(Effect.forever(llm.complete(request)))
      const fiber = yield* Effect.fork(
        Effect.all(Array.from({ length: workers }, () => worker), { concurrency: "unbounded" })
      )
      for (let i = 0; i < 10; i++) yield* TestClock.adjust("1 second")
      const errors = yield* Fiber.join(fiber)
      expect(errors.every((e) => e._tag === "BudgetExceededError")).toBe(true)
      // No call started once the limit was reached...
      expect((yield* Ref.get(spentAtStart)).every((spent) => spent < limit)).toBe(true)
      // ...so the overshoot is at most the calls that were in flight then (here all four workers').
      const spent = (yield* budget.spent(Budget.Target.total)).usd
      expect(spent).toBeGreaterThanOrEqual(limit)
      expect(spent - limit).toBeLessThanOrEqual(workers * cost + 1e-9)
      const started = yield* calls(mock)
      expect(close(spent, started * cost)).toBe(true)
      expect(started).toBeGreaterThanOrEqual(10)
    }))

  it.effect("each alert is published once, and logged", () =>
    Effect.gen(function*() {
      const logs = yield* Ref.make<ReadonlyArray<string>>([])
      const logger = Logger.make(({ logLevel, message }) => {
        if (logLevel._tag === "Warning") Effect.runSync(Ref.update(logs, (all) => [...all, String(message)]))
      })
      const mock = yield* priced(0.3)
      const budget = yield* Budget.make({ total: { usd: 1 } })
      const alerts = yield* budget.subscribe
      const llm = Budget.guard(mock, budget)
      const logged = <A, E>(effect: Effect.Effect<A, E>) =>
        Effect.provide(effect, Logger.replace(Logger.defaultLogger, logger))
      yield* logged(llm.complete(request)) // 0.3
      expect(yield* drain(alerts)).toEqual([])
      yield* logged(llm.complete(request)) // 0.6: 50 %
      const half = yield* drain(alerts)
      expect(half.map((a) => a.threshold)).toEqual([0.5])
      expect(half[0]).toMatchObject({ target: Budget.Target.total, metric: "usd", limit: 1, window: Option.none() })
      yield* logged(llm.complete(request)) // 0.9: 80 %
      yield* logged(llm.complete(request)) // 1.2: 100 %
      expect(yield* Effect.flip(logged(llm.complete(request)))).toBeInstanceOf(LLMError.BudgetExceededError)
      expect((yield* drain(alerts)).map((a) => a.threshold)).toEqual([0.8, 1])
      expect(yield* Ref.get(logs)).toHaveLength(3)
      expect((yield* Ref.get(logs))[0]).toContain("reached 50%")

      // One call crossing two thresholds publishes both, each once.
      const big = yield* priced(0.85)
      const other = yield* Budget.make({ providers: { mock: { usd: 1 } } })
      const otherAlerts = yield* other.subscribe
      const guarded = Budget.guard(big, other)
      yield* guarded.complete(request)
      expect((yield* drain(otherAlerts)).map((a) => [a.threshold, a.target])).toEqual([
        [0.5, Budget.Target.provider("mock")],
        [0.8, Budget.Target.provider("mock")]
      ])
      yield* guarded.complete(request)
      expect((yield* drain(otherAlerts)).map((a) => a.threshold)).toEqual([1])
    }).pipe(Effect.scoped))

  it.effect("alerts are logged as warnings", () =>
    Effect.gen(function*() {
      const logs = yield* Ref.make<ReadonlyArray<string>>([])
      const capture = Logger.make(({ logLevel, message }) => {
        if (logLevel._tag === "Warning") {
          Effect.runSync(
            Ref.update(logs, (all) => [...all, Array.isArray(message) ? message.join(" ") : String(message)])
          )
        }
      })
      const mock = yield* priced(0.6)
      const budget = yield* Budget.make({ total: { usd: 1 } })
      yield* Budget.guard(mock, budget).complete(request).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, capture))
      )
      const [line] = yield* Ref.get(logs)
      expect(line).toContain("the total budget reached 50% of its $1.00 limit")
    }))

  it.effect("a rolling window forgets spend older than the window (TestClock)", () =>
    Effect.gen(function*() {
      const mock = yield* priced(0.6)
      const budget = yield* Budget.make({ total: { usd: 1, window: "1 hour" } })
      const alerts = yield* budget.subscribe
      const llm = Budget.guard(mock, budget)
      yield* llm.complete(request)
      yield* llm.complete(request)
      expect((yield* drain(alerts)).map((a) => a.threshold)).toEqual([0.5, 0.8, 1])
      const refused = yield* Effect.flip(llm.complete(request))
      expect(refused.message).toContain("rolling 1h")
      yield* TestClock.adjust("59 minutes")
      expect((yield* Effect.flip(llm.complete(request)))._tag).toBe("BudgetExceededError")
      yield* TestClock.adjust("1 minute")
      expect(yield* budget.spent(Budget.Target.total)).toEqual({ usd: 0, tokens: 0 })
      yield* llm.complete(request)
      // A new window: the 50 % alert fires again.
      expect((yield* drain(alerts)).map((a) => a.threshold)).toEqual([0.5])
      expect(yield* calls(mock)).toBe(3)
    }).pipe(Effect.scoped))

  it.effect("per-provider and per-scope limits, with a \"*\" default per scope; tokens count", () =>
    Effect.gen(function*() {
      const a = yield* priced(0.01, { tokens: 60, providerId: "a" })
      const b = yield* priced(0.01, { tokens: 60, providerId: "b" })
      const budget = yield* Budget.make({
        providers: { b: { usd: 0.02 } },
        scopes: { "*": { tokens: 100 }, reviewer: { tokens: 1000 } }
      })
      const planner = Budget.guard(a, budget, { scope: "planner" })
      const coder = Budget.guard(a, budget, { scope: "coder" })
      const reviewer = pipe(b, Budget.guard(budget, { scope: "reviewer" }))
      yield* planner.complete(request)
      yield* planner.complete(request)
      const error = yield* Effect.flip(planner.complete(request))
      expect(error.message).toContain("scope \"planner\"")
      expect(error._tag === "BudgetExceededError" && [error.limit, error.spent]).toEqual([100, 120])
      // Other scopes have their own limit.
      yield* coder.complete(request)
      yield* reviewer.complete(request)
      yield* reviewer.complete(request)
      const byProvider = yield* Effect.flip(reviewer.complete(request))
      expect(byProvider.message).toContain("provider \"b\"")
      expect(yield* budget.spent(Budget.Target.scope("planner"))).toEqual({ usd: 0.02, tokens: 120 })
      expect((yield* budget.spent(Budget.Target.total)).tokens).toBe(300)
      expect(yield* calls(a)).toBe(3)
      expect(yield* calls(b)).toBe(2)
    }))

  it.effect("a stream's spend is recorded at its Finish; an unpriced model counts tokens, not USD", () =>
    Effect.gen(function*() {
      const priced = yield* MockLLM.make(() =>
        MockLLM.text("streamed", { model: "claude-sonnet-4-5", usage: { inputTokens: 1000, outputTokens: 100 } })
      )
      const unpriced = yield* MockLLM.make(() => MockLLM.text("x", { usage: { inputTokens: 7, outputTokens: 3 } }), {
        providerId: "unpriced"
      })
      const budget = yield* Budget.make({})
      const reply = yield* Response.collect(Budget.guard(priced, budget).stream(request))
      expect(reply.costUsd).toBeGreaterThan(0)
      const spent = yield* budget.spent(Budget.Target.provider("mock"))
      expect(spent.tokens).toBe(1100)
      expect(close(spent.usd, reply.costUsd ?? 0)).toBe(true)
      yield* Budget.guard(unpriced, budget).complete(request)
      expect(yield* budget.spent(Budget.Target.provider("unpriced"))).toEqual({ usd: 0, tokens: 10 })
      yield* budget.reset
      expect(yield* budget.spent(Budget.Target.total)).toEqual({ usd: 0, tokens: 0 })
    }))

  it.effect("Budget.layer guards the LLM in context and provides the Budget", () =>
    Effect.gen(function*() {
      yield* LLM.complete(request)
      const refused = yield* Effect.flip(LLM.complete(request))
      expect(refused._tag).toBe("BudgetExceededError")
      const budget = yield* Budget.Budget
      expect(yield* budget.spent(Budget.Target.scope("planner"))).toEqual({ usd: 0.5, tokens: 20 })
      expect(yield* MockLLM.requests).toHaveLength(1)
    }).pipe(
      Effect.provide(
        Budget.layer({ scopes: { planner: { usd: 0.5 } }, scope: "planner", unpriced: "allow" }).pipe(
          Layer.provideMerge(
            MockLLM.layer(() => MockLLM.text("ok", { costUsd: 0.5, usage: { inputTokens: 10, outputTokens: 10 } }))
          )
        )
      )
    ))

  it.effect("Budget.layerGuard shares the Budget in context between providers", () =>
    Effect.gen(function*() {
      const budget = yield* Budget.Budget
      const a = yield* Effect.provide(
        LLM.LLM,
        Budget.layerGuard().pipe(
          Layer.provide(MockLLM.layer(() => MockLLM.text("a", { costUsd: 0.6 }), { providerId: "a" }))
        )
      )
      const b = yield* Effect.provide(
        LLM.LLM,
        Budget.layerGuard().pipe(
          Layer.provide(MockLLM.layer(() => MockLLM.text("b", { costUsd: 0.6 }), { providerId: "b" }))
        )
      )
      yield* a.complete(request)
      yield* b.complete(request)
      expect((yield* Effect.flip(a.complete(request)))._tag).toBe("BudgetExceededError")
      expect((yield* budget.spent(Budget.Target.total)).usd).toBeCloseTo(1.2)
    }).pipe(Effect.provide(Layer.effect(Budget.Budget, Budget.make({ total: { usd: 1 }, unpriced: "allow" })))))
})
