/**
 * The code of docs/resilience.md. The `#region` blocks are what the page shows.
 *
 * Run it with `npx tsx docs/examples/resilience.ts`: no API key, no network. Every example runs
 * against `MockLLM` (scripted replies and faults) on the real clock with short delays, except the
 * rolling budget window, which moves the `TestClock` an hour ahead.
 */
// #region imports
import { Console, Duration, Effect, Layer, Option, Queue, Stream } from "effect"
import { Budget, CircuitBreaker, LLM, LLMError, Message, Resilience, Response } from "../../src/index.js"
import { MockLLM } from "../../src/testing/index.js"
// #endregion
import { TestClock, TestContext } from "effect"
import * as assert from "node:assert/strict"

const ask: LLM.CompletionRequest = { messages: [Message.user("Hello")] }

const rateLimited = (provider: string, retryAfter: Duration.DurationInput) =>
  new LLMError.RateLimitError({
    provider,
    message: "slow down",
    status: 429,
    retryAfter: Option.some(Duration.decode(retryAfter))
  })

const overloaded = (provider: string) =>
  new LLMError.ProviderUnavailableError({ provider, message: "overloaded", status: 529 })

// #region retry
// A 429 asking for 200 ms, then an answer: the retry waits the 200 ms (more than its backoff).
const retried = LLM.complete(ask).pipe(
  Resilience.retry({ maxRetries: 3, baseDelay: "50 millis" }),
  Effect.provide(MockLLM.layer([MockLLM.fail(rateLimited("mock", "200 millis")), MockLLM.text("Hi!")]))
)

// A stream is retried only while it has emitted nothing: no event ever reaches you twice.
const retriedStream = Response.textDeltas(LLM.stream(ask).pipe(Resilience.retry())).pipe(
  Stream.runCollect,
  Effect.provide(MockLLM.layer([MockLLM.fail(overloaded("mock")), MockLLM.chunks(["Hel", "lo"])]))
)
// #endregion

// #region timeout
const timeouts = Effect.gen(function*() {
  const slow = yield* MockLLM.make(() => MockLLM.text("finally"), { latency: "2 seconds" })
  const llm = Resilience.withTimeout(slow, { total: "500 millis", firstEvent: "100 millis", idle: "50 millis" })
  const viaComplete = yield* Effect.flip(llm.complete(ask)) // the total timeout
  const viaStream = yield* Effect.flip(Stream.runDrain(llm.stream(ask))) // the first-event timeout
  return [viaComplete, viaStream] as const
})
// #endregion

// #region circuit-breaker
const breaker = Effect.gen(function*() {
  const provider = yield* MockLLM.make(() => MockLLM.fail(overloaded("mock")))
  const llm = yield* Resilience.withCircuitBreaker(provider, {
    failureThreshold: 3,
    resetTimeout: "30 seconds",
    onStateChange: ({ from, to }) => Console.log(`circuit ${from} -> ${to}`)
  })
  for (let i = 0; i < 3; i++) yield* Effect.either(llm.complete(ask))
  // Open: refused at once, without a request, saying when the next trial call may go.
  const refused = yield* Effect.flip(llm.complete(ask))
  const requests = (yield* provider.requests).length
  return { refused, requests }
})
// #endregion

// #region shared-breaker
// One breaker for two LLMs on the same provider (two agents, say): failures of either open it for both.
const sharedBreaker = Effect.gen(function*() {
  const provider = yield* MockLLM.make(() => MockLLM.fail(overloaded("mock")))
  const breaker = yield* CircuitBreaker.make({ provider: "mock", failureThreshold: 2, resetTimeout: "30 seconds" })
  const planner = CircuitBreaker.protectLLM(provider, breaker)
  const coder = CircuitBreaker.protectLLM(provider, breaker)
  yield* Effect.either(planner.complete(ask))
  yield* Effect.either(coder.complete(ask))
  const refused = yield* Effect.flip(planner.complete(ask)) // CircuitOpenError: no request
  return { refused, state: yield* breaker.state, requests: (yield* provider.requests).length }
})
// #endregion

// #region fallback
const fallback = Effect.gen(function*() {
  const primary = yield* MockLLM.make(() => MockLLM.fail(rateLimited("primary", "1 minute")), {
    providerId: "primary"
  })
  const secondary = yield* MockLLM.make(() => MockLLM.fail(overloaded("secondary")), { providerId: "secondary" })
  const backup = yield* MockLLM.make(() => MockLLM.text("from the backup"), { providerId: "backup" })

  const llm = Resilience.withFallback(primary, [secondary, backup])
  const reply = yield* llm.complete(ask)
  // reply.providerId === "backup"; llm.providerId === "fallback(primary,secondary,backup)"
  const usage = yield* llm.usage // the sum of the three: 3 calls, 2 failures
  return { reply, usage, providerId: llm.providerId }
})
// #endregion

// #region layer
// fallback(retry(circuitBreaker(timeout(llm)))), for the LLM in context
const Sturdy = Layer.unwrapEffect(
  Effect.map(
    MockLLM.make(() => MockLLM.text("from the backup"), { providerId: "backup" }),
    (backup) =>
      Resilience.layer({
        timeout: { total: "1 second", firstEvent: "500 millis", idle: "200 millis" },
        circuitBreaker: { failureThreshold: 2, resetTimeout: "30 seconds" },
        retry: { maxRetries: 5, baseDelay: "20 millis" },
        fallbacks: [backup]
      })
  )
).pipe(Layer.provide(MockLLM.layer(() => MockLLM.fail(overloaded("primary")), { providerId: "primary" })))

// Two attempts open the breaker; the third is refused and the call moves on to the backup.
const sturdy = LLM.complete(ask).pipe(Effect.provide(Sturdy))
// #endregion

// #region budget
const Budgeted = Budget.layer({
  total: { usd: 1 },
  scopes: { "*": { usd: 0.5, window: "1 hour" } },
  scope: "planner",
  unpriced: "allow" // the mock's model has no price: admit it, count its tokens and reported cost
}).pipe(Layer.provideMerge(MockLLM.layer(() => MockLLM.text("Sure.", { costUsd: 0.2 }))))

const budgeted = Effect.gen(function*() {
  const budget = yield* Budget.Budget
  const alerts = yield* budget.subscribe
  yield* LLM.complete(ask) // $0.20 of the planner's $0.50
  yield* LLM.complete(ask) // $0.40: the planner's 50 % and 80 % alerts
  yield* LLM.complete(ask) // $0.60: the planner's 100 % alert, and 50 % of the total
  const refused = yield* Effect.flip(LLM.complete(ask)) // BudgetExceededError, no request sent
  const published = yield* Queue.takeAll(alerts)
  const spent = yield* budget.spent(Budget.Target.scope("planner"))
  return { refused, alerts: [...published].map((alert) => alert.message), spent }
}).pipe(Effect.scoped, Effect.provide(Budgeted))
// #endregion

// #region rolling-window
const rolling = Effect.gen(function*() {
  const provider = yield* MockLLM.make(() => MockLLM.text("ok", { costUsd: 0.5 }))
  const budget = yield* Budget.make({ total: { usd: 1, window: "1 hour" }, unpriced: "allow" })
  const llm = Budget.guard(provider, budget)
  yield* llm.complete(ask)
  yield* llm.complete(ask)
  const refused = yield* Effect.either(llm.complete(ask)) // $1.00 in the last hour: refused
  yield* TestClock.adjust("1 hour") // the window has moved on
  const allowed = yield* Effect.either(llm.complete(ask))
  return { refused, allowed }
}).pipe(Effect.provide(TestContext.TestContext))
// #endregion

// -----------------------------------------------------------------------------
// main: run every example and check what it shows
// -----------------------------------------------------------------------------

const main = Effect.gen(function*() {
  assert.equal((yield* retried).content, "Hi!")
  assert.deepEqual([...(yield* retriedStream)], ["Hel", "lo"])
  console.log("ok  retry")

  const [viaComplete, viaStream] = yield* timeouts
  assert.equal(viaComplete._tag, "TimeoutError")
  assert.match(viaComplete.message, /total timeout/)
  assert.match(viaStream.message, /first-event timeout/)
  console.log("ok  timeout")

  const { refused, requests } = yield* breaker
  assert.equal(refused._tag, "CircuitOpenError")
  assert.equal(requests, 3)
  console.log("ok  circuit breaker")

  const shared = yield* sharedBreaker
  assert.equal(shared.refused._tag, "CircuitOpenError")
  assert.equal(shared.state, "Open")
  assert.equal(shared.requests, 2)
  console.log("ok  shared circuit breaker")

  const chain = yield* fallback
  assert.equal(chain.reply.providerId, "backup")
  assert.equal(chain.providerId, "fallback(primary,secondary,backup)")
  assert.equal(chain.usage.calls, 3)
  assert.equal(chain.usage.failures, 2)
  console.log("ok  fallback")

  assert.equal((yield* sturdy).providerId, "backup")
  console.log("ok  layer")

  const spend = yield* budgeted
  assert.equal(spend.refused._tag, "BudgetExceededError")
  assert.equal(spend.alerts.length, 4)
  assert.ok(Math.abs(spend.spent.usd - 0.6) < 1e-9)
  console.log("ok  budget")

  const window = yield* rolling
  assert.equal(window.refused._tag, "Left")
  assert.equal(window.allowed._tag, "Right")
  console.log("ok  rolling window")
})

Effect.runPromise(main).then(
  () => console.log("resilience: done"),
  (error) => {
    console.error(error)
    process.exitCode = 1
  }
)
