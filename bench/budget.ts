/**
 * `npx tsx bench/budget.ts`: the cost of `Budget.guard` per call, in memory.
 *
 * Calls a `MockLLM` (no latency, no network) in batches, guarded and unguarded, interleaved (the
 * order alternates each round, so drift on the machine falls on both), and reports per call the
 * CPU time (`process.cpuUsage`, user + system) and wall time: medians over the rounds, min-max,
 * and the guard's cost (guarded minus unguarded) against the target of 20 µs of CPU.
 *
 * Cases: a total limit only (2 accounts: total, provider); the same with the forecast made once
 * (the guard's own work: reserve, observe, settle, without the token count of `LLM.forecast`);
 * total + provider + scope with rolling windows (3 accounts). Streams are measured too (`stream`
 * drained).
 *
 * Options: `--rounds N` (default 15), `--calls N` per batch (default 2000), `--json` (also print
 * the results as JSON).
 */
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Budget from "../src/Budget.js"
import type * as LLM from "../src/LLM.js"
import * as Message from "../src/Message.js"
import * as MockLLM from "../src/testing/MockLLM.js"
import { flag, median, option } from "./stats.js"

const rounds = Number(option("--rounds") ?? 15)
const calls = Number(option("--calls") ?? 2000)

const request: LLM.CompletionRequest = { messages: [Message.user("How much?")], maxTokens: 100 }

interface Sample {
  readonly cpuUs: number
  readonly wallUs: number
}

/** Runs `batch` once, returns CPU and wall time per call in µs. */
const measure = async (batch: Effect.Effect<void>): Promise<Sample> => {
  const cpu = process.cpuUsage()
  const start = process.hrtime.bigint()
  await Effect.runPromise(batch)
  const wall = Number(process.hrtime.bigint() - start) / 1000
  const used = process.cpuUsage(cpu)
  return { cpuUs: (used.user + used.system) / calls, wallUs: wall / calls }
}

const fmt = (n: number): string => n.toFixed(2)

interface Case {
  readonly name: string
  readonly plain: Effect.Effect<void>
  readonly guarded: Effect.Effect<void>
}

const completeBatch = (llm: LLM.Service): Effect.Effect<void> =>
  Effect.orDie(Effect.repeatN(Effect.asVoid(llm.complete(request)), calls - 1))

const streamBatch = (llm: LLM.Service): Effect.Effect<void> =>
  Effect.orDie(Effect.repeatN(Stream.runDrain(llm.stream(request)), calls - 1))

const pricing = { "mock-model": { input: 1, output: 2 } }

const makeCases = Effect.gen(function*() {
  const mock = yield* MockLLM.make(() => MockLLM.text("ok", { usage: { inputTokens: 10, outputTokens: 5 } }), {
    pricing
  })
  // Limits far above what the bench spends: every call is admitted.
  const totalOnly = yield* Budget.make({ total: { usd: 1e9 } })
  const windowed = yield* Budget.make({
    total: { usd: 1e9, tokens: 1e15, window: "1 day" },
    providers: { mock: { usd: 1e9, window: "1 hour" } },
    scopes: { "*": { usd: 1e9, window: "1 hour" } }
  })
  const guardedTotal = Budget.guard(mock, totalOnly)
  // The same provider with its forecast made once: the guard's own cost, without counting tokens.
  const forecast = yield* mock.forecast(request)
  const preForecast: LLM.Service = { ...mock, forecast: () => Effect.succeed(forecast) }
  const guardedPre = Budget.guard(preForecast, totalOnly)
  const guardedWindowed = Budget.guard(mock, windowed, { scope: "planner" })
  const cases: ReadonlyArray<Case> = [
    { name: "complete, total limit (2 accounts)", plain: completeBatch(mock), guarded: completeBatch(guardedTotal) },
    {
      name: "complete, total limit, forecast precomputed (the guard without counting)",
      plain: completeBatch(mock),
      guarded: completeBatch(guardedPre)
    },
    {
      name: "complete, total + provider + scope, windowed (3 accounts)",
      plain: completeBatch(mock),
      guarded: completeBatch(guardedWindowed)
    },
    {
      name: "stream, total + provider + scope, windowed (3 accounts)",
      plain: streamBatch(mock),
      guarded: streamBatch(guardedWindowed)
    }
  ]
  return cases
})

const main = async () => {
  const cases = await Effect.runPromise(makeCases)
  console.log(`Budget.guard, in memory: ${rounds} rounds × ${calls} calls per batch, MockLLM (no latency)`)
  console.log(`node ${process.version}, ${process.platform} ${process.arch}\n`)
  const results: Array<Record<string, unknown>> = []
  console.log(
    "| case | unguarded CPU µs/call | guarded CPU µs/call | guard CPU µs/call (min-max) | ratio | wall µs/call unguarded / guarded | target ≤ 20 µs |"
  )
  console.log("|---|---|---|---|---|---|---|")
  for (const c of cases) {
    // Warm-up: the JIT compiles both paths before anything is timed.
    await measure(c.plain)
    await measure(c.guarded)
    const plain: Array<Sample> = []
    const guarded: Array<Sample> = []
    for (let round = 0; round < rounds; round++) {
      if (round % 2 === 0) {
        plain.push(await measure(c.plain))
        guarded.push(await measure(c.guarded))
      } else {
        guarded.push(await measure(c.guarded))
        plain.push(await measure(c.plain))
      }
    }
    const plainCpu = median(plain.map((s) => s.cpuUs))
    const guardedCpu = median(guarded.map((s) => s.cpuUs))
    const deltas = plain.map((p, i) => guarded[i]!.cpuUs - p.cpuUs)
    const cost = median(deltas)
    const row = {
      case: c.name,
      unguardedCpuUs: plainCpu,
      guardedCpuUs: guardedCpu,
      guardCpuUs: cost,
      guardCpuUsMin: Math.min(...deltas),
      guardCpuUsMax: Math.max(...deltas),
      ratio: guardedCpu / plainCpu,
      unguardedWallUs: median(plain.map((s) => s.wallUs)),
      guardedWallUs: median(guarded.map((s) => s.wallUs))
    }
    results.push(row)
    console.log(
      `| ${c.name} | ${fmt(plainCpu)} | ${fmt(guardedCpu)} | ${fmt(cost)} (${fmt(row.guardCpuUsMin)}–${
        fmt(row.guardCpuUsMax)
      }) | ${fmt(row.ratio)}× | ${fmt(row.unguardedWallUs)} / ${fmt(row.guardedWallUs)} | ${
        cost <= 20 ? "met" : "MISSED"
      } |`
    )
  }
  console.log("\nA rolling window's work per call does not grow with the spends it holds (amortised O(1)):")
  console.log("| spends live in the 1-day window | record µs/call (CPU) |")
  console.log("|---|---|")
  for (const live of [1_000, 100_000]) {
    const us = await windowCost(live)
    results.push({ case: `window with ${live} live spends`, recordCpuUs: us })
    console.log(`| ${live} | ${fmt(us)} |`)
  }
  if (flag("--json")) console.log(JSON.stringify(results, null, 2))
}

/** A clock that moves 1 ms at each reading: every spend is its own entry of the window. */
const tickingClock = (): Clock.Clock => {
  let now = 1_700_000_000_000
  const base = Effect.runSync(Effect.clock)
  return {
    ...base,
    unsafeCurrentTimeMillis: () => ++now,
    currentTimeMillis: Effect.sync(() => ++now),
    unsafeCurrentTimeNanos: () => BigInt(++now) * BigInt(1_000_000),
    currentTimeNanos: Effect.sync(() => BigInt(++now) * BigInt(1_000_000))
  }
}

/** CPU µs per `record` into a 1-day window that already holds `live` spends (none expire). */
const windowCost = async (live: number): Promise<number> => {
  const clock = tickingClock()
  const budget = await Effect.runPromise(
    Effect.withClock(Budget.make({ total: { usd: 1e12, window: "1 day" } }), clock)
  )
  const call = { provider: "mock" }
  const spend = { usd: 0.001, tokens: 10 }
  await Effect.runPromise(Effect.withClock(Effect.repeatN(budget.record(call, spend), live - 1), clock))
  const cpu = process.cpuUsage()
  await Effect.runPromise(Effect.withClock(Effect.repeatN(budget.record(call, spend), calls - 1), clock))
  const used = process.cpuUsage(cpu)
  return (used.user + used.system) / calls
}

void main()
