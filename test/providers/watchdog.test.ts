/**
 * The providers' timeout (one watchdog per provider): it never spins, whatever the timeout.
 */
import { afterEach, describe, expect, it, vi } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import * as Message from "../../src/Message.js"
import * as OpenAI from "../../src/providers/OpenAI.js"
import * as FakeProviderServer from "../../src/testing/FakeProviderServer.js"

/** The current clock, with its sleeps counted. */
const countingClock = Effect.map(Effect.clock, (clock) => {
  const counter = { sleeps: 0 }
  const counted: Clock.Clock = {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: () => clock.unsafeCurrentTimeMillis(),
    unsafeCurrentTimeNanos: () => clock.unsafeCurrentTimeNanos(),
    currentTimeMillis: clock.currentTimeMillis,
    currentTimeNanos: clock.currentTimeNanos,
    sleep: (duration) => {
      counter.sleeps++
      return clock.sleep(duration)
    }
  }
  return { counter, counted }
})

const makeOpenAI = (server: FakeProviderServer.Service, timeout: Duration.DurationInput) =>
  OpenAI.make({ apiKey: Redacted.make("sk-test"), baseUrl: server.openaiBaseUrl, timeout })

describe("provider timeout watchdog", () => {
  afterEach(() => {
    vi.restoreAllMocks()
  })

  it.scoped("a zero timeout does not spin: the idle watchdog sleeps, and calls time out at once", () =>
    Effect.gen(function*() {
      const server = yield* FakeProviderServer.make()
      const { counted, counter } = yield* countingClock
      const llm = yield* Effect.withClock(makeOpenAI(server, Duration.zero), counted)
      // Let the watchdog run for a while, on the TestClock.
      for (let i = 0; i < 50; i++) yield* Effect.yieldNow()
      yield* TestClock.adjust(Duration.seconds(1))
      for (let i = 0; i < 50; i++) yield* Effect.yieldNow()
      expect(counter.sleeps).toBeLessThan(5)
      yield* server.enqueue(FakeProviderServer.Reply.hang)
      const error = yield* Effect.flip(
        Effect.withClock(llm.complete({ messages: [Message.user("Hi")], maxTokens: 16 }), counted)
      )
      expect(error._tag).toBe("TimeoutError")
      expect(counter.sleeps).toBeLessThan(10)
    }))

  it.scoped("a 30-day timeout still times a call out after 30 days (the wait is cut in timer-sized sleeps)", () =>
    Effect.gen(function*() {
      const server = yield* FakeProviderServer.make()
      const llm = yield* makeOpenAI(server, Duration.days(30))
      yield* server.enqueue(FakeProviderServer.Reply.hang)
      const fiber = yield* Effect.fork(llm.complete({ messages: [Message.user("Hi")], maxTokens: 16 }))
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 50)))
      yield* TestClock.adjust(Duration.days(29))
      for (let i = 0; i < 20; i++) yield* Effect.yieldNow()
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust(Duration.days(1))
      const error = yield* Effect.flip(fiber.await.pipe(Effect.flatten))
      expect(error._tag).toBe("TimeoutError")
    }))

  it.live("a timeout above 2^31-1 ms never hands setTimeout a delay it cannot hold (which fires every millisecond)", () =>
    Effect.gen(function*() {
      const delays: Array<number> = []
      const original = globalThis.setTimeout
      vi.spyOn(globalThis, "setTimeout").mockImplementation(
        ((handler: any, delay?: number, ...args: Array<any>) => {
          if (typeof delay === "number") delays.push(delay)
          return original(handler, delay, ...args)
        }) as any
      )
      const server = yield* FakeProviderServer.make()
      const llm = yield* makeOpenAI(server, Duration.days(30))
      yield* server.enqueue(FakeProviderServer.Reply.scripted({ text: "Hi" }))
      const reply = yield* llm.complete({ messages: [Message.user("Hi")], maxTokens: 16 })
      expect(reply.content).toBe("Hi")
      yield* Effect.sleep(Duration.millis(50))
      expect(delays.filter((delay) => delay > 2 ** 31 - 1)).toEqual([])
      // One sleep per wake-up: no busy loop of 1 ms timers.
      expect(delays.filter((delay) => delay === 2 ** 31 - 1).length).toBeLessThan(5)
    }).pipe(Effect.scoped))
})
