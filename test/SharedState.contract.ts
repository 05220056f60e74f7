/**
 * The `SharedState` contract: the same cases against every backend. `layerMemory` runs them on
 * the TestClock (`advance` moves it); `layerRedis` on a real server of the test's own, in real
 * time (`advance` sleeps), with windows of a few hundred milliseconds.
 */
import { expect } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type * as SharedState from "../src/SharedState.js"

export interface Backend<R> {
  readonly name: string
  /** A fresh store (a namespace of its own); `second` is a second connection to the same store. */
  readonly make: Effect.Effect<
    { readonly store: SharedState.Service; readonly second: SharedState.Service },
    unknown,
    Scope.Scope | R
  >
  /** Lets `millis` pass (TestClock or real time). */
  readonly advance: (millis: number) => Effect.Effect<void>
  /** Runs a case: `it.scoped` for the TestClock, `it.live` for a real server. */
  readonly test: (name: string, body: () => Effect.Effect<void, unknown, Scope.Scope | R>) => void
  /** The tolerance of a measured wait (real time and server time differ by a little). */
  readonly slackMillis: number
}

const rpm = (max: number, periodMillis: number, cost = 1): SharedState.LimitCost => ({
  name: "rpm",
  max,
  period: Duration.millis(periodMillis),
  cost
})
const tpm = (max: number, periodMillis: number, cost: number): SharedState.LimitCost => ({
  name: "tpm",
  max,
  period: Duration.millis(periodMillis),
  cost
})

let ids = 0
const op = () => `op-${process.pid}-${Date.now()}-${++ids}`

const waitMillis = (a: SharedState.Admission): number => (a._tag === "Wait" ? Duration.toMillis(a.wait) : -1)

export const contract = <R>(backend: Backend<R>): void => {
  const { advance, slackMillis: slack, test } = backend

  test(`${backend.name}: a burst of max is admitted, the next waits one emission interval`, () =>
    Effect.gen(function*() {
      const { store } = yield* backend.make
      // 5 per 500 ms: burst 5, then one every 100 ms.
      for (let i = 0; i < 5; i++) {
        expect((yield* store.limiter.admit("p:m", [rpm(5, 500)], op()))._tag).toBe("Admitted")
      }
      const refused = yield* store.limiter.admit("p:m", [rpm(5, 500)], op())
      expect(refused._tag).toBe("Wait")
      expect(refused._tag === "Wait" && refused.limit).toBe("rpm")
      expect(waitMillis(refused)).toBeGreaterThan(100 - slack)
      expect(waitMillis(refused)).toBeLessThanOrEqual(100)
      yield* advance(waitMillis(refused) + 5)
      expect((yield* store.limiter.admit("p:m", [rpm(5, 500)], op()))._tag).toBe("Admitted")
    }))

  test(`${backend.name}: several limits are all consumed or none (rpm + tpm in one step)`, () =>
    Effect.gen(function*() {
      const { store } = yield* backend.make
      // tpm 1000 per 1 s; the first call takes 800 tokens, the second asks 300: refused by tpm,
      // and its rpm is not consumed either.
      expect((yield* store.limiter.admit("p:m", [rpm(2, 1000), tpm(1000, 1000, 800)], op()))._tag).toBe("Admitted")
      const second = yield* store.limiter.admit("p:m", [rpm(2, 1000), tpm(1000, 1000, 300)], op())
      expect(second._tag === "Wait" && second.limit).toBe("tpm")
      expect(waitMillis(second)).toBeGreaterThan(100 - slack)
      expect(waitMillis(second)).toBeLessThanOrEqual(100)
      // rpm still has its second slot: a call with no tokens passes.
      expect((yield* store.limiter.admit("p:m", [rpm(2, 1000), tpm(1000, 1000, 0)], op()))._tag).toBe("Admitted")
      // Now rpm is full.
      const third = yield* store.limiter.admit("p:m", [rpm(2, 1000), tpm(1000, 1000, 0)], op())
      expect(third._tag === "Wait" && third.limit).toBe("rpm")
    }))

  test(`${backend.name}: a cost over a limit's max is TooLarge, nothing consumed`, () =>
    Effect.gen(function*() {
      const { store } = yield* backend.make
      const big = yield* store.limiter.admit("p:m", [rpm(10, 1000), tpm(1000, 1000, 1001)], op())
      expect(big).toEqual({ _tag: "TooLarge", limit: "tpm" })
      for (let i = 0; i < 10; i++) {
        expect((yield* store.limiter.admit("p:m", [rpm(10, 1000)], op()))._tag).toBe("Admitted")
      }
    }))

  test(`${backend.name}: an admit resent with the same operation id is applied once`, () =>
    Effect.gen(function*() {
      const { store } = yield* backend.make
      const id = op()
      expect((yield* store.limiter.admit("p:m", [rpm(2, 10_000)], id))._tag).toBe("Admitted")
      expect((yield* store.limiter.admit("p:m", [rpm(2, 10_000)], id))._tag).toBe("Admitted")
      // One slot left, not zero.
      expect((yield* store.limiter.admit("p:m", [rpm(2, 10_000)], op()))._tag).toBe("Admitted")
      expect((yield* store.limiter.admit("p:m", [rpm(2, 10_000)], op()))._tag).toBe("Wait")
    }))

  test(`${backend.name}: adjust refunds and charges tokens, once per operation id`, () =>
    Effect.gen(function*() {
      const { store } = yield* backend.make
      const limit = { name: "tpm", max: 1000, period: Duration.seconds(10) }
      expect((yield* store.limiter.admit("p:m", [tpm(1000, 10_000, 1000)], op()))._tag).toBe("Admitted")
      expect((yield* store.limiter.admit("p:m", [tpm(1000, 10_000, 400)], op()))._tag).toBe("Wait")
      // Reserved 1000, used 600: refund 400, twice with the same id (a resend) = once.
      const refund = op()
      yield* store.limiter.adjust("p:m", limit, -400, refund)
      yield* store.limiter.adjust("p:m", limit, -400, refund)
      expect((yield* store.limiter.admit("p:m", [tpm(1000, 10_000, 400)], op()))._tag).toBe("Admitted")
      expect((yield* store.limiter.admit("p:m", [tpm(1000, 10_000, 1)], op()))._tag).toBe("Wait")
      // A refund on a full bucket does not make it hold more than max.
      const other = "p:other"
      yield* store.limiter.adjust(other, limit, -5000, op())
      expect((yield* store.limiter.admit(other, [tpm(1000, 10_000, 1000)], op()))._tag).toBe("Admitted")
      expect((yield* store.limiter.admit(other, [tpm(1000, 10_000, 1)], op()))._tag).toBe("Wait")
      // A positive adjust (used more than reserved) consumes.
      const third = "p:third"
      yield* store.limiter.adjust(third, limit, 900, op())
      expect((yield* store.limiter.admit(third, [tpm(1000, 10_000, 200)], op()))._tag).toBe("Wait")
      expect((yield* store.limiter.admit(third, [tpm(1000, 10_000, 100)], op()))._tag).toBe("Admitted")
    }))

  test(`${backend.name}: a cooldown stops every caller (a second connection too) until it ends`, () =>
    Effect.gen(function*() {
      const { second, store } = yield* backend.make
      expect(yield* store.limiter.cooldownRemaining("p:m")).toEqual(Option.none())
      yield* store.limiter.cooldown("p:m", Duration.millis(300), op())
      const left = yield* second.limiter.cooldownRemaining("p:m")
      expect(Option.isSome(left)).toBe(true)
      expect(Duration.toMillis(Option.getOrThrow(left))).toBeGreaterThan(300 - slack - 20)
      const refused = yield* second.limiter.admit("p:m", [rpm(100, 1000)], op())
      expect(refused._tag === "Wait" && refused.limit).toBe("cooldown")
      expect(waitMillis(refused)).toBeLessThanOrEqual(300)
      // A shorter cooldown does not shorten it.
      yield* store.limiter.cooldown("p:m", Duration.millis(10), op())
      expect(Duration.toMillis(Option.getOrThrow(yield* second.limiter.cooldownRemaining("p:m"))))
        .toBeGreaterThan(200)
      // Another key is not affected.
      expect((yield* second.limiter.admit("p:other", [rpm(100, 1000)], op()))._tag).toBe("Admitted")
      yield* advance(320)
      expect(yield* second.limiter.cooldownRemaining("p:m")).toEqual(Option.none())
      expect((yield* second.limiter.admit("p:m", [rpm(100, 1000)], op()))._tag).toBe("Admitted")
    }))

  test(`${backend.name}: observe (provider headers) tightens a limit, never loosens it, and 0 left sets a cooldown`, () =>
    Effect.gen(function*() {
      const { second, store } = yield* backend.make
      const limit = { name: "rpm", max: 10, period: Duration.seconds(10) }
      const id = op()
      // The provider says 2 are left: 2 admitted, then a wait.
      yield* store.limiter.observe("p:m", limit, 2, Duration.seconds(1), id)
      yield* store.limiter.observe("p:m", limit, 2, Duration.seconds(1), id)
      expect((yield* second.limiter.admit("p:m", [rpm(10, 10_000)], op()))._tag).toBe("Admitted")
      expect((yield* second.limiter.admit("p:m", [rpm(10, 10_000)], op()))._tag).toBe("Admitted")
      expect((yield* second.limiter.admit("p:m", [rpm(10, 10_000)], op()))._tag).toBe("Wait")
      // "9 left" does not give back what is used.
      yield* store.limiter.observe("p:m", limit, 9, Duration.seconds(1), op())
      expect((yield* second.limiter.admit("p:m", [rpm(10, 10_000)], op()))._tag).toBe("Wait")
      // Nothing left on another model: a cooldown until reset, seen by every caller.
      yield* store.limiter.observe("p:n", limit, 0, Duration.millis(300), op())
      const refused = yield* second.limiter.admit("p:n", [rpm(10, 10_000)], op())
      expect(refused._tag === "Wait" && refused.limit).toBe("cooldown")
      expect(waitMillis(refused)).toBeGreaterThan(300 - slack - 20)
      expect(waitMillis(refused)).toBeLessThanOrEqual(300)
    }))

  test(`${backend.name}: two connections share one limit`, () =>
    Effect.gen(function*() {
      const { second, store } = yield* backend.make
      let admitted = 0
      for (let i = 0; i < 10; i++) {
        const a = yield* (i % 2 === 0 ? store : second).limiter.admit("p:m", [rpm(6, 60_000)], op())
        if (a._tag === "Admitted") admitted++
      }
      expect(admitted).toBe(6)
    }))

  test(`${backend.name}: health reports the backend and an intact epoch shared by both connections`, () =>
    Effect.gen(function*() {
      const { second, store } = yield* backend.make
      const a = yield* store.health
      const b = yield* second.health
      expect(a.backend).toBe(store.backend)
      expect(a.epochIntact).toBe(true)
      if (store.backend === "redis") expect(b.epoch).toBe(a.epoch)
    }))
}
