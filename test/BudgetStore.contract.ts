/**
 * The budget store contract, through the public `Budget.makeShared`: the same cases against
 * `SharedState.layerMemory` (TestClock) and `SharedState.layerRedis` (a real redis-server of the
 * test's own, real time). `second` is a second budget on a second connection to the same store:
 * another worker.
 */
import { expect } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Scope from "effect/Scope"
import * as Budget from "../src/Budget.js"

export interface Backend<R> {
  readonly name: string
  /** Two budgets with `options` on one fresh store (a namespace of its own). */
  readonly make: (
    options: Budget.Options & Budget.SharedOptions
  ) => Effect.Effect<{ readonly first: Budget.Service; readonly second: Budget.Service }, unknown, Scope.Scope | R>
  readonly advance: (millis: number) => Effect.Effect<void>
  readonly test: (name: string, body: () => Effect.Effect<void, unknown, Scope.Scope | R>) => void
}

const openai: Budget.Call = { provider: "openai" }
const cents = (n: number): Budget.Estimate => ({ usd: n / 100, tokens: 0 })

export const contract = <R>(backend: Backend<R>): void => {
  const { advance, test } = backend

  test(`${backend.name}: 100 reservations of $0.01 settle to exactly $1; the next is refused`, () =>
    Effect.gen(function*() {
      const { first, second } = yield* backend.make({ total: { usd: 1 } })
      for (let i = 0; i < 100; i++) {
        const r = yield* (i % 2 === 0 ? first : second).reserve(openai, cents(1))
        yield* r.settle({ usd: 0.01, tokens: 10 })
      }
      const state = yield* first.state(Budget.Target.total)
      expect(state.spent).toEqual({ usd: 1, tokens: 1000 })
      expect(state.reserved).toEqual({ usd: 0, tokens: 0 })
      const refused = yield* Effect.exit(second.reserve(openai, cents(1)))
      expect(Exit.isFailure(refused) && JSON.stringify(refused.cause)).toContain("BudgetExceededError")
    }))

  test(`${backend.name}: all or none across accounts: a provider that refuses reserves nothing on the total`, () =>
    Effect.gen(function*() {
      const { first, second } = yield* backend.make({ total: { usd: 10 }, providers: { openai: { usd: 0.5 } } })
      const held = yield* first.reserve(openai, cents(40))
      const refused = yield* Effect.exit(second.reserve(openai, cents(20)))
      expect(Exit.isFailure(refused)).toBe(true)
      const total = yield* second.state(Budget.Target.total)
      expect(total.reserved.usd).toBeCloseTo(0.4, 12)
      // Another provider still fits under the total.
      const other = yield* second.reserve({ provider: "anthropic" }, cents(20))
      expect((yield* first.state(Budget.Target.total)).reserved.usd).toBeCloseTo(0.6, 12)
      yield* held.settle({ usd: 0.1, tokens: 5 })
      yield* other.settle({ usd: 0.2, tokens: 7 })
      const after = yield* first.state(Budget.Target.total)
      expect(after.spent.usd).toBeCloseTo(0.3, 12)
      expect(after.spent.tokens).toBe(12)
      expect(after.reserved).toEqual({ usd: 0, tokens: 0 })
      expect((yield* second.state(Budget.Target.provider("openai"))).spent.usd).toBeCloseTo(0.1, 12)
    }))

  test(`${backend.name}: a token limit refuses what does not fit; reserved counts as used`, () =>
    Effect.gen(function*() {
      const { first, second } = yield* backend.make({ total: { tokens: 1000 } })
      const a = yield* first.reserve(openai, { usd: 0, tokens: 600 })
      expect(Exit.isFailure(yield* Effect.exit(second.reserve(openai, { usd: 0, tokens: 500 })))).toBe(true)
      const b = yield* second.reserve(openai, { usd: 0, tokens: 400 })
      yield* a.settle({ usd: 0, tokens: 100 })
      yield* b.settle({ usd: 0, tokens: 100 })
      expect(yield* first.spent(Budget.Target.total)).toEqual({ usd: 0, tokens: 200 })
    }))

  test(`${backend.name}: a second settle of one reservation changes nothing`, () =>
    Effect.gen(function*() {
      const { first } = yield* backend.make({ total: { usd: 1 } })
      const r = yield* first.reserve(openai, cents(50))
      yield* r.settle({ usd: 0.1, tokens: 1 })
      yield* r.settle({ usd: 0.3, tokens: 3 })
      expect(yield* first.state(Budget.Target.total)).toEqual({
        spent: { usd: 0.1, tokens: 1 },
        reserved: { usd: 0, tokens: 0 }
      })
    }))

  test(`${backend.name}: record adds a spend without a reservation, on every account of the call`, () =>
    Effect.gen(function*() {
      const { first, second } = yield* backend.make({ total: { usd: 1 }, scopes: { agent: { usd: 1 } } })
      yield* first.record({ provider: "openai", scope: "agent" }, { usd: 0.25, tokens: 9 })
      expect(yield* second.spent(Budget.Target.scope("agent"))).toEqual({ usd: 0.25, tokens: 9 })
      expect(yield* second.spent(Budget.Target.total)).toEqual({ usd: 0.25, tokens: 9 })
    }))

  test(`${backend.name}: a rolling window forgets a spend after the window, never before`, () =>
    Effect.gen(function*() {
      const { first, second } = yield* backend.make({ total: { usd: 1, window: "400 millis" } })
      const r = yield* first.reserve(openai, cents(100))
      yield* r.settle({ usd: 1, tokens: 0 })
      expect(Exit.isFailure(yield* Effect.exit(second.reserve(openai, cents(1))))).toBe(true)
      yield* advance(300)
      expect((yield* second.spent(Budget.Target.total)).usd).toBe(1)
      expect(Exit.isFailure(yield* Effect.exit(second.reserve(openai, cents(1))))).toBe(true)
      yield* advance(250)
      expect((yield* second.spent(Budget.Target.total)).usd).toBe(0)
      const again = yield* second.reserve(openai, cents(100))
      yield* again.settle({ usd: 0.5, tokens: 0 })
      expect((yield* first.spent(Budget.Target.total)).usd).toBe(0.5)
    }))

  test(`${backend.name}: reset forgets every spend; a call in flight adds its actual spend when it settles`, () =>
    Effect.gen(function*() {
      const { first, second } = yield* backend.make({ total: { usd: 1 } })
      yield* first.record(openai, { usd: 0.7, tokens: 0 })
      const inFlight = yield* second.reserve(openai, cents(20))
      yield* first.reset
      expect(yield* second.state(Budget.Target.total)).toEqual({
        spent: { usd: 0, tokens: 0 },
        reserved: { usd: 0, tokens: 0 }
      })
      yield* inFlight.settle({ usd: 0.05, tokens: 0 })
      expect(yield* first.state(Budget.Target.total)).toEqual({
        spent: { usd: 0.05, tokens: 0 },
        reserved: { usd: 0, tokens: 0 }
      })
    }))

  test(`${backend.name}: concurrent reservations from two workers never pass the limit`, () =>
    Effect.gen(function*() {
      const { first, second } = yield* backend.make({ total: { usd: 1 } })
      const outcomes = yield* Effect.all(
        Array.from({ length: 60 }, (_, i) =>
          Effect.exit(
            Effect.flatMap(
              (i % 2 === 0 ? first : second).reserve(openai, cents(3)),
              (r) => Effect.as(r.settle({ usd: 0.03, tokens: 1 }), 1)
            )
          )),
        { concurrency: "unbounded" }
      )
      const admitted = outcomes.filter(Exit.isSuccess).length
      expect(admitted).toBe(33)
      const state = yield* first.state(Budget.Target.total)
      expect(state.spent.usd).toBeCloseTo(0.99, 12)
      expect(state.spent.tokens).toBe(33)
      expect(state.reserved).toEqual({ usd: 0, tokens: 0 })
    }))
}
