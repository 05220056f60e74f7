/**
 * `npx tsx bench/shared.ts`: the overhead of the rate-limit guard per call, in memory
 * (`SharedState.layerMemory`) and on loopback Redis (`SharedState.layerRedis`, a redis-server of
 * its own on a free port), in the same run.
 *
 * - The provider is an instant in-process `LLM` (`LLM.make` with a driver that answers at once),
 *   so what is measured is the guard: the forecast (prompt tokens counted), the admit script
 *   (rpm + tpm in one step) and the correction after the reply.
 * - Variants are interleaved: each round runs a batch of sequential calls of every variant, in an
 *   order rotated every round. Reported: the median and p99 of one call, the overhead over the
 *   bare provider, round trips to Redis per call (counted on the connection), and throughput
 *   with 64 calls in flight.
 *
 * Options: `--rounds N` (default 10), `--calls N` per variant per round (default 500).
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as Capabilities from "../src/Capabilities.js"
import * as LLM from "../src/LLM.js"
import * as Message from "../src/Message.js"
import * as RateLimit from "../src/RateLimit.js"
import type * as Response from "../src/Response.js"
import * as SharedState from "../src/SharedState.js"
import * as Usage from "../src/Usage.js"
import * as RedisHarness from "../test/redis.js"
import { option } from "./stats.js"

const rounds = Number(option("--rounds") ?? 10)
const callsPerRound = Number(option("--calls") ?? 500)

const reply = (request: LLM.ResolvedRequest): ReadonlyArray<Response.StreamEvent> => [
  { _tag: "TextDelta", text: "ok" },
  LLM.finish({
    finishReason: "stop",
    usage: Usage.tokens({ inputTokens: 20, outputTokens: 5 }),
    model: request.model
  })
]

const instant = LLM.make({
  providerId: "bench",
  providerType: "custom",
  defaultModel: "gpt-4o-mini",
  defaultMaxTokens: 256,
  capabilities: Capabilities.forModel,
  send: (request) => Effect.succeed(reply(request)),
  sendStream: (request) => Stream.fromIterable(reply(request))
})

const request: LLM.CompletionRequest = { messages: [Message.user("What is the capital of France?")], maxTokens: 64 }
// Limits no call of the bench reaches: the guard always admits at once.
const limits: RateLimit.Options = {
  limits: { bench: { rpm: 1e9, tpm: 1e12 } },
  maxWait: Duration.seconds(1)
}

const percentile = (sorted: ReadonlyArray<number>, p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!
const fmt = (ms: number) => ms.toFixed(3)

const program = Effect.gen(function*() {
  const redis = yield* RedisHarness.make()
  const bare = yield* instant
  const memory = yield* Effect.provide(RateLimit.withRateLimit(bare, limits), SharedState.layerMemory)

  // The Redis store over a connection that counts what it sends.
  let sent = 0
  const connection = yield* SharedState.connectRedis({ url: Redacted.make(redis.url) })
  const counting = Layer.succeed(SharedState.RedisConnection, {
    send: (command) => {
      sent++
      return connection.send(command)
    }
  })
  const store = Context.get(
    yield* Layer.build(Layer.provide(SharedState.layerConnection({ namespace: "bench" }), counting)),
    SharedState.SharedState
  )
  const shared = yield* Effect.provideService(RateLimit.withRateLimit(bare, limits), SharedState.SharedState, store)

  // rpm only: no forecast, no correction after the call (one round trip).
  const rpmOnly = yield* Effect.provideService(
    RateLimit.withRateLimit(bare, { limits: { bench: { rpm: 1e9 } }, maxWait: Duration.seconds(1) }),
    SharedState.SharedState,
    store
  )
  const variants: ReadonlyArray<readonly [string, LLM.Service]> = [
    ["bare", bare],
    ["memory", memory],
    ["redis", shared],
    ["redis, rpm only", rpmOnly]
  ]
  const samples = new Map<string, Array<number>>(variants.map(([name]) => [name, []]))
  // Warm up (JIT, script load, tokenizer).
  for (const [, llm] of variants) for (let i = 0; i < 200; i++) yield* llm.complete(request)

  let redisCalls = 0
  let sentByRedis = 0
  for (let round = 0; round < rounds; round++) {
    const order = variants.map((_, i) => variants[(i + round) % variants.length]!)
    for (const [name, llm] of order) {
      const out = samples.get(name)!
      const sentBefore = sent
      for (let i = 0; i < callsPerRound; i++) {
        const started = performance.now()
        yield* llm.complete(request)
        out.push(performance.now() - started)
      }
      if (name === "redis") {
        redisCalls += callsPerRound
        sentByRedis += sent - sentBefore
      }
    }
  }
  const roundTrips = sentByRedis / redisCalls

  // Throughput: 64 calls in flight, 5,000 calls.
  const throughput = (llm: LLM.Service) =>
    Effect.gen(function*() {
      const n = 5_000
      const started = performance.now()
      yield* Effect.forEach(Array.from({ length: n }), () => llm.complete(request), {
        concurrency: 64,
        discard: true
      })
      return n / ((performance.now() - started) / 1000)
    })
  const perSecond = new Map<string, number>()
  for (const [name, llm] of variants) perSecond.set(name, yield* throughput(llm))

  const stats = new Map(
    variants.map(([name]) => {
      const sorted = [...samples.get(name)!].sort((a, b) => a - b)
      return [name, { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99) }] as const
    })
  )
  const base = stats.get("bare")!
  console.log(
    `\nRate-limit guard (rpm + tpm) per call: ${rounds} rounds x ${callsPerRound} sequential calls per variant, interleaved\n`
  )
  console.log("| variant | p50 ms | p99 ms | overhead p50 ms | overhead p99 ms | calls/s (64 in flight) |")
  console.log("| --- | --- | --- | --- | --- | --- |")
  for (const [name] of variants) {
    const s = stats.get(name)!
    console.log(
      `| ${name} | ${fmt(s.p50)} | ${fmt(s.p99)} | ${name === "bare" ? "-" : fmt(s.p50 - base.p50)} | ${
        name === "bare" ? "-" : fmt(s.p99 - base.p99)
      } | ${Math.round(perSecond.get(name)!)} |`
    )
  }
  console.log(
    `\nRedis round trips per guarded call (rpm + tpm): ${roundTrips.toFixed(2)} (admit, then the tpm correction)`
  )
})

Effect.runPromise(Effect.scoped(program)).catch((error) => {
  console.error(error)
  process.exit(1)
})
